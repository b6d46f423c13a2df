"""``fin-mlops serve`` and ``fin-mlops decisions replay``: the real-time decision path.

``serve`` refuses to start (exit 3, the refusal recorded in the audit trail) unless the champion
is the one the audit trail promoted on a signed approval; ``decisions replay`` recomputes logged
decisions from their logged features and model version and says whether they match bit for bit.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from fin_assets.cli.stores import audit_store
from fin_assets.lib.common.names import DATASETS_DIR
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.features.online_state import OnlineFeatures
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.decision_log import record_refusal
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.serving.decision_records import DecisionLog
from fin_assets.lib.serving.engine import DecisionEngine
from fin_assets.lib.serving.model_source import GovernedModelSource
from fin_resources.locations import Settings, sql_engine
from fin_resources.mlflow_client import TrackingServer
from fin_resources.online_store import open_store

REFUSED = 3


def _serving_settings(policy: Policy) -> dict[str, Any]:
    return dict(policy.values.get("serving") or {})


def open_decision_log(settings: Settings) -> DecisionLog:
    """The decision log of the environment (``FIN_DECISION_LOG_URL``)."""
    return DecisionLog(sql_engine(settings.decision_log_url))


def build_engine(
    settings: Settings, chain: AuditChain, policy: Policy, model_name: str
) -> DecisionEngine:
    """The decision engine of the environment; raises ``Refusal`` on an unverified champion."""
    serving = _serving_settings(policy)
    source = GovernedModelSource(
        TrackingServer(settings.mlflow_tracking_uri),
        chain,
        model_name,
        policy,
        Path(settings.home) / DATASETS_DIR,
        shadows=bool(serving.get("shadow_challengers", True)),
    )
    return DecisionEngine(
        source,
        OnlineFeatures(open_store(settings.online_store_url)),
        open_decision_log(settings),
        reason_count=int(serving.get("reason_codes", 4)),
        policy_version=policy.version,
        out_of_order_seconds=int(serving.get("out_of_order_seconds", 0)),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fin_assets.lib.serving.http_app import create_app

    settings = Settings.from_env()
    with audit_store() as (_engine, chain, policy):
        serving = _serving_settings(policy)
        try:
            engine = build_engine(settings, chain, policy, args.model)
        except Refusal as refusal:
            record_refusal(
                chain,
                refusal,
                actor="service:fin-mlops-serve",
                attempted="serve decisions with the champion",
                subject=f"{args.model}/champion",
                policy=policy,
            )
            print(f"refused ({refusal.code}): {refusal.message}", file=sys.stderr)
            return REFUSED
        champion = engine.models.champion
        shadows = ", ".join(f"v{m.version}" for m in engine.models.shadows) or "none"
        print(
            f"serving {champion.model_name} v{champion.version} (digest {champion.digest[:12]}…, "
            f"alert at score >= {champion.threshold:.6g}: {champion.threshold_source}); "
            f"shadow challengers: {shadows}; on http://{args.host}:{args.port}",
            flush=True,
        )
        check = args.check_seconds or float(serving.get("champion_check_seconds", 5))
        app = create_app(engine, check_seconds=check, max_batch=int(serving.get("max_batch", 1000)))
        # Everything loaded so far (MLflow, xgboost, the models) lives as long as the process:
        # frozen out of the garbage collector, so a full collection never stalls a burst of
        # requests for a few hundred milliseconds scanning it.
        gc.collect()
        gc.freeze()
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            workers=1,
        )
    return 0


def cmd_decisions_replay(args: argparse.Namespace) -> int:
    from fin_assets.lib.serving.replay import float_bits, replay, replay_model

    settings = Settings.from_env()
    with audit_store() as (_engine, _chain, policy):
        reason_count = int(_serving_settings(policy).get("reason_codes", 4))
    log = open_decision_log(settings)
    try:
        logged = log.for_transaction(args.transaction_id)
    finally:
        log.dispose()
    if not logged:
        print(f"no logged decision on transaction {args.transaction_id}", file=sys.stderr)
        return 1
    tracking = TrackingServer(settings.mlflow_tracking_uri)
    all_match = True
    for decision in logged:
        model = replay_model(tracking, decision, Path(settings.home) / DATASETS_DIR)
        result = replay(model, decision, reason_count)
        all_match &= result.matches
        verdict = "MATCH (bit for bit)" if result.matches else "MISMATCH"
        print(f"transaction {decision.transaction_id}, request {decision.request_id}")
        print(f"  decided at      {decision.decided_at}")
        print(
            f"  model           {decision.model_name} v{decision.model_version} "
            f"(logged digest {decision.model_digest[:16]}…, "
            f"{'same bytes' if result.digest_matches else 'ARTIFACT CHANGED'})"
        )
        print(f"  threshold       {decision.threshold!r} ({decision.threshold_source})")
        replayed = "-" if result.score is None else f"{result.score!r} [{float_bits(result.score)}]"
        print(f"  logged score    {decision.score!r} [{float_bits(decision.score)}]")
        print(f"  replayed score  {replayed}")
        print(f"  decision        {'alert' if decision.alert else 'no_alert'}")
        for reason in decision.reason_codes:
            print(f"  reason {reason['rank']}        {reason['reason_text']} ({reason['feature']})")
        print(f"  replay          {verdict}")
    return 0 if all_match else 1


def cmd_decisions_shadow(args: argparse.Namespace) -> int:
    import json

    from fin_assets.lib.common.json_text import canonical_json
    from fin_assets.lib.features.offline_features import DEFAULT_LABEL_DELAY_DAYS
    from fin_assets.lib.serving.shadow_comparison import (
        compare_shadow,
        labels_and_cut,
        shadow_frame,
    )
    from fin_resources.warehouse_engines import open_warehouse

    settings = Settings.from_env()
    with audit_store() as (_engine, _chain, policy):
        validation = policy.section("validation")
    log = open_decision_log(settings)
    try:
        decisions = log.all()
    finally:
        log.dispose()
    with open_warehouse(settings.warehouse_url, read_only=True) as session:
        labels, cut = labels_and_cut(session, decisions, DEFAULT_LABEL_DELAY_DAYS)
    frame = shadow_frame(decisions, labels, args.challenger, cut)
    found = compare_shadow(
        frame,
        amount_bands=validation["amount_bands"],
        top_k=int(validation["top_k"]),
        n_resamples=int(validation["bootstrap_samples"]),
        seed=int(validation["bootstrap_seed"]),
    )
    found["challenger_version"] = int(args.challenger)
    if args.out:
        Path(args.out).write_text(canonical_json(json.loads(json.dumps(found, default=str))))
    print(
        f"challenger v{args.challenger} in shadow of champion "
        f"{found['champion_versions'] or '-'}: {found['rows']} matured decisions, "
        f"{found['positives']} frauds, days {', '.join(found['days']) or '-'}"
    )
    overall = found["overall"]
    if overall is None:
        print("no matured shadowed decision yet: nothing to compare")
        return 0
    for name in ("auc_roc", "average_precision"):
        m = overall[name]
        if m["champion"] is None:
            print(f"  {name:<22} not judged (one class only)")
            continue
        d = m["delta"]
        print(
            f"  {name:<22} champion {m['champion']:.4f}  challenger {m['challenger']:.4f}  "
            f"delta {d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        )
    cp = overall["card_precision_top_k"]
    print(
        f"  card precision top-k   champion {cp['champion']:.4f}  challenger {cp['challenger']:.4f}"
    )
    print(f"  alert overlap          {overall['alert_overlap']}")
    return 0
