"""Promise 8 and the policy format: every problem reported at once with file:line and a hint;
nothing half-valid is ever loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from gateway.demo import POLICY_DIR
from gateway.errors import ConfigError
from gateway.policy.check import PolicyError
from gateway.policy.files import load_policies
from gateway.policy.testing import load_cases
from tests.conftest import Demo
from tests.paths import REPO

HEADER = """\
dataset:
  id: people
  title: People
  source: data/people.csv
  columns:
    name:   {type: string, class: personal}
    city:   {type: string, class: public}
    income: {type: integer, class: sensitive}
"""
GRANT = "grants:\n  - id: g1\n    clients: [acme]\n    purposes: [stats]\n    columns:\n"


def write(home: Path, text: str, name: str = "people.yaml") -> Path:
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "data" / "people.csv").write_text("name,city,income\n张三,北京市,100\n")
    policies = home / "policies"
    policies.mkdir(exist_ok=True)
    (policies / name).write_text(text)
    return policies


def problems(home: Path, text: str) -> list[str]:
    policies = write(home, text)
    with pytest.raises(PolicyError) as info:
        load_policies(policies, home)
    return [str(p) for p in info.value.problems]


def test_demo_policies_load(demo: Demo) -> None:
    """The shipped demo policies are valid and name a policy-set hash."""
    policy = load_policies(demo.home / "policies", demo.home)
    assert set(policy.datasets) == {"enterprise_registry", "residents"}
    assert len(policy.hash) == 64


def test_repository_policies_are_the_packaged_demo_set() -> None:
    """policies/ in the repository holds exactly the packaged demo policies, their tests and
    hierarchies, as real files (`make run` serves the repository root as a workspace, and a
    policy file that is a link leading out of policies/ is refused)."""
    repo = REPO / "policies"
    ours = sorted(p.relative_to(repo) for p in repo.rglob("*") if p.is_file())
    assert ours == sorted(p.relative_to(POLICY_DIR) for p in POLICY_DIR.rglob("*") if p.is_file())
    assert ours
    for name in ours:
        assert not (repo / name).is_symlink()
        assert (repo / name).read_bytes() == (POLICY_DIR / name).read_bytes()
    assert not any(p.is_symlink() for p in repo.rglob("*"))


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    """Unknown keys, columns, transforms and bad parameters are all reported, each at its line."""
    found = problems(
        tmp_path,
        HEADER
        + """\
grants:
  - id: g1
    clients: [acme]
    purposes: [stats]
    colour: blue
    columns:
      name: {transform: mask, preset: passport}
      city: {transform: maks}
      nickname: keep
      income: {transform: pseudonymize, length: 4}
""",
    )
    joined = "\n".join(found)
    assert "people.yaml:13: grants.0.colour: unknown key" in joined
    assert "people.yaml:15: grants.0.columns.name.preset: 'passport' is not one of" in joined
    assert "people.yaml:16: grants.0.columns.city: unknown transform 'maks'" in joined
    assert "people.yaml:17: grants.0.columns.nickname: no column 'nickname'" in joined
    assert "people.yaml:18: grants.0.columns.income.length: must be at least 16" in joined
    assert len(found) == 5


GRANT_FEATURES = """\
grants:
  - id: g1
    clients: [acme]
    purposes: [stats, Stats!]
    valid: {from: 2026-02-01, until: 2026-01-01}
    scopes: [datasets:write]
    row_filter:
      - {column: city, op: like, value: x}
      - {column: income, op: gte, value: "100"}
      - {column: ghost, op: eq, value: 1}
      - any: []
    limits: {rows_per_request: 0, requests_per_minute: -1, colour: red}
    privacy: {k: 1, quasi_identifiers: [city]}
    columns:
      city: keep
      name: {transform: mask, preset: chinese_name}
