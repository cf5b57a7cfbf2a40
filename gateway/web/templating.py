"""The Jinja2 environment for the report and the console, and the one stylesheet both embed.

Autoescaping is on for every template: client ids, dataset names, reasons and policy text come
from the log and the policy files, and are shown as text, never as markup. The stylesheet is
inlined in a `<style>` element and allowed by its SHA-256 in the Content-Security-Policy, so a
page needs no second request and no 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@dataclass(frozen=True)
class Style:
    css: Markup  # the stylesheet, trusted (it ships with the package)
    source: str  # its CSP source expression: 'sha256-...'


def load_style() -> Style:
    text = resources.files("gateway.web").joinpath("static/style.css").read_text("utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    return Style(Markup(text), f"'sha256-{digest}'")  # noqa: S704 - our own packaged CSS


def content_security_policy(style: Style, *, forms: bool, meta: bool = False) -> str:
    """No scripts, no frames, no connections; the inline stylesheet by its hash; images only
    from data: URLs (the favicon placeholder); forms post to this origin only. In a `<meta>`
    element (the offline report) `frame-ancestors` is not allowed, so it is left out."""
    action = "'self'" if forms else "'none'"
    parts = [
        "default-src 'none'",
        f"style-src {style.source}",
        "img-src data:",
        "base-uri 'none'",
        f"form-action {action}",
    ]
    if not meta:
        parts.append("frame-ancestors 'none'")
    return "; ".join(parts)


def when(ms: int | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Milliseconds since the epoch as UTC text ('-' for none)."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime(fmt) + " UTC"


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def short(digest: str | None, length: int = 12) -> str:
    return "-" if not digest else digest[:length]


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("gateway.web", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,  # a misspelt figure is an error, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["short"] = short
    return env
