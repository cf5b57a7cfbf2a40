"""Signed checkpoints in the C2SP tlog-checkpoint format, as C2SP signed notes.

A checkpoint's text is three lines, each ending in a newline::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

The signed note appends a blank line and one line per signature::

    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>

where the key name is the log's origin and the key hash is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte public key) (C2SP signed-note, Ed25519 type 0x01).
The signature covers the text exactly, final newline included. Standard library + cryptography.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.signing import Signer, verify_signature

_DASH = "\u2014 "  # an em dash and a space open every signature line
_ED25519 = b"\x01"


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_key_hash(name: str, key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + raw_public(key)).digest()[:4]


def checkpoint_text(origin: str, size: int, root: bytes) -> bytes:
    if "\n" in origin or not origin:
        raise ValueError("a checkpoint origin is one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()


def sign_checkpoint(origin: str, size: int, root: bytes, signers: Iterable[Signer]) -> str:
    text = checkpoint_text(origin, size, root)
    lines = []
    for signer in signers:
        # Signed-note signatures are over the text alone, without a domain prefix (C2SP).
        sig = signer.private_key.sign(text)
        key_hash = note_key_hash(origin, signer.private_key.public_key())
        lines.append(f"{_DASH}{origin} {base64.b64encode(key_hash + sig).decode()}\n")
    if not lines:
        raise ValueError("a checkpoint needs at least one signature")
    return text.decode() + "\n" + "".join(lines)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signed_by: tuple[str, ...]  # key ids whose signatures verified
    note: str


def parse_checkpoint(
    note: str, keys: Mapping[str, Ed25519PublicKey], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint under `keys` (kid -> key); raise ValueError saying why not."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note: no blank line before the signatures")
    lines = text.split("\n")
    if len(lines) < 3:
        raise ValueError("a checkpoint has an origin, a size and a root hash")
    name, size_text, root_text = lines[0], lines[1], lines[2]
    if origin is not None and name != origin:
        raise ValueError(f"checkpoint origin {name!r} is not {origin!r}")
    if not (size_text.isascii() and size_text.isdigit()) or (  # (not "²": int() fails)
        size_text.startswith("0") and size_text != "0"
    ):
        raise ValueError(f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise ValueError("root hash is not base64") from None
    if len(root) != 32:
        raise ValueError("root hash is not 32 bytes")
    body = (text + "\n").encode()
    by_hash = {note_key_hash(name, key): (kid, key) for kid, key in keys.items()}
    verified: list[str] = []
    for line in sigs.split("\n"):
        if not line:
            continue
        if not line.startswith(_DASH):
            raise ValueError("malformed signature line")
        sig_name, _, blob = line[len(_DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error:
            raise ValueError("signature is not base64") from None
        found = by_hash.get(raw[:4])
        if sig_name != name or found is None or len(raw) != 68:
            continue  # a signature by a key we do not know: ignored, as signed-note requires
        kid, key = found
        if verify_signature(key, b"", body, raw[4:]):
            verified.append(kid)
    if not verified:
        raise ValueError("no valid signature by a trusted key")
    return Checkpoint(name, int(size_text), root, tuple(verified), note)