"""


def test_grant_features_are_validated(tmp_path: Path) -> None:
    """Purposes, validity, scopes, row filters, limits and privacy models are each checked."""
    joined = "\n".join(problems(tmp_path, HEADER + GRANT_FEATURES))
    for expected in [
        "grants.0.purposes.1: 'Stats!' is not a purpose id",
        "grants.0.valid: `until` is before `from`",
        "grants.0.scopes: must be a list of known scopes",
        "grants.0.row_filter.0.op: unknown operator 'like'",
        "grants.0.row_filter.1.value: column 'income' is an integer column",
        "grants.0.row_filter.2.column: no column 'ghost'",
        "grants.0.row_filter.3.any: must be a non-empty list",
        "grants.0.limits.colour: unknown key",
        "grants.0.limits.rows_per_request: must be an integer from 1",
        "grants.0.limits.requests_per_minute: must be an integer from 1",
        "grants.0.privacy.k: k must be an integer of at least 2",
    ]:
        assert expected in joined, expected


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ("{k: 5, recoding: sideways}", "unknown recoding"),
        ("{k: 5, labels: sets}", "sets with recoding: local only"),
        ("{k: 5, quasi_identifiers: [income]}", "not released by this grant"),
        ("{k: 5, quasi_identifiers: [city], l: 2}", "l needs a released sensitive column"),
        ("{k: 5, quasi_identifiers: [city], max_suppression: 0.9}", "share from 0 to 0.5"),
    ],
)
def test_privacy_models_are_validated(tmp_path: Path, privacy: str, message: str) -> None:
    """k without quasi-identifiers, QIs that are not released, l without a sensitive column."""
    text = (
        HEADER
        + GRANT.replace("    columns:", f"    privacy: {privacy}\n    columns:")
        + "      city: keep\n"
    )
    assert any(message in p for p in problems(tmp_path, text))


def test_disjoint_windows_or_purposes_may_coexist(tmp_path: Path) -> None:
    """Two grants for one client and dataset are fine when their purposes or windows differ."""
    text = (
        HEADER
        + """\
grants:
  - id: old
    clients: [acme]
    purposes: [stats]
    valid: {until: 2025-12-31}
    columns: {city: keep}
  - id: new
    clients: [acme]
    purposes: [stats]
    valid: {from: 2026-01-01}
    columns: {city: keep}
  - id: other
    clients: [acme]
    purposes: [research]
    columns: {city: keep}
"""
    )
    policy = load_policies(write(tmp_path, text), tmp_path)
    assert [g.id for g in policy.grants] == ["old", "new", "other"]
    assert any("grant 'old' expired" in w for w in policy.warnings)


def test_raw_release_of_personal_column_needs_justification(tmp_path: Path) -> None:
    """Promise 2: `keep` on a personal or sensitive column without a justification is refused."""
    found = problems(
        tmp_path,
        HEADER + GRANT + "      name: keep\n",
    )
    assert any("personal column released (nearly) raw without a justification" in p for p in found)
    policies = write(
        tmp_path,
        HEADER + GRANT + "      name: {transform: keep, justification: 合同约定的实名核验}\n",
    )
    policy = load_policies(policies, tmp_path)
    assert policy.grants[0].columns[0][1].options["justification"] == "合同约定的实名核验"


def test_overlapping_grants_are_refused(tmp_path: Path) -> None:
    """Two grants that could both apply to one client and dataset are refused at load time."""
    grants = "grants:\n" + "".join(
        f"  - id: g{i}\n    clients: [acme]\n    purposes: [stats, {extra}]\n"
        "    columns:\n      city: keep\n"
        for i, extra in ((1, "audit"), (2, "research"))
    )
    found = problems(tmp_path, HEADER + grants)
    assert any("'g2' and grant 'g1'" in p and "purpose 'stats'" in p for p in found)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    """A duplicated key (which YAML would silently overwrite) is an error."""
    found = problems(tmp_path, HEADER + GRANT + "      city: keep\n      city: drop\n")
    assert any("duplicate key 'city'" in p for p in found)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A syntax error is reported at its line."""
    found = problems(tmp_path, HEADER + "grants:\n  - id: [unclosed\n")
    assert any(p.startswith("people.yaml:") for p in found)


# HEADER is lines 1-8, GRANT lines 9-13; each broken line below is line 14.
@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("      city:keep\n", "is a space missing after a colon?"),  # found one line late
        ("      city keep\n", "is a space missing after a colon?"),  # no colon at all
        ("     city: keep\n", "is a space missing after a colon?"),  # one space short
        ("      city: [keep\n", "expected ',' or ']'"),  # an unclosed list
        ("      city: {transform: keep\n", "expected ',' or '}'"),  # an unclosed mapping
        ('      city: "keep\n', "found unexpected end of stream"),  # an unclosed quote
        ("      city: keep: now\n", "mapping values are not allowed here"),
        ("\tcity: keep\n", "cannot start any token"),  # a tab
    ],
)
def test_yaml_syntax_error_is_reported_at_the_line_of_the_mistake(
    tmp_path: Path, broken: str, message: str
) -> None:
    """Promise 8's diagnostics: a YAML syntax error names the line the admin got wrong, not the
    line after it where PyYAML noticed (found: `city:keep` was reported one line late)."""
    after = "      income: drop\n      name: drop\n"
    text = HEADER + GRANT + broken + after
    assert text.splitlines()[13] == broken.rstrip("\n")
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith("people.yaml:14: yaml: "), found
    assert message in found[0]


