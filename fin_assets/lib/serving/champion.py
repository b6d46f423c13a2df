"""The model a real-time decision is made with: the verified champion, or a shadow challenger.

Why the same checks as batch scoring and more: the service decides on card authorisations, so it
must serve exactly what was approved. The alias ``champion`` is only a pointer; the version it
names must be the last promotion of a verified audit chain, rest on a signed approval, and hash
to the promoted digest (``serving_guard.check_serving``). The decision needs a score cut-off, and
the policy's operating point is either a fixed ``validation.threshold`` or "the
``daily_alert_budget`` highest scores of a day", which a transaction arriving alone cannot rank:
the cut-off is then the lowest alerted score of the champion's own validation pack, read from the
pack file whose digest the audit chain recorded (an edited pack is refused). Reason-code
directions are judged against the medians of the version's training snapshot, as the validation
pack judged them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance.audit_chain import AuditEntry
from fin_assets.lib.governance.chain_state import pending_challengers
from fin_assets.lib.governance.decision_log import all_facts
from fin_assets.lib.governance.decision_rules import VALIDATION_PASSED, Refusal
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.governance.registry_facts import champion_version
from fin_assets.lib.governance.serving_guard import check_serving
from fin_assets.lib.training.model_fit import booster_digest
from fin_assets.lib.training.model_registry import TrackingLocation
from fin_assets.lib.validation.explain import ReasonCode, reason_codes, reference_medians
from fin_assets.lib.validation.model_loading import (
    RegisteredVersion,
    registered_version,
    snapshot_of,
)
from fin_assets.lib.validation.pack import pack_digest

FloatRows = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ServingModel:
    """A loaded, verified model version and what a decision with it needs.

    ``threshold`` is the cut-off (alert when ``score >= threshold``) and ``threshold_source``
    says where it came from; both are logged with every decision.
    """

    model_name: str
    version: int
    digest: str
    booster: xgb.Booster
    feature_columns: tuple[str, ...]
    medians: Mapping[str, float] = field(default_factory=dict)
    threshold: float = math.nan
    threshold_source: str = ""

    def matrix(self, features: Sequence[Mapping[str, float]]) -> FloatRows:
        """Rows in the model's column order, float32 as ``model_fit.feature_matrix`` makes them."""
        return np.array(
            [[float(row[c]) for c in self.feature_columns] for row in features], dtype=np.float32
        )

    def scores(self, rows: FloatRows) -> npt.NDArray[np.float32]:
        """Fraud probabilities: the same float32 trees as ``model_fit.predict_scores``."""
        return np.asarray(self.booster.inplace_predict(rows), dtype=np.float32).reshape(-1)

    def reasons(self, rows: FloatRows, n: int) -> list[list[ReasonCode]]:
        """The top ``n`` reason codes of every row (exact TreeSHAP on the scored matrix)."""
        if len(rows) == 0 or n == 0:
            return [[] for _ in range(len(rows))]
        # One thread: building even a one-row DMatrix with every core costs ~10 ms on a busy
        # machine (thread start-up), ten times the TreeSHAP itself.
        matrix = xgb.DMatrix(rows, feature_names=list(self.feature_columns), nthread=1)
        contributions = np.asarray(self.booster.predict(matrix, pred_contribs=True))[:, :-1]
        return [
            reason_codes(contributions[i], rows[i], self.feature_columns, n=n, medians=self.medians)
            for i in range(len(rows))
        ]


def _single_threaded(booster: xgb.Booster) -> xgb.Booster:
    # One thread per prediction: with two, single-row latency on a busy machine rose 80-fold
    # (architecture §7); the service gets its parallelism from concurrent requests.
    booster.set_param({"nthread": 1})
    return booster


