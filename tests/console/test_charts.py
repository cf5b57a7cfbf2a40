"""Server-side SVG charts: geometry stays inside the drawing, columns stack to their totals,
and labels are text (escaped), never markup."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.web.charts import TOP, bars, columns, nice_ceiling
from gateway.web.templating import environment

counts = st.integers(min_value=0, max_value=10**9)


@given(st.integers(min_value=0, max_value=10**12))
def test_nice_ceiling_is_the_next_1_2_5_step(value: int) -> None:
    """The axis maximum is at or above the value, below 2.5 times it, and reads as 1, 2 or 5."""
    top = nice_ceiling(value)
    assert top >= max(value, 1)
    assert top < 2.5 * max(value, 1) or top == 1
    assert str(top).rstrip("0") in ("1", "2", "5")


@given(st.lists(st.tuples(counts, counts, counts), min_size=1, max_size=200))
def test_columns_stay_inside_and_stack_to_their_totals(values: list[tuple[int, int, int]]) -> None:
    """Every rectangle lies within the view box; each column's heights are proportional to its
    total (the tallest column reaches at most the top)."""
    labels = [f"b{i}" for i in range(len(values))]
    series = {css: [v[i] for v in values] for i, css in enumerate(("allow", "deny", "error"))}
    chart = columns("t", labels, series)
    for rect in chart.rects:
        assert rect.x >= 0
        assert rect.x + rect.width <= chart.width + 0.01
        assert rect.y >= TOP - 0.05
        assert rect.y + rect.height <= chart.height
        assert rect.height >= 0  # (one call among 10^9 is drawn, if not visibly)
    top = nice_ceiling(max(sum(v) for v in values))
    plot = chart.height - TOP - 30
    for i, column in enumerate(values):
        drawn = sum(r.height for r in chart.rects if r.title.startswith(f"b{i}:"))
        assert abs(drawn - plot * sum(column) / top) < 0.05 * len(column) + 0.05
    assert chart.empty == (not any(sum(v) for v in values))


@given(st.lists(st.tuples(st.text(max_size=40), counts), max_size=30))
def test_bars_escape_their_labels(items: list[tuple[str, int]]) -> None:
    """Whatever a label holds (a client id, a reason), the SVG shows it as text."""
    hostile = [("<script>alert(1)</script>", 3), ('"><img src=x>', 1), *items]
    chart = bars("Refusals & more <b>", hostile)
    html = (
        environment()
        .from_string('{% from "_charts.html.j2" import chart as draw %}{{ draw(c) }}')
        .render(c=chart)
    )
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Refusals &amp; more &lt;b&gt;" in html
    for rect in chart.rects:
        assert rect.x + rect.width <= chart.width
