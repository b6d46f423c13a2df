"""The validation pack: the model-risk evidence a validator reads before a model may go live.

Why one engine: the ``validation_pack`` asset (every challenger of our pipeline) and
``fin-mlops validate`` (any model, e.g. a credit PD scorecard on application data) must produce
the same evidence by the same rules, so a validator can compare packs. The engine is given a
:class:`ValidationSubject` (out-of-time rows, a deterministic scorer, what the caller knows about
identity and data) and a :class:`~fin_assets.lib.common.policy.Policy`;
every threshold and setting is
read from the policy's ``validation`` section (and ``monitoring`` for the monitoring plan), never
from code, because thresholds that decide are data (docs/architecture.md §4).

What the pack decides and what it does not: the policy's gates turn numbers (and the fairness
verdicts) into pass / fail / inconclusive / not applicable, and ``status`` is ``failed`` when a
blocking gate failed, else ``inconclusive`` when a blocking gate is inconclusive. It never
approves: a passed pack makes a version eligible for a human approval (docs/architecture.md §1).

Conventions (each also written into the pack so a reader need not read this code):

* Adverse decisions (fraud alerts, credit declines) are the operating point's: with a policy
  ``threshold``, every score at or above it; otherwise the ``daily_alert_budget`` highest scores
  of each calendar day of the time column (investigators have a daily capacity), or, for data
  without a time column, the ``daily_alert_budget`` highest scores of the whole set (the set is
  one decision batch). Ties are broken by row order, so the decisions never depend on chance.
* Bootstrap intervals are percentile intervals over ``bootstrap_samples`` resamples with
  ``bootstrap_seed``; the Gini interval is the AUC interval mapped through ``2·AUC − 1`` (the same
  resamples give exactly that, and it saves a second bootstrap).
* Fixed samples (global importance, sensitivity, monotonicity) are drawn with
  ``numpy.random.default_rng(bootstrap_seed)`` and sorted, so they are the same rows every time.
* The pack is JSON-safe: NaN becomes None, numpy values become Python ones, dates ISO strings.
  Same inputs give the same pack except ``identity.generated_at`` (see :func:`pack_digest`).
* The files are evidence and are never rewritten: each pack goes, read-only, into its own
  directory named by the sha256 of its exact JSON bytes (:func:`write_pack`), so re-running
  validation adds a directory and leaves the pack an approver read byte for byte as it was.

Layout: this module holds the assembly, the gates, the digest and the files; the subjects and the
evaluation context are in ``subjects``, the section keys in ``section_keys`` and the sections in
``performance_sections``, ``robustness_sections``, ``conduct_sections`` and
``narrative_sections``; the HTML page and the model card are rendered by ``report``. Every public
name is importable from here.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common.json_text import canonical_json, json_safe
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.common.write_once import write_once
from fin_assets.lib.validation import subjects
from fin_assets.lib.validation.alternatives import alternatives_considered
from fin_assets.lib.validation.conduct_sections import explanations, fairness
from fin_assets.lib.validation.fairness import refuse_protected_features
from fin_assets.lib.validation.fairness_statistics import VERDICTS
from fin_assets.lib.validation.narrative_sections import (
    assumptions,
    champion_comparison,
    limitations,
    monitoring_plan,
)
from fin_assets.lib.validation.performance_sections import (
    MAX_CURVE_POINTS,
    calibration,
    discrimination,
    operating_point,
    stability,
)
from fin_assets.lib.validation.report.model_card import render_model_card
from fin_assets.lib.validation.report.section_html import render_html
from fin_assets.lib.validation.robustness_sections import (
    MAX_SEGMENT_LEVELS,
    MONOTONE_GRID,
    segments,
    sensitivity,
    stress,
)
from fin_assets.lib.validation.section_keys import PACK_SECTIONS
from fin_assets.lib.validation.subjects import (
    CI_LEVEL,
    BoolArray,
    ChampionSubject,
    Evaluation,
    FloatArray,
    IntArray,
    Scorer,
    ValidationSubject,
    adverse_decisions,
)

__all__ = [
    "CI_LEVEL",
    "MAX_CURVE_POINTS",
    "MAX_SEGMENT_LEVELS",
    "MODEL_KINDS",
    "MONOTONE_GRID",
    "PACK_ADDRESS_LENGTH",
    "PACK_FILES",
    "PACK_SECTIONS",
    "WORDING",
    "BoolArray",
    "ChampionSubject",
    "FloatArray",
    "IntArray",
    "Scorer",
    "ValidationSubject",
    "adverse_decisions",
    "build_validation_pack",
    "evaluate_gates",
    "pack_address",
    "pack_canonical_json",
    "pack_digest",
    "pack_json_bytes",
    "write_pack",
]

MODEL_KINDS: Final[tuple[str, ...]] = ("fraud", "credit")
#: Words of the pack for each model kind (the numbers do not depend on it).
WORDING: Final[dict[str, dict[str, str]]] = {
    "fraud": {
        "adverse": "alert",
        "adverse_plural": "alerts",
        "positive": "fraud",
        "positives": "frauds",
        "amount": "fraud amount",
    },
    "credit": {
        "adverse": "decline",
        "adverse_plural": "declines",
        "positive": "default",
        "positives": "defaults",
        "amount": "defaulted amount",
    },
}

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {">=": operator.ge, "<=": operator.le}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# the evaluation context: the rows, their scores and decisions, computed once
# --------------------------------------------------------------------------------------------


def _check_subject(subject: ValidationSubject) -> None:
    frame = subject.frame
    if subject.model_kind not in MODEL_KINDS:
        raise ValueError(f"model_kind must be one of {MODEL_KINDS}, got {subject.model_kind!r}")
    if subject.label not in frame.columns:
        raise ValueError(f"label column {subject.label!r} is not in the frame")
    if subject.label in subject.feature_columns:
        raise ValueError(f"the label {subject.label!r} cannot be a feature")
    missing = [c for c in subject.feature_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the feature columns {missing}")
    absent = [c for c in subject.segments if c not in frame.columns]
    if absent:
        raise ValueError(f"segment column(s) {absent} are not in the frame")
    refuse_protected_features(subject.feature_columns, subject.protected)
    labels = frame[subject.label]
    if labels.isna().any() or not labels.isin((0, 1)).all():
        raise ValueError(f"label column {subject.label!r} must be 0/1 without missing values")
    if labels.nunique() < 2:
        raise ValueError(
            f"the validation rows hold a single class of {subject.label!r}: discrimination, "
            "calibration and fairness cannot be assessed, so there is no evidence to gate on"
        )


def _evaluation(subject: ValidationSubject, settings: Mapping[str, Any]) -> Evaluation:
    frame = subject.frame.reset_index(drop=True)
    time_column = subjects.present(frame, subject.time_column)
    amount_column = subjects.present(frame, subject.amount_column)
    card_column = subjects.present(frame, subject.card_column) if time_column else None
    days = None
    if time_column is not None:
        days = pd.to_datetime(frame[time_column]).to_numpy(dtype="datetime64[ns]")
        days = days.astype("datetime64[D]")
    amounts = None
    if amount_column is not None:
        amounts = frame[amount_column].to_numpy(dtype=np.float64)
    # The scorer sees the caller's very frame object first: a caller may hand back recorded
    # (production) scores for it and re-score only the perturbed copies.
    scores = subjects.scores(subject.score, subject.frame)
    return Evaluation(
        subject=subject,
        settings=settings,
        frame=frame,
        y=frame[subject.label].to_numpy(dtype=np.int64),
        scores=scores,
        days=days,
        amounts=amounts,
        card_column=card_column,
        alerts=adverse_decisions(scores, days, settings),
        words=WORDING[subject.model_kind],
    )


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def _identity(subject: ValidationSubject, policy: Policy, generated_at: datetime) -> dict[str, Any]:
    return {
        **dict(subject.identity),
        "model_kind": subject.model_kind,
        "policy_version": policy.version,
        "policy_sha256": policy.sha256,
        "generated_at": generated_at.isoformat(),
    }


def _period(days: npt.NDArray[np.datetime64] | None) -> dict[str, Any] | None:
    if days is None or days.size == 0:
        return None
    first, last = days.min(), days.max()
    return {
        "start": str(first),
        "end": str(last),
        "calendar_days": int((last - first).astype(np.int64)) + 1,
        "days_with_rows": int(np.unique(days).size),
    }


def _data(ev: Evaluation) -> dict[str, Any]:
    subject = ev.subject
    positives = int(ev.y.sum())
    features = ev.frame.loc[:, list(subject.feature_columns)]
    missing = {c: int(n) for c, n in features.isna().sum().items() if int(n) > 0}
    reference = None
    if subject.reference is not None:
        ref_rows = len(subject.reference)
        ref_pos = (
            int(subject.reference[subject.label].sum())
            if subject.label in subject.reference.columns
            else None
        )
        reference = {
            "rows": ref_rows,
            "positives": ref_pos,
            "label_rate": None if ref_pos is None else subjects.ratio(ref_pos, ref_rows),
        }
    return {
        **dict(subject.data),
        "label": subject.label,
        "feature_columns": list(subject.feature_columns),
        "columns_used": {
            "time": subjects.present(ev.frame, subject.time_column),
            "amount": subjects.present(ev.frame, subject.amount_column),
            "card": ev.card_column,
            "protected": [c for c in subject.protected if c in ev.frame.columns],
            "segments": list(subject.segments),
        },
        "validation_set": {
            "rows": len(ev.frame),
            "positives": positives,
            "label_rate": subjects.ratio(positives, len(ev.frame)),
            "period": _period(ev.days),
            "missing_feature_values": missing,
        },
        "reference_set": reference,
    }


# --------------------------------------------------------------------------------------------
# gates, assembly, digest, files
# --------------------------------------------------------------------------------------------


def _lookup(pack: Mapping[str, Any], path: str) -> tuple[float | None, str | None]:
    """The gate's metric from the pack, or (None, why it is not available)."""
    parts = path.split(".")
    node: Any = pack
    parent: Any = None
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None, f"{path} is not in the pack"
        parent, node = node, node[part]
    if isinstance(node, bool) or (node is not None and not isinstance(node, (int, float))):
        return None, f"{path} is not a number"
    value = subjects.number(node)
    if value is not None:
        return value, None
    reasons = parent.get("not_applicable_reasons", {}) if isinstance(parent, Mapping) else {}
    reason = reasons.get(parts[-1]) or (
        parent.get("reason") if isinstance(parent, Mapping) else None
    )
    return None, reason or f"{path} is not available"


