"""Promise 2 and issue 13/14: release floors by grade, justifications that say something, and
transforms that release (nearly) the raw value, each refused at load with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    mobile:  {type: string, class: personal, grade: 一般}
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
        ("mobile: {transform: mask, preset: mobile}", "without a justification"),
        ("income: {transform: perturb, round: 1}", "round: 1 leaves every value unchanged"),
        ("born: {transform: date_shift, subject: id_card, max_days: 1}", "at most 1 day"),
        ("income: {transform: generalize, width: 1}", "bins one unit wide"),
        ("income: {transform: generalize, bins: [5000, 5001, 5002]}", "bins one unit wide"),
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


def load_schema(home: Path, column: str) -> list[str]:
    """Problems from loading a file whose dataset declares `x` as `column` (released by no
    grant): what the declaration alone decides."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "data" / "people.csv").write_text("x,city\n1,北京市\n", encoding="utf-8")
    policies = home / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "people.yaml").write_text(
        "dataset:\n  id: people\n  title: People\n  source: data/people.csv\n  columns:\n"
        "    city: {type: string, class: public}\n"
        f"    x: {column}\n"
        "grants:\n  - id: g1\n    clients: [acme]\n    purposes: [stats]\n"
        "    columns:\n      city: keep\n",
        encoding="utf-8",
    )
    try:
        load_policies(policies, home)
    except PolicyError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("kind", "lowest", "below"),
    [
        ("id_card", "核心", ["一般", "重要", "general", "important"]),
        ("name", "重要", ["一般", "general"]),
        ("mobile", "重要", ["一般"]),
        ("address", "重要", ["一般"]),
        ("email", "重要", ["一般"]),
        ("bank_card", "重要", ["一般"]),
    ],
)
def test_a_kind_sets_the_lowest_grade_its_column_may_carry(
    tmp_path: Path, kind: str, lowest: str, below: list[str]
) -> None:
    """Issue 13 item 5 (review D4): a 身份证号 re-graded 一般 let 20,000 raw numbers leave as
    `keep`. A column's kind sets its lowest grade, refused at load at the grade's file:line,
    whatever the class; the lowest grade itself loads."""
    for grade in below:
        for cls in ("public", "personal", "sensitive"):
            found = load_schema(
                tmp_path, f"{{type: string, class: {cls}, grade: {grade}, kind: {kind}}}"
            )
            assert any(
                p.startswith("people.yaml:7:") and f"kind {kind} is graded" in p and lowest in p
                for p in found
            ), found
    # No grade at all means 一般: refused too, at the column's line.
    found = load_schema(tmp_path, f"{{type: string, class: personal, kind: {kind}}}")
    assert any(p.startswith("people.yaml:7:") and "graded 一般" in p for p in found), found
    assert (
        load_schema(tmp_path, f"{{type: string, class: personal, grade: {lowest}, kind: {kind}}}")
        == []
    )


def test_a_downgraded_id_card_released_raw_never_loads(tmp_path: Path) -> None:
    """Review D4, the probe itself: `kind: id_card` declared public 一般 and released as keep
    (with a justification) is refused at load."""
    found = load_schema(tmp_path, "{type: string, class: public, grade: 一般, kind: id_card}")
    assert any("below 核心" in p for p in found), found


@pytest.mark.parametrize(
    "text",
    [
        "TODO", "todo", "TBD", "FIXME", "n/a", "N/A", "none", "xxx", "test", "abcd", "asdf",
        "TODO.", "  TODO  ", "TODO TODO TODO", "xxx xxx xxx", "待定", "暂无", "测试", "不适用",
        "ok", "needed", "see above", "abcd efgh", "——。", " ", "",
    ],
)  # fmt: skip
def test_placeholder_justifications_are_refused(tmp_path: Path, text: str) -> None:
    """Issue 13 item 5 / review D3: a justification or not_identifying reason must carry real
    words, not a placeholder or a single token."""
    quoted = text.replace('"', "")
    keep = load(tmp_path, f'      mobile: {{transform: keep, justification: "{quoted}"}}\n')
    assert any("must carry words" in p for p in keep), keep
    left_out = load(tmp_path, f'      city: {{transform: keep, not_identifying: "{quoted}"}}\n')
    assert any("not_identifying needs a written justification" in p for p in left_out), left_out


@pytest.mark.parametrize(
    "text",
    [
        "统计分析需要按性别分组；单独的性别不能识别个人。",
        "按性别统计所需",
        "只是代号",
        "the city is the same for every row",
        "needed for call-back checks",
    ],
)
def test_justifications_with_words_are_accepted(tmp_path: Path, text: str) -> None:
    """Real reasons, Chinese or English, load (a CJK character counts as a word)."""
    assert load(tmp_path, f'      city: {{transform: keep, not_identifying: "{text}"}}\n') == []
    assert load(tmp_path, f'      mobile: {{transform: keep, justification: "{text}"}}\n') == []


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=30))
def test_a_single_token_is_never_a_justification(token: str) -> None:
    """However long, one run of letters without a space is not an explanation (unless it is
    CJK text, where characters are words)."""
    from gateway.model.floors import has_words, is_cjk

    if any(is_cjk(ch) for ch in token):
        return
    assert not has_words(token)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(categories=["P", "S", "Z", "N"]), max_size=40))
def test_marks_blanks_and_digits_are_never_a_justification(text: str) -> None:
    """Punctuation, symbols, spaces and digits say nothing."""
    from gateway.model.floors import has_words

    assert not has_words(text)
