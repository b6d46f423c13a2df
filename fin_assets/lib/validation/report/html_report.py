"""The validation pack as a self-contained HTML page and as a Markdown model card.

Why rendered here, from the JSON alone: the HTML and the card must show exactly the numbers of
``validation_pack.json`` (the file an approval refers to by digest), so they are pure functions of
the pack dict and can be re-rendered from a stored pack at any time. The page needs no network and
no JavaScript: an examiner may open it offline, years later. Charts are inline SVG drawn here
from the curve points, tables and rates the pack stores; every text taken from the pack is
escaped (identity fields and segment values come from callers and data).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from fin_assets.lib.validation.pack import PACK_SECTIONS

#: Section headings, in the order of PACK_SECTIONS.
SECTION_TITLES: Final[dict[str, str]] = {
    "identity": "Identity",
    "data": "Data",
    "discrimination": "Discrimination (out-of-time)",
    "calibration": "Calibration",
    "operating_point": "Operating point",
    "stability": "Stability over time",
    "segments": "Segments",
    "stress": "Stress scenarios",
    "sensitivity": "Sensitivity and monotonicity",
    "fairness": "Fairness",
    "explanations": "Explanations and reason codes",
    "champion_comparison": "Champion comparison",
    "limitations": "Limitations",
    "assumptions": "Assumptions",
    "monitoring_plan": "Monitoring plan",
    "gates": "Policy gates",
    "status": "Status",
}

#: Decisions listed with their reason codes in the HTML (all of them are in the JSON).
MAX_REASON_ROWS: Final[int] = 25

_WIDTH, _HEIGHT = 460, 320
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 56, 16, 28, 44
_COLOURS: Final[tuple[str, ...]] = ("#1f5fa8", "#d9822b", "#2e8b57", "#8e44ad", "#c0392b")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;
color:#1d2731;background:#f5f7fa;line-height:1.45}
header{background:#1d2731;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
nav{padding:8px 28px;background:#e8edf3;font-size:13px}
nav a{margin-right:10px;color:#1f5fa8}
main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #d8dee6;border-radius:6px;margin:16px 0;
padding:8px 18px 14px}
h2{font-size:18px;border-bottom:1px solid #e3e8ee;padding-bottom:4px}
h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dde3ea;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{padding:12px 28px;font-size:18px;font-weight:600}
.banner.passed{background:#d4f0dc;color:#14532d}
.banner.failed{background:#fbd5d5;color:#7f1d1d}
tr.pass td.result{background:#d4f0dc;color:#14532d;font-weight:600}
tr.fail td.result{background:#fbd5d5;color:#7f1d1d;font-weight:600}
tr.not_applicable td.result{background:#eceff3;color:#4b5563}
tr.below td{background:#fdecea}
tr.unjudged td{color:#6b7280}
.charts{display:flex;flex-wrap:wrap;gap:14px}
svg.chart{background:#fff;border:1px solid #e3e8ee}
svg.chart text{font-size:11px;fill:#374151}
svg.chart .title{font-size:12px;font-weight:600}
.note{color:#4b5563;font-size:13px}
.status-word{font-size:22px;font-weight:700}
"""


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _num(value: Any, digits: int = 4) -> str:
    """A cell's text: floats rounded, None as a dash, containers as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.3g}"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _cell(value: Any) -> str:
    css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{css}>{_e(_num(value))}</td>"


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    row_classes: Sequence[str] | None = None,
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{_e(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(_cell(v) for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv(mapping: Mapping[str, Any] | None, skip: Iterable[str] = ()) -> str:
    """A key/value table; nested mappings become nested tables, lists of dicts tables."""
    if not mapping:
        return '<p class="note">—</p>'
    excluded = set(skip)
    rows = []
    for key, value in mapping.items():
        if key in excluded:
            continue
        if isinstance(value, Mapping) and value:
            inner = _kv(value)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            headers = list(value[0].keys())
            inner = _table(headers, [[v.get(h) for h in headers] for v in value])
        elif isinstance(value, list):
            inner = _e(", ".join(_num(v) for v in value)) if value else "—"
        else:
            inner = _e(_num(value))
        rows.append(f"<tr><th>{_e(key)}</th><td>{inner}</td></tr>")
    return f"<table><tbody>{''.join(rows)}</tbody></table>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _items(items: Sequence[Mapping[str, Any]] | None) -> str:
    if not items:
        return _note("None recorded.")
    lines = "".join(
        f"<li><strong>{_e(i.get('topic', ''))}</strong>: {_e(i.get('text', ''))}</li>"
        for i in items
    )
    return f"<ul>{lines}</ul>"


# --------------------------------------------------------------------------------------------
# inline SVG charts
# --------------------------------------------------------------------------------------------


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
    ) -> None:
        self.chart, self.title, self.total_width = chart, title, total_width
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.left, self.top = _MARGIN_LEFT, _MARGIN_TOP
        self.width = total_width - _MARGIN_LEFT - _MARGIN_RIGHT
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
            f'text-anchor="middle">{_e(x_label)}</text>'
            f'<text transform="translate(14,{self.top + self.height / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{_e(y_label)}</text>'
        )

    def line(self, xs: Sequence[Any], ys: Sequence[Any], colour: str, dashed: bool = False) -> None:
        """A polyline through the finite points; a missing value breaks the line."""
        commands = []
        pen_down = False
        for xv, yv in zip(xs, ys, strict=True):
            fx, fy = _finite(xv), _finite(yv)
            if fx is None or fy is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{self.x(fx):.1f},{self.y(fy):.1f}")
            pen_down = True
        if commands:
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            self.elements.append(
                f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" '
                f'stroke-width="2"{dash}/>'
            )

    def points(self, xs: Sequence[Any], ys: Sequence[Any], colour: str) -> None:
        for xv, yv in zip(xs, ys, strict=True):
            fx, fy = _finite(xv), _finite(yv)
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
                f'<text x="{x + 14}" y="{self.top - 9}">{_e(name)}</text>'
            )

    def svg(self) -> str:
        return (
            f'<svg class="chart" data-chart="{_e(self.chart)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {self.total_width} {_HEIGHT}" width="{self.total_width}" '
            f'height="{_HEIGHT}" role="img" aria-label="{_e(self.title)}">'
            f"<title>{_e(self.title)}</title>" + "".join(self.elements) + "</svg>"
        )


def _curve_chart(
    chart: str,
    title: str,
    xs: Sequence[Any],
    ys: Sequence[Any],
    x_label: str,
    y_label: str,
    diagonal: bool,
) -> str:
    plot = _Plot(chart, title, (0.0, 1.0), (0.0, 1.0))
    plot.axes(x_label, y_label)
    if diagonal:
        plot.line([0.0, 1.0], [0.0, 1.0], "#9ca3af", dashed=True)
    plot.line(xs, ys, _COLOURS[0])
    plot.legend([title])
    return plot.svg()


def _reliability_chart(table: Sequence[Mapping[str, Any]]) -> str:
    xs = [row.get("mean_score") for row in table]
    ys = [row.get("observed_rate") for row in table]
    finite = [f for f in (_finite(v) for v in (*xs, *ys)) if f is not None]
    top = min(1.0, max(finite) * 1.1) if finite and max(finite) > 0 else 1.0
    plot = _Plot("reliability", "Reliability diagram", (0.0, top), (0.0, top))
    plot.axes("mean predicted probability", "observed rate")
    plot.line([0.0, top], [0.0, top], "#9ca3af", dashed=True)
    plot.line(xs, ys, _COLOURS[0])
    plot.points(xs, ys, _COLOURS[0])
    plot.legend(["observed vs predicted"])
    return plot.svg()


def _stability_chart(per_day: Sequence[Mapping[str, Any]]) -> str:
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
            f"{_e(str(per_day[i].get('day', ''))[5:])}</text>"
        )
    plot.legend(["AUC ROC", "average precision"])
    return plot.svg()


def _hbar_chart(chart: str, title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """Horizontal bars, one per label (importance)."""
    height = _MARGIN_TOP + 20 * len(labels) + _MARGIN_BOTTOM
    left, width = 230, _WIDTH + 140 - 230 - _MARGIN_RIGHT
    top_value = max([v for v in values if v > 0], default=1.0)
    elements = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = _MARGIN_TOP + 20 * i
        bar = max(value, 0.0) / top_value * width
        elements.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="14" fill="{_COLOURS[0]}"/>'
            f'<text x="{left + bar + 4:.1f}" y="{y + 14}">{value:.3g}</text>'
        )
    full_width = _WIDTH + 140
    return (
        f'<svg class="chart" data-chart="{_e(chart)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {full_width} {height}" width="{full_width}" height="{height}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>'
        f'<text class="title" x="{left}" y="16">{_e(title)}</text>' + "".join(elements) + "</svg>"
    )


def _grouped_bar_chart(
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
            value = _finite(values[g])
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
            f'text-anchor="middle">{_e(group)}</text>'
        )
    plot.legend([name for name, _ in series])
    return plot.svg()


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def _identity(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    return _kv(section)


def _data(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    return _kv(section)


def _interval_row(name: str, section: Mapping[str, Any], key: str) -> list[Any]:
    ci = section.get(f"{key}_ci") or {}
    return [name, section.get(key), ci.get("low"), ci.get("high")]


def _discrimination(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    rows = [
        _interval_row("AUC ROC", section, "auc_roc"),
        _interval_row("average precision", section, "average_precision"),
        _interval_row("KS", section, "ks"),
        _interval_row("Gini", section, "gini"),
    ]
    parts = [_table(["metric", "estimate", "95 % CI low", "95 % CI high"], rows)]
    boot = section.get("bootstrap") or {}
    parts.append(
        _note(
            f"Percentile bootstrap, {boot.get('resamples')} resamples, seed {boot.get('seed')}; "
            f"{section.get('rows')} rows, {section.get('positives')} positives."
        )
    )
    charts = []
    roc = section.get("roc_curve") or {}
    if roc.get("fpr"):
        charts.append(
            _curve_chart(
                "roc",
                "ROC curve",
                roc["fpr"],
                roc["tpr"],
                "false positive rate",
                "true positive rate",
                True,
            )
        )
    pr = section.get("pr_curve") or {}
    if pr.get("recall"):
        charts.append(
            _curve_chart(
                "pr",
                "Precision-recall curve",
                pr["recall"],
                pr["precision"],
                "recall",
                "precision",
                False,
            )
        )
    parts.append(f'<div class="charts">{"".join(charts)}</div>')
    card = section.get("card_precision_top_k")
    if card:
        parts.append(
            f"<h3>Card precision top-{_e(card.get('k'))}: mean {_e(_num(card.get('mean')))}</h3>"
        )
        per_day = card.get("per_day") or {}
        compromised = card.get("compromised_cards_per_day") or {}
        excluded = card.get("known_compromised_cards_per_day") or {}
        parts.append(
            _table(
                ["day", "card precision", "compromised cards", "known compromised cards"],
                [[d, v, compromised.get(d), excluded.get(d)] for d, v in per_day.items()],
            )
        )
        parts.append(_note(str(card.get("rule", ""))))
    for reason in (section.get("not_applicable_reasons") or {}).values():
        parts.append(_note(reason))
    return "".join(parts)


def _calibration(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    summary = {
        k: section.get(k)
        for k in (
            "brier_score",
            "ece",
            "max_bin_gap",
            "mean_score",
            "observed_rate",
            "bins",
            "strategy",
        )
    }
    table = section.get("reliability_table") or []
    parts = [_kv(summary)]
    if table:
        parts.append(f'<div class="charts">{_reliability_chart(table)}</div>')
        headers = ["bin", "lower", "upper", "count", "positives", "mean_score", "observed_rate"]
        parts.append(_table(headers, [[row.get(h) for h in headers] for row in table]))
    return "".join(parts)


def _operating_point(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    parts = [_note(str(section.get("rule", ""))), _kv(section, skip=("alerts_per_day", "rule"))]
    per_day = section.get("alerts_per_day")
    if per_day:
        parts.append(
            f"<h3>Adverse decisions per day: mean {_e(_num(per_day.get('mean')))}, "
            f"min {_e(per_day.get('min'))}, max {_e(per_day.get('max'))}</h3>"
        )
    return "".join(parts)


def _stability(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    per_day = section.get("per_day") or []
    if not per_day:
        reasons = section.get("not_applicable_reasons") or {}
        return _note(reasons.get("per_day", "No stability over time."))
    headers = [
        "rows",
        "positives",
        "auc_roc",
        "average_precision",
        "alerts",
        "precision",
        "recall",
        "card_precision_top_k",
    ]
    parts = [
        _kv(
            {
                k: section.get(k)
                for k in ("auc_roc_min", "auc_roc_max", "auc_roc_std", "days_without_auc")
            }
        ),
        f'<div class="charts">{_stability_chart(per_day)}</div>',
        "<h3>Per ISO week</h3>",
        _table(
            ["week", "days", *headers],
            [
                [r.get("week"), r.get("days"), *[r.get(h) for h in headers]]
                for r in section.get("per_week") or []
            ],
        ),
        "<h3>Per day</h3>",
        _table(["day", *headers], [[r.get("day"), *[r.get(h) for h in headers]] for r in per_day]),
    ]
    return "".join(parts)


def _segments(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    parts = [
        _note(
            f"Judged when at least {section.get('min_segment_rows')} rows and "
            f"{section.get('min_segment_positives')} positives; AUC floor "
            f"{_num(section.get('auc_roc_floor'))}. Lowest judged AUC "
            f"{_num(section.get('min_auc_roc'))} ({section.get('min_auc_roc_segment') or '—'})."
        )
    ]
    headers = [
        "segment",
        "rows",
        "positives",
        "label_rate",
        "auc_roc",
        "average_precision",
        "recall_at_operating_point",
        "judged",
        "not_judged_reason",
        "below_policy",
    ]
    for dimension in section.get("dimensions") or []:
        rows = dimension.get("segments") or []
        classes = [
            "below" if r.get("below_policy") else ("unjudged" if not r.get("judged") else "")
            for r in rows
        ]
        parts.append(
            f"<h3>{_e(dimension.get('dimension'))} <small>({_e(dimension.get('column'))}, "
            f"{_e(dimension.get('how'))})</small></h3>"
        )
        parts.append(_table(headers, [[r.get(h) for h in headers] for r in rows], classes))
    for reason in (section.get("not_applicable_reasons") or {}).values():
        parts.append(_note(reason))
    return "".join(parts)


def _stress(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    rows = []
    for scenario in section.get("scenarios") or []:
        result = scenario.get("metrics") or {}
        delta = scenario.get("deltas") or {}
        rows.append(
            [
                scenario.get("name"),
                scenario.get("applicable"),
                scenario.get("description") or scenario.get("reason"),
                result.get("auc_roc"),
                delta.get("auc_roc"),
                result.get("average_precision"),
                delta.get("average_precision"),
                result.get("recall"),
                delta.get("recall"),
                delta.get("mean_score"),
            ]
        )
    base = section.get("base") or {}
    return "".join(
        [
            _note(
                f"Base: AUC {_num(base.get('auc_roc'))}, AP {_num(base.get('average_precision'))}, "
                f"recall at the operating point {_num(base.get('recall'))}."
            ),
            _table(
                [
                    "scenario",
                    "applicable",
                    "what",
                    "AUC",
                    "Δ AUC",
                    "AP",
                    "Δ AP",
                    "recall",
                    "Δ recall",
                    "Δ mean score",
                ],
                rows,
            ),
        ]
    )


def _sensitivity(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    step = _finite(section.get("relative_step")) or 0.0
    headers = ["feature", "mean_change_up", "mean_change_down", "mean_abs_change"]
    checks = section.get("monotonicity") or []
    mono_rows = [
        [
            c.get("feature"),
            c.get("expected"),
            c.get("holds"),
            c.get("rows_monotone_share"),
            ", ".join(_num(v) for v in c.get("grid") or []) or c.get("reason"),
            ", ".join(_num(v) for v in c.get("mean_score") or []),
        ]
        for c in checks
    ]
    return "".join(
        [
            _note(
                f"Mean score change when each feature is multiplied by 1 ± {step:g}, on "
                f"{section.get('sample_rows')} fixed rows; features ranked by "
                f"{section.get('ranked_by')}."
            ),
            _table(headers, [[r.get(h) for h in headers] for r in section.get("features") or []]),
            "<h3>Monotonicity where the policy expects it</h3>",
            _note(str(section.get("monotonicity_rule", ""))),
            _table(
                ["feature", "expected", "holds", "rows monotone", "grid", "mean score"],
                mono_rows,
            )
            if mono_rows
            else _note("The policy expects no monotone response."),
        ]
    )


def _fairness(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    attributes = section.get("attributes") or {}
    summary = {
        k: section.get(k)
        for k in (
            "protected_assessed",
            "protected_missing",
            "adverse_decision",
            "min_air",
            "min_fpr_ratio",
            "max_abs_smd",
            "four_fifths_flags",
            "smd_flags",
            "groups_too_small",
            "thresholds",
        )
    }
    parts = [_kv(summary)]
    if not attributes:
        for reason in sorted(set((section.get("not_applicable_reasons") or {}).values())):
            parts.append(_note(reason))
        return "".join(parts)
    labels: list[str] = []
    favourable: list[Any] = []
    fpr: list[Any] = []
    headers = [
        "group",
        "rows",
        "positives",
        "adverse_rate",
        "favourable_rate",
        "false_positive_rate",
        "true_positive_rate",
        "mean_score",
        "judged",
        "AIR",
        "SMD",
    ]
    tables = []
    for attribute, report in attributes.items():
        groups = report.get("groups") or []
        air, smd = report.get("air") or {}, report.get("smd") or {}
        for group in groups:
            labels.append(f"{attribute}={group.get('group')}")
            favourable.append(group.get("favourable_rate"))
            fpr.append(group.get("false_positive_rate"))
        tables.append(
            f"<h3>{_e(attribute)} <small>(reference group {_e(report.get('reference_group'))}"
            f"; min AIR {_e(_num(report.get('min_air')))}, FPR ratio "
            f"{_e(_num(report.get('fpr_ratio')))})</small></h3>"
        )
        tables.append(
            _table(
                headers,
                [
                    [
                        *[g.get(h) for h in headers[:-2]],
                        air.get(g.get("group")),
                        smd.get(g.get("group")),
                    ]
                    for g in groups
                ],
                ["" if g.get("judged") else "unjudged" for g in groups],
            )
        )
    chart = _grouped_bar_chart(
        "fairness",
        "Rates by protected group",
        labels,
        [("favourable rate", favourable), ("false positive rate", fpr)],
    )
    parts.append(f'<div class="charts">{chart}</div>')
    parts.extend(tables)
    return "".join(parts)


def _explanations(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    if not section.get("available"):
        return _note(str(section.get("reason", "No explanations.")))
    importance = section.get("global_importance") or []
    top = importance[:15]
    chart = _hbar_chart(
        "importance",
        "Global importance: mean |SHAP| (log-odds)",
        [str(r.get("feature")) for r in top],
        [float(r.get("mean_abs_shap") or 0.0) for r in top],
    )
    codes = section.get("reason_codes") or []
    rows = []
    for decision in codes[:MAX_REASON_ROWS]:
        for reason in decision.get("reasons") or []:
            rows.append(
                [
                    decision.get("id") if decision.get("id") is not None else decision.get("row"),
                    decision.get("score"),
                    reason.get("rank"),
                    reason.get("feature"),
                    reason.get("value"),
                    reason.get("direction"),
                    reason.get("contribution"),
                    reason.get("reason_text"),
                ]
            )
    shown = min(len(codes), MAX_REASON_ROWS)
    return "".join(
        [
            _note(
                f"{section.get('method')}; importance on {section.get('global_sample_rows')} fixed "
                f"rows; booster vs scorer max |difference| "
                f"{_num(section.get('booster_score_max_abs_diff'))}."
            ),
            f'<div class="charts">{chart}</div>',
            _table(
                ["feature", "mean_abs_shap", "share"],
                [[r.get("feature"), r.get("mean_abs_shap"), r.get("share")] for r in importance],
            ),
            f"<h3>Reason codes: {_e(section.get('adverse_decisions'))} adverse decisions, "
            f"{_e(section.get('reason_codes_per_decision'))} reasons each</h3>",
            _kv(
                {
                    "principal reason counts": section.get("principal_reason_counts"),
                    "decisions without a reason": section.get("decisions_without_reason"),
                    "direction judged against": section.get("medians_from"),
                }
            ),
            _note(f"The first {shown} decisions are listed; all {len(codes)} are in the JSON."),
            _table(
                ["id", "score", "rank", "feature", "value", "direction", "contribution", "reason"],
                rows,
            ),
        ]
    )


def _champion(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    if not section.get("available"):
        return _note(str(section.get("reason", "No champion.")))
    rows = []
    for key, name in (("auc_roc", "AUC ROC"), ("average_precision", "average precision")):
        item = section.get(key) or {}
        rows.append(
            [
                name,
                item.get("challenger"),
                item.get("champion"),
                item.get("delta"),
                item.get("ci_low"),
                item.get("ci_high"),
                item.get("method"),
                item.get("verdict"),
            ]
        )
    ks = section.get("ks") or {}
    rows.append(
        [
            "KS",
            ks.get("challenger"),
            ks.get("champion"),
            ks.get("delta"),
            None,
            None,
            "point estimate",
            None,
        ]
    )
    for key, item in (section.get("operating_point") or {}).items():
        rows.append(
            [
                key,
                item.get("challenger"),
                item.get("champion"),
                item.get("delta"),
                None,
                None,
                "operating point",
                None,
            ]
        )
    return "".join(
        [
            f"<p><strong>{_e(section.get('recommendation', ''))}</strong></p>",
            _table(
                [
                    "metric",
                    "challenger",
                    "champion",
                    "delta",
                    "95 % CI low",
                    "95 % CI high",
                    "method",
                    "verdict",
                ],
                rows,
            ),
            "<h3>Champion</h3>",
            _kv(section.get("champion") or {}),
        ]
    )


def _limitations(section: Any, _: Mapping[str, Any]) -> str:
    return _items(section)


def _monitoring(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    monitored = "".join(f"<li>{_e(m)}</li>" for m in section.get("monitored") or [])
    return (
        f"<p>Cadence: <strong>{_e(section.get('cadence'))}</strong></p><ul>{monitored}</ul>"
        + _kv(section, skip=("monitored", "cadence"))
    )


def _gates(section: Any, _: Mapping[str, Any]) -> str:
    gates = section or []
    headers = ["name", "metric", "value", "op", "threshold", "blocking", "result", "reason"]
    body = []
    for gate in gates:
        cells = []
        for h in headers:
            if h == "result":
                cells.append(f'<td class="result">{_e(gate.get(h))}</td>')
            else:
                cells.append(_cell(gate.get(h)))
        body.append(f'<tr class="{_e(gate.get("result"))}">{"".join(cells)}</tr>')
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _status(section: Any, pack: Mapping[str, Any]) -> str:
    gates = pack.get("gates") or []
    failed = [g["name"] for g in gates if g.get("result") == "fail" and g.get("blocking")]
    warned = [g["name"] for g in gates if g.get("result") == "fail" and not g.get("blocking")]
    na = [g["name"] for g in gates if g.get("result") == "not_applicable"]
    return (
        f'<p class="status-word">{_e(str(section).upper())}</p>'
        + _kv(
            {
                "blocking gates failed": failed,
                "non-blocking gates failed": warned,
                "gates not applicable": na,
            }
        )
        + _note(
            "A passed pack makes the version eligible for approval; the approval itself is a "
            "human decision, recorded separately."
        )
    )


_RENDERERS: Final[dict[str, Any]] = {
    "identity": _identity,
    "data": _data,
    "discrimination": _discrimination,
    "calibration": _calibration,
    "operating_point": _operating_point,
    "stability": _stability,
    "segments": _segments,
    "stress": _stress,
    "sensitivity": _sensitivity,
    "fairness": _fairness,
    "explanations": _explanations,
    "champion_comparison": _champion,
    "limitations": _limitations,
    "assumptions": _limitations,
    "monitoring_plan": _monitoring,
    "gates": _gates,
    "status": _status,
}


def _model_title(identity: Mapping[str, Any]) -> str:
    name = identity.get("model_name") or identity.get("model_uri") or "model"
    version = identity.get("model_version")
    return f"{name} v{version}" if version is not None else str(name)


def render_html(pack: Mapping[str, Any]) -> str:
    """The pack as one self-contained HTML page: a section per pack key, charts as inline SVG."""
    identity = pack.get("identity") or {}
    status = str(pack.get("status", "unknown"))
    title = f"Validation pack — {_model_title(identity)}"
    nav = "".join(f'<a href="#{key}">{_e(SECTION_TITLES[key])}</a>' for key in PACK_SECTIONS)
    sections = []
    for key in PACK_SECTIONS:
        body = _RENDERERS[key](pack.get(key) if pack.get(key) is not None else {}, pack)
        sections.append(f'<section id="{key}"><h2>{_e(SECTION_TITLES[key])}</h2>{body}</section>')
    gates = pack.get("gates") or []
    failed = [g["name"] for g in gates if g.get("result") == "fail" and g.get("blocking")]
    banner = f"Status: {status.upper()}" + (
        f" — blocking gate(s) failed: {', '.join(failed)}" if failed else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><div>policy {_e(identity.get('policy_version'))} · "
        f"generated {_e(identity.get('generated_at'))} · model kind "
        f"{_e(identity.get('model_kind'))}</div></header>"
        f'<div class="banner {_e(status)}">{_e(banner)}</div>'
        f"<nav>{nav}</nav><main>{''.join(sections)}</main></body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# model card (Markdown)
# --------------------------------------------------------------------------------------------


def _md(value: Any) -> str:
    return _num(value).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _intended_use(pack: Mapping[str, Any]) -> list[str]:
    identity = pack.get("identity") or {}
    operating = pack.get("operating_point") or {}
    if identity.get("model_kind") == "credit":
        use = (
            "Estimates the probability that a credit applicant defaults, to rank applications; "
            f"at the validated operating point ({operating.get('rule')}) the highest-risk "
            "applications are declined or referred."
        )
    else:
        use = (
            "Scores card transactions by their probability of being fraudulent so that "
            f"investigators review the most suspicious first ({operating.get('rule')})."
        )
    return [
        use,
        "",
        "Out of scope: decisions based on protected attributes (the model does not read any); "
        "populations or periods unlike the data below; automatic action without the operating "
        "point's human review; promotion without a recorded approval.",
        "",
    ]


def render_model_card(pack: Mapping[str, Any]) -> str:
    """A Markdown model card: intended use, details, data, metrics, fairness, limits, gates."""
    identity = pack.get("identity") or {}
    data = pack.get("data") or {}
    disc = pack.get("discrimination") or {}
    cal = pack.get("calibration") or {}
    op = pack.get("operating_point") or {}
    fair = pack.get("fairness") or {}
    expl = pack.get("explanations") or {}
    champ = pack.get("champion_comparison") or {}
    status = str(pack.get("status", "unknown"))
    lines = [
        f"# Model card: {_model_title(identity)}",
        "",
        f"**Validation status: {status}** (policy {identity.get('policy_version')}, "
        f"generated {identity.get('generated_at')}).",
        "",
        "## Intended use",
        "",
        *_intended_use(pack),
        "## Model details",
        "",
        *_md_table(["field", "value"], [[k, v] for k, v in identity.items()]),
        "## Data",
        "",
    ]
    validation_set = data.get("validation_set") or {}
    period = validation_set.get("period") or {}
    lines += _md_table(
        ["fact", "value"],
        [
            ["validation rows", validation_set.get("rows")],
            ["positives", validation_set.get("positives")],
            ["label rate", validation_set.get("label_rate")],
            ["period", f"{period.get('start')} to {period.get('end')}" if period else None],
            ["label maturity rule", data.get("label_maturity_rule")],
            ["features", ", ".join(data.get("feature_columns") or [])],
            ["reference rows", (data.get("reference_set") or {}).get("rows")],
        ],
    )
    lines += ["## Metrics", ""]
    rows = []
    for key, name in (
        ("auc_roc", "AUC ROC"),
        ("average_precision", "average precision"),
        ("ks", "KS"),
        ("gini", "Gini"),
    ):
        ci = disc.get(f"{key}_ci") or {}
        rows.append([name, disc.get(key), f"{_num(ci.get('low'))} to {_num(ci.get('high'))}"])
    rows.append(["card precision top-k (mean)", disc.get("card_precision_top_k_mean"), ""])
    rows.append(["Brier score", cal.get("brier_score"), ""])
    rows.append(["expected calibration error", cal.get("ece"), ""])
    lines += _md_table(["metric", "value", "95 % CI"], rows)
    lines += [f"Operating point: {op.get('rule')}.", ""]
    lines += _md_table(
        ["precision", "recall", "false positive rate", "adverse decisions", "amount caught share"],
        [
            [
                op.get("precision"),
                op.get("recall"),
                op.get("false_positive_rate"),
                op.get("alerts"),
                op.get("amount_caught_share"),
            ]
        ],
    )
    lines += ["## Fairness", ""]
    if fair.get("protected_assessed"):
        lines += _md_table(
            ["attribute", "min AIR", "FPR ratio", "max |SMD|", "four-fifths flag"],
            [
                [
                    a,
                    r.get("min_air"),
                    r.get("fpr_ratio"),
                    r.get("max_abs_smd"),
                    r.get("four_fifths_flag"),
                ]
                for a, r in (fair.get("attributes") or {}).items()
            ],
        )
    else:
        reasons = sorted(set((fair.get("not_applicable_reasons") or {}).values()))
        lines += [f"Not assessed: {'; '.join(reasons) or 'no protected attribute'}.", ""]
    lines += ["## Explanations", ""]
    if expl.get("available"):
        top = (expl.get("global_importance") or [])[:5]
        lines += _md_table(
            ["feature", "mean abs SHAP", "share"],
            [[r.get("feature"), r.get("mean_abs_shap"), r.get("share")] for r in top],
        )
        lines += [
            f"Reason codes are given for all {expl.get('adverse_decisions')} adverse "
            "decisions (see the JSON pack).",
            "",
        ]
    else:
        lines += [str(expl.get("reason", "Not available.")), ""]
    lines += ["## Champion comparison", ""]
    lines += [str(champ.get("recommendation") or champ.get("reason") or "—"), ""]
    lines += ["## Limitations", ""]
    lines += [f"- **{i.get('topic')}**: {i.get('text')}" for i in pack.get("limitations") or []]
    lines += ["", "## Assumptions", ""]
    lines += [f"- **{i.get('topic')}**: {i.get('text')}" for i in pack.get("assumptions") or []]
    lines += ["", "## Monitoring", ""]
    lines += [f"- {m}" for m in (pack.get("monitoring_plan") or {}).get("monitored") or []]
    lines += ["", "## Gates", ""]
    lines += _md_table(
        ["gate", "metric", "value", "rule", "blocking", "result", "reason"],
        [
            [
                g.get("name"),
                g.get("metric"),
                g.get("value"),
                f"{g.get('op')} {_num(g.get('threshold'))}",
                g.get("blocking"),
                g.get("result"),
                g.get("reason"),
            ]
            for g in pack.get("gates") or []
        ],
    )
    lines += [
        f"**Status: {status}.** A passed pack makes the version eligible for approval by an "
        "authorised approver who is not its developer; it approves nothing by itself.",
        "",
    ]
    return "\n".join(lines)