def operating_threshold(
    policy: Policy, validated: Mapping[str, Any] | None, label: str
) -> tuple[float, str]:
    """The cut-off of the policy's operating point for one version, and where it came from.

    ``validated`` is the version's validation facts from the audit chain (``pack_path``,
    ``pack_digest``). Raises :class:`Refusal` (``stale_pack``) when the policy sets no fixed
    threshold and the pack is missing, unreadable, or no longer hashes to the recorded digest.
    """
    fixed = policy.section("validation").get("threshold")
    if fixed is not None:
        return float(fixed), f"policy {policy.version} validation.threshold"
    path = str((validated or {}).get("pack_path") or "")
    recorded = str((validated or {}).get("pack_digest") or "")
    if not path or not Path(path).is_file():
        raise Refusal(
            "stale_pack",
            f"{label}: the policy sets no validation.threshold and the validation pack "
            f"({path or 'no path recorded'}) is not readable, so the operating point's cut-off "
            "is unknown; re-validate the version or set validation.threshold",
        )
    pack = json.loads(Path(path).read_text())
    if pack_digest(pack) != recorded:
        raise Refusal(
            "stale_pack",
            f"{label}: the validation pack at {path} no longer hashes to the digest the audit "
            "trail recorded; its operating point cannot be trusted",
        )
    point = pack.get("operating_point") or {}
    lowest = point.get("lowest_adverse_score")
    if lowest is None:
        raise Refusal(
            "stale_pack",
            f"{label}: the validation pack made no alert at its operating point, so it gives "
            "no cut-off; set validation.threshold",
        )
    budget = point.get("daily_alert_budget")
    return float(lowest), f"validation pack {recorded[:12]}: lowest alert at {budget}/day"


def _validated_facts(entries: Sequence[AuditEntry], model_name: str, version: int) -> Any:
    roster = roster_from(entries)
    for facts in all_facts(entries, roster, model_name):
        if int(facts.version) == int(version):
            return facts
    return None


def _serving_model(
    loaded: RegisteredVersion,
    digest: str,
    policy: Policy,
    validated: Mapping[str, Any] | None,
    datasets_root: str | Path,
) -> ServingModel:
    label = f"{loaded.model_name} v{loaded.version}"
    threshold, source = operating_threshold(policy, validated, label)
    columns = loaded.feature_columns
    dataset = snapshot_of(loaded, datasets_root)
    return ServingModel(
        model_name=loaded.model_name,
        version=loaded.version,
        digest=digest,
        booster=_single_threaded(loaded.booster),
        feature_columns=columns,
        medians=reference_medians(dataset.train, columns),
        threshold=threshold,
        threshold_source=source,
    )


def load_champion(
    tracking: TrackingLocation,
    entries: Sequence[AuditEntry],
    model_name: str,
    policy: Policy,
    datasets_root: str | Path,
) -> ServingModel:
    """The champion the alias names, verified against ``entries`` (a chain that verified).

    Raises :class:`Refusal` when there is no champion, when the alias or the artifact does not
    match the last signed promotion, or when the operating point cannot be read.
    """
    alias = champion_version(tracking.client(), model_name)
    if alias is None:
        raise Refusal(
            "champion_not_promoted",
            f"{model_name} has no champion alias: nothing was promoted, nothing can decide",
        )
    loaded = registered_version(tracking, model_name, alias)
    digest = booster_digest(loaded.booster)
    check_serving(entries, model_name, alias, digest)
    facts = _validated_facts(entries, model_name, alias)
    return _serving_model(loaded, digest, policy, facts.validated if facts else None, datasets_root)


def load_shadow_challengers(
    tracking: TrackingLocation,
    entries: Sequence[AuditEntry],
    model_name: str,
    policy: Policy,
    datasets_root: str | Path,
) -> list[ServingModel]:
    """Validated challengers awaiting approval, each verified against its validated digest.

    A challenger whose validation did not pass, or whose artifact no longer hashes to the digest
    validation recorded, never scores (not even in shadow): its scores would be evidence about
    another model. Those that cannot be loaded are left out; shadows never stop the service.
    """
    roster = roster_from(entries)
    shadows = []
    for facts in pending_challengers(entries, all_facts(entries, roster, model_name)):
        if facts.validation_status != VALIDATION_PASSED or not facts.validated:
            continue
        try:
            loaded = registered_version(tracking, model_name, int(facts.version))
            digest = booster_digest(loaded.booster)
            if digest != facts.validated.get("model_digest"):
                continue
            shadows.append(_serving_model(loaded, digest, policy, facts.validated, datasets_root))
        except (Refusal, ValueError, OSError):
            continue
    return sorted(shadows, key=lambda m: m.version)
