"""The client credentials a request to an OAuth endpoint presents, parsed once and strictly.

Everything here is caller input: an `Authorization` header (any bytes, seen as latin-1 text) and
the form fields. Nothing raises; a malformed presentation is described by `problem` and answered
`invalid_client` (or `invalid_request` for more than one method) before authlib or the store sees
it, so no decoding error can become a 500 and no odd string reaches a database query.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# A Basic header holds at most a 64-character id and a 43-character secret, percent-encoded
# (RFC 6749 2.3.1): about 450 characters. Anything much longer is not a credential.
MAX_BASIC = 2048
_SECRET_FIELDS = ("client_secret",)
KNOWN_FIELDS = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion"}
    | {"client_assertion_type", "token", "token_type_hint"}
)
_ASSERTION_FIELDS = ("client_assertion", "client_assertion_type")


@dataclass(frozen=True)
class Presented:
    """What a request claims. `client_id` is unverified: it names who the caller says it is
    (used to look the client up and to count failures), never who it is."""

    method: str | None = None  # client_secret_basic | client_secret_post | private_key_jwt
    client_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    header: bool = False  # an Authorization header was sent: failures answer 401 (RFC 6749 5.2)
    problem: str | None = None  # why the presentation is malformed; None when well-formed
    error: str = "invalid_client"  # the OAuth error code for `problem`


def present(authorization: list[str], form: list[tuple[str, str]]) -> Presented:
    """Parse the credentials of one request (its Authorization header values and form pairs)."""
    keys = [k for k, _ in form]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        # RFC 6749 3.2: parameters MUST NOT be included more than once. (Only names we know are
        # echoed: the caller's own bytes never go into an answer.)
        known = [k for k in repeated if k in KNOWN_FIELDS]
        what = f"the parameter {known[0]}" if known else "a parameter"
        return _bad(f"{what} is sent more than once", "invalid_request", header=False)
    data = dict(form)
    form_id = data.get("client_id") or None
    has_secret = any(k in data for k in _SECRET_FIELDS)
    has_assertion = any(k in data for k in _ASSERTION_FIELDS)
    if len(authorization) > 1:
        return _bad("send one Authorization header", "invalid_request", header=True)
    if authorization:
        if has_secret or has_assertion:
            return _bad(
                "use one client authentication method: HTTP Basic or form fields, not both",
                "invalid_request",
                header=True,
            )
        return _basic(authorization[0], form_id)
    if has_secret and has_assertion:
        return _bad(
            "use one client authentication method: a secret or an assertion, not both",
            "invalid_request",
            header=False,
        )
    if has_assertion:
        return _assertion(data, form_id)
    if has_secret:
        secret = data.get("client_secret", "")
        if not form_id or not secret:
            return _bad("client_secret_post needs a client_id and a client_secret")
        return Presented("client_secret_post", form_id, secret)
    return Presented(None, form_id)  # no credentials: refused as invalid_client by authlib


def _bad(problem: str, error: str = "invalid_client", *, header: bool = False) -> Presented:
    return Presented(header=header, problem=problem, error=error)


def _basic(value: str, form_id: str | None) -> Presented:
    def bad(problem: str) -> Presented:
        return _bad(problem, header=True)

    if len(value) > MAX_BASIC:
        return bad(f"the Authorization header is longer than {MAX_BASIC} characters")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return bad("authenticate with HTTP Basic (client_secret_basic) at this endpoint")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return bad("the Basic credentials are not valid base64")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return bad("the Basic credentials are not UTF-8")
    raw_id, colon, raw_secret = text.partition(":")
    if not colon:
        return bad("the Basic credentials need the form client_id:client_secret")
    try:
        # RFC 6749 2.3.1: both parts are form-urlencoded before they are joined.
        client_id = unquote(raw_id, errors="strict")
        secret = unquote(raw_secret, errors="strict")
    except UnicodeDecodeError:
        return bad("the percent-escapes in the Basic credentials are not UTF-8")
    if not client_id or not secret:
        return bad("the Basic credentials need a client_id and a client_secret")
    if form_id is not None and form_id != client_id:
        return _bad(
            "the client_id field names another client than the Authorization header",
            "invalid_request",
            header=True,
        )
    return Presented("client_secret_basic", client_id, secret, header=True)


def _assertion(data: dict[str, str], form_id: str | None) -> Presented:
    if data.get("client_assertion_type") != ASSERTION_TYPE:
        return _bad(f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = data.get("client_assertion", "")
    parts = assertion.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return _bad("the client assertion is not a compact JWS")
    header, claims = _json_part(parts[0]), _json_part(parts[1])
    if header is None or claims is None:
        return _bad("the client assertion's header and claims must be JSON objects")
    sub = claims.get("sub")
    claimed = sub if isinstance(sub, str) and sub else form_id
    return Presented("private_key_jwt", claimed)


def _json_part(part: str) -> dict[str, Any] | None:
    """A base64url JSON object, or None. Nesting is bounded by the parser (RecursionError)."""
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
