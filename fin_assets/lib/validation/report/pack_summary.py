"""The one-page summary that opens the HTML pack, and the plain words it shares with the card.

Why derived here rather than stored: the summary restates numbers the pack already holds (gate
results, intervals, fairness verdicts, limitations), so it is a pure function of the pack dict and
adds no key to ``validation_pack.json`` (whose digest an approval refers to). An examiner reads
the purpose, the verdict and the evidence behind each gate first; identifiers (run ids, digests)
stay in the detail sections below, where they can be checked, not read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from fin_assets.lib.common.html_format import e, finite, num

#: Limitations quoted in the summary; the rest are in the Limitations section.
SUMMARY_LIMITATIONS: Final[int] = 3
#: Fairness measures in reading order: (words, key of their threshold in ``thresholds``).
MEASURE_WORDS: Final[dict[str, tuple[str, str]]] = {
    "adverse_impact_ratio": ("Adverse impact ratio (four-fifths rule)", "air_threshold"),
    "smd": ("Standardised mean difference of scores", "smd_threshold"),
    "fpr_parity": ("False-positive-rate parity", "fpr_ratio_threshold"),
    "tpr_parity": ("True-positive-rate parity", "tpr_ratio_threshold"),
    "intersectional": ("Intersectional adverse impact ratio", "air_threshold"),
}
_RANK: Final[dict[str, int]] = {"fail": 0, "inconclusive": 1, "pass": 2}
_TESTS: Final[dict[str, str]] = {"fisher": "Fisher", "z": "z-test", "t": "t-test"}
#: Short name of each fairness measure's value, for the gate table.
_MEASURE_VALUES: Final[dict[str, str]] = {
    "adverse_impact_ratio": "AIR",
    "smd": "SMD",
    "fpr_parity": "FPR ratio",
    "tpr_parity": "TPR ratio",
    "intersectional": "AIR",
}


def model_title(identity: Mapping[str, Any]) -> str:
    """``name vN``: the one title the page and the model card give the validated model."""
    name = identity.get("model_name") or identity.get("model_uri") or "model"
    version = identity.get("model_version")
    return f"{name} v{version}" if version is not None else str(name)


def intended_use(pack: Mapping[str, Any]) -> str:
    """What the model is for, in one sentence, from its kind and validated operating point."""
    identity = pack.get("identity") or {}
    rule = (pack.get("operating_point") or {}).get("rule")
    if identity.get("model_kind") == "credit":
        return (
            "Estimates the probability that a credit applicant defaults, to rank applications; "
            f"at the validated operating point ({rule}) the highest-risk "
            "applications are declined or referred."
        )
    return (
        "Scores card transactions by their probability of being fraudulent so that "
        f"investigators review the most suspicious first ({rule})."
    )


def interval_text(value: Any, low: Any, high: Any, digits: int = 2) -> str:
    """``0.79 (0.70–0.90)``: an estimate with its interval, or the estimate alone.

    A negative bound is written ``(−0.02 to 0.11)``: a dash after a minus sign misreads.
    """
    if finite(value) is None:
        return "—"
    estimate = f"{value:.{digits}f}"
    if finite(low) is None or finite(high) is None:
        return estimate
    joint = " to " if low < 0 or high < 0 else "–"
    return f"{estimate} ({low:.{digits}f}{joint}{high:.{digits}f})"


def p_text(test: Any, p_value: Any) -> str:
    """``z-test p = 0.173``; ``no test`` for a reference group or a group below the floor."""
    if finite(p_value) is None:
        return "no test"
    name = _TESTS.get(str(test), str(test))
    return f"{name} p < 0.001" if p_value < 0.001 else f"{name} p = {p_value:.3f}"


def _badness(measure: str, value: Any) -> float:
    """Larger is worse: a low ratio, a large absolute SMD, a missing value (below the floor)."""
    number = finite(value)
    if number is None:
        return float("inf")
    return abs(number) if measure == "smd" else -number


def worst_comparison(fairness: Mapping[str, Any], measure: str) -> dict[str, Any] | None:
    """The compared group that decides ``measure``'s verdict: worst verdict, then worst value.

    Over every attribute (or every assessed pair for ``intersectional``); None when no group was
    compared. The returned group carries ``where`` (``attribute=group`` or the cell's name).
    """
    candidates: list[dict[str, Any]] = []
    if measure == "intersectional":
        for pair in fairness.get("intersectional") or []:
            for group in (pair.get("adverse_impact_ratio") or {}).get("groups") or []:
                candidates.append({**group, "where": str(group.get("group"))})
    else:
        for attribute, report in (fairness.get("attributes") or {}).items():
            for group in ((report.get("measures") or {}).get(measure) or {}).get("groups") or []:
                candidates.append({**group, "where": f"{attribute}={group.get('group')}"})
    compared = [g for g in candidates if g.get("role") != "reference"]
    if not compared:
        return None
    return min(
        compared,
        key=lambda g: (_RANK.get(str(g.get("verdict")), 1), -_badness(measure, g.get("value"))),
    )


def fairness_measure_lines(fairness: Mapping[str, Any]) -> list[str]:
    """One plain sentence per measure: its verdict and the group that decides it."""
    verdicts = fairness.get("verdicts") or {}
    thresholds = fairness.get("thresholds") or {}
    reasons = fairness.get("not_applicable_reasons") or {}
    lines = []
    for measure, (words, threshold_key) in MEASURE_WORDS.items():
        verdict = verdicts.get(measure)
        if verdict is None:
            reason = reasons.get(measure) or "nothing could be compared"
            lines.append(f"{words}: not assessed — {reason}.")
            continue
        line = f"{words}: {str(verdict).upper()}"
        worst = worst_comparison(fairness, measure)
        if worst is not None:
            value = interval_text(worst.get("value"), worst.get("ci_low"), worst.get("ci_high"))
            line += (
                f" — worst group {worst['where']}: {value}, "
                f"{p_text(worst.get('test'), worst.get('p_value'))}"
            )
        threshold = thresholds.get(threshold_key)
        if threshold is not None:
            line += f" (policy threshold {num(threshold, 2)})"
        lines.append(line + ".")
    return lines


def fairness_not_assessed(fairness: Mapping[str, Any]) -> str | None:
    """Why fairness was not assessed, or None when at least one attribute was."""
    if fairness.get("protected_assessed"):
        return None
    reasons = sorted(set((fairness.get("not_applicable_reasons") or {}).values()))
    return f"Fairness was not assessed: {'; '.join(reasons) or 'no protected attribute'}."


def _names(gates: Sequence[Mapping[str, Any]], result: str, blocking: bool) -> list[str]:
    return [
        str(g.get("name"))
        for g in gates
        if g.get("result") == result and bool(g.get("blocking")) is blocking
    ]


def verdict_sentence(pack: Mapping[str, Any]) -> str:
    """The pack's status in a sentence that names the gates it rests on and what follows."""
    gates = pack.get("gates") or []
    status = str(pack.get("status", "unknown"))
    failed = _names(gates, "fail", True)
    unsure = _names(gates, "inconclusive", True)
    soft = _names(gates, "fail", False) + _names(gates, "inconclusive", False)
    tail = (
        f" Non-blocking gate(s) not passed, recorded for the approver: {', '.join(soft)}."
        if soft
        else ""
    )
    if status == "failed":
        also = f" Also inconclusive: {', '.join(unsure)}." if unsure else ""
        return (
            f"FAILED: the blocking gate(s) {', '.join(failed)} failed, so this version cannot be "
            f"promoted on this evidence.{also}{tail}"
        )
    if status == "inconclusive":
        return (
            f"INCONCLUSIVE: the blocking gate(s) {', '.join(unsure)} could not be judged either "
            "way and no blocking gate failed. Promotion then needs a waiver recorded through the "
            "approval flow by an authorised approver (a role the policy allows to waive), naming "
            f"each of these gates with its rationale.{tail}"
        )
    if status == "passed":
        applied = [g for g in gates if g.get("blocking") and g.get("result") != "not_applicable"]
        return (
            f"PASSED: all {len(applied)} applicable blocking gates passed. The version is eligible "
            "for approval by an authorised approver who is not its developer; the pack approves "
            f"nothing by itself.{tail}"
        )
    return f"Status {status.upper()}."


def gate_interval(gate: Mapping[str, Any], pack: Mapping[str, Any]) -> str:
    """The 95 % interval behind a gate's value, where the pack holds one; a dash otherwise.

    Numeric gates read ``<metric>_ci`` (discrimination) or ``<base>_ci_low/_ci_high`` (champion
    comparison); verdict gates on fairness show the group that decides the verdict.
    """
    metric = str(gate.get("metric") or "")
    section_key, _, key = metric.partition(".")
    if metric.startswith("fairness.verdicts."):
        measure = key.rpartition(".")[2]
        worst = worst_comparison(pack.get("fairness") or {}, measure)
        if worst is None:
            return "—"
        value = interval_text(worst.get("value"), worst.get("ci_low"), worst.get("ci_high"))
        return f"{_MEASURE_VALUES.get(measure, measure)} {value}, {worst['where']}"
    section = pack.get(section_key)
    if not isinstance(section, Mapping) or not key:
        return "—"
    ci = section.get(f"{key}_ci")
    if isinstance(ci, Mapping) and finite(ci.get("low")) is not None:
        low, high = ci.get("low"), ci.get("high")
        return interval_text(section.get(key), low, high, 3).partition(" ")[2].strip("()")
    for suffix in ("_ci_high", "_ci_low"):
        if key.endswith(suffix):
            base = key.removesuffix(suffix)
            low, high = section.get(f"{base}_ci_low"), section.get(f"{base}_ci_high")
            if finite(low) is not None and finite(high) is not None:
                return f"{base} " + interval_text(section.get(base), low, high, 3)
    return "—"


def _gate_rule(gate: Mapping[str, Any]) -> str:
    if gate.get("op") == "verdict":
        return f"= {gate.get('threshold')}"
    op = {">=": "≥", "<=": "≤"}.get(str(gate.get("op")), str(gate.get("op")))
    return f"{op} {num(gate.get('threshold'), 3)}"


def _gate_value(value: Any) -> str:
    return num(value, 3) if isinstance(value, float) else num(value)


def _gates_table(pack: Mapping[str, Any]) -> str:
    headers = ["gate", "value", "95 % interval", "rule", "blocking", "result"]
    rows = []
    for gate in pack.get("gates") or []:
        cells = [
            f"<td>{e(gate.get('name'))}</td>",
            f'<td class="num">{e(_gate_value(gate.get("value")))}</td>',
            f"<td>{e(gate_interval(gate, pack))}</td>",
            f'<td class="rule">{e(_gate_rule(gate))}</td>',
            f"<td>{'yes' if gate.get('blocking') else 'no'}</td>",
            f'<td class="result">{e(gate.get("result"))}</td>',
        ]
        rows.append(f'<tr class="{e(gate.get("result"))}">{"".join(cells)}</tr>')
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _purpose(pack: Mapping[str, Any]) -> str:
    identity = pack.get("identity") or {}
    validation_set = (pack.get("data") or {}).get("validation_set") or {}
    period = validation_set.get("period") or {}
    evidence = (
        f" on {e(validation_set.get('rows'))} rows ({e(validation_set.get('positives'))} "
        f"positives) from {e(period.get('start'))} to {e(period.get('end'))}"
        if period
        else f" on {e(validation_set.get('rows'))} rows"
        if validation_set
        else ""
    )
    return (
        f"<p><strong>{e(model_title(identity))}</strong>, a {e(identity.get('model_kind'))} "
        f"model, validated under policy {e(identity.get('policy_version'))}{evidence}.</p>"
        f"<p>Intended use: {e(intended_use(pack))}</p>"
    )


def _fairness_words(pack: Mapping[str, Any]) -> str:
    fairness = pack.get("fairness") or {}
    absent = fairness_not_assessed(fairness)
    if absent is not None:
        return f'<p class="not-assessed">{e(absent)}</p>'
    summaries = "".join(
        f"<li>{e(text)}</li>" for text in (fairness.get("summaries") or {}).values()
    )
    measures = "".join(f"<li>{e(line)}</li>" for line in fairness_measure_lines(fairness))
    return f'<ul>{summaries}</ul><ul class="measures">{measures}</ul>'


def _limitations(pack: Mapping[str, Any]) -> str:
    limitations = pack.get("limitations") or []
    if not limitations:
        return '<p class="note">None recorded.</p>'
    shown = "".join(
        f"<li><strong>{e(i.get('topic', ''))}</strong>: {e(i.get('text', ''))}</li>"
        for i in limitations[:SUMMARY_LIMITATIONS]
    )
    more = (
        f'<p class="note">{len(limitations) - SUMMARY_LIMITATIONS} more under '
        '<a href="#limitations">Limitations</a>.</p>'
        if len(limitations) > SUMMARY_LIMITATIONS
        else ""
    )
    return f"<ul>{shown}</ul>{more}"


def render_summary(pack: Mapping[str, Any]) -> str:
    """``<section id="summary">``: purpose, verdict, gates, fairness in words, key limitations."""
    status = str(pack.get("status", "unknown"))
    return (
        '<section id="summary" class="summary"><h2>Summary</h2><div class="summary-grid"><div>'
        f"<h3>Purpose</h3>{_purpose(pack)}"
        f'<h3>Verdict</h3><p class="verdict {e(status)}">{e(verdict_sentence(pack))}</p>'
        f"<h3>Gates</h3>{_gates_table(pack)}</div><div>"
        f"<h3>Fairness</h3>{_fairness_words(pack)}"
        f"<h3>Key limitations</h3>{_limitations(pack)}"
        "</div></div></section>"
    )
