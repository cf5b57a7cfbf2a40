"""Examples in the docs run: every policy example loads, the policy-test example runs against
it, and the mask preset table is what the transforms really produce."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gateway.policy.check import PolicyError
from gateway.policy.engine import Engine
from gateway.policy.files import load_policies
from gateway.policy.testing import load_cases, run_cases
from gateway.privacy.transforms import CATALOGUE, TransformContext
from tests.paths import REPO

DOCS = REPO / "docs"
SAMPLE = {"string": "北京市", "integer": "30", "date": "2026-01-01"}


def yaml_blocks(doc: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)


def test_policy_examples_in_docs_load_and_their_tests_pass(tmp_path: Path) -> None:
    """The complete example in docs/policies.md loads, the policy-test example passes against
    it, and what the text says of it holds: its quasi-identifiers, the second privacy model, the
    three refusals at load with file:line."""
    text = (DOCS / "policies.md").read_text()
    blocks = yaml_blocks("policies.md")
    policy_text = next(b for b in blocks if b.startswith("dataset:"))
    cases_text = next(b for b in blocks if b.startswith("cases:"))
    spec = yaml.safe_load(policy_text)
    columns = spec["dataset"]["columns"]
    (tmp_path / "policies" / "tests").mkdir(parents=True)
    (tmp_path / "policies" / "residents.yaml").write_text(policy_text.replace("[acme]", "[acme]"))
    (tmp_path / "policies" / "tests" / "docs.yaml").write_text(cases_text)
    (tmp_path / "data").mkdir()
    header = ",".join(columns)
    row = ",".join(SAMPLE[c["type"]] for c in columns.values())
    (tmp_path / "data" / "residents.csv").write_text(header + "\n" + (row + "\n") * 3)
    policy = load_policies(tmp_path / "policies", tmp_path)
    assert [name for name, _ in policy.grants[0].columns] == list(columns)
    cases = load_cases(tmp_path / "policies" / "tests")
    for _, case in cases:
        case.pop("values", None)  # needs real data and the workspace secret; covered elsewhere
    results = run_cases(Engine(policy), cases)
    assert all(r.passed for r in results), results
    assert policy.grants[0].valid_at(datetime(2026, 6, 1, tzinfo=UTC))
    # What the text around the example says: every derived column is a quasi-identifier; the
    # synthetic id_card and the sensitive income are not.
    grant = policy.grants[0]
    assert grant.privacy is not None
    assert set(grant.privacy.quasi_identifiers) == {"name", "gender", "age", "city", "mobile"}
    # The other privacy model shown under "Privacy models" fits the same grant and loads too.
    (fragment,) = [b for b in blocks if b.startswith("    privacy:")]
    before, rest = policy_text.split("    privacy:", 1)
    other = before + fragment + "    columns:" + rest.split("    columns:", 1)[1]
    (tmp_path / "policies" / "hierarchies").mkdir()
    (tmp_path / "policies" / "hierarchies" / "city.csv").write_text("北京市;北京市;*\n")
    (tmp_path / "policies" / "residents.yaml").write_text(other)
    reloaded = load_policies(tmp_path / "policies", tmp_path).grants[0].privacy
    assert reloaded is not None
    assert (reloaded.k, reloaded.l, reloaded.recoding) == (10, 2, "local")
    # The three refusals the text names, each with file:line.
    income = "      sensitive: monthly_income\n"
    refusals = [  # (as the text shows it, the example's line, the edited line, the message)
        (
            "id_card: {transform: pseudonymize}",
            "id_card: {transform: synthesize, kind: id_card}",
            "id_card: {transform: pseudonymize}",
            "核心 column released as pseudonymize",
        ),
        (
            "name: keep",
            "name: {transform: mask, preset: chinese_name}",
            "name: keep",
            "重要 column released (nearly) raw",
        ),
        (
            "quasi_identifiers: [gender, city]",
            income,
            income + "      quasi_identifiers: [gender, city]\n",
            "are released from real values but not listed",
        ),
    ]
    prose = " ".join(text.split())
    for shown, original, edited, message in refusals:
        assert f"`{shown}" in prose  # the text names this refusal
        assert original in policy_text
        (tmp_path / "policies" / "residents.yaml").write_text(policy_text.replace(original, edited))
        with pytest.raises(PolicyError, match=r"residents\.yaml:\d+: ") as refused:
            load_policies(tmp_path / "policies", tmp_path)
        assert message in str(refused.value), shown


def test_mask_preset_table_matches_the_code() -> None:
    """Each row of the preset table in docs/policies.md is the real output of that preset."""
    text = (DOCS / "policies.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \| `([^`]+)`", text, flags=re.M)
    presets = {preset: (raw, released) for preset, raw, released in rows}
    assert set(presets) == {
        "id_card",
        "mobile",
        "bank_card",
        "credit_code",
        "chinese_name",
        "email",
        "address",
    }
    ctx = TransformContext(b"s" * 32, "c", "g")
    for preset, (raw, released) in presets.items():
        out = CATALOGUE["mask"].apply(pd.Series([raw], dtype="string"), {"preset": preset}, ctx)
        assert out[0] == released, preset


def test_transform_examples_are_valid() -> None:
    """Every example line in docs/transforms.md is a valid transform for that demo column."""
    from gateway.demo import POLICY_DIR
    from gateway.model.dataset import Classification, Column, ColumnType
    from gateway.model.floors import floor_problem
    from gateway.privacy.transforms import validate

    types: dict[str, str] = {}
    columns: dict[str, Column] = {}
    for path in POLICY_DIR.glob("*.yaml"):
        for k, v in yaml.safe_load(path.read_text())["dataset"]["columns"].items():
            types[k] = v["type"]
            columns[k] = Column(
                k,
                ColumnType(v["type"]),
                Classification(v["class"]),
                v.get("grade", "一般"),
                kind=v.get("kind"),
            )
    (block,) = yaml_blocks("transforms.md")
    examples = yaml.safe_load(block)
    assert len(examples) >= 12
    for column, spec in examples.items():
        params = {k: v for k, v in spec.items() if k != "transform"}
        problems = validate(spec["transform"], params, ColumnType(types[column]))
        assert problems == [], (column, problems)
        # and within the release floors of that demo column's grade (核心, 重要, 一般)
        floor = floor_problem(
            spec["transform"], params, columns[column], params.get("justification")
        )
        assert floor is None, (column, floor)
