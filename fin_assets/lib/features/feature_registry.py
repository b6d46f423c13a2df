"""The feature registry: one declaration per model feature, read by training, validation,
explanations (reason codes) and monitoring.

Why a registry: the feature SQL lives in ``dbt_project/`` and the model card, the reason codes and
the drift report all need to say what each column means, which entity and window it aggregates,
and whether its definition changed since a model was trained. Each feature's ``version`` is a short
hash of its declared definition and of the SQL text that computes it (its model, the staging view
and the point-in-time macros), so an edit to that SQL gives every affected feature a new version
and a model trained on the old one can be recognised.

The windows and the default label delay are read from ``dbt_project.yml`` (vars ``window_days``
and ``label_delay_days``): the SQL and the registry cannot disagree about them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from fin_assets.lib.common.schema import PROTECTED_PREFIX

#: The dbt project holding the feature SQL.
DBT_PROJECT_DIR: Final[Path] = Path(__file__).resolve().parents[3] / "dbt_project"

#: SQL every feature depends on besides its own model: the typed source and the PIT macros.
_SHARED_SQL: Final[tuple[str, ...]] = (
    "models/staging/stg_transactions.sql",
    "macros/pit.sql",
)
_MODEL_SQL: Final[dict[str, str]] = {
    "transaction_features": "models/features/transaction_features.sql",
    "customer_spending_features": "models/features/customer_spending_features.sql",
    "terminal_risk_features": "models/features/terminal_risk_features.sql",
}


@dataclasses.dataclass(frozen=True)
class FeatureDefinition:
    """One point-in-time feature: what it aggregates, over which window, and what it means."""

    name: str
    #: Column the feature is grouped by (``customer_id``, ``terminal_id``) or ``transaction``.
    entity: str
    #: Window length in days; None for features of the transaction alone.
    window_days: int | None
    #: ``weekend_flag``, ``night_flag``, ``count``, ``mean(tx_amount)``, ``mean(tx_fraud)``.
    aggregation: str
    #: The window ends this many days before the transaction (the label delay for terminal risk).
    delay_days: int
    #: The dbt model that computes the column.
    model: str
    description: str
    #: Human sentence for adverse-action style reason codes.
    reason_text: str
    #: Short hash of the fields above and of the SQL that computes the feature.
    version: str = ""

    def definition(self) -> dict[str, Any]:
        """The fields that define the feature (everything but its version)."""
        fields = dataclasses.asdict(self)
        fields.pop("version")
        return fields


def _project_vars() -> dict[str, Any]:
    config = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return dict(config.get("vars") or {})


def _sql_text(model: str) -> str:
    paths = [_MODEL_SQL[model], *_SHARED_SQL]
    return "\n".join(f"-- {p}\n{(DBT_PROJECT_DIR / p).read_text()}" for p in paths)


def _versioned(feature: FeatureDefinition) -> FeatureDefinition:
    digest = hashlib.sha256()
    digest.update(json.dumps(feature.definition(), sort_keys=True).encode())
    digest.update(_sql_text(feature.model).encode())
    return dataclasses.replace(feature, version=digest.hexdigest()[:12])


def _period(days: int) -> str:
    return "24 hours" if days == 1 else f"{days} days"


def build_features(label_delay_days: int | None = None) -> list[FeatureDefinition]:
    """Declare every feature, in the column order of ``features.transaction_features``.

    ``label_delay_days`` defaults to the dbt var; it is part of the terminal features' definition
    (and so of their version).
    """
    project_vars = _project_vars()
    windows = [int(w) for w in project_vars["window_days"]]
    delay = int(project_vars["label_delay_days"] if label_delay_days is None else label_delay_days)
    features = [
        FeatureDefinition(
            name="tx_during_weekend",
            entity="transaction",
            window_days=None,
            aggregation="weekend_flag",
            delay_days=0,
            model="transaction_features",
            description="1 if the transaction is on a Saturday or Sunday, else 0.",
            reason_text="Transaction made during the weekend",
        ),
        FeatureDefinition(
            name="tx_during_night",
            entity="transaction",
            window_days=None,
            aggregation="night_flag",
            delay_days=0,
            model="transaction_features",
            description="1 if the transaction is at or before 06:59 (hour <= 6), else 0.",
            reason_text="Transaction made at night",
        ),
    ]
    for w in windows:
        features += [
            FeatureDefinition(
                name=f"customer_id_nb_tx_{w}day_window",
                entity="customer_id",
                window_days=w,
                aggregation="count",
                delay_days=0,
                model="customer_spending_features",
                description=(
                    f"Number of the customer's transactions in (t - {w} days, t], this one "
                    "included, later transactions of the same second excluded."
                ),
                reason_text=(
                    f"Unusually many transactions by this customer in the last {_period(w)}"
                ),
            ),
            FeatureDefinition(
                name=f"customer_id_avg_amount_{w}day_window",
                entity="customer_id",
                window_days=w,
                aggregation="mean(tx_amount)",
                delay_days=0,
                model="customer_spending_features",
                description=(
                    f"Mean amount of the customer's transactions in (t - {w} days, t], this one "
                    "included."
                ),
                reason_text=(
                    f"Amount unusual for this customer's spending in the last {_period(w)}"
                ),
            ),
        ]
    for w in windows:
        features += [
            FeatureDefinition(
                name=f"terminal_id_nb_tx_{w}day_window",
                entity="terminal_id",
                window_days=w,
                aggregation="count",
                delay_days=delay,
                model="terminal_risk_features",
                description=(
                    f"Number of the terminal's transactions in (t - {delay} - {w} days, "
                    f"t - {delay} days] ({delay} days = label delay)."
                ),
                reason_text=(
                    f"Unusual activity at this terminal over {_period(w)} ending {delay} days ago"
                ),
            ),
            FeatureDefinition(
                name=f"terminal_id_risk_{w}day_window",
                entity="terminal_id",
                window_days=w,
                aggregation="mean(tx_fraud)",
                delay_days=delay,
                model="terminal_risk_features",
                description=(
                    f"Share of fraud among the terminal's transactions in (t - {delay} - {w} days, "
                    f"t - {delay} days]; 0 when there are none. Only labels older than the "
                    "delay are used."
                ),
                reason_text=(
                    f"High rate of confirmed fraud at this terminal over {_period(w)} "
                    f"ending {delay} days ago"
                ),
            ),
        ]
    longest = max(windows)
    for w in windows:
        features.append(
            FeatureDefinition(
                name=f"customer_id_amount_ratio_{w}day_window",
                entity="customer_id",
                window_days=w,
                aggregation="tx_amount / mean(tx_amount)",
                delay_days=0,
                model="transaction_features",
                description=(
                    f"The amount divided by customer_id_avg_amount_{w}day_window (1 when that "
                    "mean is 0): how far this payment is from the customer's usual spending."
                ),
                reason_text=(
                    f"Amount high compared with this customer's average over the last {_period(w)}"
                ),
            )
        )
    for w in windows:
        if w == longest:
            continue
        features.append(
            FeatureDefinition(
                name=f"customer_id_amount_trend_{w}day_window",
                entity="customer_id",
                window_days=w,
                aggregation=f"mean(tx_amount) / mean(tx_amount) over {longest} days",
                delay_days=0,
                model="transaction_features",
                description=(
                    f"customer_id_avg_amount_{w}day_window divided by "
                    f"customer_id_avg_amount_{longest}day_window (1 when that mean is 0): a "
                    "customer whose recent spending jumped."
                ),
                reason_text=(
                    f"This customer's spending in the last {_period(w)} is high compared with "
                    f"the last {_period(longest)}"
                ),
            )
        )
    return [_versioned(f) for f in features]


#: The aggregations of the Fraud-Detection-Handbook's 14 features (with the amount, its 15 model
#: inputs). The ratios added after them are this platform's.
HANDBOOK_AGGREGATIONS: Final[frozenset[str]] = frozenset(
    {"weekend_flag", "night_flag", "count", "mean(tx_amount)", "mean(tx_fraud)"}
)


#: Every feature with the project's default label delay, in column order.
FEATURES: Final[list[FeatureDefinition]] = build_features()


def feature_names() -> list[str]:
    """Feature column names in the order of ``features.transaction_features``."""
    return [f.name for f in FEATURES]


def handbook_feature_names() -> list[str]:
    """The Handbook's features, in column order: what its published tables were measured on,
    so what a like-for-like comparison with them trains on."""
    return [f.name for f in FEATURES if f.aggregation in HANDBOOK_AGGREGATIONS]


def lookback_days(features: Sequence[FeatureDefinition] | None = None) -> int:
    """Days of history a feature row needs before its own day for every window to be whole.

    The longest window plus its delay (30 + 7 for terminal risk): rows of the first days of a
    history are computed from fewer days than their definition says, so their counts and risks
    run low. Training and monitoring reference data should come from later days.
    """
    chosen = FEATURES if features is None else features
    return max(((f.window_days or 0) + f.delay_days for f in chosen), default=0)


def feature_versions() -> dict[str, str]:
    """{feature name: version}; recorded with every training run and model card."""
    return {f.name: f.version for f in FEATURES}


def get_feature(name: str) -> FeatureDefinition:
    """The declaration of one feature (KeyError names the known features)."""
    for feature in FEATURES:
        if feature.name == name:
            return feature
    raise KeyError(f"unknown feature {name!r}; known: {feature_names()}")


def assert_not_protected(columns: Iterable[str]) -> None:
    """Refuse protected attributes (``protected_*``) as model features.

    They exist for fairness analysis only (schema.py); a model must never be trained on them.
    """
    protected = [c for c in columns if str(c).lower().startswith(PROTECTED_PREFIX)]
    if protected:
        raise ValueError(
            f"protected attributes cannot be used as features: {protected} "
            f"(columns starting with {PROTECTED_PREFIX!r} are for fairness analysis only)"
        )
