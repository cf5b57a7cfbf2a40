"""Promise 2 (no raw values in the log) with remembered HMACs: the path and query HMACs an
entry carries are exactly HMAC-SHA256 under the workspace key, whether computed or remembered,
and nothing is remembered for unauthenticated callers or long inputs."""

from __future__ import annotations

import hashlib
import hmac

from gateway.api.context import CallHmacs

KEY = b"k" * 32


def _expected(path: str, query: str) -> tuple[str, str | None]:
    def digest(data: bytes) -> str:
        return hmac.new(KEY, data, hashlib.sha256).hexdigest()

    return digest(path.encode()), digest(query.encode("latin-1")) if query else None


def test_remembered_hmacs_are_the_computed_ones() -> None:
    """The first and the repeated call of a client give HMAC-SHA256 of the path and query."""
    hmacs = CallHmacs(KEY)
    for _ in range(3):
        assert hmacs.of("demo", "/v1/datasets/x/rows", "purpose=s&_size=100") == _expected(
            "/v1/datasets/x/rows", "purpose=s&_size=100"
        )
        assert hmacs.of("demo", "/v1/datasets", "") == _expected("/v1/datasets", "")
    assert hmacs.of("other", "/v1/datasets", "") == _expected("/v1/datasets", "")
    assert CallHmacs(b"j" * 32).of("demo", "/v1/datasets", "") != _expected("/v1/datasets", "")


def test_unauthenticated_and_long_calls_are_not_remembered() -> None:
    """A caller without a client id, and a path and query longer than KEEP_BYTES, are hashed
    every time and leave nothing behind; the table stays within KEEP_MAX."""
    hmacs = CallHmacs(KEY)
    long_query = "a=" + "x" * CallHmacs.KEEP_BYTES
    assert hmacs.of(None, "/v1/datasets", "id_card__exact=1") == _expected(
        "/v1/datasets", "id_card__exact=1"
    )
    assert hmacs.of("demo", "/v1/datasets", long_query) == _expected("/v1/datasets", long_query)
    assert not hmacs._known
    for index in range(CallHmacs.KEEP_MAX + 10):
        hmacs.of("demo", f"/v1/datasets/{index}", "")
    assert len(hmacs._known) <= CallHmacs.KEEP_MAX
