"""`gateway trace FILE`: name the recipient of a leaked extract."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from gateway.cli.common import Subparsers, settings_of
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.trace.limits import Deadline, ExtractError, TraceTimeout

ATTRIBUTED, NOT_ATTRIBUTED, UNUSABLE = 0, 3, 2
# What a trace imports (in _trace, when it runs: `gateway --help` and other commands need none).
_NEEDS = (
    "gateway.audit.reader",
    "gateway.data.sources",
    "gateway.policy.files",
    "gateway.runtime.services",
    "gateway.trace.extract",
    "gateway.trace.tracer",
)


def trace_command(
    settings: Settings,
    file: Path,
    datasets: list[str] | None,
    json_out: bool,
    seconds: float | None = None,
) -> int:
    """Exit 0 when attributed, 3 when not (no attribution), 2 when the file is refused (it
    cannot be read, breaks a limit, or the trace runs past `seconds`): one line on stderr."""
    for module in _NEEDS:  # loaded before the deadline starts: loading is not the trace's time
        importlib.import_module(module)
    deadline = Deadline(settings.trace_seconds if seconds is None else seconds)
    try:
        return _trace(settings, file, datasets, json_out, deadline)
    except (ExtractError, TraceTimeout) as exc:
        sys.stderr.write(f"error: {_one_line(str(exc))}\n")
        return UNUSABLE


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _trace(
    settings: Settings,
    file: Path,
    datasets: list[str] | None,
    json_out: bool,
    deadline: Deadline,
) -> int:
    from gateway.audit.reader import read_entries
    from gateway.data.sources import SourceCache
    from gateway.policy.files import load_policies
    from gateway.runtime.services import read_secret
    from gateway.trace.extract import read_extract
    from gateway.trace.tracer import as_json, candidates_of, follow, render, run

    extract = read_extract(file, deadline)
    policy = load_policies(settings.workspace.policies, settings.home)
    unknown = sorted(set(datasets or ()) - set(policy.datasets))
    if unknown:
        sys.stderr.write(f"error: no dataset {unknown[0]!r} in the policy set\n")
        return UNUSABLE
    secret = read_secret(settings)
    candidates, skipped = candidates_of(
        policy,
        SourceCache(settings.workspace),
        secret,
        set(datasets) if datasets else None,
        deadline,
    )
    trace = run(extract, candidates, skipped, deadline)
    named, located = trace.attribution.named, trace.attribution.located
    if named is not None and located is not None:
        view_key = next(
            c.view_key
            for c in candidates
            if (c.dataset, c.grant, c.client) == (named.dataset, named.grant, named.client)
        )
        try:
            _, entries = read_entries(settings.audit_database)
            hits, unchecked, not_found = follow(entries, named, view_key, located, deadline)
            note = (
                "entries are read from the log as stored: run `gateway audit verify` (or verify "
                "an exported bundle) before relying on them"
            )
            trace = replace(
                trace,
                entries=tuple(hits),
                unchecked=tuple(unchecked),
                not_found=not_found,
                log_note=note,
            )
        except ConfigError as exc:
            trace = replace(trace, log_note=f"audit entries not listed: {exc}")
    if json_out:
        sys.stdout.write(json.dumps(as_json(trace), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(render(trace, str(file)) + "\n")
    return ATTRIBUTED if named is not None else NOT_ATTRIBUTED


def cmd_trace(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    seconds = settings.trace_seconds if args.time_limit is None else args.time_limit
    return trace_command(settings, Path(args.file), args.dataset, args.json, seconds)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trace", parents=[home], help="name the recipient of a leaked extract (exit 0, else 3)"
    )
    p.add_argument("file", help="the extract: CSV, JSON, NDJSON or .xlsx")
    p.add_argument("--dataset", action="append", help="only this dataset's grants (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--time-limit",
        type=_seconds,
        metavar="SECONDS",
        help="refuse (exit 2) a trace running longer (default: $GATEWAY_TRACE_SECONDS or 300)",
    )
    p.set_defaults(func=cmd_trace)
