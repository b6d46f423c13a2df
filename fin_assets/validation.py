"""Validation assets: the model-risk validation pack of a challenger, with its gates as checks.

``validation_pack`` rebuilds the evidence of one registered version from its lineage (the
version's tags name its training snapshot, which is re-hashed on load) with the engine of
``fin_assets.lib.validation.pack``, writes JSON, HTML and a model card once, read-only, into
a directory named by their content under the reports directory (a re-run never overwrites a pack)
and as artifacts of the version's MLflow run, records the outcome on the model version
(``validation_status`` passed/failed/inconclusive, what was validated and which blocking gates
were inconclusive, the gates a waiver must name) and in the audit trail. Every gate of
the policy is an asset check; the blocking ones stop anything downstream (promotion) in the
same run. The pack decides nothing a human should decide: a pass makes a version *eligible* for
approval, it does not approve it.
"""

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from mlflow.tracking import MlflowClient
from pydantic import Field

from fin_assets.code_versions import group_code_version
from fin_assets.handoff import audit_chain, upstream_metadata
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.names import (
    DATASETS_DIR,
    DEFAULT_REGISTERED_MODEL,
    FEATURE_TABLE,
    INGESTION_LOG_TABLE,
    SCORES_TABLE,
)
from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, utc_timestamp
from fin_assets.lib.governance.chain_state import ACTION_VALIDATED, version_facts_from
from fin_assets.lib.governance.decision_log import record_refusal
from fin_assets.lib.governance.decision_rules import (
    Refusal,
    inconclusive_gate_names,
    version_subject,
)
from fin_assets.lib.governance.registry_facts import (
    TAG_VALIDATED_AT,
    champion_version,
    record_validation,
)
from fin_assets.lib.monitoring.champion_revalidation import (
    evidence_age,
    revalidation_cadence_days,
    revalidation_subject,
    revalidation_window,
)
from fin_assets.lib.monitoring.followup_retrain import DRIFT_START_TAG, training_days_around
from fin_assets.lib.monitoring.scores_store import read_protected, read_scores
from fin_assets.lib.training.model_fit import booster_digest
from fin_assets.lib.training.training_data import LABEL
from fin_assets.lib.validation.model_loading import (
    champion_for,
    data_quality_summary,
    registered_version,
    snapshot_of,
    subject_for_version,
)
from fin_assets.lib.validation.pack import build_validation_pack, pack_digest, write_pack
from fin_resources.audit_store import AuditStoreResource
from fin_resources.locations import policy_path_from_env
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.settings import SettingsResource
from fin_resources.warehouse import WarehouseResource

OWNERS = ["team:model-risk"]
CHALLENGER_MODEL = dg.AssetKey(names.CHALLENGER_MODEL)
VALIDATION_PACK = dg.AssetKey(names.VALIDATION_PACK)
#: The actor the pipeline writes audit entries as.
PIPELINE_ACTOR = "pipeline:validation_pack"


def _gate_policy() -> Policy:
    """The policy whose gates become check specs (the one the code location loads)."""
    return load_policy(policy_path_from_env() or None)


def gate_check_specs(policy: Policy | None = None) -> list[dg.AssetCheckSpec]:
    """One check per policy gate; blocking gates block promotion in the same run."""
    gates = (policy or _gate_policy()).section("validation")["gates"]
    return [
        dg.AssetCheckSpec(
            name=name,
            asset=VALIDATION_PACK,
            blocking=bool(gate.get("blocking", False)),
            description=(
                f"{gate['metric']} is pass (policy verdict gate)"
                if gate.get("kind") == "verdict"
                else f"{gate['metric']} {gate['op']} {gate['value']} (policy gate)"
            ),
        )
        for name, gate in sorted(gates.items())
    ]


class ValidationConfig(dg.Config):
    """Which version to validate: by default the challenger registered by this run, else the
    latest `challenger_model` materialisation."""

    registered_model: str = DEFAULT_REGISTERED_MODEL
    model_version: int = Field(default=0, description="0: the challenger of this run / latest")


