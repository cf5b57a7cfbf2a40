"""`gateway audit report`: verify the log (or a bundle), then write the report file."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
import zoneinfo
from pathlib import Path

from gateway.audit.query import make_filters
from gateway.errors import ConfigError
from gateway.fsutil import write_new
from gateway.policy.check import CST
from gateway.store.db import Database

_OFFSET = re.compile(r"([+-])([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


def parse_tz(text: str | None) -> dt.tzinfo:
    """An IANA zone name (Asia/Shanghai) or a fixed offset (+08:00); default China Standard
    Time, as policy dates are read."""
    if not text:
        return CST
    match = _OFFSET.fullmatch(text)
    if match:
        sign = -1 if match[1] == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(match[2]), minutes=int(match[3])))
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {text!r}; give a name such as Asia/Shanghai or an offset such "
            "as +08:00"
        ) from exc


def write_report(
    target: Path | Database,
    key_files: list[Path],
    out: Path,
    *,
    since: str | None,
    until: str | None,
    tz: str | None,
    policy_sets: Path | None = None,
) -> str:
    """Verify, build and write the report (a new private file); returns a summary line."""
    # (imported here: the `gateway` command registers this command's arguments at every start)
    from gateway.report.build import ReportInput, build_report
    from gateway.report.figures import Period

    now = int(time.time() * 1000)
    try:
        chosen = make_filters({}, since=since, until=until, now_ms=now)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if out.exists():
        raise ConfigError(f"{out} exists; choose a new file name")
    period = Period(chosen.since_ms, chosen.until_ms)
    spec = ReportInput(target, key_files, period, parse_tz(tz), now, policy_sets)
    html, log = build_report(spec)
    write_new(out, html.encode("utf-8"))
    return f"report written to {out}: {log.verification.describe()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the HTML file to write (must not exist)")
    parser.add_argument(
        "--since",
        help="start of the period: ISO 8601 (UTC unless it has an offset) or a time ago (7d)",
    )
    parser.add_argument("--until", help="end of the period, exclusive (same forms as --since)")
    parser.add_argument(
        "--tz", help="time zone for times, buckets and night hours (default +08:00, CST)"
    )
    parser.add_argument(
        "--bundle", help="an exported bundle directory instead of the workspace's log"
    )
    parser.add_argument(
        "--key",
        action="append",
        help="trusted audit public key (PEM; repeatable; default: the workspace's audit keys)",
    )
