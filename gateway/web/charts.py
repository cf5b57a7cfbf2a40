"""Chart geometry for server-side SVG: the numbers here, the markup in templates/_charts.html.j2.

Small SVG templates rather than a chart library: the output carries no script, no `style`
attribute and no external reference (the console runs under a strict Content-Security-Policy,
and the report must open offline), every label goes through Jinja2's autoescaping, and the same
input always draws the same bytes. Colours come from CSS classes in the page's one stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH = 720
LEFT = 56  # room for the value axis labels
RIGHT = 44  # room for the last time label
BOTTOM = 30  # room for the time axis labels
TOP = 12


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str  # the series' CSS class (its colour)
    title: str  # the tooltip: what the bar stands for, and its value


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"  # SVG text-anchor: start, middle, end


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    rects: tuple[Rect, ...]
    texts: tuple[Text, ...]
    lines: tuple[Line, ...]
    legend: tuple[tuple[str, str], ...]  # (css class, label)
    empty: bool


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above value (an axis maximum that reads well)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def columns(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    names: Mapping[str, str] | None = None,
    *,
    height: int = 220,
) -> Chart:
    """Stacked columns, one per label (a time bucket). `series` maps a CSS class to one value
    per label; the series stack in the mapping's order; `names` gives the legend's words."""
    names = names or {}
    count = len(labels)
    totals = [sum(values[i] for values in series.values()) for i in range(count)]
    top = nice_ceiling(max(totals, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = height - TOP - BOTTOM
    base = TOP + plot_h
    slot = plot_w / max(count, 1)
    gap = min(2.0, slot * 0.2)
    rects: list[Rect] = []
    for i, label in enumerate(labels):
        y = float(base)
        for css, values in series.items():
            if values[i] <= 0:
                continue
            h = plot_h * values[i] / top
            y -= h
            rects.append(
                Rect(
                    round(LEFT + i * slot + gap / 2, 2),
                    round(y, 2),
                    round(max(slot - gap, 0.5), 2),
                    round(h, 2),
                    css,
                    f"{label}: {_fmt(values[i])} {names.get(css, css)}",
                )
            )
    every = max(1, math.ceil(count / 6))
    texts = [
        Text(round(LEFT + (i + 0.5) * slot, 2), base + 18, labels[i], "middle")
        for i in range(0, count, every)
    ]
    texts += [
        Text(LEFT - 6, round(base - plot_h * f + 4, 2), _fmt(top * f), "end") for f in (0, 0.5, 1)
    ]
    lines = (Line(LEFT, base, WIDTH - RIGHT, base), Line(LEFT, TOP, LEFT, base))
    legend = tuple((css, names.get(css, css)) for css in series)
    return Chart(title, WIDTH, height, tuple(rects), tuple(texts), lines, legend, not any(totals))


def bars(title: str, items: Sequence[tuple[str, int]], *, css: str = "s0") -> Chart:
    """Horizontal bars, one per (label, value) in the order given; each label above its bar,
    each value after it."""
    row = 30
    height = TOP + row * max(len(items), 1)
    top = nice_ceiling(max((v for _, v in items), default=0))
    plot_w = WIDTH - 8 - 100  # room on the right for the value
    rects: list[Rect] = []
    texts: list[Text] = []
    for i, (label, value) in enumerate(items):
        y = TOP + i * row
        width = plot_w * value / top if value else 0
        rects.append(Rect(0, y + 12, round(max(width, 1.0), 2), 12, css, f"{label}: {_fmt(value)}"))
        texts.append(Text(0, y + 9, label))
        texts.append(Text(round(width + 6, 2), y + 22, _fmt(value)))
    return Chart(title, WIDTH, height, tuple(rects), tuple(texts), (), (), not items)
