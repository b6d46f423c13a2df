"""A model under review runs as data or in a child process, never as code in the validator.

Real MLflow models saved to local directories: XGBoost boosters are read from their native file
without importing anything the model names, and everything else is loaded in a child process
whose failures (a loader that raises, a model that hangs) come back as clear errors.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
import yaml
from mlflow.models import infer_signature

from fin_assets.lib.training.model_registry import NotNativeModelError, read_native_booster
from fin_assets.lib.validation.isolated_scoring import (
    IsolatedModelError,
    child_environment,
    isolated_model,
)

COLUMNS = ["a", "b"]


def frame(rows: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "label": 1})


def private_dir(tmp_path: Path) -> Path:
    path = tmp_path / "private"
    path.mkdir(mode=0o700)
    return path


def save_pyfunc(python_model: mlflow.pyfunc.PythonModel, path: Path) -> Path:
    mlflow.pyfunc.save_model(
        str(path),
        python_model=python_model,
        signature=infer_signature(frame()[COLUMNS]),
        pip_requirements=["mlflow"],
    )
    return path


def save_xgboost(path: Path) -> tuple[Path, xgb.XGBClassifier]:
    data = frame(200)
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=0)
    model.fit(data[COLUMNS], (data["a"] > 0).astype(int))
    mlflow.xgboost.save_model(model, str(path), pip_requirements=["xgboost"])
    return path, model


def edit_flavor(model_dir: Path, **changes: Any) -> None:
    mlmodel = model_dir / "MLmodel"
    spec = yaml.safe_load(mlmodel.read_text())
    spec["flavors"]["xgboost"].update(changes)
    mlmodel.write_text(yaml.safe_dump(spec))


def test_the_childs_environment_is_built_from_the_allow_list_only(tmp_path: Path) -> None:
    parent = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/srv/fin-mlops",
        "HOME": "/home/validator",
        "TMPDIR": "/tmp/validator",
        "FIN_APPROVER_TOKEN": "t0ken",
        "FIN_PII_KEY": "k3y",
        "FIN_AUDIT_URL": "postgresql://auditor:pw@db/audit",
        "MLFLOW_TRACKING_URI": "https://user:pw@mlflow.bank",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/gcp.json",
        "DATABASE_URL": "postgresql://app:pw@db/app",
    }
    assert child_environment(parent, tmp_path) == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/srv/fin-mlops",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def test_the_validator_makes_itself_unreadable_to_processes_of_its_user() -> None:
    probe = (
        "import ctypes\n"
        "from fin_assets.lib.validation.isolated_scoring import refuse_inspection_by_same_user\n"
        "libc = ctypes.CDLL(None)\n"
        "before = libc.prctl(3, 0, 0, 0, 0)\n"  # PR_GET_DUMPABLE
        "refuse_inspection_by_same_user()\n"
        "print(before, libc.prctl(3, 0, 0, 0, 0))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["1", "0"]


def test_a_native_booster_is_read_as_data_with_the_wrappers_probabilities(
    tmp_path: Path,
) -> None:
    model_dir, model = save_xgboost(tmp_path / "model")
    native = read_native_booster(model_dir, "m")
    assert native.model_class == "xgboost.sklearn.XGBClassifier"
    data = frame(50)[COLUMNS]
    scores = native.booster.predict(xgb.DMatrix(data))
    np.testing.assert_array_equal(scores, model.predict_proba(data)[:, 1])


def test_a_booster_that_names_foreign_code_is_refused_without_running_it(
    tmp_path: Path,
) -> None:
    model_dir, _ = save_xgboost(tmp_path / "model")
    marker = tmp_path / "payload_ran"
    (model_dir / "code").mkdir()
    (model_dir / "code" / "fin_test_payload.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Payload:\n    pass\n"
    )
    edit_flavor(model_dir, model_class="fin_test_payload.Payload", code="code")
    with pytest.raises(NotNativeModelError, match=r"names the class 'fin_test_payload\.Payload'"):
        read_native_booster(model_dir, "models:/outside/1")
    assert not marker.exists() and "fin_test_payload" not in sys.modules


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_format": "pkl", "data": "model.pkl"}, "format 'pkl'"),
        ({"model_format": "ubj", "data": "model.pkl"}, "format 'ubj'"),
        ({"data": "../model.ubj"}, "is not in the model"),
    ],
)
def test_a_booster_stored_otherwise_than_natively_is_refused(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    model_dir, _ = save_xgboost(tmp_path / "model")
    (model_dir / "model.ubj").rename(model_dir / "model.pkl")
    (tmp_path / "model.ubj").write_bytes((model_dir / "model.pkl").read_bytes())
    edit_flavor(model_dir, **changes)
    with pytest.raises(NotNativeModelError, match=message):
        read_native_booster(model_dir, "models:/outside/1")


def test_a_pyfunc_model_is_scored_in_the_child_on_its_columns_only(tmp_path: Path) -> None:
    class SumModel(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            assert list(model_input.columns) == ["a", "b"]
            return model_input["a"] + 2 * model_input["b"]

    model_dir = save_pyfunc(SumModel(), tmp_path / "model")
    rows = frame(4).set_index(pd.Index([10, 11, 12, 13]))
    with isolated_model("models:/sum/1", model_dir, COLUMNS, private_dir(tmp_path)) as model:
        scores = model(rows)
        again = model(rows.iloc[::-1])
    np.testing.assert_array_equal(scores, rows["a"] + 2 * rows["b"])
    np.testing.assert_array_equal(again, scores[::-1])


def test_a_model_that_fails_to_load_is_named_with_its_error(tmp_path: Path) -> None:
    class Unloadable(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            raise RuntimeError("weights file missing from the artifact")

        def predict(self, context, model_input, params=None):
            return model_input["a"]

    model_dir = save_pyfunc(Unloadable(), tmp_path / "model")
    workdir = private_dir(tmp_path)
    with (
        pytest.raises(IsolatedModelError) as failure,
        isolated_model("models:/unloadable/3", model_dir, COLUMNS, workdir),
    ):
        pass
    message = str(failure.value)
    assert message.startswith(
        "model models:/unloadable/3 failed while loading the model: "
        "RuntimeError: weights file missing from the artifact; its last error lines:\n"
    )
    assert message.endswith("RuntimeError: weights file missing from the artifact")


def test_a_model_that_hangs_is_killed_with_what_it_started(tmp_path: Path) -> None:
    started = tmp_path / "grandchild.pid"

    class Hanger(mlflow.pyfunc.PythonModel):
        def __init__(self, pid_file: str) -> None:
            self.pid_file = pid_file

        def predict(self, context, model_input, params=None):
            import subprocess
            import time

            helper = subprocess.Popen(["sleep", "300"])
            with open(self.pid_file, "w") as out:
                out.write(str(helper.pid))
            time.sleep(300)

    model_dir = save_pyfunc(Hanger(str(started)), tmp_path / "model")
    with isolated_model("models:/hanger/1", model_dir, COLUMNS, private_dir(tmp_path)) as model:
        model.timeout_seconds = 1.0
        with pytest.raises(IsolatedModelError, match=r"^model models:/hanger/1 was killed after"):
            model(frame())
    assert running(int(started.read_text())) is False


def running(pid: int, patience: float = 5.0) -> bool:
    """Whether ``pid`` still runs after ``patience`` seconds (a zombie waiting for init to reap
    it has stopped running; SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + patience
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        if not stat.exists() or stat.read_text().split()[2] == "Z":
            return False
        time.sleep(0.05)
    return True
