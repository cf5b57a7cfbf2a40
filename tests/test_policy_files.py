"""Promise 8 and the policy format: every problem reported at once with file:line and a hint;
nothing half-valid is ever loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.demo import POLICY_DIR
from gateway.errors import ConfigError
from gateway.policy.files import PolicyError, load_policies
from tests.conftest import Demo

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
    """policies/ in the repository holds exactly the packaged demo policies."""
    repo = Path(__file__).resolve().parent.parent / "policies"
    assert sorted(p.name for p in repo.glob("*.yaml")) == sorted(
        p.name for p in POLICY_DIR.glob("*.yaml")
    )
    for path in repo.glob("*.yaml"):
        assert path.read_bytes() == (POLICY_DIR / path.name).read_bytes()


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    """Unknown keys, columns, transforms and bad parameters are all reported, each at its line."""
    found = problems(
        tmp_path,
        HEADER
        + """\
grants:
  - id: g1
    clients: [acme]
    colour: blue
    columns:
      name: {transform: mask, preset: passport}
      city: {transform: maks}
      nickname: keep
      income: {transform: pseudonymize, length: 4}
""",
    )
    joined = "\n".join(found)
    assert "people.yaml:12: grants.0.colour: unknown key" in joined
    assert "people.yaml:14: grants.0.columns.name.preset: 'passport' is not one of" in joined
    assert "people.yaml:15: grants.0.columns.city: unknown transform 'maks'" in joined
    assert "people.yaml:16: grants.0.columns.nickname: no column 'nickname'" in joined
    assert "people.yaml:17: grants.0.columns.income.length: must be at least 16" in joined
    assert len(found) == 5


def test_raw_release_of_personal_column_needs_justification(tmp_path: Path) -> None:
    """Promise 2: `keep` on a personal or sensitive column without a justification is refused."""
    found = problems(
        tmp_path,
        HEADER + "grants:\n  - id: g1\n    clients: [acme]\n    columns:\n      name: keep\n",
    )
    assert any("personal column released raw without a justification" in p for p in found)
    policies = write(
        tmp_path,
        HEADER + "grants:\n  - id: g1\n    clients: [acme]\n    columns:\n"
        "      name: {transform: keep, justification: 合同约定的实名核验}\n",
    )
    policy = load_policies(policies, tmp_path)
    assert policy.grants[0].columns[0][1].options["justification"] == "合同约定的实名核验"


def test_overlapping_grants_are_refused(tmp_path: Path) -> None:
    """Two grants that could both apply to one client and dataset are refused at load time."""
    grants = "grants:\n" + "".join(
        f"  - id: g{i}\n    clients: [acme]\n    columns:\n      city: keep\n" for i in (1, 2)
    )
    found = problems(tmp_path, HEADER + grants)
    assert any("already has grant 'g1'" in p for p in found)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    """A duplicated key (which YAML would silently overwrite) is an error."""
    found = problems(
        tmp_path,
        HEADER
        + "grants:\n  - id: g1\n    clients: [acme]\n    columns:\n"
        + "      city: keep\n      city: drop\n",
    )
    assert any("duplicate key 'city'" in p for p in found)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A syntax error is reported at its line."""
    found = problems(tmp_path, HEADER + "grants:\n  - id: [unclosed\n")
    assert any(p.startswith("people.yaml:") for p in found)


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
    target.write_text(target.read_text().replace("max_rows: 500", "max_rows: 400"))
    assert load_policies(copy, demo.home).hash != before
