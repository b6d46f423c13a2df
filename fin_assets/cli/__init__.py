"""``fin-mlops``: the command line (parser in ``arguments``; commands in their own modules).

``main`` parses, then imports only the module of the command that runs: the governance commands
never load xgboost or dbt, and ``--help`` loads nothing but the parser.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

from fin_assets.cli.arguments import build_parser
from fin_resources.locations import apply_dagster_event_settings


def main(argv: list[str] | None = None) -> int:
    """Run one ``fin-mlops`` command; its exit status."""
    # ``backfill_policy`` is a beta parameter in Dagster 1.13, and dagster-mlflow's hook is beta:
    # their notices are noise for CLI users.
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")
    warnings.filterwarnings("ignore", message="Function `_create_mlflow_run_hook`")
    # Models are read as files (native boosters): MLflow's per-download progress bars would
    # bury the command's own output. A user who wants them sets the variable.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Runs launched by the command line write a backfill's events in batches (fin_resources).
    apply_dagster_event_settings()
    args = build_parser().parse_args(argv)
    module, _, function = str(args.command_target).partition(":")
    command = getattr(importlib.import_module(module), function)
    return int(command(args))


if __name__ == "__main__":
    sys.exit(main())
