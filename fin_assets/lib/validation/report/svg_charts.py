"""Inline SVG charts of the validation pack's HTML page.

Why drawn here rather than with a plotting library: the page must open offline and without
JavaScript years later, and each chart must be drawn from the curve points, tables and rates the
pack stores, so the charts are plain SVG text computed from the pack dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from fin_assets.lib.common.html_format import e, finite

_WIDTH, _HEIGHT = 460, 320
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 56, 16, 28, 44
_COLOURS: Final[tuple[str, ...]] = ("#1f5fa8", "#d9822b", "#2e8b57", "#8e44ad", "#c0392b")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    return [low + (high - low) * i / (count - 1) for i in range(count)]


class _Plot:
    """Maps data coordinates onto an SVG plot area and collects its elements."""

    def __init__(
        self,
        chart: str,
        title: str,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        total_width: int = _WIDTH,
        margin_right: int = _MARGIN_RIGHT,
        element_id: str | None = None,
    ) -> None:
        self.chart, self.title, self.total_width = chart, title, total_width
        self.element_id = element_id
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.left, self.top = _MARGIN_LEFT, _MARGIN_TOP
        self.width = total_width - _MARGIN_LEFT - margin_right
        self.height = _HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
        self.elements: list[str] = []

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * self.width

    def y(self, value: float) -> float:
        return self.top + self.height - (value - self.y0) / (self.y1 - self.y0) * self.height

    def axes(self, x_label: str, y_label: str, x_ticks: bool = True) -> None:
        bottom, right = self.top + self.height, self.left + self.width
        self.elements.append(
            f'<line x1="{self.left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#6b7280"/>'
            f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{bottom}" '
            'stroke="#6b7280"/>'
        )
        for value in _ticks(self.y0, self.y1):
            y = self.y(value)
            self.elements.append(
                f'<line x1="{self.left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                'stroke="#eef1f5"/>'
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2g}</text>'
            )
        if x_ticks:
            for value in _ticks(self.x0, self.x1):
                x = self.x(value)
                self.elements.append(
                    f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{value:.2g}</text>'
                )
        self.elements.append(
            f'<text x="{self.left + self.width / 2:.1f}" y="{_HEIGHT - 8}" '
            f'text-anchor="middle">{e(x_label)}</text>'
            f'<text transform="translate(14,{self.top + self.height / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{e(y_label)}</text>'
        )

    def line(
        self,
        xs: Sequence[Any],
        ys: Sequence[Any],
        colour: str,
        dashed: bool = False,
        series: str | None = None,
    ) -> None:
        """A polyline through the finite points; a missing value breaks the line.

        ``series`` names the line (``data-series``) so a reader of the SVG, or a test, can tell
        a plotted series from a reference line.
        """
        commands = []
        pen_down = False
        for xv, yv in zip(xs, ys, strict=True):
            fx, fy = finite(xv), finite(yv)
            if fx is None or fy is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{self.x(fx):.1f},{self.y(fy):.1f}")
            pen_down = True
        if commands:
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            name = f' data-series="{e(series)}"' if series is not None else ""
            self.elements.append(
                f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" '
                f'stroke-width="2"{dash}{name}/>'
            )

    def points(self, xs: Sequence[Any], ys: Sequence[Any], colour: str) -> None:
        for xv, yv in zip(xs, ys, strict=True):
            fx, fy = finite(xv), finite(yv)
            if fx is not None and fy is not None:
                self.elements.append(
                    f'<circle cx="{self.x(fx):.1f}" cy="{self.y(fy):.1f}" r="3" fill="{colour}"/>'
                )

    def legend(self, names: Sequence[str]) -> None:
        for i, name in enumerate(names):
            x = self.left + 8 + i * 130
            colour = _COLOURS[i % len(_COLOURS)]
            self.elements.append(
                f'<rect x="{x}" y="{self.top - 18}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 14}" y="{self.top - 9}">{e(name)}</text>'
            )

    def svg(self) -> str:
        ident = f' id="{e(self.element_id)}"' if self.element_id else ""
        return (
            f'<svg class="chart"{ident} data-chart="{e(self.chart)}" '
            'xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {self.total_width} {_HEIGHT}" width="{self.total_width}" '
            f'height="{_HEIGHT}" role="img" aria-label="{e(self.title)}">'
            f"<title>{e(self.title)}</title>" + "".join(self.elements) + "</svg>"
        )


def curve_chart(
    chart: str,
    title: str,
    xs: Sequence[Any],
    ys: Sequence[Any],
    x_label: str,
    y_label: str,
    diagonal: bool,
) -> str:
    """A curve on the unit square (ROC, precision-recall); ``diagonal`` draws chance level."""
    plot = _Plot(chart, title, (0.0, 1.0), (0.0, 1.0))
    plot.axes(x_label, y_label)
    if diagonal:
        plot.line([0.0, 1.0], [0.0, 1.0], "#9ca3af", dashed=True)
    plot.line(xs, ys, _COLOURS[0])
    plot.legend([title])
    return plot.svg()


def reliability_chart(table: Sequence[Mapping[str, Any]]) -> str:
    """Observed rate against mean score per bin, zoomed to the scores, so miscalibration shows."""
    xs = [row.get("mean_score") for row in table]
    ys = [row.get("observed_rate") for row in table]
    finite_values = [f for f in (finite(v) for v in (*xs, *ys)) if f is not None]
    top = min(1.0, max(finite_values) * 1.1) if finite_values and max(finite_values) > 0 else 1.0
    plot = _Plot("reliability", "Reliability diagram", (0.0, top), (0.0, top))
    plot.axes("mean predicted probability", "observed rate")
    plot.line([0.0, top], [0.0, top], "#9ca3af", dashed=True)
    plot.line(xs, ys, _COLOURS[0])
    plot.points(xs, ys, _COLOURS[0])
    plot.legend(["observed vs predicted"])
    return plot.svg()


def stability_chart(per_day: Sequence[Mapping[str, Any]]) -> str:
    """Daily AUC and AP, so a reader sees whether performance holds over the test period."""
    count = len(per_day)
    plot = _Plot("stability", "Daily AUC and AP", (0.0, max(count - 1, 1)), (0.0, 1.0))
    plot.axes("day", "metric", x_ticks=False)
    index = list(range(count))
    for i, key in enumerate(("auc_roc", "average_precision")):
        values = [row.get(key) for row in per_day]
        plot.line(index, values, _COLOURS[i])
        plot.points(index, values, _COLOURS[i])
    step = max(1, count // 6)
    bottom = plot.top + plot.height
    for i in range(0, count, step):
        plot.elements.append(
            f'<text x="{plot.x(i):.1f}" y="{bottom + 14}" text-anchor="middle">'
            f"{e(str(per_day[i].get('day', ''))[5:])}</text>"
        )
    plot.legend(["AUC ROC", "average precision"])
    return plot.svg()


def hbar_chart(chart: str, title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """Horizontal bars, one per label (importance)."""
    height = _MARGIN_TOP + 20 * len(labels) + _MARGIN_BOTTOM
    left, width = 230, _WIDTH + 140 - 230 - _MARGIN_RIGHT
    top_value = max([v for v in values if v > 0], default=1.0)
    elements = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = _MARGIN_TOP + 20 * i
        bar = max(value, 0.0) / top_value * width
        elements.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{e(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="14" fill="{_COLOURS[0]}"/>'
            f'<text x="{left + bar + 4:.1f}" y="{y + 14}">{value:.3g}</text>'
        )
    full_width = _WIDTH + 140
    return (
        f'<svg class="chart" data-chart="{e(chart)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {full_width} {height}" width="{full_width}" height="{height}" role="img" '
        f'aria-label="{e(title)}"><title>{e(title)}</title>'
        f'<text class="title" x="{left}" y="16">{e(title)}</text>' + "".join(elements) + "</svg>"
    )


def grouped_bar_chart(
    chart: str, title: str, groups: Sequence[str], series: Sequence[tuple[str, Sequence[Any]]]
) -> str:
    """Vertical bars per group, one bar per series (rates in [0, 1])."""
    width = max(_WIDTH, _MARGIN_LEFT + _MARGIN_RIGHT + 70 * len(groups))
    plot = _Plot(chart, title, (0.0, float(len(groups))), (0.0, 1.0), total_width=width)
    plot.axes("group", "rate", x_ticks=False)
    slot = plot.width / max(len(groups), 1)
    bar = slot * 0.7 / max(len(series), 1)
    bottom = plot.top + plot.height
    for g, group in enumerate(groups):
        for s, (_, values) in enumerate(series):
            value = finite(values[g])
            if value is None:
                continue
            x = plot.left + g * slot + slot * 0.15 + s * bar
            height = max(value, 0.0) * plot.height
            plot.elements.append(
                f'<rect x="{x:.1f}" y="{bottom - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{_COLOURS[s % len(_COLOURS)]}"/>'
            )
        plot.elements.append(
            f'<text x="{plot.left + (g + 0.5) * slot:.1f}" y="{bottom + 14}" '
            f'text-anchor="middle">{e(group)}</text>'
        )
    plot.legend([name for name, _ in series])
    return plot.svg()


def sweep_chart(sweep: Mapping[str, Any], threshold: float) -> str:
    """Approval rate and the lowest AIR per attribute across cut-offs, with the operating point.

    Why on the score quantile of the cut-off: the swept cut-offs are the score's quantiles, so
    they are evenly spaced there while the raw scores of a rare-event model crowd near zero; the
    cut-off score itself is printed under each tick. The quantile of a cut-off is the share of
    scores below it, i.e. the approval rate, so the operating point sits at its approval rate.
    The dashed red line is the policy's AIR threshold (four-fifths): a validator sees at a glance
    whether a nearby cut-off keeps every group above it at a similar approval rate.
    """
    points = list(sweep.get("points") or [])
    attributes = sorted({str(a) for p in points for a in (p.get("min_air") or {})})
    plot = _Plot(
        "threshold_sweep",
        "Threshold sweep: approval rate and minimum AIR by cut-off",
        (0.0, 1.0),
        (0.0, 1.0),
        total_width=_WIDTH + 300,
        margin_right=236,
        element_id="threshold-sweep",
    )
    plot.axes("cut-off at score quantile (cut-off score)", "rate / ratio", x_ticks=False)
    quantiles = [p.get("quantile") for p in points]
    series: list[tuple[str, list[Any]]] = [
        ("approval rate", [p.get("approval_rate") for p in points])
    ]
    series += [
        (f"min AIR {a}", [(p.get("min_air") or {}).get(a) for p in points]) for a in attributes
    ]
    right, bottom = plot.left + plot.width, plot.top + plot.height
    level = plot.y(threshold)
    plot.elements.append(
        f'<line class="reference" data-value="{threshold:g}" x1="{plot.left}" y1="{level:.1f}" '
        f'x2="{right}" y2="{level:.1f}" stroke="#c0392b" stroke-width="1.5" '
        'stroke-dasharray="6 4"/>'
        f'<text x="{plot.left + 6}" y="{level - 4:.1f}" fill="#c0392b">'
        f"AIR threshold {threshold:g}</text>"
    )
    for i, (name, values) in enumerate(series):
        plot.line(quantiles, values, _COLOURS[i % len(_COLOURS)], series=name)
    step = max(1, -(-len(points) // 5))
    for point in points[::step]:
        q, cutoff = finite(point.get("quantile")), finite(point.get("cutoff"))
        if q is None:
            continue
        x = plot.x(q)
        plot.elements.append(
            f'<text x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">{q:.2f}</text>'
            + (
                f'<text x="{x:.1f}" y="{bottom + 25}" text-anchor="middle" fill="#6b7280">'
                f"({cutoff:.3g})</text>"
                if cutoff is not None
                else ""
            )
        )
    operating = sweep.get("operating_point") or {}
    x_op = finite(operating.get("approval_rate"))
    if x_op is not None:
        at = plot.x(x_op)
        plot.elements.append(
            f'<line class="operating-point" x1="{at:.1f}" y1="{plot.top}" x2="{at:.1f}" '
            f'y2="{bottom}" stroke="#111827" stroke-dasharray="2 3"/>'
            f'<text x="{at - 4 if x_op > 0.5 else at + 4:.1f}" y="{bottom - 6}" '
            f'text-anchor="{"end" if x_op > 0.5 else "start"}">operating point</text>'
        )
        marks = [x_op] + [(operating.get("min_air") or {}).get(a) for a in attributes]
        for i, value in enumerate(marks):
            y = finite(value)
            if y is not None:
                plot.elements.append(
                    f'<circle class="operating-point" cx="{at:.1f}" cy="{plot.y(y):.1f}" r="5" '
                    f'fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="2"/>'
                )
    for i, (name, _) in enumerate(series):
        y = plot.top + 4 + 18 * i
        plot.elements.append(
            f'<rect x="{right + 14}" y="{y}" width="10" height="10" '
            f'fill="{_COLOURS[i % len(_COLOURS)]}"/>'
            f'<text x="{right + 28}" y="{y + 9}">{e(name[:34])}</text>'
        )
    return plot.svg()
