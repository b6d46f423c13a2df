"""Benchmark of the point-in-time features against their budget (docs/architecture.md §5).

Budget, full Handbook file (1.75 M transactions) through the offline path, 2 cores: at most 5 s
and 2 GB peak RSS; at least 50x faster than the Handbook's own pandas approach; the aim is to
beat an idiomatic polars implementation and never to be slower than a plain DuckDB window query.
All of them run side by side in this run, each in a fresh subprocess (so peak RSS is its own),
file to file (read the parquet file, compute, write a parquet file), with 2 threads:

* ours: ``compute_features_for_file`` — the dbt models' compiled SQL on an in-memory DuckDB
  (the one-off ``dbt compile``, cached on disk by a fingerprint of the project, is shown apart);
* (a) the Handbook's pandas ``groupby(entity).apply`` with time-based ``rolling``
  (tests/unit/reference_features.py), on a ``--baseline-sample`` share of customers and
  terminals, its time extrapolated to the whole file (said so in the table);
* (b) polars: ``rolling_sum_by``/``rolling_mean_by`` ``.over(entity)``, the Handbook's
  rolling(d + w) - rolling(d) for terminals;
* (c) one plain DuckDB query: RANGE windows over epoch seconds, no tie handling.

Then one incremental day by dbt on a warehouse holding the base history and on one holding a
10x longer history (copies of the file shifted in time): it should cost about the same.

Optionally (``--postgres URL``) the same dbt models on PostgreSQL: a full build and one day, for
sizing (no budget).

Then the first backfill through the assets (``--backfill-days``, default the 136 days 2018-04-01
..2018-08-14 of the Handbook file): the days are ingested (untimed), then ``build_features_job``
runs once over the whole range on a Dagster instance, as ``fin-mlops demo`` and a single-run
backfill do; timed against the offline path on the same rows. Budget: within 3x. Each instance
(SQLite; PostgreSQL with ``--postgres``) runs with Dagster's event writes one by one and batched
(``fin_resources.locations.DAGSTER_EVENT_SETTINGS``), to show where the time goes.

Run: ``.venv/bin/python bench/bench_features.py [--rows N] [--baseline-sample 0.05]
[--skip-offline] [--skip-incremental] [--skip-backfill] [--backfill-days 136] [--postgres URL]``.
Exits 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = Path(
    os.environ.get("FIN_SHARED_DATA", REPO.parent / "shared" / "data"),
    "handbook",
    "transactions.parquet",
)
THREADS = 2
BUDGET_SECONDS = 5.0
BUDGET_RSS_MB = 2048.0
PANDAS_FACTOR = 50.0
HANDBOOK_PUBLISHED_SECONDS = 240.0  # "about 4 minutes" (docs/architecture.md §5)
DELAY = 7
WINDOWS = (1, 7, 30)
BACKFILL_FACTOR = 3.0
BACKFILL_START = "2018-04-01"


# --------------------------------------------------------------------------------------------
# workers: each runs in its own process and prints one JSON line
# --------------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB.

    VmHWM from /proc, not getrusage: ru_maxrss survives exec, so a worker would report at least
    the driver's size; VmHWM belongs to the worker's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(work: Callable[[], int]) -> dict[str, Any]:
    began, cpu = time.perf_counter(), time.process_time()
    rows = work()
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - cpu,
        "rows": rows,
    }


def worker_compile(args: argparse.Namespace) -> dict[str, Any]:
    """A cold ``dbt compile`` of the feature models (dbt import included), bypassing caches."""
    began = time.perf_counter()
    from fin_assets.lib.features.compiled_sql import dbt_compile

    dbt_compile({"label_delay_days": DELAY, "start_date": "", "end_date": ""}, "bench")
    return {"seconds": time.perf_counter() - began, "rows": 0}


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    """The offline path exactly as the CLI runs it (compiled SQL from the on-disk cache)."""
    from fin_assets.lib.features.offline_features import compute_features_for_file

    return _timed(lambda: compute_features_for_file(args.input, "handbook", args.output, DELAY))


def worker_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    """One plain DuckDB window query: RANGE frames over epoch seconds, ties not handled."""
    import duckdb

    def run() -> int:
        customer = ",\n".join(
            f"count(*) over c{w} as customer_id_nb_tx_{w}day_window, "
            f"avg(tx_amount) over c{w} as customer_id_avg_amount_{w}day_window"
            for w in WINDOWS
        )
        terminal = ",\n".join(
            f"count(*) over t{w} as terminal_id_nb_tx_{w}day_window, "
            f"coalesce(avg(tx_fraud) over t{w}, 0) as terminal_id_risk_{w}day_window"
            for w in WINDOWS
        )
        windows = ", ".join(
            [
                f"c{w} as (partition by customer_id order by epoch_s "
                f"range between {w * 86400 - 1} preceding and current row)"
                for w in WINDOWS
            ]
            + [
                f"t{w} as (partition by terminal_id order by epoch_s "
                f"range between {(DELAY + w) * 86400 - 1} preceding "
                f"and {DELAY * 86400} preceding)"
                for w in WINDOWS
            ]
        )
        query = f"""
            with tx as (
                select TRANSACTION_ID as transaction_id, TX_DATETIME as tx_datetime,
                       CUSTOMER_ID as customer_id, TERMINAL_ID as terminal_id,
                       TX_AMOUNT as tx_amount, TX_FRAUD as tx_fraud,
                       cast(epoch(TX_DATETIME) as bigint) as epoch_s
                from read_parquet('{args.input}')
            )
            select transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud,
                   cast(dayofweek(tx_datetime) in (0, 6) as integer) as tx_during_weekend,
                   cast(hour(tx_datetime) <= 6 as integer) as tx_during_night,
                   {customer},
                   {terminal}
            from tx
            window {windows}
        """
        config: dict[str, str | bool | int | float | list[str]] = {
            "threads": THREADS,
            "preserve_insertion_order": False,
        }
        with duckdb.connect(config=config) as con:
            written = con.execute(f"copy ({query}) to '{args.output}' (format parquet)").fetchall()
        return int(written[0][0])

    return _timed(run)


def worker_polars(args: argparse.Namespace) -> dict[str, Any]:
    """Idiomatic polars: rolling_*_by over each entity (POLARS_MAX_THREADS=2 set by the parent)."""
    import polars as pl

    def run() -> int:
        df = (
            pl.read_parquet(args.input)
            .sort("TX_DATETIME", "TRANSACTION_ID")
            .with_columns(one=pl.lit(1, pl.Int64))
        )
        by = "TX_DATETIME"
        exprs = [
            (pl.col(by).dt.weekday() >= 6).cast(pl.Int32).alias("TX_DURING_WEEKEND"),
            (pl.col(by).dt.hour() <= 6).cast(pl.Int32).alias("TX_DURING_NIGHT"),
        ]
        for w in WINDOWS:
            exprs += [
                pl.col("one")
                .rolling_sum_by(by, f"{w}d")
                .over("CUSTOMER_ID")
                .alias(f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"),
                pl.col("TX_AMOUNT")
                .rolling_mean_by(by, f"{w}d")
                .over("CUSTOMER_ID")
                .alias(f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"),
            ]
        nb_delay = pl.col("one").rolling_sum_by(by, f"{DELAY}d").over("TERMINAL_ID")
        fraud_delay = pl.col("TX_FRAUD").rolling_sum_by(by, f"{DELAY}d").over("TERMINAL_ID")
        for w in WINDOWS:
            span = f"{DELAY + w}d"
            nb = pl.col("one").rolling_sum_by(by, span).over("TERMINAL_ID") - nb_delay
            fraud = pl.col("TX_FRAUD").rolling_sum_by(by, span).over("TERMINAL_ID") - fraud_delay
            exprs += [
                nb.alias(f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"),
                pl.when(nb > 0)
                .then(fraud / nb)
                .otherwise(0.0)
                .alias(f"TERMINAL_ID_RISK_{w}DAY_WINDOW"),
            ]
        out = df.with_columns(exprs).drop("one")
        out.write_parquet(args.output)
        return out.height

    return _timed(run)


def worker_pandas(args: argparse.Namespace) -> dict[str, Any]:
    """The Handbook's baseline feature transformation, as published.

    Row-wise ``apply`` for the two calendar flags and the sorts run on the whole file; the two
    ``groupby(entity).apply`` passes run on a sample of customers and of terminals and their
    time is extrapolated by the share of rows they processed.
    """
    import numpy as np
    import pandas as pd

    from fin_assets.lib.features.feature_references import (
        get_count_risk_rolling_window,
        get_customer_spending_behaviour_features,
        per_entity,
    )

    def is_weekend(tx_datetime: pd.Timestamp) -> int:
        return int(tx_datetime.weekday() >= 5)

    def is_night(tx_datetime: pd.Timestamp) -> int:
        return int(tx_datetime.hour <= 6)

    transactions = pd.read_parquet(args.input)
    rng = np.random.default_rng(7)
    customers = transactions["CUSTOMER_ID"].unique()
    terminals = transactions["TERMINAL_ID"].unique()
    take_c = rng.choice(customers, max(1, round(len(customers) * args.fraction)), replace=False)
    take_t = rng.choice(terminals, max(1, round(len(terminals) * args.fraction)), replace=False)
    by_customer = transactions[transactions["CUSTOMER_ID"].isin(take_c)]
    by_terminal = transactions[transactions["TERMINAL_ID"].isin(take_t)]

    def whole_file() -> int:
        frame = transactions.copy()
        frame["TX_DURING_WEEKEND"] = frame.TX_DATETIME.apply(is_weekend)
        frame["TX_DURING_NIGHT"] = frame.TX_DATETIME.apply(is_night)
        for _ in range(2):  # after each groupby pass
            frame = frame.sort_values("TX_DATETIME").reset_index(drop=True)
        return len(frame)

    def sampled() -> int:
        a = per_entity(by_customer, "CUSTOMER_ID", get_customer_spending_behaviour_features)
        b = per_entity(by_terminal, "TERMINAL_ID", get_count_risk_rolling_window)
        return len(a) + len(b)

    fixed, grouped = _timed(whole_file), _timed(sampled)
    scale = 2 * len(transactions) / max(len(by_customer) + len(by_terminal), 1)
    return {
        "seconds": fixed["seconds"] + grouped["seconds"] * scale,
        "cpu_seconds": fixed["cpu_seconds"] + grouped["cpu_seconds"] * scale,
        "rows": len(transactions),
        "sample_rows": len(by_customer) + len(by_terminal),
        "scale": scale,
    }


def worker_incremental(args: argparse.Namespace) -> dict[str, Any]:
    """Full dbt build of the history before ``day`` (untimed setup), then the day itself, timed."""
    import datetime as dt

    from fin_assets.lib.features.dbt_runner import run_dbt

    day = dt.date.fromisoformat(args.day)
    tmp = Path(args.output)
    target, logs = tmp / "target", tmp / "logs"
    began = time.perf_counter()
    run_dbt(["run"], args.warehouse, {"end_date": day}, target_path=target, log_path=logs)
    setup = time.perf_counter() - began
    one_day = {"start_date": day, "end_date": day + dt.timedelta(days=1)}
    began = time.perf_counter()
    result = run_dbt(["run"], args.warehouse, one_day, target_path=target, log_path=logs)
    seconds = time.perf_counter() - began
    models = sum(float(r.execution_time) for r in getattr(result.result, "results", []))
    return {"seconds": seconds, "model_seconds": models, "setup_seconds": setup, "rows": 0}


def worker_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """The dbt models on PostgreSQL: load the file into a fresh database, build all days but the
    last (timed), then the last day alone (timed); the database is dropped afterwards."""
    import datetime as dt
    import uuid

    import duckdb
    import sqlalchemy as sa

    from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL
    from fin_assets.lib.features.dbt_runner import run_dbt

    admin = sa.create_engine(args.warehouse, isolation_level="AUTOCOMMIT")
    name = f"fin_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name)
    dsn = url.render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    tmp = Path(args.output)
    try:
        csv = tmp / "raw.csv"
        with duckdb.connect() as con:
            first, last = con.execute(
                f"select min(TX_DATETIME)::date, max(TX_DATETIME)::date "
                f"from read_parquet('{args.input}')"
            ).fetchall()[0]
            con.execute(
                f"copy (select TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, "
                f"TX_FRAUD, TX_FRAUD_SCENARIO, null, null, cast(TX_DATETIME as date), 'bench', "
                f"'bench' from read_parquet('{args.input}')) to '{csv}' (header false)"
            )
        began = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text("create schema raw"))
            conn.execute(sa.text(RAW_TRANSACTIONS_DDL))
            cursor = conn.connection.cursor()
            with csv.open() as handle:
                cursor.copy_expert("copy raw.transactions from stdin with (format csv)", handle)
        load = time.perf_counter() - began
        target, logs = tmp / "pg_target", tmp / "pg_logs"
        began = time.perf_counter()
        run_dbt(
            ["run"],
            dsn,
            {"end_date": last},
            target_path=target,
            log_path=logs,
        )
        build = time.perf_counter() - began
        one_day = {"start_date": last, "end_date": last + dt.timedelta(days=1)}
        began = time.perf_counter()
        result = run_dbt(
            ["run"],
            dsn,
            one_day,
            target_path=target,
            log_path=logs,
        )
        seconds = time.perf_counter() - began
        models = sum(float(r.execution_time) for r in getattr(result.result, "results", []))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select count(*) from features.transaction_features"))
            count = int(rows.scalar_one())
        return {
            "seconds": seconds,
            "model_seconds": models,
            "build_seconds": build,
            "load_seconds": load,
            "days": (last - first).days + 1,
            "rows": count,
        }
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pipeline_env(args: argparse.Namespace) -> list[Any]:
    """Point this worker at the bench's FIN_HOME, the Handbook file as source and the instance
    (SQLite under ``--dagster-home``, or PostgreSQL at ``--instance-url``); the days to build."""
    import datetime as dt

    os.environ.update(
        FIN_HOME=args.home,
        DAGSTER_HOME=args.dagster_home,
        FIN_DAGSTER_PG_URL=args.instance_url or "",
        FIN_SOURCE="files",
        FIN_SOURCE_PATH=str(HANDBOOK),
        FIN_SOURCE_MAPPING="handbook",
        FIN_PII_KEY="bench-pii-key",
    )
    start = dt.date.fromisoformat(BACKFILL_START)
    return [start + dt.timedelta(days=i) for i in range(args.days)]


def worker_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest the backfill's days through ``raw_transactions`` (the backfill's setup)."""
    days = _pipeline_env(args)
    from fin_assets.cli.run_helpers import run_ingestion

    began = time.perf_counter()
    outcomes = run_ingestion(days)
    if not all(ok for _, ok, _ in outcomes):
        raise RuntimeError("ingestion failed")
    return {"seconds": time.perf_counter() - began, "rows": len(days)}


