"""The audit writer's per-entry fast paths write the same bytes as the general code (promise 6:
every call's entry is signed; the log format and each signature are a public contract,
docs/audit-format.md): the statement written out directly, and the signature made by
libsodium instead of OpenSSL."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.canonical import canonical_json
from gateway.audit.entry import VERSION, statement
from gateway.audit.signing import ENTRY_CONTEXT, Signer, key_id

# Around and beyond I-JSON's safe range, where canonical_json refuses an integer.
integers = st.integers(-(2**53) - 2, 2**53 + 2) | st.integers(-(2**70), 2**70)
odd = st.booleans() | st.none() | st.floats(allow_nan=False) | st.text(max_size=3)


def _general(origin: object, idx: object, ts: object, leaf: object) -> bytes:
    hexed = leaf.hex() if isinstance(leaf, bytes) else leaf
    value = {"idx": idx, "leaf": hexed, "origin": origin, "ts": ts, "v": VERSION}
    return canonical_json(value)  # type: ignore[arg-type]


def _outcome(make: Callable[[], bytes]) -> tuple[str, object]:
    try:
        return ("ok", make())
    except (TypeError, ValueError, AttributeError) as exc:
        return (type(exc).__name__, str(exc))


@given(st.text(), integers, integers, st.binary(max_size=40))
def test_statement_is_canonical_json_of_its_fields(
    origin: str, idx: int, ts: int, leaf: bytes
) -> None:
    """Any origin (quotes, controls, non-ASCII, lone surrogates), any index and time: the same
    bytes, or the same error with the same message."""
    ours = _outcome(lambda: statement(origin, idx, ts, leaf))
    assert ours == _outcome(lambda: _general(origin, idx, ts, leaf))


@given(st.text() | odd, integers | odd, integers | odd, st.binary(max_size=8))
def test_statement_of_odd_fields_behaves_as_before(
    origin: object, idx: object, ts: object, leaf: bytes
) -> None:
    """A bool, a float, None or a str where an int belongs (or the reverse) takes the general
    path: accepted or refused exactly as before."""
    ours = _outcome(lambda: statement(origin, idx, ts, leaf))  # type: ignore[arg-type]
    assert ours == _outcome(lambda: _general(origin, idx, ts, leaf))


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=600))
def test_signature_is_openssls(seed: bytes, message: bytes) -> None:
    """Ed25519 is deterministic (RFC 8032): libsodium's signature is OpenSSL's, byte for byte,
    for any key and message."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    signer = Signer(key, key_id(key.public_key()))
    signature = signer.sign(ENTRY_CONTEXT, message)
    assert signature == key.sign(ENTRY_CONTEXT + message)
    key.public_key().verify(signature, ENTRY_CONTEXT + message)


def test_signer_without_libsodium_signs_through_openssl() -> None:
    """Where PyNaCl is absent (the auditor's verifier) a signer signs through OpenSSL."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signer = Signer(key, key_id(key.public_key()))
    fast = signer.sign(ENTRY_CONTEXT, b"entry")
    object.__setattr__(signer, "_sodium", b"")  # as __post_init__ leaves it without PyNaCl
    assert signer.sign(ENTRY_CONTEXT, b"entry") == fast == key.sign(ENTRY_CONTEXT + b"entry")


def test_signer_hides_its_libsodium_key() -> None:
    """The derived secret is neither shown nor compared (promise 7: no secrets in logs)."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signer = Signer(key, key_id(key.public_key()))
    assert "_sodium" not in repr(signer)
    assert signer == Signer(key, signer.kid)