def _challenger_version(context: dg.AssetExecutionContext, config: ValidationConfig) -> int:
    if config.model_version > 0:
        return config.model_version
    upstream, _ = upstream_metadata(context, CHALLENGER_MODEL)
    return int(upstream["model_version"])


def _check_results(pack: dict[str, Any]) -> list[dg.AssetCheckResult]:
    results = []
    for gate in pack["gates"]:
        results.append(
            dg.AssetCheckResult(
                check_name=gate["name"],
                asset_key=VALIDATION_PACK,
                # Inconclusive is not passed: the evidence could not show the model is fair.
                passed=gate["result"] not in ("fail", "inconclusive"),
                severity=(
                    dg.AssetCheckSeverity.ERROR if gate["blocking"] else dg.AssetCheckSeverity.WARN
                ),
                metadata={
                    "result": gate["result"],
                    "metric": gate["metric"],
                    "value": gate["value"] if gate["value"] is not None else "n/a",
                    "threshold": gate["threshold"],
                    "reason": gate.get("reason") or "",
                },
            )
        )
    return results


def gate_table_markdown(gates: list[dict[str, Any]]) -> str:
    """The policy gates as a Markdown table, so a validator reads the verdict in the Dagster UI."""
    lines = [
        "| gate | result | value | rule | blocking |",
        "|---|---|---|---|---|",
    ]
    for gate in gates:
        value = gate.get("value")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(
            f"| {gate['name']} | {gate['result']} | {shown} | {gate['op']} {gate['threshold']} "
            f"| {'yes' if gate.get('blocking') else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _refuse_unregistered(
    context: dg.AssetExecutionContext,
    chain: AuditChain,
    policy: Policy,
    model_name: str,
    version: int,
    loaded_digest: str,
) -> None:
    """Fail (refusal recorded) unless the chain registered this version with these exact bytes.

    Validation re-hashes the artifact it evaluates: evidence about a model that is not the one
    registered (swapped in the artifact store, or never trained by the pipeline) is worthless.
    """
    registered = version_facts_from(chain.entries(), model_name, version)
    if not registered.exists:
        refusal = Refusal(
            "unknown_version",
            f"{model_name} version {version} has no registration in the audit trail: only "
            "versions trained by the pipeline (challenger_model) are validated for approval",
        )
    elif registered.model_digest != loaded_digest:
        refusal = Refusal(
            "model_digest_mismatch",
            f"{model_name} version {version}: the registry's artifact hashes to "
            f"{loaded_digest[:16]}…, not to the registered {str(registered.model_digest)[:16]}…",
        )
    else:
        return
    record_refusal(
        chain,
        refusal,
        actor=PIPELINE_ACTOR,
        attempted="validate",
        subject=version_subject(model_name, version),
        policy=policy,
        details={"dagster_run_id": context.run.run_id},
    )
    raise dg.Failure(f"refused ({refusal.code}): {refusal.message}")


def log_pack_artifacts(client: MlflowClient, run_id: str, pack_dir: Path) -> str:
    """Log a pack's directory to the version's run under ``validation/<pack directory name>``.

    The artifact path carries the pack's content address, so a re-run adds artifacts beside the
    earlier ones instead of replacing what an approver may have read in the MLflow UI; the same
    pack (same address) already logged is not logged twice.
    """
    artifact_path = f"validation/{pack_dir.name}"
    if not client.list_artifacts(run_id, artifact_path):
        client.log_artifacts(run_id, str(pack_dir), artifact_path=artifact_path)
    return artifact_path


