"""The fairness section of the HTML pack: verdicts in words, then every group of every measure.

Why a module apart from ``section_html``: the fairness evidence is the part an examiner reads most
closely (per group: rates, the ratio with its interval, the test, whether the gap is practically
and statistically significant, the verdict), so it is laid out as readable tables with failing and
inconclusive rows highlighted rather than dumped as key/value pairs, and it carries the threshold
sweep chart. It reads only the pack's ``fairness`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from fin_assets.lib.common.html_format import e, finite, kv, note, num, table
from fin_assets.lib.validation.report.pack_summary import (
    MEASURE_WORDS,
    fairness_measure_lines,
    fairness_not_assessed,
    interval_text,
    p_text,
)
from fin_assets.lib.validation.report.svg_charts import grouped_bar_chart, sweep_chart

#: Row class per verdict: the CSS highlights failing and inconclusive groups.
VERDICT_ROWS: Final[dict[str, str]] = {"fail": "v-fail", "inconclusive": "v-inconclusive"}
_GROUP_HEADERS: Final[tuple[str, ...]] = (
    "group",
    "rows",
    "adverse",
    "adverse rate",
    "favourable rate",
    "false positive rate",
    "true positive rate",
    "mean score",
    "reaches floor",
)
_VALUE_WORDS: Final[dict[str, str]] = {
    "adverse_impact_ratio": "AIR (95 % CI)",
    "smd": "SMD (95 % CI)",
    "fpr_parity": "FPR ratio (95 % CI)",
    "tpr_parity": "TPR ratio (95 % CI)",
}


def _rate(value: Any) -> str:
    return f"{value:.3f}" if finite(value) is not None else "—"


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


def measure_table(measure: Mapping[str, Any], value_words: str) -> str:
    """One row per group: its ratio with interval, test, significance flags and verdict."""
    groups = measure.get("groups") or []
    rows = []
    for g in groups:
        reference = g.get("role") == "reference"
        rows.append(
            [
                g.get("group"),
                "reference" if reference else "compared",
                interval_text(g.get("value"), g.get("ci_low"), g.get("ci_high")),
                "—" if reference else p_text(g.get("test"), g.get("p_value")),
                "—" if reference else _yes(g.get("practical")),
                "—" if reference else _yes(g.get("significant")),
                _yes(g.get("reaches_floor")),
                g.get("verdict"),
            ]
        )
    classes = [VERDICT_ROWS.get(str(g.get("verdict")), "") for g in groups]
    headers = [
        "group",
        "role",
        value_words,
        "test",
        "practical",
        "significant",
        "reaches floor",
        "verdict",
    ]
    return table(headers, rows, classes)


def _groups_table(groups: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            g.get("group"),
            g.get("rows"),
            g.get("adverse"),
            _rate(g.get("adverse_rate")),
            _rate(g.get("favourable_rate")),
            _rate(g.get("false_positive_rate")),
            _rate(g.get("true_positive_rate")),
            _rate(g.get("mean_score")),
            _yes(g.get("reaches_floor")),
        ]
        for g in groups
    ]
    classes = ["" if g.get("reaches_floor") else "v-inconclusive" for g in groups]
    return table(_GROUP_HEADERS, rows, classes)


def _attribute(attribute: str, report: Mapping[str, Any]) -> str:
    parts = [
        f"<h3>{e(attribute)} <small>(reference group {e(report.get('reference_group'))})"
        "</small></h3>",
        f"<p>{e(report.get('summary', ''))}</p>",
        _groups_table(report.get("groups") or []),
    ]
    for name, measure in (report.get("measures") or {}).items():
        words = MEASURE_WORDS.get(name, (name, ""))[0]
        verdict = str(measure.get("verdict"))
        parts.append(
            f'<h4>{e(words)}: <span class="verdict-word {e(verdict)}">{e(verdict.upper())}</span>'
            f" <small>(threshold {e(num(measure.get('threshold'), 2))})</small></h4>"
        )
        if measure.get("reason"):
            parts.append(note(str(measure["reason"])))
        parts.append(measure_table(measure, _VALUE_WORDS.get(name, "value (95 % CI)")))
    return "".join(parts)


def _intersectional(pairs: Sequence[Mapping[str, Any]]) -> str:
    if not pairs:
        return ""
    parts = ["<h3>Intersectional (pairs of attributes)</h3>"]
    for pair in pairs:
        title = " × ".join(str(a) for a in pair.get("attributes") or [])
        if pair.get("assessed"):
            verdict = str(pair.get("verdict"))
            parts.append(
                f'<h4>{e(title)}: <span class="verdict-word {e(verdict)}">'
                f"{e(verdict.upper())}</span></h4>"
            )
            parts.append(measure_table(pair.get("adverse_impact_ratio") or {}, "AIR (95 % CI)"))
        else:
            cells = ", ".join(str(c) for c in pair.get("cells_below_floor") or [])
            parts.append(
                f"<h4>{e(title)}: not assessed</h4>" + note(f"{pair.get('reason')}: {cells}")
            )
    return "".join(parts)


def _proxies(screening: Mapping[str, Any] | None) -> str:
    if not screening:
        return ""
    pairs = screening.get("pairs") or []
    flagged = screening.get("flagged") or []
    headers = ["feature", "attribute", "AUC", "group predicted", "mutual information", "flagged"]
    rows = [
        [
            p.get("feature"),
            p.get("attribute"),
            _rate(p.get("auc")),
            p.get("auc_group"),
            _rate(p.get("mutual_information")),
            _yes(p.get("flagged")),
        ]
        for p in pairs
    ]
    words = (
        f"Flagged as possible proxies: {', '.join(str(f) for f in flagged)}."
        if flagged
        else "No feature is flagged as a proxy."
    )
    return (
        "<h3>Proxy screening</h3>"
        + note(
            f"How well each model feature predicts each protected attribute on "
            f"{screening.get('rows_sampled')} sampled rows; flagged when the AUC reaches "
            f"{num(screening.get('auc_threshold'), 2)}. {words}"
        )
        + table(headers, rows, ["v-fail" if p.get("flagged") else "" for p in pairs])
    )


def sweep_sentence(sweep: Mapping[str, Any]) -> str:
    """The sweep in words: the range of the lowest AIR, and its value at the operating point."""
    points = sweep.get("points") or []
    lowest = [
        min(values)
        for p in points
        if (values := [v for v in (p.get("min_air") or {}).values() if finite(v) is not None])
    ]
    operating = sweep.get("operating_point") or {}
    at_op = [v for v in (operating.get("min_air") or {}).values() if finite(v) is not None]
    if not lowest:
        return f"{len(points)} cut-offs swept; no cut-off has two groups large enough to compare."
    text = (
        f"{len(points)} cut-offs swept: the lowest AIR over attributes ranges from "
        f"{min(lowest):.2f} to {max(lowest):.2f}."
    )
    if at_op and finite(operating.get("approval_rate")) is not None:
        text += (
            f" At the operating point (approval rate {operating['approval_rate']:.3f}) it is "
            f"{min(at_op):.2f}."
        )
    return text


def render_fairness(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    """The fairness section: verdicts in words, charts, per-attribute tables, pairs, proxies."""
    absent = fairness_not_assessed(section)
    if absent is not None:
        return f'<p class="not-assessed">{e(absent)}</p>' + note(str(section.get("rule", "")))
    attributes = section.get("attributes") or {}
    lines = "".join(f"<li>{e(line)}</li>" for line in fairness_measure_lines(section))
    parts = [
        f"<ul>{lines}</ul>",
        kv(
            {
                "protected attributes assessed": section.get("protected_assessed"),
                "protected attributes missing": section.get("protected_missing"),
                "adverse decision": section.get("adverse_decision"),
                "groups below the floor": section.get("groups_below_floor"),
                "four-fifths flags": section.get("four_fifths_flags"),
                "failed groups": section.get("failed_groups"),
                "protected features check": section.get("protected_features_check"),
            }
        ),
        note(str(section.get("rule", ""))),
    ]
    labels: list[str] = []
    favourable: list[Any] = []
    fpr: list[Any] = []
    for attribute, report in attributes.items():
        for group in report.get("groups") or []:
            labels.append(f"{attribute}={group.get('group')}")
            favourable.append(group.get("favourable_rate"))
            fpr.append(group.get("false_positive_rate"))
    charts = [
        grouped_bar_chart(
            "fairness",
            "Rates by protected group",
            labels,
            [("favourable rate", favourable), ("false positive rate", fpr)],
        )
    ]
    sweep = section.get("threshold_sweep")
    threshold = finite((section.get("thresholds") or {}).get("air_threshold"))
    if sweep and sweep.get("points"):
        charts.append(sweep_chart(sweep, threshold if threshold is not None else 0.8))
    parts.append(f'<div class="charts">{"".join(charts)}</div>')
    if sweep and sweep.get("points"):
        parts.append(note(f"{sweep_sentence(sweep)} Rule: {sweep.get('rule')}."))
    parts.extend(_attribute(a, r) for a, r in attributes.items())
    parts.append(_intersectional(section.get("intersectional") or []))
    parts.append(_proxies(section.get("proxy_screening")))
    parts.append("<h3>Thresholds of the policy preset</h3>" + kv(section.get("thresholds") or {}))
    return "".join(parts)