def worker_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """``build_features_job`` over every day in one run, as a single-run backfill runs it."""
    days = _pipeline_env(args)
    from fin_resources.locations import DAGSTER_EVENT_SETTINGS, apply_dagster_event_settings

    if args.events == "batched":
        apply_dagster_event_settings()
    else:
        os.environ.update(dict.fromkeys(DAGSTER_EVENT_SETTINGS, "0"))
        os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "false"
    import duckdb

    from fin_assets.cli.run_helpers import dagster_instance, run_feature_build
    from fin_resources.locations import Settings

    # A first backfill: no feature table yet (the variants share the ingested warehouse).
    with duckdb.connect(Settings.from_env().warehouse_path) as con:
        con.execute("drop schema if exists features cascade")
    dagster_instance()  # creates the instance's storage: not part of a backfill's cost
    began, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sys.stderr):
        ok = run_feature_build(days)
    if not ok:
        raise RuntimeError("the feature backfill failed")
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - cpu,
        "rows": len(days),
    }


WORKERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "compile": worker_compile,
    "ours": worker_ours,
    "duckdb": worker_duckdb,
    "polars": worker_polars,
    "pandas": worker_pandas,
    "incremental": worker_incremental,
    "postgres": worker_postgres,
    "ingest": worker_ingest,
    "backfill": worker_backfill,
}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def _spawn(name: str, **options: Any) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "POLARS_MAX_THREADS": str(THREADS), "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _prepare_input(rows: int | None, tmp: Path) -> tuple[Path, int]:
    import duckdb

    if rows is None:
        with duckdb.connect() as con:
            total = con.execute(f"select count(*) from read_parquet('{HANDBOOK}')").fetchall()
        return HANDBOOK, int(total[0][0])
    path = tmp / "input.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from read_parquet('{HANDBOOK}') order by TX_DATETIME, TRANSACTION_ID "
            f"limit {rows}) to '{path}' (format parquet)"
        )
    return path, rows


