"""Issue 15: reading a long log back builds its Merkle tree in bulk; the tree (every stored node,
so every root and proof) is the same as appending leaf by leaf."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.merkle import MerkleTree, root_of


def leaves(count: int, start: int = 0) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(start, start + count)]


@given(st.lists(st.integers(0, 70), max_size=6))
def test_bulk_extend_equals_one_by_one(batches: list[int]) -> None:
    """Extending in any batches gives exactly the nodes, roots and proofs of single appends."""
    bulk, single = MerkleTree(), MerkleTree()
    done = 0
    for count in batches:
        batch = leaves(count, done)
        done += count
        bulk.extend(batch)
        for leaf in batch:
            single.append(leaf)
        assert bulk._levels == single._levels  # the structure itself
    if done:
        assert bulk.root() == single.root() == root_of(leaves(done))
        assert bulk.inclusion_proof(done - 1, done) == single.inclusion_proof(done - 1, done)
        assert bulk.consistency_proof(1, done) == single.consistency_proof(1, done)


def test_bulk_extend_refuses_a_bad_leaf() -> None:
    """A leaf that is not a 32-byte hash is refused, and the tree is left as it was."""
    tree = MerkleTree(leaves(3))
    with pytest.raises(ValueError, match="32 bytes"):
        tree.extend([*leaves(2, 3), b"short"])
    assert tree.size == 3