@dg.asset(
    deps=[CHALLENGER_MODEL],
    group_name=names.VALIDATION_GROUP,
    code_version=group_code_version(names.VALIDATION_GROUP),
    kinds={"mlflow", "html"},
    owners=OWNERS,
    tags={"domain": "validation"},
    check_specs=gate_check_specs(),
)
def validation_pack(
    context: dg.AssetExecutionContext,
    config: ValidationConfig,
    mlflow: MlflowResource,
    settings: SettingsResource,
    warehouse: WarehouseResource,
    audit_store: AuditStoreResource,
) -> dg.MaterializeResult:
    """Model-risk evidence for one challenger version, rebuilt from lineage; gates as checks.

    Discrimination with bootstrap CIs, calibration, operating point, stability, segments,
    stress, sensitivity, fairness, SHAP explanations and reason codes, champion comparison,
    limitations and monitoring plan (see `validation_pack.html`). Sets the version's
    `validation_status` to passed, failed or inconclusive (with the inconclusive blocking gates,
    which only a recorded waiver lets through). Never approves or promotes.
    """
    refuse_launch_overrides(context)
    policy = load_policy(settings.policy_path or None)
    version_number = _challenger_version(context, config)
    try:
        version = registered_version(mlflow, config.registered_model, version_number)
        dataset = snapshot_of(version, Path(settings.home) / DATASETS_DIR)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    protocol = dataset.protocol
    with warehouse.session(read_only=True) as session:
        log = session.frame(f"SELECT * FROM {INGESTION_LOG_TABLE}")
    quality = data_quality_summary(log, protocol.train_start, protocol.test_end)
    subject = subject_for_version(
        version, dataset, data_quality=quality, policy_version=policy.version
    )
    drift_start = context.run.tags.get(DRIFT_START_TAG)
    if drift_start:
        # a retraining launched by a drift: say which training days precede and follow it
        around = training_days_around(
            protocol.train_start, protocol.train_end, date.fromisoformat(drift_start)
        )
        subject = dataclasses.replace(subject, data={**subject.data, "drift": around})
    loaded_digest = booster_digest(version.booster)
    with audit_chain(audit_store) as chain:
        _refuse_unregistered(
            context, chain, policy, config.registered_model, version_number, loaded_digest
        )
    client = mlflow.client()
    current = champion_version(client, config.registered_model)
    champion = None
    if current is not None and current != version_number:
        champion = champion_for(registered_version(mlflow, config.registered_model, current))
    pack = build_validation_pack(subject, policy, champion=champion)
    digest = pack_digest(pack)
    out_dir = settings.report_dir("validation", config.registered_model, f"v{version_number}")
    paths = write_pack(pack, out_dir)
    pack_dir = paths["json"].parent
    artifact_path = log_pack_artifacts(client, version.run_id, pack_dir)
    generated = pack["identity"].get("generated_at")
    generated_at = datetime.fromisoformat(generated) if generated else datetime.now(UTC)
    waivable = inconclusive_gate_names(pack["gates"])
    with audit_chain(audit_store) as chain:
        chain.append(
            ACTION_VALIDATED,
            PIPELINE_ACTOR,
            version_subject(config.registered_model, version_number),
            {
                "status": pack["status"],
                "pack_digest": digest,
                "pack_path": str(paths["json"]),
                "generated_at": utc_timestamp(generated_at),
                "data_version": dataset.data_version,
                "feature_versions": dict(dataset.feature_versions),
                "model_digest": loaded_digest,
                "gates": {g["name"]: g["result"] for g in pack["gates"]},
                "inconclusive_gates": waivable,
                "dagster_run_id": context.run.run_id,
                "policy_version": policy.version,
                "policy_sha256": policy.sha256,
            },
        )
    record_validation(
        client,
        config.registered_model,
        version_number,
        status=pack["status"],
        pack_digest=digest,
        model_digest=loaded_digest,
        data_version=dataset.data_version,
        feature_versions=dict(dataset.feature_versions),
        generated_at=generated_at,
        pack_path=str(paths["json"]),
        dagster_run_id=context.run.run_id,
        inconclusive_gates=waivable,
    )
    failed = [g["name"] for g in pack["gates"] if g["result"] == "fail"]
    context.log.info(
        f"{config.registered_model} v{version_number}: validation {pack['status']}"
        + (f" (failed gates: {', '.join(failed)})" if failed else "")
        + (f" (inconclusive blocking gates: {', '.join(waivable)})" if waivable else "")
    )
    discrimination = pack["discrimination"]
    return dg.MaterializeResult(
        metadata={
            "model_name": config.registered_model,
            "model_version": version_number,
            "validation_status": pack["status"],
            "failed_gates": dg.MetadataValue.json(failed),
            "inconclusive_gates": dg.MetadataValue.json(waivable),
            "pack_digest": digest,
            "pack_directory": dg.MetadataValue.path(str(pack_dir)),
            "mlflow_artifact_path": artifact_path,
            "validation_pack_html": dg.MetadataValue.path(str(paths["html"])),
            "validation_pack_json": dg.MetadataValue.path(str(paths["json"])),
            "model_card": dg.MetadataValue.path(str(paths["model_card"])),
            "model_card_preview": dg.MetadataValue.md(paths["model_card"].read_text()),
            "gates": dg.MetadataValue.md(gate_table_markdown(pack["gates"])),
            "auc_roc": discrimination.get("auc_roc"),
            "average_precision": discrimination.get("average_precision"),
            "ks": discrimination.get("ks"),
            "champion_version": current if current is not None else "none",
            "data_version": dataset.data_version,
            "policy_version": policy.version,
        },
        check_results=_check_results(pack),
        data_version=dg.DataVersion(digest),
    )


