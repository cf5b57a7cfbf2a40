"""Where the next page is: a `Link: <...>; rel="next"` header (RFC 8288, every format) or the
`next` cursor of a JSON page. A next link that leads to another origin is refused, so a
tampered answer cannot make the client send its token elsewhere."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from gateway.client.errors import ClientError

# One link-value: <target> followed by parameters; targets cannot contain ">" (RFC 3986).
_LINK = re.compile(
    r"\s*<([^>]*)>((?:\s*;\s*[A-Za-z0-9!#$&+\-.^_`|~*]+\s*=\s*(?:\"[^\"]*\"|[^;,]*))*)"
)
_PARAM = re.compile(r";\s*([A-Za-z0-9!#$&+\-.^_`|~*]+)\s*=\s*(\"[^\"]*\"|[^;,]*)")
_MAX_LINK = 16_384


def next_link(header: str | None) -> str | None:
    """The target of the first link whose `rel` includes `next`, or None."""
    if not header or len(header) > _MAX_LINK:
        return None
    pos = 0
    while pos < len(header):
        match = _LINK.match(header, pos)
        if match is None:
            return None  # not a Link header we can read: no next page from it
        for name, raw in _PARAM.findall(match.group(2)):
            if name.lower() == "rel" and "next" in raw.strip('"').lower().split():
                return match.group(1)
        pos = match.end()
        rest = header[pos:].lstrip()
        if not rest.startswith(","):
            return None
        pos = len(header) - len(rest) + 1
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def resolve_next(base_url: str, page_url: str, target: str) -> str:
    """The absolute URL of a next link read on `page_url`; it must stay on the gateway's origin."""
    absolute = urljoin(page_url, target)
    if _origin(absolute) != _origin(base_url):
        raise ClientError(
            f"the gateway's next link leads to another origin ({absolute!r}); not following it"
        )
    return absolute
