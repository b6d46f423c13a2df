"""The child process that loads and scores a model under review (started by ``isolated_scoring``).

It is run by file path (``python -s -P scoring_worker.py <model directory>``), from a private
working directory, with the allow-listed environment ``isolated_scoring`` builds. It imports
nothing of fin_assets: it needs no installed copy of the project, and the only code running next
to the model is this file, numpy, pandas and MLflow.

Protocol, one JSON object per line. The worker answers on the file descriptor that was its
standard output, after pointing its standard output at standard error (the parent's log), so
nothing the model prints can be taken for an answer by accident:

* once loaded: ``{"ok": true}``, or ``{"ok": false, "error": ...}`` and exit status 1;
* for each request ``{"input": <parquet>, "output": <npy>}`` read on standard input: the scores
  of the input rows written to ``output`` as a float64 ``.npy`` file, then ``{"ok": true}``, or
  ``{"ok": false, "error": ...}`` (the traceback goes to standard error);
* at the end of standard input it exits with status 0.

Scores are probabilities of the positive class: a scikit-learn classifier's ``predict_proba``
(its pyfunc ``predict`` would return 0/1), else the last column of the pyfunc output.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

import numpy as np
import pandas as pd

Score = Callable[[pd.DataFrame], Any]


def load_scorer(model_dir: str) -> Score:
    """The model's scoring function (this runs the model's own loading code)."""
    import mlflow.pyfunc
    from mlflow.models import Model

    if "sklearn" in Model.load(model_dir).flavors:
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(model_dir)
        if hasattr(estimator, "predict_proba"):
            return lambda frame: np.asarray(estimator.predict_proba(frame))[:, 1]
    pyfunc = mlflow.pyfunc.load_model(model_dir)

    def score(frame: pd.DataFrame) -> Any:
        output = np.asarray(pyfunc.predict(frame), dtype=np.float64)
        return output.reshape(len(frame), -1)[:, -1]

    return score


def _answer(channel: IO[str], **reply: Any) -> None:
    channel.write(json.dumps(reply) + "\n")
    channel.flush()


def _failure(exc: BaseException) -> str:
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str]) -> int:
    """Load the model named by ``argv[1]`` and answer scoring requests until standard input ends."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        score = load_scorer(argv[1])
    except BaseException as exc:  # the model's loader may raise anything, SystemExit included
        _answer(channel, ok=False, error=_failure(exc))
        return 1
    _answer(channel, ok=True)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            frame = pd.read_parquet(request["input"])
            values = np.asarray(score(frame), dtype=np.float64)
            np.save(request["output"], values, allow_pickle=False)
        except Exception as exc:
            _answer(channel, ok=False, error=_failure(exc))
            continue
        _answer(channel, ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
