"""Promise 5: pseudonyms are keyed and deterministic, so a faster way of computing them must give
the very same values. Known-answer vectors (computed once with `hmac.new` and written down here)
pin the `pseudonymize` output for fixed inputs on both of its paths, and the batched HMAC is
property-tested against `hmac.new` on arbitrary bytes and keys."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from gateway.privacy import keyed
from gateway.privacy.keyed import hmac_sha256_joined, hmac_sha256_many
from gateway.privacy.transforms import CATALOGUE, TransformContext, scope_key

CTX = TransformContext(b"k" * 32, "client-a", "grant-a")

# HMAC-SHA256(secret, "public-data-gateway/pseudonym/v1\0<scope>\0<scope id>"), by hand.
RECIPIENT_KEY = "04d02939cef88aee5d0f60aa9cda2e9653834c15f09b0504997eb4ba318902b2"
CLIENT_KEY = "26d9dc39596d6e361577d2eb3d2dc2d346045d1acd8821dc9272e9df07c66aee"

# HMAC-SHA256(RECIPIENT_KEY, value).hexdigest(), computed with hmac.new.
VECTORS = {
    "110105199001011234": "3d05326e1824b4de9c27db0f3ec5a5e23f5355e872517a3fc1d4cef1621a7f63",
    "": "50011cbf9562c58447d1df798a8d101f82397ff6b774c11b95dd57054610c8e5",
    "张三": "d0308ca627729bb7a3e45cc2c7f9af4043d1f546ce475deaf26686c8c7c1d5f9",
    "a" * 100: "ae775fa05f54dc1d8e064160aae31e7e5246185c145535b5f99a9cf3c7b089c0",
    "x": "c8585bb64929c6432c5e1599715e403725a03e059bd62d7ef0e55806cf572817",
}

# SHA-256 of "\n".join(tokens) for 10,000 distinct 身份证号-like values (per-row path).
DISTINCT_10K = {
    20: "13e1cb8c025ee5c520660447c4de4eda9c856184d152f7681942180c758390c0",
    7: "0fa239f9b87f302ba9314ac66c58cbfa9fb52a323a908cdbdce89bec8bef22ae",
}

# RFC 4231 test cases 1, 2 and 6 (the last with a 131-byte key, longer than a block).
RFC_4231 = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
]


def pseudonymize(values: list[str | None], params: dict[str, object]) -> list[str | None]:
    series = pd.Series(values, dtype="string[pyarrow]")
    out = CATALOGUE["pseudonymize"].apply(series, params, CTX)
    return [None if pd.isna(v) else str(v) for v in out.tolist()]


def test_scope_keys_are_the_written_down_ones() -> None:
    """The per-scope keys the pseudonyms are computed with have not changed."""
    assert scope_key(CTX.secret, "recipient", CTX).hex() == RECIPIENT_KEY
    assert scope_key(CTX.secret, "client", CTX).hex() == CLIENT_KEY


def test_pseudonyms_of_fixed_values_are_the_known_answers() -> None:
    """`pseudonymize` (token format, default scope) gives the written-down pseudonyms for fixed
    values, empty, non-ASCII and longer than a hash block included, with nulls kept null."""
    values: list[str | None] = [*VECTORS, None, "张三"]
    expected = [*(h[:20] for h in VECTORS.values()), None, VECTORS["张三"][:20]]
    assert pseudonymize(values, {"length": 20}) == expected
    assert pseudonymize(values, {"length": 64}) == [*VECTORS.values(), None, VECTORS["张三"]]
    assert pseudonymize(["110105199001011234"], {"length": 20, "scope": "client"}) == [
        "c7ee71a9d6562ac4ac9b"
    ]


def test_pseudonyms_of_a_large_distinct_column_are_the_known_answers() -> None:
    """On a column of distinct values larger than the sample (keyed per row, not through a
    dictionary), the pseudonyms are the written-down ones, for an even and an odd length."""
    values: list[str | None] = [f"1101051990{i:08d}" for i in range(10_000)]
    assert keyed.keyed_digests(bytes.fromhex(RECIPIENT_KEY), pa.array(values))[1] is None
    for length, digest in DISTINCT_10K.items():
        tokens = pseudonymize(values, {"length": length})
        assert hashlib.sha256("\n".join(map(str, tokens)).encode()).hexdigest() == digest


def test_batched_hmac_passes_rfc_4231() -> None:
    """The batched HMAC gives RFC 4231's HMAC-SHA256 answers, a key longer than 64 bytes too."""
    for key, data, mac in RFC_4231:
        assert hmac.new(key, data, hashlib.sha256).hexdigest() == mac
        assert hmac_sha256_many(key, [data]) == [bytes.fromhex(mac)]
        assert hmac_sha256_joined(key, [data, data]).hex() == mac * 2


VALUE = st.one_of(
    st.binary(max_size=80),
    st.binary(min_size=2040, max_size=2200),  # over hashlib's 2 KB threshold for the GIL
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", "张三".encode(), b"5" * 55, b"6" * 56, b"\x00" * 64, b"\xff" * 65]),
)


@given(
    key=st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"\x00" * 64, b"k" * 65])),
    values=st.lists(VALUE, max_size=12),
)
def test_batched_hmac_is_hmac_new_for_any_bytes(key: bytes, values: list[bytes]) -> None:
    """`hmac_sha256_many` (and the joined form) equal `hmac.new(key, v, sha256).digest()` for
    arbitrary keys (empty, longer than a block) and values (empty, 55 and 56 bytes, over 64
    bytes, over 2 KB, non-ASCII), as bytes, as text and as an Arrow array."""
    expected = [hmac.new(key, v, hashlib.sha256).digest() for v in values]
    assert hmac_sha256_many(key, values) == expected
    assert bytes(hmac_sha256_joined(key, values)) == b"".join(expected)
    assert hmac_sha256_many(key, pa.array(values, pa.large_binary())) == expected
    texts = [v.decode("utf-8", "replace") for v in values]
    assert hmac_sha256_many(key, texts) == [
        hmac.new(key, t.encode("utf-8"), hashlib.sha256).digest() for t in texts
    ]
    assert hmac_sha256_many(key, pa.array(texts, pa.large_string())) == [
        hmac.new(key, t.encode("utf-8"), hashlib.sha256).digest() for t in texts
    ]
