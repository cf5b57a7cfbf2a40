"""Promise 8: a grant's `aggregate` rules are validated with the policy files; every mistake is
named with its file, line and key, and a set with one never becomes active."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.aggregate.rules import period_of
from gateway.policy.files import load_policies
from tests.policy.test_policy_files import GRANT, HEADER, problems, write

GOOD = """    aggregate:
      group_by: {city: [北京市, 上海市], income: null}
      measures: {income: {lower: 0, upper: 1000}}
      min_cell: 5
      dp:
        {mechanism: gaussian, epsilon: 0.5, delta: 1e-7,
         budget: {epsilon: 3, delta: 1e-6, period: week}}
"""


def grant_with(aggregate: str) -> str:
    return HEADER + GRANT.replace("    columns:", aggregate + "    columns:") + "      city: keep\n"


def test_good_rules_load(tmp_path: Path) -> None:
    """Rules as documented load, with exact decimal amounts."""
    text = grant_with(GOOD.replace(", income: null", ""))
    policy = load_policies(write(tmp_path, text), tmp_path)
    rules = policy.grants[0].aggregate
    assert rules is not None
    assert rules.dp is not None
    assert rules.categories("city") == ("北京市", "上海市")
    assert rules.dp.delta == Decimal("1e-7")
    assert rules.dp.budget_epsilon == 3
    assert rules.min_cell == 5


@pytest.mark.parametrize(
    ("aggregate", "message"),
    [
        (GOOD, "aggregate.group_by.income: 'income' is classified personal or sensitive"),
        (
            GOOD.replace("income: null", "name: [a], city: null").replace(
                "city: [北京市, 上海市], ", ""
            ),
            "aggregate.group_by.city: with dp every grouping column needs its public categories",
        ),
        ("    aggregate: {group_by: [nope]}\n", "no column 'nope'"),
        (
            "    aggregate: {group_by: [name]}\n",
            "aggregate.group_by.name: 'name' is classified personal or sensitive: list its public",
        ),
        (
            "    aggregate: {group_by: [city], measures: {city: {lower: 0, upper: 1}}}\n",
            "not an integer column",
        ),
        (
            "    aggregate: {group_by: [city], measures: {income: {lower: 5, upper: 1}}}\n",
            "lower < upper",
        ),
        (
            "    aggregate: {group_by: [city], measures: {income: [0, 1]}}\n",
            "must be {lower: N, upper: M}",
        ),
        ("    aggregate: {group_by: [city], min_cell: 1}\n", "min_cell: must be an integer from 2"),
        ("    aggregate: {group_by: [city], colour: red}\n", "aggregate.colour: unknown key"),
        ("    aggregate: {group_by: {city: [a, a]}}\n", "distinct values"),
        ("    aggregate: {group_by: {city: [a]}, dp: {epsilon: 1}}\n", "budget: is required"),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {epsilon: 1, delta: 0.1, "
            "budget: {epsilon: 2}}}\n",
            "laplace is pure epsilon-DP",
        ),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {mechanism: gaussian, epsilon: 1, "
            "budget: {epsilon: 2, delta: 0.001}}}\n",
            "delta: must be a number above 0",
        ),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {epsilon: 3, budget: {epsilon: 2}}}\n",
            "one query costs more than the whole budget",
        ),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {epsilon: -1, budget: {epsilon: 2}}}\n",
            "epsilon: must be a number above 0",
        ),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {epsilon: .nan, budget: {epsilon: 2}}}\n",
            "must be a number above 0",
        ),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {epsilon: 1, "
            "budget: {epsilon: 2, period: fortnight}}}\n",
            "unknown period",
        ),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {mechanism: exponential, epsilon: 1}}\n",
            "unknown mechanism",
        ),
        ("    aggregate: [city]\n", "must be a mapping"),
        (
            "    aggregate: {group_by: {city: [a]}, dp: {mechanism: gaussian, epsilon: 1, "
            "delta: 0.5, budget: {epsilon: 2, delta: 0.9}}}\n",
            "delta: must be a number above 0 and below 0.01",
        ),
    ],
)
def test_bad_rules_are_named_with_their_key(tmp_path: Path, aggregate: str, message: str) -> None:
    """Each mistake gives a problem naming file, line, key and what to write instead."""
    found = problems(tmp_path, grant_with(aggregate))
    assert any(message in p for p in found), found
    assert all(p.startswith("people.yaml:") for p in found)


def test_periods_are_utc_days_iso_weeks_and_months() -> None:
    """The budget period index and the seconds until it resets."""
    monday = 1_795_996_800  # 2026-11-30T00:00:00Z, a Monday
    assert period_of("day", monday + 10) == (monday // 86_400, 86_390)
    week, left = period_of("week", monday + 10)
    assert period_of("week", monday - 1)[0] == week - 1
    assert left == 7 * 86_400 - 10
    month, left = period_of("month", monday)
    assert month == 2026 * 12 + 10
    assert left == 86_400  # 2026-12-01 begins a day later


def test_the_documented_rules_load(tmp_path: Path) -> None:
    """The `aggregate` example in docs/policies.md loads into the complete example's grant."""
    from tests.docs.test_docs import SAMPLE, yaml_blocks

    blocks = yaml_blocks("policies.md")
    policy_text = next(b for b in blocks if b.startswith("dataset:"))
    (fragment,) = [b for b in blocks if b.startswith("    aggregate:")]
    before, rest = policy_text.split("    columns:", 1)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "residents.yaml").write_text(before + fragment + "    columns:" + rest)
    (tmp_path / "data").mkdir()
    columns = ["name", "id_card", "gender", "age", "city", "mobile", "monthly_income"]
    types = ["string", "string", "string", "integer", "string", "string", "integer"]
    row = ",".join(SAMPLE[t] for t in types)
    (tmp_path / "data" / "residents.csv").write_text(",".join(columns) + "\n" + row + "\n")
    rules = load_policies(tmp_path / "policies", tmp_path).grants[0].aggregate
    assert rules is not None
    assert rules.dp is not None
    assert rules.categories("gender") == ("男", "女")
    assert rules.categories("city") == ("北京市", "上海市", "广州市", "深圳市")
    # Without dp, null takes a column's categories from the data.
    no_dp = fragment.split("      dp:")[0].replace("[北京市, 上海市, 广州市, 深圳市]", "null")
    (tmp_path / "policies" / "residents.yaml").write_text(before + no_dp + "    columns:" + rest)
    plain = load_policies(tmp_path / "policies", tmp_path).grants[0].aggregate
    assert plain is not None
    assert plain.dp is None
    assert plain.categories("city") is None
    assert plain.min_cell == 10