def _verdict_lookup(pack: Mapping[str, Any], path: str) -> tuple[str | None, str | None]:
    """The verdict string at ``path``, or (None, why it is not available)."""
    parts = path.split(".")
    node: Any = pack
    ancestors: list[Mapping[str, Any]] = []
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None, f"{path} is not in the pack"
        ancestors.append(node)
        node = node[part]
    if node is None:
        # The nearest section that says why (``fairness.not_applicable_reasons.<measure>``).
        for ancestor in reversed(ancestors):
            reason = (ancestor.get("not_applicable_reasons") or {}).get(parts[-1])
            if reason:
                return None, str(reason)
        return None, f"{path} is not available"
    if node not in VERDICTS:
        return None, f"{path} is not a verdict ({', '.join(VERDICTS)}): {node!r}"
    return str(node), None


def _numeric_gate(name: str, spec: Mapping[str, Any], pack: Mapping[str, Any]) -> dict[str, Any]:
    op = str(spec["op"])
    if op not in _OPS:
        raise ValueError(f"gate {name}: op must be one of {sorted(_OPS)}, got {op!r}")
    metric = str(spec["metric"])
    threshold = float(spec["value"])
    value, reason = _lookup(pack, metric)
    if value is None:
        result = "not_applicable"
    elif _OPS[op](value, threshold):
        result, reason = "pass", f"{value:.4f} {op} {threshold:g}"
    else:
        result, reason = "fail", f"{value:.4f} is not {op} {threshold:g}"
    return {
        "name": str(name),
        "metric": metric,
        "value": value,
        "op": op,
        "threshold": threshold,
        "blocking": bool(spec.get("blocking", True)),
        "result": result,
        "reason": reason,
    }


