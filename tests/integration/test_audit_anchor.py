"""The hourly anchor on a real Dagster instance: `anchor_audit_trail_job` through the real
Definitions, its check `audit_chain_intact`, and the witness that outlives Dagster's history.

The audit store and the witness are the environment's (a fresh FIN_HOME and XDG_STATE_HOME per
test). Tampering is what a database administrator could do: drop the append-only triggers and
delete the newest rows.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from fin_assets.cli.stores import audit_store
from fin_assets.definitions import defs as load_definitions
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.witness import Witness
from fin_resources.locations import Settings

CHECK = "audit_chain_intact"


def _anchor_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return (
        load_definitions()
        .resolve_job_def("anchor_audit_trail_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK]
    return evaluation


def _write(n: int, *, witnessed: bool = True) -> list[str]:
    """n entries through the CLI's store (anchored as written) or a chain without a witness."""
    with audit_store() as (engine, chain, _policy):
        writer = chain if witnessed else AuditChain(engine)
        return [
            writer.append("approved", "vera", f"fraud_detector/{i}", {"i": i}).entry_hash
            for i in range(n)
        ]


def _truncate(from_seq: int) -> None:
    engine = sa.create_engine(Settings.from_env().audit_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_delete")
            conn.execute(sa.text("DELETE FROM audit_entries WHERE seq >= :s"), {"s": from_seq})
    finally:
        engine.dispose()


def test_the_anchor_job_records_the_head_and_goes_red_on_a_truncated_tail(
    fin_home: Path,
) -> None:
    witness = Witness(Settings.from_env().witness_path)
    _write(2)  # entries 2..3 after the witness's attachment (entry 1)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _anchor_run(instance)
        assert first.success
        assert _check(first).passed is True
        meta = first.asset_materializations_for_node("audit_trail")[0].metadata
        assert (meta["head_seq"].value, meta["anchors_checked"].value) == (3, 2)
        assert meta["witness"].value == str(witness.path)

        # A writer without a witness (as champion_model builds its chain) leaves its entries
        # unanchored until the next run anchors them.
        late = _write(2, witnessed=False)
        assert witness.anchors()[-1].seq == 3
        second = _anchor_run(instance)
        assert second.success and _check(second).passed is True
        last = witness.last()
        assert last is not None and (last.seq, last.entry_hash) == (5, late[-1])
        assert (
            second.asset_materializations_for_node("audit_trail")[0].metadata["anchored_on"].value
            == f"3:{meta['head_hash'].value[:12]}"
        )

        _truncate(4)
        tampered = _anchor_run(instance)
        assert not tampered.success
        check = _check(tampered)
        assert check.passed is False
        assert check.severity == dg.AssetCheckSeverity.ERROR
        assert check.description == (
            f"the chain ends at seq 3 but the anchor names seq 5 (witness line 4, recorded "
            f"{last.recorded_at}): entries 4..5 were removed (truncated tail)"
        )
        assert check.metadata["first_bad_seq"].value == 4
        failure = next(e for e in tampered.all_events if e.is_step_failure)
        assert "audit trail broken at entry 4" in str(failure.event_specific_data)
        # A failed verification records nothing: the witness keeps the untruncated head.
        assert witness.last() == last


def test_a_wiped_dagster_history_does_not_make_a_truncated_chain_intact(fin_home: Path) -> None:
    """Before the witness, a new instance had no anchor and the truncated chain 'verified'."""
    _write(3)
    with dg.DagsterInstance.ephemeral() as instance:
        assert _anchor_run(instance).success
    _write(2)  # written after the last Dagster anchor: only the witness anchored them
    _truncate(5)
    with dg.DagsterInstance.ephemeral() as wiped:
        result = _anchor_run(wiped)
    assert not result.success
    check = _check(result)
    assert check.passed is False and check.metadata["anchored_on"].value == "none"
    assert "entries 5..6 were removed (truncated tail)" in (check.description or "")
