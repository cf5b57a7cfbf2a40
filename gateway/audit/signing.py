"""Ed25519 keys for the audit log: key ids, signing with domain separation, verification."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.errors import ConfigError
from gateway.fsutil import write_new


def _sodium() -> (
    tuple[Callable[[bytes, bytes], bytes], Callable[[bytes], tuple[bytes, bytes]]] | None
):
    """libsodium's Ed25519 signing and key expansion; None where PyNaCl is not installed (the
    gateway requires it; the auditor's verifier, verifier/pyproject.toml, ships this module
    without it and never signs)."""
    try:
        from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
    except ImportError:
        return None
    return crypto_sign, crypto_sign_seed_keypair


_SODIUM = _sodium()

# Domain separation: an audit signature can never be mistaken for any other signature by the key.
ENTRY_CONTEXT = b"public-data-gateway/audit-entry/v1\n"


def key_id(public_key: Ed25519PublicKey) -> str:
    """Key id: the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """An audit key and its id. It signs through libsodium: Ed25519 (RFC 8032) is
    deterministic, so the signature is the same 64 bytes OpenSSL's would be (property-tested),
    in 20 us instead of 32 per entry here; the writer signs every entry, and that was its
    largest single cost (docs/performance.md, sixth pass)."""

    private_key: Ed25519PrivateKey
    kid: str
    # libsodium's form of the same key (seed || public key); never shown or compared.
    _sodium: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        secret = b""
        if _SODIUM is not None:
            seed = self.private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            secret = _SODIUM[1](seed)[1]
        object.__setattr__(self, "_sodium", secret)

    def sign(self, context: bytes, message: bytes) -> bytes:
        if _SODIUM is None or not self._sodium:
            return self.private_key.sign(context + message)
        return _SODIUM[0](context + message, self._sodium)[:64]  # signature || message


def generate_keypair(private_path: Path, public_path: Path) -> bool:
    """Create an Ed25519 key pair unless the private key exists. Returns True if created."""
    if private_path.exists():
        return False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_new(private_path, pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_new(public_path, public_pem)
    return True


def load_signer(private_path: Path) -> Signer:
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(
            f"audit signing key {private_path} is missing; run `gateway init` to create one"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{private_path} is not an Ed25519 private key")
    return Signer(key, key_id(key.public_key()))


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"audit public key {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def verify_signature(
    public_key: Ed25519PublicKey, context: bytes, message: bytes, signature: bytes
) -> bool:
    try:
        public_key.verify(signature, context + message)
    except InvalidSignature:
        return False
    return True
