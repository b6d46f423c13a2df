"""Reading what earlier materializations recorded (hand-offs, the audit anchor); the audit chain.

Training snapshots and model versions are not loaded by an I/O manager: the downstream asset reads
the metadata of the upstream materialization (a snapshot path named by its data version, a model
version) and re-checks what it names. Shared by several asset modules, so it lives beside them
rather than in one of them (asset modules never import each other).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from fin_assets.lib.common import names
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.witness import Witness
from fin_resources.audit_store import AuditStoreResource


def upstream_metadata(
    context: dg.AssetExecutionContext, key: dg.AssetKey
) -> tuple[dict[str, Any], str]:
    """Metadata of the ``key`` materialization this run made, else of the latest one, and which.

    A run that made its upstream uses exactly that, never another run's.
    """
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in reversed(records):
        mat = record.event_log_entry.asset_materialization
        if mat is not None and mat.asset_key == key:
            return {k: v.value for k, v in mat.metadata.items()}, "this run"
    latest = context.instance.get_latest_materialization_event(key)
    mat = latest.asset_materialization if latest else None
    if mat is None:
        name = key.to_user_string()
        raise dg.Failure(f"{name} was never materialised: materialise it first")
    return {k: v.value for k, v in mat.metadata.items()}, f"run {latest.run_id if latest else ''}"


def audit_anchor(instance: dg.DagsterInstance) -> tuple[int, str] | None:
    """The head (seq, hash) of the audit chain recorded by the latest ``audit_trail``
    materialisation: an anchor kept outside the audit database."""
    latest = instance.get_latest_materialization_event(dg.AssetKey(names.AUDIT_TRAIL))
    mat = latest.asset_materialization if latest else None
    if mat is None or "head_seq" not in mat.metadata:
        return None
    return int(mat.metadata["head_seq"].value), str(mat.metadata["head_hash"].value)  # type: ignore[arg-type]


@contextmanager
def audit_chain(audit_store: AuditStoreResource) -> Iterator[AuditChain]:
    """The audit chain of the run's audit store (schema ensured), anchoring every write in the
    store's witness; its engine disposed after."""
    engine = audit_store.engine()
    try:
        yield AuditChain(engine, witness=Witness(audit_store.witness_file()))
    finally:
        engine.dispose()