def _warehouse(path: Path, source: Path, copies: int) -> tuple[int, str]:
    """A DuckDB warehouse whose raw.transactions holds ``copies`` back-to-back copies of the file.

    Copy k is shifted by k times the file's span (whole days) and gets transaction ids offset by
    k * 10^9, so the longer history looks like more of the same business.
    """
    import duckdb

    sys.path.insert(0, str(REPO))
    from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL

    with duckdb.connect(str(path)) as con:
        first, last = con.execute(
            f"select min(TX_DATETIME)::date, max(TX_DATETIME)::date from read_parquet('{source}')"
        ).fetchall()[0]
        span = (last - first).days + 1
        con.execute("create schema raw")
        con.execute(RAW_TRANSACTIONS_DDL)
        for k in range(copies):
            con.execute(
                f"""
                insert into raw.transactions
                select TRANSACTION_ID + {k * 1_000_000_000},
                       TX_DATETIME + interval ({k * span}) day,
                       CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD, TX_FRAUD_SCENARIO,
                       null, null, cast(TX_DATETIME + interval ({k * span}) day as date),
                       'bench', 'bench'
                from read_parquet('{source}')
                order by TX_DATETIME, TRANSACTION_ID
                """
            )
        rows, day = con.execute(
            "select count(*), max(partition_date)::varchar from raw.transactions"
        ).fetchall()[0]
    return int(rows), str(day)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _offline_table(source: Path, tmp: Path, fraction: float) -> int:
    """Every approach file to file, side by side; returns the number of budgets missed."""
    compile_run = _spawn("compile")
    # Warm the on-disk compile cache the CLI uses, then time each approach.
    _spawn("ours", input=source, output=tmp / "warm.parquet")
    ours = _spawn("ours", input=source, output=tmp / "ours.parquet")
    duck = _spawn("duckdb", input=source, output=tmp / "duckdb.parquet")
    polars = _spawn("polars", input=source, output=tmp / "polars.parquet")
    pandas = _spawn("pandas", input=source, baseline_sample=fraction)
    table = [
        (
            "ours: dbt SQL, offline path",
            ours,
            "<= 5 s, <= 2 GB",
            ours["seconds"] <= BUDGET_SECONDS and ours["peak_rss_mb"] <= BUDGET_RSS_MB,
        ),
        (
            "(a) Handbook pandas apply+rolling *",
            pandas,
            ">= 50x slower than ours",
            pandas["seconds"] >= PANDAS_FACTOR * ours["seconds"],
        ),
        (
            "(b) polars rolling_*_by.over",
            polars,
            "slower than ours (aim)",
            polars["seconds"] >= ours["seconds"],
        ),
        (
            "(c) plain DuckDB window query",
            duck,
            "not faster than ours",
            duck["seconds"] >= ours["seconds"],
        ),
    ]
    header = (
        f"{'approach':<38} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12} "
        f"{'vs ours':>8}  {'budget':<26} {'result':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    failures = 0
    for name, r, budget, ok in table:
        print(
            f"{name:<38} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f} "
            f"{r['peak_rss_mb']:>12.0f} {r['seconds'] / ours['seconds']:>7.1f}x  "
            f"{budget:<26} {_verdict(ok):>6}"
        )
        failures += 0 if ok else 1
    print(f"{'  one-off dbt compile (cached on disk)':<38} {compile_run['seconds']:>8.2f}")
    print(
        f"* groupby.apply passes extrapolated from a {fraction:.0%} sample of customers and of "
        f"terminals ({pandas['sample_rows']:,} entity-rows, x{pandas['scale']:.1f}); flags and "
        "sorts timed on the whole file; RSS of the sampled run."
    )
    print(
        f"  Against the ~{HANDBOOK_PUBLISHED_SECONDS:.0f} s the Handbook's authors report for (a), "
        f"ours is {HANDBOOK_PUBLISHED_SECONDS / ours['seconds']:.0f}x faster."
    )
    print("  (b) and (c) also count later same-second transactions (no tie rule); ours does not.")
    return failures


def _incremental_table(source: Path, tmp: Path, multiplier: int) -> int:
    """One dbt day on the base history and on a ``multiplier`` times longer one."""
    header = (
        f"{'one incremental day (dbt run, 4 models)':<44} {'raw rows':>12} "
        f"{'dbt wall s':>11} {'model SQL s':>12} {'full build s':>13}"
    )
    print()
    print(header)
    print("-" * len(header))
    model_seconds = []
    for copies in (1, multiplier):
        warehouse = tmp / f"warehouse_{copies}.duckdb"
        raw_rows, day = _warehouse(warehouse, source, copies)
        inc = _spawn("incremental", warehouse=warehouse, day=day, output=tmp)
        label = "base history" if copies == 1 else f"{copies}x longer history"
        print(
            f"{label + ', day ' + day:<44} {raw_rows:>12,} "
            f"{inc['seconds']:>11.2f} {inc['model_seconds']:>12.2f} "
            f"{inc['setup_seconds']:>13.1f}"
        )
        model_seconds.append(inc["model_seconds"])
        warehouse.unlink()
    ok = model_seconds[1] <= 2 * model_seconds[0] + 0.5
    print(
        f"  model SQL ratio {model_seconds[1] / model_seconds[0]:.2f} (about the same: "
        f"{_verdict(ok)}); dbt wall adds ~3 s of start-up and parsing (vars change every run)."
    )
    print("  Feature tables hold the whole history before the day (full build, untimed setup).")
    return 0 if ok else 1


def _postgres_table(source: Path, tmp: Path, url: str, rows: int) -> int:
    """The same models on PostgreSQL: no budget (architecture §5 sets none), printed for sizing."""
    pg = _spawn("postgres", input=source, output=tmp, warehouse=url)
    print()
    header = (
        f"{'dbt on PostgreSQL (same models)':<44} {'rows':>12} {'wall s':>9} {'model SQL s':>12}"
    )
    print(header)
    print("-" * len(header))
    load, build = pg["load_seconds"], pg["build_seconds"]
    print(f"{'COPY of the file into raw.transactions':<44} {rows:>12,} {load:>9.1f}")
    label = f"full build of the first {pg['days'] - 1} days"
    print(f"{label:<44} {'':>12} {build:>9.1f}")
    print(
        f"{'one incremental day (the last)':<44} {'':>12} {pg['seconds']:>9.2f} "
        f"{pg['model_seconds']:>12.2f}"
    )
    print(f"  feature rows after both: {pg['rows']:,} (= transactions: {pg['rows'] == rows})")
    return 0 if pg["rows"] == rows else 1


@contextlib.contextmanager
def _scratch_database(admin_url: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database on ``admin_url``'s server, dropped after; "" without one."""
    if not admin_url:
        yield ""
        return
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fin_bench_dagster_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _backfill_table(tmp: Path, days: int, postgres: str | None) -> int:
    """The first backfill through the assets against the offline path on the same rows."""
    import datetime as dt

    import duckdb

    end = dt.date.fromisoformat(BACKFILL_START) + dt.timedelta(days=days)
    rows_file = tmp / "backfill_rows.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from read_parquet('{HANDBOOK}') where TX_DATETIME >= "
            f"'{BACKFILL_START}' and TX_DATETIME < '{end}' "
            f"order by TX_DATETIME, TRANSACTION_ID) to '{rows_file}' (format parquet)"
        )
        rows = int(con.execute(f"select count(*) from '{rows_file}'").fetchall()[0][0])
    home = tmp / "backfill_home"
    common = {"home": home, "days": days}
    ingest = _spawn("ingest", dagster_home=home / "dagster_ingest", **common)
    offline = _spawn("ours", input=rows_file, output=tmp / "backfill_offline.parquet")
    instances = [("SQLite", None)] + ([("PostgreSQL", postgres)] if postgres else [])
    results = []
    for label, admin_url in instances:
        for events in ("one by one", "batched"):
            with _scratch_database(admin_url) as url:
                run = _spawn(
                    "backfill",
                    dagster_home=home / f"dagster_{label}_{events.replace(' ', '_')}",
                    instance_url=url,
                    events="batched" if events == "batched" else "single",
                    **common,
                )
            results.append((f"assets, {label} instance, events {events}", run, events))
    print()
    header = (
        f"{'first backfill: ' + str(days) + ' days, one run':<48} {'wall s':>8} {'cpu s':>8} "
        f"{'vs offline':>10}  {'budget':<10} {'result':>6}"
    )
    print(header)
    print("-" * len(header))
    print(
        f"{'offline path (fin-mlops features), same rows':<48} {offline['seconds']:>8.2f} "
        f"{offline['cpu_seconds']:>8.2f} {1.0:>9.1f}x"
    )
    failures = 0
    for name, run, events in results:
        ratio = run["seconds"] / offline["seconds"]
        ok = ratio <= BACKFILL_FACTOR
        budget = f"<= {BACKFILL_FACTOR:.0f}x" if events == "batched" else "(before)"
        verdict = _verdict(ok) if events == "batched" else ""
        failures += 0 if ok or events != "batched" else 1
        print(
            f"{name:<48} {run['seconds']:>8.2f} {run['cpu_seconds']:>8.2f} {ratio:>9.1f}x  "
            f"{budget:<10} {verdict:>6}"
        )
    print(
        f"  {rows:,} transactions; ingestion of the days beforehand (untimed): "
        f"{ingest['seconds']:.0f} s. Batched: DAGSTER_EVENT_SETTINGS (fin_resources/locations.py)."
    )
    return failures


def main(argv: list[str] | None = None) -> int:
    """Run every approach in its own process and print the comparison tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="first N rows of the file")
    parser.add_argument("--baseline-sample", type=float, default=0.05, dest="fraction")
    parser.add_argument("--history-multiplier", type=int, default=10)
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--skip-incremental", action="store_true")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--backfill-days", type=int, default=136)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also build the dbt models on this PostgreSQL server (an admin URL; a scratch "
        "database is created and dropped), e.g. postgresql+psycopg2://postgres@127.0.0.1/postgres",
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--dagster-home", help=argparse.SUPPRESS)
    parser.add_argument("--instance-url", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = WORKERS[args.worker](args)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
        return 0

    if not HANDBOOK.exists():
        print(f"Handbook data set not found at {HANDBOOK}", file=sys.stderr)
        return 2

    failures = 0
    with tempfile.TemporaryDirectory(prefix="fin_bench_features_") as tmp_name:
        tmp = Path(tmp_name)
        source, rows = _prepare_input(args.rows, tmp)
        print(
            f"Point-in-time features: {rows:,} transactions, {THREADS} threads, "
            f"load average {os.getloadavg()[0]:.2f} at start"
        )
        if not args.skip_offline:
            failures += _offline_table(source, tmp, args.fraction)
        if not args.skip_incremental:
            failures += _incremental_table(source, tmp, args.history_multiplier)
        if args.postgres:
            failures += _postgres_table(source, tmp, args.postgres, rows)
        if not args.skip_backfill:
            failures += _backfill_table(tmp, args.backfill_days, args.postgres)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
