"""Monitoring assets: the champion scores each day; drift and matured performance are reported.

``scored_transactions`` scores one day's transactions with the current champion (every score
stamped with the model version and digest) into ``monitoring.scored_transactions``, replacing
that day atomically. ``monitoring_report`` compares the day, and the rolling week, with the
champion's own training data (Evidently drift tests and PSI per feature, prediction drift, drift
per segment), on labels that have matured, the performance trend, and the fairness of the alerts
by protected attribute (AIR on the day, FPR parity on matured labels, judged as validation judges
them); it writes Evidently's HTML and a JSON summary and puts the key numbers in metadata so the UI
plots them across partitions.
``drift_retrain_sensor`` (fin_sensors) reads that summary.
Logic: ``fin_assets.lib.monitoring`` (``drift_report``, ``matured_performance``,
``production_fairness``, ``retrain_rules``).
"""

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from mlflow.exceptions import MlflowException

from fin_assets.code_versions import group_code_version
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.names import (
    DATASETS_DIR,
    DEFAULT_REGISTERED_MODEL,
    FEATURE_TABLE,
    INGESTION_LOG_TABLE,
)
from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.governance.audit_chain import AuditChain, ensure_schema
from fin_assets.lib.governance.decision_log import record_refusal
from fin_assets.lib.governance.decision_rules import Refusal, version_subject
from fin_assets.lib.governance.registry_facts import champion_version
from fin_assets.lib.governance.serving_guard import check_serving
from fin_assets.lib.governance.witness import Witness
from fin_assets.lib.monitoring.alarm_levels import AdaptiveSettings, learn_alarm_levels
from fin_assets.lib.monitoring.drift_report import (
    default_segments,
    drift_report,
    monitoring_summary,
    psi_summary,
    steady_state_reference,
)
from fin_assets.lib.monitoring.matured_performance import (
    important_features,
    matured_performance,
    segment_performance,
)
from fin_assets.lib.monitoring.monitoring_checks import (
    CHECK_NAMES,
    DRIFT_WITHIN_POLICY,
    FAIRNESS_WITHIN_POLICY,
    PERFORMANCE_WITHIN_FLOOR,
    check_outcomes,
)
from fin_assets.lib.monitoring.production_fairness import fairness_markdown, production_fairness
from fin_assets.lib.monitoring.retrain_rules import SEGMENT_MEASURES, Breach, breaches
from fin_assets.lib.monitoring.scores_store import (
    days_back,
    read_protected,
    read_scores,
    write_scores,
)
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.monitoring.shadow_scores import shadow_candidates, write_shadow_scores
from fin_assets.lib.training.model_fit import booster_digest
from fin_assets.lib.training.model_registry import run_url
from fin_assets.lib.training.registry_tags import TAG_MODEL_DIGEST
from fin_assets.lib.training.training_data import LABEL, TrainingDataset
from fin_assets.lib.validation.model_loading import (
    RegisteredVersion,
    registered_version,
    snapshot_of,
)
from fin_assets.partitions import daily_partitions
from fin_resources.audit_store import AuditStoreResource
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.settings import SettingsResource
from fin_resources.warehouse import WarehouseResource

OWNERS = ["team:fraud-operations"]
SUMMARY_FILE = "summary.json"
#: The daily pipeline starts at 01:00 UTC for the day that ended; scoring and monitoring of that
#: day are expected by 06:00 UTC. A day without them (a failed or never-started run, a stuck
#: queue) shows the asset as stale in the UI instead of silently leaving yesterday's verdicts.
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 6 * * *", lower_bound_delta=timedelta(hours=24), timezone="UTC"
)


