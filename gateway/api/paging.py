"""The `Link: <...>; rel="next"` header (RFC 8288) that carries a rows page's next cursor in
every format: JSON has `next` in its body, CSV and NDJSON have no room for it."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.requests import Request


def next_url(path: str, params: list[tuple[str, str]], cursor: str) -> str:
    """The absolute-path URL of the next page: the same path and query, in the same order,
    with `_next` set to the cursor. Every byte outside the unreserved set is percent-encoded, so
    nothing a caller sent can end the header value or the link target."""
    pairs = [(key, value) for key, value in params if key != "_next"]
    pairs.append(("_next", cursor))
    return f"{quote(path, safe='/')}?{urlencode(pairs, quote_via=quote, safe='')}"


def next_link(request: Request, cursor: str) -> str:
    """The Link header value naming the page after this one."""
    target = next_url(request.url.path, request.query_params.multi_items(), cursor)
    return f'<{target}>; rel="next"'