def test_policy_test_file_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    """The same for policy-test files: the line of the mistake."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "cases.yaml").write_text("cases:\n  - client: acme\n    dataset:people\n    x: 1\n")
    with pytest.raises(ConfigError, match=r"cases.yaml:3: could not find expected ':'"):
        load_cases(tests)


@pytest.mark.parametrize(
    "text",
    ["", "- a list\n", "dataset: 42\n", "dataset:\n  id: UPPER\n", "\x00\x01binary"],
)
def test_hostile_files_never_load(tmp_path: Path, text: str) -> None:
    """Empty, mistyped or garbage files are refused with an error, never half-loaded."""
    policies = write(tmp_path, text)
    with pytest.raises(ConfigError):
        load_policies(policies, tmp_path)


def test_empty_policy_directory_is_refused(tmp_path: Path) -> None:
    """An empty policy set is refused instead of silently denying (or allowing) everything."""
    (tmp_path / "policies").mkdir()
    with pytest.raises(ConfigError, match="no policy files"):
        load_policies(tmp_path / "policies", tmp_path)


def test_policy_hash_changes_with_content(demo: Demo, tmp_path: Path) -> None:
    """Every decision names the policy-set hash: a changed file gives a new hash."""
    before = load_policies(demo.home / "policies", demo.home).hash
    copy = tmp_path / "p"
    shutil.copytree(demo.home / "policies", copy)
    target = copy / "residents.yaml"
    target.write_text(target.read_text().replace("rows_per_request: 500", "rows_per_request: 400"))
    assert load_policies(copy, demo.home).hash != before


def test_generalize_by_hierarchy_file(tmp_path: Path) -> None:
    """A generalize transform may name an ARX hierarchy file and a level: the file is read at
    load time, checked (level in range), part of the policy hash; unlisted values become *."""
    from gateway.privacy.transforms import CATALOGUE, TransformContext

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "h.csv").write_text("北京市;华北;*\n上海市;华东;*\n", encoding="utf-8")
    column = (
        "      city: {transform: generalize, hierarchy: policies/h.csv, hierarchy_level: LEVEL}\n"
    )
    policies = write(tmp_path, HEADER + GRANT + column.replace("LEVEL", "1"))
    loaded = load_policies(policies, tmp_path)
    spec = dict(loaded.grants[0].columns)["city"]
    values = pd.Series(["北京市", "上海市", "深圳市", None], dtype="string")
    ctx = TransformContext(b"s" * 32, "acme", "g1")
    out = CATALOGUE["generalize"].apply(values, spec.options, ctx)
    assert out.tolist()[:3] == ["华北", "华东", "*"]
    assert out.isna().tolist() == [False, False, False, True]
    # The hierarchy's content is part of the policy hash.
    (tmp_path / "policies" / "h.csv").write_text(
        "北京市;华北地区;*\n上海市;华东;*\n", encoding="utf-8"
    )
    assert load_policies(policies, tmp_path).hash != loaded.hash
    # Out-of-range levels, a missing file, or a level without a file are refused with the path.
    for bad, message in [
        (column.replace("LEVEL", "3"), "has levels 1 to 2, not 3"),
        (column.replace("h.csv", "missing.csv").replace("LEVEL", "1"), "cannot read hierarchy"),
        ("      city: {transform: generalize, hierarchy_level: 1}\n", "give both hierarchy"),
        (
            "      city: {transform: generalize, hierarchy: policies/h.csv, hierarchy_level: 1,"
            " top: 3}\n",
            "does not apply with a hierarchy file",
        ),
        ("      city: {transform: generalize, _hierarchy_table: []}\n", "unknown parameter"),
    ]:
        found = problems(tmp_path, HEADER + GRANT + bad)
        assert any(message in p and "grants.0.columns.city" in p for p in found), found
