"""RFC 9162 Merkle tree: hashes, an append-only tree of complete subtrees, audit paths,
consistency proofs, and their verification. Standard library only.

The tree keeps, per level, the hashes of *complete* subtrees only (level j holds the roots of the
aligned 2^j-leaf blocks). Every hash RFC 9162 needs, MTH(D[lo:hi]) for the ranges its PATH and
SUBPROOF recursions visit, is then a fold of O(log n) stored nodes, so roots and proofs for any
tree size up to n cost O(log n) (consistency: O(log^2 n)) after an O(1) amortized append.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 2.1.1: MTH({}) = HASH()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d0}) = HASH(0x00 || d0)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: HASH(0x01 || MTH(left) || MTH(right))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree over leaf hashes."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def append(self, leaf: bytes) -> None:
        if len(leaf) != 32:
            raise ValueError("a leaf hash is 32 bytes")
        self._levels[0].append(leaf)
        level = 0
        # A block completes whenever its level gets an even number of nodes.
        while len(self._levels[level]) % 2 == 0:
            nodes = self._levels[level]
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._levels[level + 1].append(node_hash(nodes[-2], nodes[-1]))
            level += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaves: the same tree as appending each, with each level's new nodes
        hashed in one pass (reading a log of millions of entries back takes seconds, not
        minutes)."""
        added = [bytes(leaf) for leaf in leaves]
        if any(len(leaf) != 32 for leaf in added):
            raise ValueError("a leaf hash is 32 bytes")
        self._levels[0].extend(added)
        sha256 = hashlib.sha256
        level = 0
        while len(self._levels[level]) >= 2:
            nodes = self._levels[level]
            if level + 1 == len(self._levels):
                self._levels.append([])
            parents = self._levels[level + 1]
            start, stop = len(parents), len(nodes) // 2
            if start >= stop:
                break  # no new node here, so none above either
            parents.extend(
                sha256(b"\x01" + left + right).digest()
                for left, right in zip(
                    nodes[2 * start : 2 * stop : 2],
                    nodes[2 * start + 1 : 2 * stop : 2],
                    strict=True,
                )
            )
            level += 1

    def _range(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range whose start is aligned to its largest complete block."""
        if not 0 <= lo < hi <= self.size:
            raise ValueError(f"range [{lo}, {hi}) outside a tree of {self.size} leaves")
        blocks: list[bytes] = []
        pos = lo
        while pos < hi:
            level = (hi - pos).bit_length() - 1  # the largest block that fits ...
            while pos % (1 << level):  # ... and is aligned at pos
                level -= 1
            blocks.append(self._levels[level][pos >> level])
            pos += 1 << level
        digest = blocks[-1]
        for block in reversed(blocks[:-1]):
            digest = node_hash(block, digest)
        return digest

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: all)."""
        size = self.size if size is None else size
        if size == 0:
            return EMPTY_ROOT
        return self._range(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size])."""
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of size {size} (log size {self.size})")
        proof: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _largest_power_of_two_below(hi - lo)
            if index < lo + k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old, D[0:new])."""
        if not 0 < old <= new <= self.size:
            raise ValueError(f"no consistency proof from {old} to {new} (log size {self.size})")
        proof: list[bytes] = []
        lo, hi, m, complete = 0, new, old, True
        while m != hi - lo:
            k = _largest_power_of_two_below(hi - lo)
            if m <= k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo += k
                m -= k
                complete = False
        if not complete:
            proof.append(self._range(lo, hi))
        proof.reverse()
        return proof


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does `proof` show `leaf` at `index` in the tree of `size` with `root`?"""
    if not 0 <= index < size or len(leaf) != 32 or len(root) != 32:
        return False
    if any(len(p) != 32 for p in proof):
        return False
    fn, sn = index, size - 1  # 2.1.3.2 step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4.1
            return False
        if fn & 1 or fn == sn:  # 4.2
            r = node_hash(p, r)
            if not fn & 1:  # 4.2.1
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:  # 4.3
            r = node_hash(r, p)
        fn >>= 1  # 4.4
        sn >>= 1
    return sn == 0 and r == root  # step 5


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree of size `new` an append-only extension of the one of `old`?"""
    if not 0 < old <= new or len(old_root) != 32 or len(new_root) != 32:
        return False
    if any(len(p) != 32 for p in proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if not proof:  # step 1
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # step 2: old is a power of two
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6.1
            return False
        if fn & 1 or fn == sn:  # 6.2
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:  # 6.2.1
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:  # 6.3
            sr = node_hash(sr, c)
        fn >>= 1  # 6.4
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0  # step 7


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes, bottom-up (the fast path for full re-checks)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # a lone right node is promoted unchanged
        level = paired
    return level[0]
