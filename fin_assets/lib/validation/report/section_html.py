"""The validation pack as one self-contained HTML page: a renderer per section, then the page.

Why rendered from the JSON alone: the page must show exactly the numbers of
``validation_pack.json`` (the file an approval refers to by digest), so it is a pure function of
the pack dict and can be re-rendered from a stored pack at any time. It needs no network and no
JavaScript: an examiner may open it offline, years later. Every text taken from the pack is
escaped (identity fields and segment values come from callers and data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fin_assets.lib.common.html_format import (
    cell,
    e,
    finite,
    html_page,
    items,
    kv,
    note,
    num,
    table,
)
from fin_assets.lib.validation.model_selection import SHOWN_PARAMETERS
from fin_assets.lib.validation.report.fairness_html import render_fairness
from fin_assets.lib.validation.report.pack_summary import model_title, render_summary
from fin_assets.lib.validation.report.svg_charts import (
    curve_chart,
    hbar_chart,
    reliability_chart,
    stability_chart,
)
from fin_assets.lib.validation.section_keys import PACK_SECTIONS, SECTION_TITLES

#: Decisions listed with their reason codes in the HTML (all of them are in the JSON).
MAX_REASON_ROWS: Final[int] = 25

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
.banner.inconclusive{background:#fdefc8;color:#78350f}
tr.pass td.result{background:#d4f0dc;color:#14532d;font-weight:600}
tr.fail td.result{background:#fbd5d5;color:#7f1d1d;font-weight:600}
tr.inconclusive td.result{background:#fdefc8;color:#78350f;font-weight:600}
tr.v-fail td{background:#fdecea}
tr.v-inconclusive td{background:#fff6dc}
.verdict-word.pass{color:#14532d}
.verdict-word.fail{color:#7f1d1d}
.verdict-word.inconclusive{color:#78350f}
section.summary{margin:16px 28px;border-width:2px}
.summary-grid{display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:6px 28px}
.summary p,.summary li{font-size:13px;margin:4px 0}
.summary h3{margin:10px 0 4px}
.summary table{font-size:12px;margin:4px 0}
.summary td.rule{white-space:nowrap}
.summary ul{padding-left:18px;margin:4px 0}
.summary ul.measures li{color:#374151}
p.verdict{font-weight:600;padding:6px 10px;border-radius:4px}
p.verdict.passed{background:#d4f0dc;color:#14532d}
p.verdict.failed{background:#fbd5d5;color:#7f1d1d}
p.verdict.inconclusive{background:#fdefc8;color:#78350f}
@media print{body{background:#fff}section.summary{break-after:page;margin:0;padding:4px 10px}
.summary p,.summary li{font-size:11px}.summary table{font-size:10.5px}
header{padding:8px 12px}.banner{padding:6px 12px;font-size:15px}
nav{display:none}}
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


def _identity(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    return kv(section)


def _data(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    return kv(section)


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
    parts = [table(["metric", "estimate", "95 % CI low", "95 % CI high"], rows)]
    boot = section.get("bootstrap") or {}
    parts.append(
        note(
            f"Percentile bootstrap, {boot.get('resamples')} resamples, seed {boot.get('seed')}; "
            f"{section.get('rows')} rows, {section.get('positives')} positives."
        )
    )
    handbook = section.get("handbook_test_set")
    if handbook:
        parts.append(
            f"<h3>Both test-set definitions (card precision top-{e(handbook.get('k'))})</h3>"
        )
        parts.append(
            table(
                ["test set", "rows", "positives", "AUC ROC", "average precision", "card precision"],
                [
                    [
                        "all matured test transactions",
                        section.get("rows"),
                        section.get("positives"),
                        section.get("auc_roc"),
                        section.get("average_precision"),
                        section.get("card_precision_top_k_mean"),
                    ],
                    [
                        "Handbook: known-compromised cards removed",
                        handbook.get("rows"),
                        handbook.get("positives"),
                        handbook.get("auc_roc"),
                        handbook.get("average_precision"),
                        handbook.get("card_precision_top_k_mean"),
                    ],
                ],
            )
        )
        parts.append(note(str(handbook.get("rule", ""))))
    charts = []
    roc = section.get("roc_curve") or {}
    if roc.get("fpr"):
        charts.append(
            curve_chart(
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
            curve_chart(
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
            f"<h3>Card precision top-{e(card.get('k'))}: mean {e(num(card.get('mean')))}</h3>"
        )
        per_day = card.get("per_day") or {}
        compromised = card.get("compromised_cards_per_day") or {}
        excluded = card.get("known_compromised_cards_per_day") or {}
        parts.append(
            table(
                ["day", "card precision", "compromised cards", "known compromised cards"],
                [[d, v, compromised.get(d), excluded.get(d)] for d, v in per_day.items()],
            )
        )
        parts.append(note(str(card.get("rule", ""))))
    for reason in (section.get("not_applicable_reasons") or {}).values():
        parts.append(note(reason))
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
    reliability_table = section.get("reliability_table") or []
    parts = [kv(summary)]
    if reliability_table:
        parts.append(f'<div class="charts">{reliability_chart(reliability_table)}</div>')
        headers = ["bin", "lower", "upper", "count", "positives", "mean_score", "observed_rate"]
        parts.append(table(headers, [[row.get(h) for h in headers] for row in reliability_table]))
    return "".join(parts)


def _operating_point(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    parts = [note(str(section.get("rule", ""))), kv(section, skip=("alerts_per_day", "rule"))]
    per_day = section.get("alerts_per_day")
    if per_day:
        parts.append(
            f"<h3>Adverse decisions per day: mean {e(num(per_day.get('mean')))}, "
            f"min {e(per_day.get('min'))}, max {e(per_day.get('max'))}</h3>"
        )
    return "".join(parts)


def _stability(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    per_day = section.get("per_day") or []
    if not per_day:
        reasons = section.get("not_applicable_reasons") or {}
        return note(reasons.get("per_day", "No stability over time."))
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
        kv(
            {
                k: section.get(k)
                for k in ("auc_roc_min", "auc_roc_max", "auc_roc_std", "days_without_auc")
            }
        ),
        f'<div class="charts">{stability_chart(per_day)}</div>',
        "<h3>Per ISO week</h3>",
        table(
            ["week", "days", *headers],
            [
                [r.get("week"), r.get("days"), *[r.get(h) for h in headers]]
                for r in section.get("per_week") or []
            ],
        ),
        "<h3>Per day</h3>",
        table(["day", *headers], [[r.get("day"), *[r.get(h) for h in headers]] for r in per_day]),
    ]
    return "".join(parts)


def _segments(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    parts = [
        note(
            f"Judged when at least {section.get('min_segment_rows')} rows and "
            f"{section.get('min_segment_positives')} positives; AUC floor "
            f"{num(section.get('auc_roc_floor'))}. Lowest judged AUC "
            f"{num(section.get('min_auc_roc'))} ({section.get('min_auc_roc_segment') or '—'})."
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
            f"<h3>{e(dimension.get('dimension'))} <small>({e(dimension.get('column'))}, "
            f"{e(dimension.get('how'))})</small></h3>"
        )
        parts.append(table(headers, [[r.get(h) for h in headers] for r in rows], classes))
    for reason in (section.get("not_applicable_reasons") or {}).values():
        parts.append(note(reason))
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
            note(
                f"Base: AUC {num(base.get('auc_roc'))}, AP {num(base.get('average_precision'))}, "
                f"recall at the operating point {num(base.get('recall'))}."
            ),
            table(
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
    step = finite(section.get("relative_step")) or 0.0
    headers = ["feature", "mean_change_up", "mean_change_down", "mean_abs_change"]
    checks = section.get("monotonicity") or []
    mono_rows = [
        [
            c.get("feature"),
            c.get("expected"),
            c.get("holds"),
            c.get("rows_monotone_share"),
            ", ".join(num(v) for v in c.get("grid") or []) or c.get("reason"),
            ", ".join(num(v) for v in c.get("mean_score") or []),
        ]
        for c in checks
    ]
    return "".join(
        [
            note(
                f"Mean score change when each feature is multiplied by 1 ± {step:g}, on "
                f"{section.get('sample_rows')} fixed rows; features ranked by "
                f"{section.get('ranked_by')}."
            ),
            table(headers, [[r.get(h) for h in headers] for r in section.get("features") or []]),
            "<h3>Monotonicity where the policy expects it</h3>",
            note(str(section.get("monotonicity_rule", ""))),
            table(
                ["feature", "expected", "holds", "rows monotone", "grid", "mean score"],
                mono_rows,
            )
            if mono_rows
            else note("The policy expects no monotone response."),
        ]
    )


def _explanations(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    if not section.get("available"):
        return note(str(section.get("reason", "No explanations.")))
    importance = section.get("global_importance") or []
    top = importance[:15]
    chart = hbar_chart(
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
            note(
                f"{section.get('method')}; importance on {section.get('global_sample_rows')} fixed "
                f"rows; booster vs scorer max |difference| "
                f"{num(section.get('booster_score_max_abs_diff'))}."
            ),
            f'<div class="charts">{chart}</div>',
            table(
                ["feature", "mean_abs_shap", "share"],
                [[r.get("feature"), r.get("mean_abs_shap"), r.get("share")] for r in importance],
            ),
            f"<h3>Reason codes: {e(section.get('adverse_decisions'))} adverse decisions, "
            f"{e(section.get('reason_codes_per_decision'))} reasons each</h3>",
            kv(
                {
                    "principal reason counts": section.get("principal_reason_counts"),
                    "decisions without a reason": section.get("decisions_without_reason"),
                    "direction judged against": section.get("medians_from"),
                }
            ),
            note(f"The first {shown} decisions are listed; all {len(codes)} are in the JSON."),
            table(
                ["id", "score", "rank", "feature", "value", "direction", "contribution", "reason"],
                rows,
            ),
        ]
    )


def _champion(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    if not section.get("available"):
        return note(str(section.get("reason", "No champion.")))
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
            f"<p><strong>{e(section.get('recommendation', ''))}</strong></p>",
            table(
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
            kv(section.get("champion") or {}),
        ]
    )


def _limitations(section: Any, _: Mapping[str, Any]) -> str:
    return items(section)


def _monitoring(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    monitored = "".join(f"<li>{e(m)}</li>" for m in section.get("monitored") or [])
    return f"<p>Cadence: <strong>{e(section.get('cadence'))}</strong></p><ul>{monitored}</ul>" + kv(
        section, skip=("monitored", "cadence")
    )


def _gates(section: Any, _: Mapping[str, Any]) -> str:
    gates = section or []
    headers = ["name", "metric", "value", "op", "threshold", "blocking", "result", "reason"]
    body = []
    for gate in gates:
        cells = []
        for h in headers:
            if h == "result":
                cells.append(f'<td class="result">{e(gate.get(h))}</td>')
            else:
                cells.append(cell(gate.get(h)))
        body.append(f'<tr class="{e(gate.get("result"))}">{"".join(cells)}</tr>')
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _status(section: Any, pack: Mapping[str, Any]) -> str:
    gates = pack.get("gates") or []
    failed = [g["name"] for g in gates if g.get("result") == "fail" and g.get("blocking")]
    warned = [g["name"] for g in gates if g.get("result") == "fail" and not g.get("blocking")]
    na = [g["name"] for g in gates if g.get("result") == "not_applicable"]
    return (
        f'<p class="status-word">{e(str(section).upper())}</p>'
        + kv(
            {
                "blocking gates failed": failed,
                "non-blocking gates failed": warned,
                "gates not applicable": na,
            }
        )
        + note(
            "A passed pack makes the version eligible for approval; the approval itself is a "
            "human decision, recorded separately."
        )
    )


_SELECTION_COLUMNS: Final[tuple[str, ...]] = ("candidate", "chosen", *SHOWN_PARAMETERS, "mean")


def _model_selection(selection: Mapping[str, Any]) -> str:
    """The search: its settings, the folds and every candidate's score on every fold."""
    parts = ["<h3>Model selection (prequential folds before the test period)</h3>"]
    if not selection.get("recorded"):
        return parts[0] + note(str(selection.get("reason", "no search recorded")))
    parts.append(
        kv(
            {
                "method": selection.get("method"),
                "metric": selection.get("metric"),
                "validation rows": selection.get("validation_set"),
                "fits": selection.get("fits"),
                "chosen parameters": selection.get("chosen_params"),
                "chosen candidate's mean score": selection.get("chosen_score"),
            }
        )
    )
    fold_headers = ["train_start", "train_end", "valid_start", "valid_end", "train_rows"]
    fold_headers.append("valid_rows")
    folds = selection.get("folds") or []
    parts.append(
        table(
            ["fold", *fold_headers],
            [[i, *(f.get(h) for h in fold_headers)] for i, f in enumerate(folds)],
        )
    )
    candidates = selection.get("candidates") or []
    columns = [c for c in _SELECTION_COLUMNS if any(c in row for row in candidates)]
    headers = [*columns, *(f"fold {i}" for i in range(len(folds)))]
    rows = [
        [row.get(c) for c in columns]
        + [*(row.get("fold_scores") or []), *([None] * len(folds))][: len(folds)]
        for row in candidates
    ]
    parts.append(table(headers, rows))
    parts.append(note(str(selection.get("statement", ""))))
    return "".join(parts)


