"""Promise 2 and issue 13/14: release floors by grade, justifications that say something, and
transforms that release (nearly) the raw value, each refused at load with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.check import PolicyError
from gateway.policy.files import load_policies

HEADER = """\
dataset:
  id: people
  title: People
  source: data/people.csv
  columns:
    name:    {type: string, class: personal, grade: 重要, kind: name}
    id_card: {type: string, class: sensitive, grade: 核心, kind: id_card}
    mobile:  {type: string, class: personal, grade: 一般, kind: mobile}
    phone:   {type: string, class: personal, grade: 重要, kind: mobile}
    born:    {type: date, class: personal, grade: 一般}
    income:  {type: integer, class: sensitive, grade: 一般}
    city:    {type: string, class: public}
grants:
  - id: g1
    clients: [acme]
    purposes: [stats]
    columns:
"""
DATA = (
    "name,id_card,mobile,phone,born,income,city\n"
    "张三,110105196904168982,13812345678,13912345678,1969-04-16,5000,北京市\n"
)


def load(home: Path, columns: str, extra: str = "") -> list[str]:
    """Problems from loading a one-grant file; [] when it loads."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "data" / "people.csv").write_text(DATA, encoding="utf-8")
    policies = home / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "people.yaml").write_text(HEADER + columns + extra, encoding="utf-8")
    try:
        load_policies(policies, home)
    except PolicyError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        # 核心: nothing derived from the real value leaves at row level.
        ("id_card: {transform: mask, preset: id_card}", "核心 column released as mask"),
        ("id_card: {transform: pseudonymize}", "核心 column released as pseudonymize"),
        ("id_card: {transform: generalize, preset: id_card}", "核心 column released as generalize"),
        ("id_card: {transform: keep, justification: 核验身份所必需的字段}", "核心 column"),
        # 重要: never raw, not even nearly, not even justified.
        ("name: {transform: keep, justification: 需要核对姓名的真实写法}", "重要 column released"),
        ("phone: {transform: mask, preset: mobile}", "shows 7 of 11 characters"),
        ("phone: {transform: mask, first: 10}", "shows 10 of 11 characters"),
        # 一般 personal: nearly raw needs a justification with words.
        ("mobile: {transform: mask, first: 3, last: 4}", "without a justification"),
        ("income: {transform: perturb, round: 1}", "round: 1 leaves every value unchanged"),
        ("born: {transform: date_shift, subject: id_card, max_days: 1}", "at most 1 day"),
        ("income: {transform: generalize, width: 1}", "bins one unit wide"),
        ('mobile: {transform: keep, justification: " "}', "must carry words"),
        ('mobile: {transform: keep, justification: "——。"}', "must carry words"),
        ("mobile: keep", "without a justification"),
    ],
)
def test_each_floor_is_refused_at_load_with_file_and_line(
    tmp_path: Path, column: str, expected: str
) -> None:
    """Promise 2: each release floor is enforced when the file is loaded, at its file:line."""
    found = load(tmp_path, f"      {column}\n")
    assert any(expected in p for p in found), found
    assert any(p.startswith("people.yaml:") and ":" in p for p in found)


@pytest.mark.parametrize(
    "column",
    [
        "id_card: suppress",
        "id_card: {transform: synthesize, kind: id_card}",
        "name: {transform: mask, preset: chinese_name}",
        "phone: {transform: mask, first: 3}",
        "mobile: {transform: mask, preset: mobile, justification: 回访需要核对号段与尾号}",
        "born: {transform: date_shift, subject: id_card, max_days: 30}",
        "income: {transform: perturb, round: 100}",
    ],
)
def test_releases_above_the_floor_load(tmp_path: Path, column: str) -> None:
    """Promise 2: transforms that change enough (or justified 一般 releases) are accepted."""
    assert load(tmp_path, f"      {column}\n") == []


def test_not_identifying_needs_words_and_a_derived_column(tmp_path: Path) -> None:
    """Promise 4: a column leaves the quasi-identifiers only with a written reason, and only
    when it derives from a real value (tokens never were quasi-identifiers)."""
    blank = load(tmp_path, '      city: {transform: keep, not_identifying: "  "}\n')
    assert any("not_identifying needs a written justification" in p for p in blank)
    token = load(
        tmp_path,
        "      id_card: {transform: synthesize, kind: id_card, not_identifying: 只是代号}\n",
    )
    assert any("not_identifying does not apply" in p for p in token)


def test_listed_quasi_identifiers_may_not_leave_a_derived_column_out(tmp_path: Path) -> None:
    """Promise 4: `quasi_identifiers` can add columns, never drop one released from real
    values; the message names the missing columns and the ways out."""
    found = load(
        tmp_path,
        "      city: keep\n      income: {transform: generalize, width: 1000}\n",
        "    privacy: {k: 2, quasi_identifiers: [city]}\n",
    )
    assert any("['income'] are released from real values but not listed" in p for p in found)


def test_quasi_identifiers_are_derived_from_the_released_columns(tmp_path: Path) -> None:
    """Promise 4: without a list, every derived column is a quasi-identifier; tokens,
    suppressed columns, the l-diversity sensitive column and declared ones are not."""
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "people.csv").write_text(DATA, encoding="utf-8")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "people.yaml").write_text(
        HEADER
        + "      id_card: {transform: synthesize, kind: id_card}\n"
        + "      name: {transform: mask, preset: chinese_name}\n"
        + "      born: {transform: date_shift, subject: id_card, max_days: 30}\n"
        + "      mobile: suppress\n"
        + "      city: {transform: keep, not_identifying: 全部记录同属一个城市，无法区分个人}\n"
        + "      income: {transform: generalize, width: 1000}\n"
        + "    privacy: {k: 2, l: 2, sensitive: income}\n",
        encoding="utf-8",
    )
    policy = load_policies(tmp_path / "policies", tmp_path)
    (grant,) = policy.grants
    assert grant.quasi_identifiers() == ("name", "born")
    assert grant.privacy is not None
    assert grant.privacy.quasi_identifiers == ("name", "born")
    assert dict(grant.not_identifying) == {"city": "全部记录同属一个城市，无法区分个人"}