def _day(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def _champion(mlflow: MlflowResource) -> RegisteredVersion | None:
    current = champion_version(mlflow.client(), DEFAULT_REGISTERED_MODEL)
    if current is None:
        return None
    return registered_version(mlflow, DEFAULT_REGISTERED_MODEL, current)


def _refuse_unpromoted(
    context: dg.AssetExecutionContext,
    champion: RegisteredVersion,
    audit_store: AuditStoreResource,
    settings: SettingsResource,
) -> None:
    """Fail (after recording the refusal) unless the champion is what the audit trail promoted."""
    engine = audit_store.engine()
    try:
        ensure_schema(engine)
        chain = AuditChain(engine, witness=Witness(audit_store.witness_file()))
        try:
            if not chain.verify().ok:
                raise Refusal(
                    "champion_not_promoted",
                    "the audit trail does not verify: no promotion in it can be trusted "
                    "(run `fin-mlops audit verify`)",
                )
            check_serving(
                chain.entries(),
                champion.model_name,
                champion.version,
                booster_digest(champion.booster),
            )
        except Refusal as refusal:
            record_refusal(
                chain,
                refusal,
                actor=f"dagster-run:{context.run.run_id}",
                attempted="score with the champion",
                subject=version_subject(champion.model_name, champion.version),
                policy=load_policy(settings.policy_path or None),
            )
            raise dg.Failure(f"refused ({refusal.code}): {refusal.message}") from refusal
    finally:
        engine.dispose()


@dg.asset(
    deps=[dg.AssetKey(names.TRANSACTION_FEATURES), dg.AssetKey(names.CHAMPION_MODEL)],
    partitions_def=daily_partitions,
    group_name=names.MONITORING_GROUP,
    code_version=group_code_version(names.MONITORING_GROUP),
    kinds={"duckdb", "xgboost"},
    owners=OWNERS,
    tags={"domain": "monitoring"},
    freshness_policy=DAILY_FRESHNESS,
)
def scored_transactions(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    warehouse: WarehouseResource,
    audit_store: AuditStoreResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """The day's transactions scored by the champion, each score stamped with its model version.

    Only the version of the last promotion in the audit trail serves, and only if the loaded
    model hashes to the digest that promotion recorded: an alias moved by hand in MLflow, or an
    artifact changed after promotion, is refused (and the refusal recorded) before scoring.
    Replaces the day in `monitoring.scored_transactions` in one transaction (a re-run never
    duplicates). Before any champion exists nothing is scored, and the metadata says so.

    Then each validated challenger awaiting approval scores the same rows in shadow, into
    `monitoring.shadow_scores` (one transaction for the day, re-run safe); the champion's scores
    are written first and never depend on them. The metadata names the versions that shadowed.
    """
    refuse_launch_overrides(context)
    day = _day(context)
    champion = _champion(mlflow)
    if champion is None:
        context.log.warning(f"no champion yet: {day} is not scored")
        return dg.MaterializeResult(metadata={"rows": 0, "model_version": "none"})
    _refuse_unpromoted(context, champion, audit_store, settings)
    start = datetime(day.year, day.month, day.day)
    with warehouse.session() as session:
        frame = session.frame(
            f"SELECT * FROM {FEATURE_TABLE} WHERE tx_datetime >= ? AND tx_datetime < ? "
            "ORDER BY tx_datetime, transaction_id",
            [start, start + timedelta(days=1)],
        )
        if frame.empty:
            raise dg.Failure(f"no features for {day}: materialise transaction_features first")
        scored = score_transactions(
            frame,
            champion.booster,
            champion.feature_columns,
            model_name=champion.model_name,
            model_version=champion.version,
            model_digest=champion.tags.get(TAG_MODEL_DIGEST, "unknown"),
        )
        rows = write_scores(session, day, scored, context.run.run_id, datetime.now(UTC))
        shadow = _shadow_scores(context, session, day, frame, mlflow, audit_store, settings)
    scores = scored["score"].astype(float)
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "model_name": champion.model_name,
            "model_version": champion.version,
            "score_mean": round(float(scores.mean()), 6),
            "score_p99": round(float(scores.quantile(0.99)), 6),
            **shadow,
        }
    )


