"""Each day's monitoring report is logged to MLflow (whose UI shows HTML artifacts), and the
metadata links to it when ``MLFLOW_UI_URL`` is set; a real SQLite tracking store, no mocks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import xgboost as xgb

from fin_assets.lib.validation.model_loading import RegisteredVersion
from fin_assets.monitoring import log_monitoring_report
from fin_resources.mlflow_tracking import MlflowResource


def _champion() -> RegisteredVersion:
    data = xgb.DMatrix(np.arange(20.0).reshape(10, 2), label=[0, 1] * 5, feature_names=["a", "b"])
    booster = xgb.train({"max_depth": 1}, data, num_boost_round=1)
    return RegisteredVersion("fraud_detector", 3, "run", {}, booster)


def test_the_daily_report_is_an_mlflow_artifact_with_a_link(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "2018-06-10"
    report.mkdir(parents=True)
    (report / "drift_report.html").write_text("<html>drift</html>")
    (report / "summary.json").write_text("{}")
    summary = {"drift_share": 0.25, "drifted_features": 3, "max_psi": {"psi": 0.31}}
    tracking = MlflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=str(tmp_path / "artifacts"),
        ui_url="http://127.0.0.1:5000/",
    )
    found = log_monitoring_report(
        tracking, _champion(), date(2018, 6, 10), report, summary, "dagster-1"
    )
    client = tracking.client()
    run = client.get_run(found["mlflow_monitoring_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "monitoring-2018-06-10"
    assert run.data.tags["fin/model_version"] == "3"
    assert run.data.tags["fin/dagster_run_id"] == "dagster-1"
    assert run.data.metrics == {"drift_share": 0.25, "drifted_features": 3.0, "max_psi": 0.31}
    names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "monitoring"))
    assert names == ["monitoring/drift_report.html", "monitoring/summary.json"]
    experiment = client.get_experiment_by_name("fraud_detector-monitoring")
    assert experiment is not None
    assert found["drift_report_url"].value == (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/"
        f"{run.info.run_id}/artifacts"
    )
    # without a UI address: the run id only (the report's path stays in the metadata)
    plain = MlflowResource(tracking_uri=tracking.tracking_uri, artifact_root=tracking.artifact_root)
    again = log_monitoring_report(
        plain, _champion(), date(2018, 6, 10), report, summary, "dagster-2"
    )
    assert set(again) == {"mlflow_monitoring_run_id"}
    assert again["mlflow_monitoring_run_id"] != run.info.run_id
