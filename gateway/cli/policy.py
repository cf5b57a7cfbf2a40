"""`gateway policy check|test|explain`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli import answers
from gateway.cli.common import Subparsers, print_err, print_out, settings_of
from gateway.errors import ConfigError
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.model.policyset import PolicySet
    from gateway.policy.testing import ViewOf
    from gateway.privacy.assess import FiguresOf

# Each command imports what it needs when it runs (`gateway --help` and the other commands
# need none of it; `policy check` loads the data and privacy code only to compute figures).


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.model.tokens import link_key, token_scope
    from gateway.policy.check import PolicyError
    from gateway.policy.files import load_policies

    settings = settings_of(args)
    directory = Path(args.path) if args.path else settings.workspace.policies
    try:
        policy = load_policies(directory, settings.home)
    except PolicyError as exc:
        for problem in exc.problems:
            print_err(
                f"{directory / problem.file}:{problem.line}: {problem.key}: {problem.message}"
                + (f"\n    hint: {problem.hint}" if problem.hint else "")
            )
        print_err(f"{len(exc.problems)} problem(s); the policy set is not valid")
        return 1
    grants = len(policy.grants)
    print_out(
        f"OK: {len(policy.datasets)} dataset(s), {grants} grant(s); policy hash {policy.hash}"
    )
    for warning in policy.warnings:
        print_out(f"  warning: {warning}")
    for grant in policy.grants:
        dataset = policy.datasets[grant.dataset]
        for name, spec in grant.columns:
            column = dataset.column(name)
            if spec.name == "keep" and column is not None and column.classification.protected:
                print_out(
                    f"  note: grant {grant.id} releases {column.classification} column "
                    f"{dataset.id}.{name} raw: {spec.options.get('justification')}"
                )
            if link_key(spec.name, spec.options) is not None:
                print_out(
                    f"  note: grant {grant.id} keys {dataset.id}.{name} with scope: "
                    f"{token_scope(spec.options)}, so it links this grant's view to others: "
                    f"{spec.options.get('justification')}"
                )
        for name, why in grant.not_identifying:
            print_out(
                f"  note: grant {grant.id} declares {dataset.id}.{name} not identifying: {why}"
            )
    makers = _makers(settings, policy)
    if makers is None:
        print_out("  privacy figures: not computed (no data or secret in this workspace)")
        return 0
    from gateway.privacy.assess import assess
    from gateway.privacy.assess import render as render_assessment

    print_out("privacy figures on the current data (every released quasi-identifier counted):")
    withheld = 0
    for assessment in assess(policy, *makers):
        for line in render_assessment(assessment):
            print_out(line)
        withheld += assessment.error is not None
    if withheld:
        print_err(f"{withheld} grant view(s) cannot be released under their privacy model")
        return 1
    return 0


def _makers(settings: Settings, policy: PolicySet) -> tuple[FiguresOf, ViewOf] | None:
    """Figures and released rows from one source and view cache: the joined releases reuse the
    views the figures built."""
    from gateway.data.sources import SourceCache
    from gateway.privacy.views import ViewCache
    from gateway.runtime.services import figures_maker, view_maker

    sources, views = SourceCache(settings.workspace), ViewCache()
    try:
        return (
            figures_maker(settings, sources, views, policy),
            view_maker(settings, sources, views, policy),
        )
    except ConfigError:
        return None


def _figures_of(settings: Settings, policy: PolicySet) -> FiguresOf | None:
    from gateway.data.sources import SourceCache
    from gateway.privacy.views import ViewCache
    from gateway.runtime.services import figures_maker

    try:
        return figures_maker(settings, SourceCache(settings.workspace), ViewCache(), policy)
    except ConfigError:
        return None


def _view_of(settings: Settings, policy: PolicySet) -> ViewOf | None:
    from gateway.data.sources import SourceCache
    from gateway.privacy.views import ViewCache
    from gateway.runtime.services import view_maker

    try:
        return view_maker(settings, SourceCache(settings.workspace), ViewCache(), policy)
    except ConfigError:
        return None  # no data or secret here: value checks are skipped (and say so)


def cmd_policy_test(args: argparse.Namespace) -> int:
    from gateway.policy.engine import Engine
    from gateway.policy.files import load_policies
    from gateway.policy.testing import load_cases, run_cases
    from gateway.runtime.services import read_secret

    settings = settings_of(args)
    directory = Path(args.path) if args.path else settings.workspace.policies
    policy = load_policies(directory, settings.home)
    cases = load_cases(directory / "tests")
    if not cases:
        print_err(f"no policy tests in {directory / 'tests'} (*.yaml with a `cases:` list)")
        return 1
    view_of = _view_of(settings, policy)
    secret = read_secret(settings) if view_of is not None else None  # keys hashes in messages
    results = run_cases(Engine(policy), cases, view_of, secret=secret)
    for result in results:
        print_out(
            f"{'PASS' if result.passed else 'FAIL'}  {result.file}: {result.name}: {result.message}"
        )
    failed = sum(not r.passed for r in results)
    print_out(f"{len(results) - failed} passed, {failed} failed (policy set {policy.hash})")
    return 1 if failed else 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from gateway.model.decision import Verdict
    from gateway.policy.check import parse_moment
    from gateway.policy.engine import Engine
    from gateway.policy.explain import explain, render
    from gateway.policy.files import load_policies

    settings = settings_of(args)
    policy = load_policies(settings.workspace.policies, settings.home)
    at = dt.datetime.now(dt.UTC)
    if args.at:
        parsed = parse_moment(args.at)
        if parsed is None:
            print_err(f"--at {args.at!r} is not an ISO 8601 date or date-time")
            return 2
        at = parsed
    result = explain(
        Engine(policy),
        args.client,
        args.dataset,
        args.purpose,
        at,
        args.scope or ["datasets:read"],
        _view_of(settings, policy),
        _figures_of(settings, policy),
    )
    print_out(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render(result))
    return 0 if result["decision"] == Verdict.ALLOW else 3


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    p = sub.add_parser("policy", help="policy files")
    psub = p.add_subparsers(dest="action", required=True)
    c = psub.add_parser("check", parents=[home], help="validate policy files, report every problem")
    c.add_argument("path", nargs="?", help="policy directory (default: the workspace's policies/)")
    c.set_defaults(func=cmd_policy_check)
    c = psub.add_parser("test", parents=[home], help="run the policy tests in <policies>/tests/")
    c.add_argument("path", nargs="?", help="policy directory (default: the workspace's policies/)")
    c.set_defaults(func=cmd_policy_test)
    c = psub.add_parser("explain", parents=[home], help="explain a decision (exit 0 allow, 3 deny)")
    c.add_argument("--client", required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--purpose")
    c.add_argument("--at", help="ISO 8601 date or date-time (default: now)")
    c.add_argument("--scope", action="append", help="token scopes (default: datasets:read)")
    c.add_argument("--json", action="store_true", help="print JSON instead of text")
    c.set_defaults(func=cmd_policy_explain)
    answers.add_policy_commands(psub, home)