def _verdict_gate(name: str, spec: Mapping[str, Any], pack: Mapping[str, Any]) -> dict[str, Any]:
    metric = str(spec["metric"])
    value, reason = _verdict_lookup(pack, metric)
    result = "not_applicable" if value is None else value
    if value is not None:
        reason = {
            "pass": "every group judged and none shows a practically and statistically "
            "significant disparity",
            "fail": "a practically and statistically significant disparity (see the pack's "
            "fairness section)",
            "inconclusive": "a group is below the floor, or a practically large gap is not "
            "statistically significant: not passed (blocks unless waived by a named approver)",
        }[value]
    return {
        "name": str(name),
        "metric": metric,
        "value": value,
        "op": "verdict",
        "threshold": "pass",
        "blocking": bool(spec.get("blocking", True)),
        "result": result,
        "reason": reason,
    }


def evaluate_gates(pack: Mapping[str, Any], policy: Policy) -> tuple[list[dict[str, Any]], str]:
    """Judge every gate of ``policy.validation.gates`` against the pack; return (gates, status).

    A numeric gate reads the number at its dotted ``metric`` path. It passes when
    ``value op threshold`` holds, fails otherwise, and is ``not_applicable`` (with the reason the
    pack gives) when the number does not exist (no champion, no protected attribute, no judged
    segment): a missing number is neither evidence for nor against the model. A verdict gate
    (``kind: verdict``) reads a verdict string at its path and takes it as its result: ``pass``,
    ``fail`` or ``inconclusive`` (``not_applicable`` when the pack has no verdict and says why).
    Status: ``failed`` when a blocking gate failed, else ``inconclusive`` when a blocking gate is
    inconclusive (the evidence cannot show the model is fair: it is not passed), else
    ``passed``.
    """
    gates = policy.section("validation").get("gates") or {}
    results: list[dict[str, Any]] = []
    for name, spec in gates.items():
        kind = str(spec.get("kind", "number"))
        if kind == "verdict":
            results.append(_verdict_gate(name, spec, pack))
        elif kind == "number":
            results.append(_numeric_gate(name, spec, pack))
        else:
            raise ValueError(f"gate {name}: kind must be 'number' or 'verdict', got {kind!r}")
    if any(g["blocking"] and g["result"] == "fail" for g in results):
        return results, "failed"
    if any(g["blocking"] and g["result"] == "inconclusive" for g in results):
        return results, "inconclusive"
    return results, "passed"