def _shadow_scores(
    context: dg.AssetExecutionContext,
    session: WarehouseSession,
    day: date,
    frame: pd.DataFrame,
    mlflow: MlflowResource,
    audit_store: AuditStoreResource,
    settings: SettingsResource,
) -> dict[str, Any]:
    """Score ``frame`` with each shadow candidate and store the scores; metadata of what shadowed.

    A challenger that cannot be loaded or scored, or whose artifact no longer hashes to its
    validated digest, is left out and named in ``shadow_skipped``: shadows never fail the
    champion's scoring, whose scores are already committed.
    """
    if (
        not load_policy(settings.policy_path or None)
        .section("serving")
        .get("shadow_challengers", True)
    ):
        return {"shadow_versions": "off (serving.shadow_challengers)"}
    engine = audit_store.engine()
    try:
        candidates = shadow_candidates(AuditChain(engine).entries(), DEFAULT_REGISTERED_MODEL)
    finally:
        engine.dispose()
    scored, skipped, means = [], [], {}
    for facts in candidates:
        digest = str((facts.validated or {})["model_digest"])
        try:
            challenger = registered_version(mlflow, facts.model_name, int(facts.version))
            if booster_digest(challenger.booster) != digest:
                raise ValueError("its artifact no longer hashes to the validated digest")
            found = score_transactions(
                frame,
                challenger.booster,
                challenger.feature_columns,
                model_name=facts.model_name,
                model_version=facts.version,
                model_digest=digest,
            )
        except (ValueError, OSError, MlflowException) as exc:
            context.log.warning(f"challenger v{facts.version} not scored in shadow: {exc}")
            skipped.append(f"v{facts.version}: {exc}")
            continue
        scored.append(found)
        means[f"shadow_v{facts.version}_score_mean"] = round(float(found["score"].mean()), 6)
    rows = write_shadow_scores(session, day, scored, context.run.run_id, datetime.now(UTC))
    versions = [f"v{int(f['model_version'].iloc[0])}" for f in scored if len(f)]
    return {
        "shadow_versions": ", ".join(versions) or "none",
        "shadow_rows": rows,
        **means,
        **({"shadow_skipped": "; ".join(skipped)} if skipped else {}),
    }


def _history_start(session: WarehouseSession) -> date | None:
    """The first day the warehouse accepted transactions (None when ingestion kept no log)."""
    if not session.has_table(INGESTION_LOG_TABLE):
        return None
    row = session.one(f"SELECT min(partition_date) FROM {INGESTION_LOG_TABLE} WHERE accepted > 0")
    return row[0] if row and row[0] is not None else None


def _alarm_levels(
    champion: RegisteredVersion,
    dataset: TrainingDataset,
    history_start: date | None,
    daily_columns: list[str],
    policy: Policy,
    settings: SettingsResource,
) -> dict[str, Any]:
    """The champion's adaptive alarm levels (``alarm_levels.learn_alarm_levels``), learned once.

    Learned from every steady-state training row (not the drift sample: a sampled day is noisier
    than a real one and would raise every level), scored by the champion, and stored beside the
    reports as ``alarm_levels/<model>-v<version>.json`` with the model digest and the settings
    they were learned under: versioned with the champion, relearned only when either changes.
    """
    section = policy.section("monitoring")
    path = settings.report_dir("monitoring", "alarm_levels") / (
        f"{champion.model_name}-v{champion.version}.json"
    )
    digest = booster_digest(champion.booster)
    settings_now = dataclasses.asdict(AdaptiveSettings.from_policy(policy))
    identity = {
        "model_name": champion.model_name,
        "model_version": champion.version,
        "model_digest": digest,
        "settings": settings_now,
        "psi_bins": int(section["psi_bins"]),
        "columns": daily_columns,
    }
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("identity") == json.loads(json.dumps(identity)):
            return dict(stored["alarm_levels"])
    reference, _ = steady_state_reference(
        dataset.train, history_start, int(section["reference_min_rows"])
    )
    reference = reference.copy()
    reference["score"] = champion.scorer()(reference)
    levels = learn_alarm_levels(
        reference,
        daily_columns,
        default_segments(policy, set(reference.columns)),
        policy=policy,
    )
    path.write_text(json.dumps({"identity": identity, "alarm_levels": levels}, indent=1))
    return levels


def _reference(
    champion: RegisteredVersion,
    dataset: TrainingDataset,
    section: dict[str, Any],
    history_start: date | None,
) -> tuple[pd.DataFrame, int]:
    """The champion's training rows scored by the champion (what "no drift" looks like), and how
    many training rows were left out for partial feature history
    (``drift_report.steady_state_reference``). A fixed seeded sample of ``reference_sample_rows``
    when larger."""
    reference, excluded = steady_state_reference(
        dataset.train, history_start, int(section["reference_min_rows"])
    )
    sample_rows = int(section["reference_sample_rows"])
    if len(reference) > sample_rows:
        reference = reference.sample(n=sample_rows, random_state=0).sort_index()
    reference = reference.copy()
    reference["score"] = champion.scorer()(reference)
    return reference, excluded


