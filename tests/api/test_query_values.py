"""Promise 10 (bad input gets a clear answer, never a different reading): the purpose and format
parameters read without a full parse are exactly what Starlette's QueryParams would give, for
any query string."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.requests import Request

from gateway.api.common import query_values

# Query strings built from the characters that matter to parsing, and a few names.
PIECES = st.sampled_from(
    ["purpose=", "_format=", "purpose", "p", "=", "&", ";", "+", "%", "%70", "2", "a", " "]
)


def _request(raw: bytes) -> Request:
    return Request({"type": "http", "query_string": raw, "headers": []})


@given(st.lists(PIECES, max_size=12).map("".join))
@example("purpose=a+b")
@example("%70urpose=x&purpose=%41")
def test_query_values_are_starlettes(query: str) -> None:
    """For every query string, each name's values equal QueryParams(...).getlist(name)."""
    raw = query.encode("latin-1")
    for name in ("purpose", "_format", "p"):
        assert query_values(_request(raw), name) == QueryParams(raw).getlist(name), (query, name)


def test_the_benchmark_query() -> None:
    """The hot call's query string, and a name given twice, blank, or bare."""
    raw = b"purpose=statistics&_size=100&purpose=&_format&&_format=csv"
    assert query_values(_request(raw), "purpose") == ["statistics", ""]
    assert query_values(_request(raw), "_format") == ["", "csv"]
    assert query_values(_request(raw), "_size") == ["100"]
