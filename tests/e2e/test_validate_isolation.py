"""``fin-mlops validate`` runs a model under review without the validator's secrets.

A pyfunc model is arbitrary Python: this one, logged to MLflow as a credit team would, looks for
the approver's token, the signing-key path, the audit database URL and cloud credentials, and
dumps its whole environment and working directory into a file. The validator runs with all of
them set; the model must have seen none of them, and the pack must still be produced from its
scores.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
from mlflow.models import infer_signature
from sklearn.metrics import roc_auc_score

from fin_assets.cli import main
from fin_assets.lib.validation.isolated_scoring import PASSED_VARIABLES
from fin_resources.locations import Settings
from tests.e2e.test_validate_cli import FEATURES, _applications, reported_paths

#: What a validator's process holds and a model under review must never see.
SECRETS = {
    "FIN_APPROVER_TOKEN": "approver-token-that-must-not-leak",
    "FIN_SIGNING_KEY_FILE": "/run/secrets/fin-signing.key",
    "FIN_AUDIT_URL": "postgresql://auditor:audit-password@audit-db:5432/audit",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-that-must-not-leak",
    "GOOGLE_APPLICATION_CREDENTIALS": "/run/secrets/gcp-service-account.json",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-password-that-must-not-leak",
}


def risk(debt_to_income: Any) -> Any:
    """The model's score, recomputed independently by the test."""
    return 1.0 / (1.0 + np.exp(3.0 - 4.0 * np.asarray(debt_to_income, dtype=np.float64)))


def secret_hunter(report: Path, watched: list[str]) -> mlflow.pyfunc.PythonModel:
    """A model whose ``predict`` records what it can find, then scores honestly.

    Defined in a function, so cloudpickle stores the class's code by value in the model: the
    validator's process must run exactly this code to score it.
    """

    class SecretHunter(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import json
            import os
            from pathlib import Path

            seen = {
                "watched": {name: os.environ.get(name) for name in watched},
                "environ": dict(os.environ),
                "started_with": Path("/proc/self/environ").read_text(encoding="utf-8"),
                "cwd": os.getcwd(),
                "cwd_mode": os.stat(os.getcwd()).st_mode,
                "columns": list(model_input.columns),
            }
            with open(report, "a", encoding="utf-8") as out:
                out.write(json.dumps(seen) + "\n")
            x = np.asarray(model_input["debt_to_income"], dtype=np.float64)
            return 1.0 / (1.0 + np.exp(3.0 - 4.0 * x))

    return SecretHunter()


def log_pyfunc(python_model: mlflow.pyfunc.PythonModel, name: str, example: Any) -> str:
    """Log and register a pyfunc model outside the pipeline, as another team would."""
    settings = Settings.from_env()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name("outside_models") is None:
        mlflow.create_experiment(
            "outside_models", artifact_location=(settings.home / "outside_artifacts").as_uri()
        )
    mlflow.set_experiment("outside_models")
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            signature=infer_signature(example),
            registered_model_name=name,
            pip_requirements=["mlflow"],
        )
    return f"models:/{name}/1"


def validate(uri: str, data: Path, out: Path) -> int:
    """``fin-mlops validate`` in this process, whose environment is the validator's."""
    return main(
        [
            "validate",
            "--model-uri",
            uri,
            "--data",
            str(data),
            "--label",
            "defaulted",
            "--protected",
            "sex",
            "--model-kind",
            "credit",
            "--out",
            str(out),
        ]
    )


@pytest.fixture
def validator_env(fin_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The validator's environment: a tracking store, and every secret of :data:`SECRETS`."""
    fin_home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", Settings.from_env().mlflow_tracking_uri)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


def test_a_pyfunc_model_under_review_sees_none_of_the_validators_secrets(
    validator_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "what_the_model_saw.jsonl"
    uri = log_pyfunc(
        secret_hunter(report, sorted(SECRETS)),
        "outside_pd",
        _applications(1, 50)[FEATURES],
    )
    data = _applications(2, 3000)
    path = tmp_path / "applications.parquet"
    data.to_parquet(path)
    status = validate(uri, path, tmp_path / "packs")
    out, err = capsys.readouterr()
    assert status in (0, 2), err[-3000:]

    sightings = [json.loads(line) for line in report.read_text().splitlines()]
    assert sightings, "the model was never asked to score"
    for seen in sightings:
        assert seen["watched"] == dict.fromkeys(sorted(SECRETS))
        leaked = [v for v in seen["environ"].values() if any(s in v for s in SECRETS.values())]
        assert leaked == []
        prefixes = ("FIN_", "MLFLOW_", "AWS_", "GOOGLE_", "DAGSTER_")
        assert [k for k in seen["environ"] if k.startswith(prefixes)] == []
        # The whole environment it was started with (libraries may add to os.environ later):
        # the allow-list with the validator's values, a private HOME and TMPDIR, nothing else.
        cwd = Path(seen["cwd"])
        started_with = dict(v.split("=", 1) for v in seen["started_with"].split("\0") if v)
        assert started_with == {
            **{k: validator_env[k] for k in PASSED_VARIABLES if k in validator_env},
            "HOME": str(cwd / "home"),
            "TMPDIR": str(cwd / "tmp"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        assert cwd != Path.cwd() and stat.S_IMODE(seen["cwd_mode"]) == 0o700
        # Only the model's inputs crossed: not the label, not the protected attribute.
        assert seen["columns"] == FEATURES
    assert not Path(sightings[0]["cwd"]).exists(), "the private directory is removed"

    paths = reported_paths(out)
    assert set(paths) == {"json", "html", "model_card"}
    assert paths["json"].parent.parent == tmp_path / "packs"
    pack = json.loads(paths["json"].read_text())
    assert pack["identity"]["model_flavors"] == ["python_function"]
    expected = roc_auc_score(data["defaulted"], risk(data["debt_to_income"]))
    assert pack["discrimination"]["auc_roc"] == pytest.approx(expected, abs=1e-12)
    assert pack["explanations"]["available"] is False


def test_a_model_that_crashes_while_scoring_fails_with_its_own_last_words(
    validator_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Crasher(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import os
            import sys

            sys.stderr.write("scorecard: coefficient table is corrupt\n")
            sys.stderr.flush()
            os._exit(7)

    uri = log_pyfunc(Crasher(), "crashing_pd", _applications(1, 50)[FEATURES])
    path = tmp_path / "applications.parquet"
    _applications(2, 500).to_parquet(path)
    assert validate(uri, path, tmp_path / "packs") == 1
    message = capsys.readouterr().err.strip().splitlines()
    first = next(i for i, line in enumerate(message) if line.startswith("validate: "))
    assert message[first] == (
        "validate: model models:/crashing_pd/1 exited with status 7 while scoring 500 rows; "
        "its last error lines:"
    )
    assert "scorecard: coefficient table is corrupt" in message[first + 1 :]
    assert not (tmp_path / "packs").exists()