CHAMPION_REVALIDATION = dg.AssetKey(names.CHAMPION_REVALIDATION)


def _revalidations_on_record(instance: dg.DagsterInstance) -> dict[int, datetime]:
    """version -> when it was last revalidated, from the latest 50 ``champion_revalidation``
    materialisations (one that revalidated nothing, e.g. no matured rows yet, has no
    ``revalidated_at`` and is passed over)."""
    records = instance.fetch_materializations(CHAMPION_REVALIDATION, limit=50, ascending=False)
    found: dict[int, datetime] = {}
    for record in records.records:
        mat = record.asset_materialization
        if mat is None or "revalidated_at" not in mat.metadata:
            continue
        version = int(str(mat.metadata["champion_version"].value))
        found.setdefault(version, datetime.fromisoformat(str(mat.metadata["revalidated_at"].value)))
    return found


def _validated_at(client: MlflowClient, model_name: str, version: int) -> datetime | None:
    tags = client.get_model_version(model_name, str(version)).tags
    stamp = tags.get(TAG_VALIDATED_AT)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


@dg.asset(
    group_name=names.VALIDATION_GROUP,
    code_version=group_code_version(names.VALIDATION_GROUP),
    kinds={"mlflow", "html"},
    owners=OWNERS,
    tags={"domain": "validation"},
)
def champion_revalidation(
    context: dg.AssetExecutionContext,
    config: ValidationConfig,
    mlflow: MlflowResource,
    settings: SettingsResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The serving champion re-evaluated, on the policy's cadence, by the validation pack's
    engine and gates on the rows it scored in the latest window whose labels have all matured.

    Evidence only: written as a read-only pack under ``reports/revalidation`` and as artifacts
    of the version's MLflow run. The champion alias, the approvals, the audit trail and the
    version's ``validation_status`` are not touched (a failing revalidation is a signal to
    retrain and re-approve, not a decision).
    """
    refuse_launch_overrides(context)
    policy = load_policy(settings.policy_path or None)
    client = mlflow.client()
    current = champion_version(client, config.registered_model)
    if current is None:
        return dg.MaterializeResult(metadata={"status": "no champion: nothing to revalidate"})
    try:
        version = registered_version(mlflow, config.registered_model, current)
        dataset = snapshot_of(version, Path(settings.home) / DATASETS_DIR)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    protocol = dataset.protocol
    columns = list(version.feature_columns)
    with warehouse.session(read_only=True) as session:
        row = session.one(
            f"SELECT max(partition_date) FROM {SCORES_TABLE} WHERE model_version = ?", [current]
        )
        last_scored = row[0] if row else None
        if last_scored is None:
            return dg.MaterializeResult(
                metadata={
                    "status": f"champion v{current} has scored nothing: nothing to revalidate",
                    "champion_version": current,
                }
            )
        window = revalidation_window(last_scored, protocol.delay_days, protocol.test_days)
        scored = read_scores(session, window[0], window[1], FEATURE_TABLE, columns, LABEL)
        protected = read_protected(session, window[0], window[1])
        log = session.frame(f"SELECT * FROM {INGESTION_LOG_TABLE}")
    scored = scored[scored["model_version"] == current]
    if scored.empty:
        return dg.MaterializeResult(
            metadata={
                "status": (
                    f"champion v{current} scored no rows in the matured window "
                    f"{window[0]}..{window[1]}: nothing to revalidate yet"
                ),
                "champion_version": current,
            }
        )
    frame = scored.drop(columns=["score", "model_name", "model_digest"]).merge(
        protected.drop_duplicates("transaction_id", keep="last"), on="transaction_id", how="left"
    )
    quality = data_quality_summary(log, protocol.train_start, protocol.test_end)
    champion_subject = subject_for_version(
        version, dataset, data_quality=quality, policy_version=policy.version
    )
    now = datetime.now(UTC)
    subject = revalidation_subject(champion_subject, frame, window, revalidated_at=now)
    pack = build_validation_pack(subject, policy, champion=None)
    digest = pack_digest(pack)
    paths = write_pack(
        pack, settings.report_dir("revalidation", config.registered_model, f"v{current}")
    )
    pack_dir = paths["json"].parent
    artifact_path = f"revalidation/{pack_dir.name}"
    if not client.list_artifacts(version.run_id, artifact_path):
        client.log_artifacts(version.run_id, str(pack_dir), artifact_path=artifact_path)
    failed = [g["name"] for g in pack["gates"] if g["result"] == "fail"]
    context.log.info(
        f"{config.registered_model} v{current} revalidated on {window[0]}..{window[1]} "
        f"({len(frame)} rows): {pack['status']}"
        + (f" (failed gates: {', '.join(failed)})" if failed else "")
    )
    discrimination = pack["discrimination"]
    return dg.MaterializeResult(
        metadata={
            "status": f"revalidated: {pack['status']}",
            "champion_version": current,
            "revalidated_at": now.isoformat(),
            "window": f"{window[0]}..{window[1]}",
            "rows": len(frame),
            "revalidation_status": pack["status"],
            "failed_gates": dg.MetadataValue.json(failed),
            "pack_digest": digest,
            "mlflow_artifact_path": artifact_path,
            "revalidation_pack_html": dg.MetadataValue.path(str(paths["html"])),
            "revalidation_pack_json": dg.MetadataValue.path(str(paths["json"])),
            "gates": dg.MetadataValue.md(gate_table_markdown(pack["gates"])),
            "auc_roc": discrimination.get("auc_roc"),
            "average_precision": discrimination.get("average_precision"),
            "policy_version": policy.version,
        },
        data_version=dg.DataVersion(digest),
    )


@dg.asset_check(
    asset=CHAMPION_REVALIDATION,
    name=names.CHAMPION_EVIDENCE_WITHIN_CADENCE,
    description="The serving champion's newest evidence (its validation pack or its latest "
    "revalidation) is at most monitoring.champion_revalidation_days old (WARN otherwise).",
)
def champion_evidence_within_cadence(
    context: dg.AssetCheckExecutionContext, mlflow: MlflowResource, settings: SettingsResource
) -> dg.AssetCheckResult:
    """The pack age of the champion, shown in the UI, yellow once older than the cadence."""
    policy = load_policy(settings.policy_path or None)
    cadence = revalidation_cadence_days(policy)
    client = mlflow.client()
    current = champion_version(client, DEFAULT_REGISTERED_MODEL)
    if current is None:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no champion serves: no evidence to age",
            metadata={"cadence_days": cadence},
        )
    age = evidence_age(
        current,
        _validated_at(client, DEFAULT_REGISTERED_MODEL, current),
        _revalidations_on_record(context.instance),
        now=datetime.now(UTC),
        cadence_days=cadence,
    )
    if age is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"champion v{current} has no validation pack and no revalidation",
            metadata={"champion_version": current, "cadence_days": cadence},
        )
    return dg.AssetCheckResult(
        passed=age.within_cadence,
        severity=dg.AssetCheckSeverity.WARN,
        description=age.describe(),
        metadata=age.to_metadata(),
    )