def _alternatives(section: Mapping[str, Any], _: Mapping[str, Any]) -> str:
    selection = _model_selection(section.get("model_selection") or {"recorded": False})
    if not section.get("available"):
        return note(str(section.get("reason", "not available"))) + selection
    headers = ["metric", "challenger", "benchmark", "difference"]
    parts = [
        kv({"benchmark": section.get("benchmark"), "training rows": section.get("training_rows")}),
        "<h3>All matured test transactions</h3>",
        table(headers, [[r.get(h) for h in headers] for r in section.get("test_set") or []]),
    ]
    handbook = section.get("handbook_test_set")
    if handbook:
        parts.append("<h3>Handbook test set: known-compromised cards removed</h3>")
        parts.append(table(headers, [[r.get(h) for h in headers] for r in handbook]))
    parts.append(note(f"Difference = challenger − benchmark; {section.get('conclusion', '')}."))
    parts.append(selection)
    return "".join(parts)


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
    "fairness": render_fairness,
    "explanations": _explanations,
    "champion_comparison": _champion,
    "alternatives_considered": _alternatives,
    "limitations": _limitations,
    "assumptions": _limitations,
    "monitoring_plan": _monitoring,
    "gates": _gates,
    "status": _status,
}


def render_html(pack: Mapping[str, Any]) -> str:
    """The pack as one self-contained HTML page: a section per pack key, charts as inline SVG.

    A one-page summary derived from the pack (``<section id="summary">``) comes first, so an
    examiner reads purpose, verdict, gates and fairness in words before the detail sections.
    """
    identity = pack.get("identity") or {}
    status = str(pack.get("status", "unknown"))
    title = f"Validation pack — {model_title(identity)}"
    nav = "".join(f'<a href="#{key}">{e(SECTION_TITLES[key])}</a>' for key in PACK_SECTIONS)
    sections = []
    for key in PACK_SECTIONS:
        body = _RENDERERS[key](pack.get(key) if pack.get(key) is not None else {}, pack)
        sections.append(f'<section id="{key}"><h2>{e(SECTION_TITLES[key])}</h2>{body}</section>')
    gates = pack.get("gates") or []
    failed = [g["name"] for g in gates if g.get("result") == "fail" and g.get("blocking")]
    banner = f"Status: {status.upper()}" + (
        f" — blocking gate(s) failed: {', '.join(failed)}" if failed else ""
    )
    return html_page(
        title,
        _CSS,
        f"<header><h1>{e(title)}</h1><div>policy {e(identity.get('policy_version'))} · "
        f"generated {e(identity.get('generated_at'))} · model kind "
        f"{e(identity.get('model_kind'))}</div></header>"
        f'<div class="banner {e(status)}">{e(banner)}</div>'
        f"{render_summary(pack)}"
        f"<nav>{nav}</nav><main>{''.join(sections)}</main>",
    )