def log_monitoring_report(
    mlflow: MlflowResource,
    champion: RegisteredVersion,
    day: date,
    out_dir: Path,
    summary: dict[str, Any],
    dagster_run_id: str,
) -> dict[str, Any]:
    """Log the day's report directory (Evidently HTML, summary) as artifacts of an MLflow run.

    Why: a server-side path is not a link a browser can open from the Dagster UI, while MLflow's
    UI shows HTML artifacts. One run per monitored day in the ``<model>-monitoring`` experiment
    (a re-run logs a new run; nothing is overwritten), tagged with the day, the champion version
    and the Dagster run, with the headline numbers as metrics. Metadata: the run's URL when
    ``MLFLOW_UI_URL`` is set, else its id (the report path stays the fallback).
    """
    client = mlflow.client()
    experiment_id = mlflow.experiment_id(f"{champion.model_name}-monitoring")
    run = client.create_run(
        experiment_id,
        run_name=f"monitoring-{day.isoformat()}",
        tags={
            "fin/partition": day.isoformat(),
            "fin/model_name": champion.model_name,
            "fin/model_version": str(champion.version),
            "fin/dagster_run_id": dagster_run_id,
        },
    )
    run_id = run.info.run_id
    for key in ("drift_share", "drifted_features"):
        if summary.get(key) is not None:
            client.log_metric(run_id, key, float(summary[key]))
    if summary["max_psi"]["psi"] is not None:
        client.log_metric(run_id, "max_psi", float(summary["max_psi"]["psi"]))
    client.log_artifacts(run_id, str(out_dir), artifact_path="monitoring")
    client.set_terminated(run_id)
    found: dict[str, Any] = {"mlflow_monitoring_run_id": run_id}
    if mlflow.ui_url.startswith(("http://", "https://")):
        link = f"{run_url(mlflow.ui_url, experiment_id, run_id)}/artifacts"
        found["drift_report_url"] = dg.MetadataValue.url(link)
    return found