def build_validation_pack(
    subject: ValidationSubject,
    policy: Policy,
    *,
    champion: ChampionSubject | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """Assemble every section of the pack (see :data:`PACK_SECTIONS`) and judge its gates.

    Raises ValueError when there is nothing to validate honestly: a label that is not 0/1 or has
    one class only, missing feature or segment columns, a protected attribute used as a feature,
    scores that are not finite or not one per row.
    """
    settings = policy.section("validation")
    _check_subject(subject)
    ev = _evaluation(subject, settings)
    when = generated_at or datetime.now(UTC)
    pack: dict[str, Any] = {
        "identity": _identity(subject, policy, when),
        "data": _data(ev),
        "discrimination": discrimination(ev),
        "calibration": calibration(ev),
        "operating_point": operating_point(ev),
    }
    pack["stability"] = stability(ev, pack["discrimination"]["card_precision_top_k"])
    pack["segments"] = segments(ev)
    pack["stress"] = stress(ev)
    pack["fairness"] = fairness(ev)
    pack["explanations"] = explanations(ev)
    pack["sensitivity"] = sensitivity(ev, pack["explanations"]["global_importance"])
    pack["champion_comparison"] = champion_comparison(ev, champion)
    pack["alternatives_considered"] = alternatives_considered(ev)
    pack["limitations"] = limitations(ev, pack, champion)
    pack["assumptions"] = assumptions(ev, pack)
    pack["monitoring_plan"] = monitoring_plan(ev, pack, policy)
    safe: dict[str, Any] = json_safe(pack)
    safe["gates"], safe["status"] = evaluate_gates(safe, policy)
    return {key: safe[key] for key in PACK_SECTIONS}


def pack_canonical_json(pack: Mapping[str, Any]) -> str:
    """The pack as canonical JSON (:func:`canonical_json`) once it is made JSON-safe."""
    return canonical_json(json_safe(pack))


def pack_digest(pack: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the pack without ``identity.generated_at``.

    Two packs built from the same lineage have the same digest whenever they were generated;
    this is what an approval refers to.
    """
    content = dict(pack)
    identity = dict(content.get("identity") or {})
    identity.pop("generated_at", None)
    content["identity"] = identity
    return hashlib.sha256(pack_canonical_json(content).encode()).hexdigest()


#: The pack's files: the JSON (what the digest and an approval refer to) and its two renderings.
PACK_FILES: Final[dict[str, str]] = {
    "json": "validation_pack.json",
    "html": "validation_pack.html",
    "model_card": "model_card.md",
}
#: Hex digits of the JSON's sha256 that name a pack's directory (64 bits: collisions are
#: refused by :func:`write_pack`, never overwritten).
PACK_ADDRESS_LENGTH: Final[int] = 16


def pack_json_bytes(pack: Mapping[str, Any]) -> bytes:
    """The exact bytes of ``validation_pack.json`` (sorted keys, indented, one final newline)."""
    text = json.dumps(json_safe(pack), sort_keys=True, indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


def pack_address(pack: Mapping[str, Any]) -> str:
    """The name of the pack's directory: the start of the sha256 of its exact JSON bytes.

    Not :func:`pack_digest`, on purpose. The digest leaves ``generated_at`` out so that an
    approval survives regeneration from the same lineage; a directory named by it would have to
    either overwrite the pack an approver read with a newer timestamp, or keep a file whose
    timestamp is not the one the new validation recorded. Addressed by the bytes, a re-run writes
    a new directory beside the old one, and both stay exactly as written.
    """
    return hashlib.sha256(pack_json_bytes(pack)).hexdigest()[:PACK_ADDRESS_LENGTH]


def write_pack(pack: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``validation_pack.json``, ``validation_pack.html`` and ``model_card.md`` once, into
    ``out_dir/<pack_address(pack)>/``, read-only.

    Returns their paths under the keys ``json``, ``html`` and ``model_card``. The directory
    appears whole or not at all (:func:`~fin_assets.lib.common.write_once.write_once`). Writing
    the very same pack again returns the same paths and writes nothing; a directory of that name
    holding other bytes (a hand-edited file, or a renderer that changed since) raises
    :class:`~fin_assets.lib.common.write_once.WriteOnceConflictError` and is left as it is.
    """
    contents = {
        "json": pack_json_bytes(pack),
        "html": render_html(pack).encode("utf-8"),
        "model_card": render_model_card(pack).encode("utf-8"),
    }
    written = write_once(
        Path(out_dir) / pack_address(pack),
        {PACK_FILES[key]: content for key, content in contents.items()},
    )
    return {key: written[name] for key, name in PACK_FILES.items()}
