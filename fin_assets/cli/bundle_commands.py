"""``fin-mlops audit check-bundle``: an auditor verifies a bundle offline, from the bundle alone.

Reads nothing but the bundle file (and, if given, the model's booster file to re-hash): no audit
store, no registry, no Dagster. The administrator key id comes from the auditor, obtained
independently (the bank's key ceremony record), never from the bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import xgboost as xgb

from fin_assets.lib.governance.audit_export import verify_bundle
from fin_assets.lib.training.model_fit import booster_digest


def cmd_audit_check_bundle(args: argparse.Namespace) -> int:
    bundle = json.loads(Path(args.bundle).read_text(encoding="utf-8"))
    model_digest = None
    if args.model_file:
        booster = xgb.Booster(model_file=args.model_file)
        model_digest = booster_digest(booster)
    problems = verify_bundle(bundle, admin_key_id=args.admin_key_id, model_digest=model_digest)
    what = f"{bundle['model_name']} version {bundle['model_version']}"
    if problems:
        print(f"bundle of {what}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    checked = len(bundle.get("full_chain") or [])
    extra = (
        f"; the approvals name the model file's digest {model_digest[:16]}…" if model_digest else ""
    )
    print(
        f"bundle of {what} verified offline: {checked} chain entries re-hashed, every signature "
        f"checked against administrator key {args.admin_key_id[:16]}…{extra}"
    )
    return 0