def _segments_markdown(summary: dict[str, Any]) -> str:
    """Per segment: rows and score/amount PSI of the day, matured AUC / AP / card precision."""
    performance = summary.get("segment_performance") or {}

    def number(value: Any, digits: int = 3) -> str:
        return "–" if value is None else f"{float(value):.{digits}f}"

    lines = [
        "| segment | rows today | score PSI | amount PSI | matured rows | AUC | AP | card prec. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in (summary.get("segments") or {}).items():
        matured = performance.get(name) or {}
        lines.append(
            f"| {name} | {entry['rows_current']} | {number(entry['score_psi'], 2)} | "
            f"{number(entry['amount_psi'], 2)} | {matured.get('rows', '–')} | "
            f"{number(matured.get('auc_roc'))} | {number(matured.get('average_precision'))} | "
            f"{number(matured.get('card_precision_top_k'))} |"
        )
    return "\n".join(lines)


def _alarm_markdown(summary: dict[str, Any], fixed: float) -> str:
    """Important features, the score and each judged segment: today's PSI beside the fixed band
    and the champion's learned level (the one that decides is marked)."""
    alarm = summary.get("alarm_levels") or {}
    levels = alarm.get("levels") or {}
    rows: list[tuple[str, float | None]] = [
        (name, summary["features"][name]["psi"]) for name in summary["important_features"]
    ]
    rows.append(("prediction", (summary.get("prediction") or {}).get("psi")))
    for name, entry in (summary.get("segments") or {}).items():
        rows.extend(
            (f"{name}:{column}", entry.get(key)) for key, column in SEGMENT_MEASURES.items()
        )
    lines = [
        f"alarm levels: **{alarm.get('method', 'fixed')}** decides "
        f"(learned: {alarm.get('margin')} × q{alarm.get('quantile')} of "
        f"{alarm.get('reference_days')} reference days' PSI, floor {alarm.get('floor')})",
        "",
        "| measure | PSI today | fixed band | learned level |",
        "|---|---:|---:|---:|",
    ]
    for key, value in rows:
        level = (levels.get(key) or {}).get("level")
        lines.append(
            f"| {key} | {'–' if value is None else f'{value:.3f}'} | {fixed:.2f} | "
            f"{'–' if level is None else f'{level:.3f}'} |"
        )
    return "\n".join(lines)


def _metadata(summary: dict[str, Any], found: list[Breach], psi_breach: float) -> dict[str, Any]:
    psi = {name: values.get("psi") for name, values in summary["features"].items()}
    important = set(summary["important_features"])
    performance = summary.get("performance") or {}
    fairness = summary.get("fairness")
    fairness_metadata: dict[str, Any] = {}
    if fairness:
        fairness_metadata = {
            "fairness_min_air": fairness.get("min_air"),
            "fairness_min_fpr_ratio": fairness.get("min_fpr_ratio"),
            "fairness_verdicts": dg.MetadataValue.json(fairness["verdicts"]),
            "fairness": dg.MetadataValue.md(fairness_markdown(fairness)),
        }
    metadata: dict[str, Any] = {
        "drift_share": summary.get("drift_share"),
        "drifted_features": summary.get("drifted_features"),
        "max_psi": summary["max_psi"]["psi"],
        "max_psi_feature": summary["max_psi"]["feature"],
        "prediction_psi": (summary.get("prediction") or {}).get("psi"),
        "matured_auc_roc": performance.get("auc_roc"),
        "matured_average_precision": performance.get("average_precision"),
        "matured_card_precision_top_k": performance.get("card_precision_top_k"),
        "matured_rows": performance.get("rows"),
        "segments": dg.MetadataValue.md(_segments_markdown(summary)),
        "alarm_levels": dg.MetadataValue.md(_alarm_markdown(summary, psi_breach)),
        "breach": bool(found),
        "breaches": dg.MetadataValue.json([b.to_dict() for b in found]),
        **fairness_metadata,
        **{f"psi_{name}": value for name, value in psi.items() if name in important},
    }
    return {k: v for k, v in metadata.items() if v is not None}


@dg.asset(
    deps=[scored_transactions],
    partitions_def=daily_partitions,
    group_name=names.MONITORING_GROUP,
    code_version=group_code_version(names.MONITORING_GROUP),
    kinds={"evidently", "html"},
    owners=OWNERS,
    tags={"domain": "monitoring"},
    freshness_policy=DAILY_FRESHNESS,
    check_specs=[
        dg.AssetCheckSpec(name, asset=names.MONITORING_REPORT, description=text)
        for name, text in (
            (
                DRIFT_WITHIN_POLICY,
                "No PSI breach on an important feature, the score or a segment (fixed band or "
                "the champion's learned level), drift share in policy",
            ),
            (PERFORMANCE_WITHIN_FLOOR, "Matured AUC, AP and card precision above their floors"),
            (FAIRNESS_WITHIN_POLICY, "No significant disparity in the day's alerts or matured FPR"),
        )
    ],
)
def monitoring_report(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    warehouse: WarehouseResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """Drift of the day and the rolling week against the champion's training data: PSI and the
    policy's test per feature on every row (Evidently's HTML on a seeded sample), prediction
    drift and drift per segment (night, weekend, amount / activity / terminal-risk bands), each
    judged against the fixed band or the champion's learned alarm level; matured-label
    performance (AUC, average precision, card precision top-k) overall and per segment; fairness
    by protected attribute (AIR of the day's alerts, FPR parity on matured labels, the validation
    preset and verdict rule; a ``fail`` is a breach). HTML + JSON summary in the reports
    directory and as an MLflow run, key numbers in metadata (plotted across partitions)."""
    refuse_launch_overrides(context)
    day = _day(context)
    policy = load_policy(settings.policy_path or None)
    section = policy.section("monitoring")
    champion = _champion(mlflow)
    if champion is None:
        return dg.MaterializeResult(
            metadata={"status": "no champion: nothing to monitor"},
            check_results=[
                dg.AssetCheckResult(
                    check_name=name,
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    description="not judged: no champion serves, nothing was monitored",
                )
                for name in CHECK_NAMES
            ],
        )
    columns = list(champion.feature_columns)
    # The champion's training snapshot: the drift reference, and the label delay it was trained
    # under (when labels count as matured).
    dataset = snapshot_of(champion, Path(settings.home) / DATASETS_DIR)
    delay = dataset.protocol.delay_days
    rolling = int(section["rolling_days"])
    with warehouse.session(read_only=True) as session:
        history_start = _history_start(session)
        window = read_scores(
            session, days_back(day, rolling + delay), day, FEATURE_TABLE, columns, LABEL
        )
        protected = read_protected(session, days_back(day, rolling + delay), day)
    reference, excluded = _reference(champion, dataset, section, history_start)
    window = window[window["model_version"] == champion.version]
    today = window[pd.to_datetime(window["partition_date"]).dt.date == day]
    if today.empty:
        raise dg.Failure(f"no scores by champion v{champion.version} on {day}: score it first")
    stamp = datetime(day.year, day.month, day.day) + timedelta(days=1)
    calendar = set(section.get("calendar_features", []))
    daily_columns = [c for c in columns if c not in calendar]
    drift = drift_report(reference, today, daily_columns, policy=policy, timestamp=stamp)
    week_rows = window[pd.to_datetime(window["partition_date"]).dt.date >= days_back(day, rolling)]
    week = psi_summary(reference, week_rows, [*columns, "score"], policy=policy)
    performance = matured_performance(
        window,
        as_of=stamp,
        delay_days=delay,
        k=int(policy.section("validation")["top_k"]),
        policy=policy,
    )
    by_segment = segment_performance(
        window,
        default_segments(policy, set(window.columns)),
        as_of=stamp,
        delay_days=delay,
        k=int(policy.section("validation")["top_k"]),
        policy=policy,
    )
    # Protected attributes come from the raw transactions (never stored with the scores); rows
    # without them fall in the "missing" group rather than being dropped.
    fairness = production_fairness(
        window.merge(
            protected.drop_duplicates("transaction_id", keep="last"),
            on="transaction_id",
            how="left",
        ),
        day_start=datetime(day.year, day.month, day.day),
        as_of=stamp,
        delay_days=delay,
        policy=policy,
    )
    important = [
        f for f in important_features(champion.booster, policy=policy) if f in daily_columns
    ]
    summary = monitoring_summary(
        drift, important_features=important, performance=performance, fairness=fairness
    )
    summary["alarm_levels"] = _alarm_levels(
        champion, dataset, history_start, daily_columns, policy, settings
    )
    summary["rolling_week"] = week
    summary["segment_performance"] = by_segment
    summary["model_version"] = champion.version
    summary["partition"] = day.isoformat()
    summary["reference"] = {"rows": len(reference), "excluded_partial_lookback": excluded}
    found = breaches(summary, policy, important)
    out_dir = settings.report_dir("monitoring", day.isoformat())
    # The verdicts (every row) are on disk before Evidently's HTML (a sample, for reading) is built.
    summary_path = out_dir / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary, indent=1, sort_keys=True))
    html = drift.save_html(out_dir / "drift_report.html")
    logged = log_monitoring_report(mlflow, champion, day, out_dir, summary, context.run.run_id)
    if found:
        context.log.warning(f"{day}: " + "; ".join(b.message for b in found))
    return dg.MaterializeResult(
        metadata={
            "rows": len(today),
            "model_version": champion.version,
            **_metadata(summary, found, float(section["psi_breach"])),
            "week_max_psi": week["max_psi"]["psi"],
            "reference_rows": len(reference),
            "reference_rows_excluded_partial_lookback": excluded,
            "summary_path": dg.MetadataValue.path(str(summary_path)),
            "drift_report": dg.MetadataValue.path(str(html)),
            **logged,
            "policy_version": policy.version,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.WARN,
                description=outcome.description,
                metadata={
                    "judged": outcome.judged,
                    "breaches": dg.MetadataValue.json([b.to_dict() for b in outcome.breaches]),
                },
            )
            for outcome in check_outcomes(summary, found)
        ],
    )
