"""The validation pack as a Markdown model card.

Why from the pack alone: the card summarises the very numbers of ``validation_pack.json`` (the
file an approval refers to by digest) for readers who do not open the full HTML page, so it is a
pure function of the pack dict, like the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fin_assets.lib.common.html_format import num
from fin_assets.lib.validation.report.pack_summary import (
    fairness_measure_lines,
    intended_use,
    model_title,
)


def _md(value: Any) -> str:
    return num(value).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _intended_use(pack: Mapping[str, Any]) -> list[str]:
    return [
        intended_use(pack),
        "",
        "Out of scope: decisions based on protected attributes (the model does not read any); "
        "populations or periods unlike the data below; automatic action without the operating "
        "point's human review; promotion without a recorded approval.",
        "",
    ]


def _fairness_words(fair: Mapping[str, Any]) -> list[str]:
    """The fairness verdicts in plain words, one line per measure, after the attribute table.

    Why: the table gives numbers; a reader of the card alone also needs each measure's verdict
    and the group that decides it, stated as a sentence. The waiver paragraph (inconclusive
    packs) follows separately and is not repeated here.
    """
    return [
        "In plain words, per measure (the worst group, its estimate and 95 % interval):",
        "",
        *[f"- {line}" for line in fairness_measure_lines(fair)],
        "",
    ]


def _waiver_paragraph(pack: Mapping[str, Any]) -> list[str]:
    """Plain words for an inconclusive pack; nothing otherwise (a passed card is unchanged).

    Why here: a reader of the card alone must learn that the evidence was incomplete and that
    the model can reach production only through a recorded waiver, not by the pack itself.
    """
    if pack.get("status") != "inconclusive":
        return []
    gates = sorted(
        str(g.get("name"))
        for g in pack.get("gates") or []
        if g.get("blocking") and g.get("result") == "inconclusive"
    )
    named = ", ".join(f"`{g}`" for g in gates) or "(none named)"
    return [
        "### Fairness and waivers",
        "",
        f"Validation is **inconclusive**: the blocking gate(s) {named} could not be judged "
        "either way (for example a protected group too small to measure, or a disparity not yet "
        "statistically significant), and no gate failed. This version may not be promoted on "
        "this pack alone: promotion needs a waiver recorded through the approval flow "
        "(`fin-mlops approve ... --waive GATE --waiver-rationale TEXT`) that names each of these "
        "gates, with its own rationale, by an approver whose role the policy allows to waive "
        "(`governance.waiver_roles`). The waiver, its author and rationale are in the audit "
        "trail.",
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
        f"# Model card: {model_title(identity)}",
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
        rows.append([name, disc.get(key), f"{num(ci.get('low'))} to {num(ci.get('high'))}"])
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
            ["attribute", "AIR verdict", "min AIR", "FPR ratio", "max |SMD|", "summary"],
            [
                [
                    a,
                    (r.get("verdicts") or {}).get("adverse_impact_ratio"),
                    r.get("min_air"),
                    r.get("fpr_ratio"),
                    r.get("max_abs_smd"),
                    r.get("summary"),
                ]
                for a, r in (fair.get("attributes") or {}).items()
            ],
        )
        lines += _fairness_words(fair)
    else:
        reasons = sorted(set((fair.get("not_applicable_reasons") or {}).values()))
        lines += [f"Not assessed: {'; '.join(reasons) or 'no protected attribute'}.", ""]
    lines += _waiver_paragraph(pack)
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
                f"{g.get('op')} {num(g.get('threshold'))}",
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
