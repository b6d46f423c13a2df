"""``fin-mlops validate`` on a model our pipeline did not train: a credit PD model.

A validator brings an MLflow model and labelled application data; the same engine that validates
the fraud challengers produces the pack, with the protected attributes and segments the validator
names, and refuses a model that uses a protected attribute as an input.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from mlflow.models import infer_signature
from sklearn.metrics import roc_auc_score

from fin_resources.locations import Settings
from tests.e2e.test_cli import BIN, run

FEATURES = ["income", "debt_to_income", "months_employed", "open_credit_lines"]


def _applications(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.5, rows),
            "debt_to_income": rng.beta(2, 5, rows),
            "months_employed": rng.integers(0, 240, rows).astype(float),
            "open_credit_lines": rng.poisson(4, rows).astype(float),
            "age_band": rng.choice(["18-25", "26-40", "41-60", "61+"], rows),
            "sex": rng.choice(["F", "M"], rows),
            "region": rng.choice(["north", "south", "east"], rows),
        }
    )
    logit = -3.0 + 4.0 * frame["debt_to_income"] - 0.004 * frame["months_employed"]
    frame["defaulted"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _log_model(features: list[str], frame: pd.DataFrame, name: str) -> str:
    """Train and register a model outside the pipeline, as a credit team would."""
    model = xgb.XGBClassifier(n_estimators=40, max_depth=3, random_state=0, n_jobs=1)
    x = frame[features].astype(float)
    model.fit(x, frame["defaulted"])
    settings = Settings.from_env()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name("credit_team") is None:
        # An explicit location: MLflow would otherwise write artifacts to $CWD/mlruns.
        mlflow.create_experiment(
            "credit_team", artifact_location=(settings.home / "credit_artifacts").as_uri()
        )
    mlflow.set_experiment("credit_team")
    with mlflow.start_run():
        mlflow.xgboost.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x)[:, 1]),
            registered_model_name=name,
            pip_requirements=["xgboost"],
        )
    return f"models:/{name}/1"


def reported_paths(stdout: str) -> dict[str, Path]:
    """The pack's files as ``fin-mlops validate`` prints them (``  <kind>  <path>``)."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) == 2 and parts[0] in ("json", "html", "model_card"):
            found[parts[0]] = Path(parts[1])
    return found


@pytest.fixture
def tracking(fin_home: Path) -> None:
    fin_home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(Settings.from_env().mlflow_tracking_uri)


def test_validate_an_external_credit_model_with_protected_attributes(
    fin_home: Path, tracking: None, tmp_path: Path
) -> None:
    uri = _log_model(FEATURES, _applications(1, 6000), "credit_pd")
    data = _applications(2, 4000)
    path = tmp_path / "applications.parquet"
    data.to_parquet(path)
    out = tmp_path / "pack"
    proc = run(
        [
            str(BIN / "fin-mlops"),
            "validate",
            "--model-uri",
            uri,
            "--data",
            str(path),
            "--label",
            "defaulted",
            "--protected",
            "age_band,sex",
            "--segments",
            "region",
            "--model-kind",
            "credit",
            "--out",
            str(out),
        ],
        {},
    )
    assert proc.returncode in (0, 2), proc.stderr[-3000:]
    paths = reported_paths(proc.stdout)
    # The pack's own read-only directory under --out, named by its JSON bytes.
    json_bytes = paths["json"].read_bytes()
    assert paths["json"].parent == out / hashlib.sha256(json_bytes).hexdigest()[:16]
    assert {p.parent for p in paths.values()} == {paths["json"].parent}
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths.values()} == {0o444}
    pack = json.loads(json_bytes)
    # The pack's AUC is the model's AUC on the validator's data, computed independently here.
    model = mlflow.xgboost.load_model(uri)
    expected = roc_auc_score(data["defaulted"], model.predict_proba(data[FEATURES])[:, 1])
    assert pack["discrimination"]["auc_roc"] == pytest.approx(expected, abs=1e-6)
    assert set(pack["fairness"]["attributes"]) == {"age_band", "sex"}
    groups = {g["group"] for g in pack["fairness"]["attributes"]["age_band"]["groups"]}
    assert groups == {"18-25", "26-40", "41-60", "61+"}
    region = [d for d in pack["segments"]["dimensions"] if d["column"] == "region"]
    assert region and {s["segment"] for s in region[0]["segments"]} == {"north", "south", "east"}
    reasons = pack["explanations"]["reason_codes"]
    assert len(reasons) == pack["explanations"]["adverse_decisions"] > 0
    assert all(r["feature"] in FEATURES for code in reasons for r in code["reasons"])
    status_line = [line for line in proc.stdout.splitlines() if line.startswith("status ")]
    assert status_line and status_line[0].split()[1] == pack["status"]
    assert proc.returncode == (0 if pack["status"] == "passed" else 2)


def test_validate_refuses_a_model_that_uses_a_protected_attribute(
    fin_home: Path, tracking: None, tmp_path: Path
) -> None:
    frame = _applications(3, 3000)
    frame["age"] = np.random.default_rng(4).integers(18, 80, len(frame)).astype(float)
    uri = _log_model([*FEATURES, "age"], frame, "credit_pd_with_age")
    path = tmp_path / "applications.csv"
    frame.to_csv(path, index=False)
    proc = run(
        [
            str(BIN / "fin-mlops"),
            "validate",
            "--model-uri",
            uri,
            "--data",
            str(path),
            "--label",
            "defaulted",
            "--protected",
            "age,sex",
            "--out",
            str(tmp_path / "pack"),
        ],
        {},
    )
    assert proc.returncode == 1
    assert "age" in proc.stderr and "protected" in proc.stderr
    assert not (tmp_path / "pack").exists()
