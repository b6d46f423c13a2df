"""MLflow tracking and registry with explicit run ids (never MLflow's global active run)."""

from __future__ import annotations

from pathlib import Path

import mlflow
from dagster import ConfigurableResource
from mlflow.tracking import MlflowClient

from fin_resources.mlflow_client import tracking_client


class MlflowResource(ConfigurableResource):
    """A client bound to one tracking URI; experiments get an explicit artifact location.

    ``dagster-mlflow``'s resource relies on the process-global active run, so two in-process runs
    would share one MLflow run; passing run ids explicitly through this client avoids that. The
    resource is bound under the key ``mlflow`` so that dagster-mlflow's
    ``end_mlflow_on_run_finished`` hook (on every job that touches MLflow) can call
    :meth:`end_run` as a safety net. Without an explicit location MLflow would write artifacts to
    ``$CWD/mlruns``.
    """

    tracking_uri: str
    artifact_root: str
    #: Base URL of the MLflow UI for links in asset metadata (``MLFLOW_UI_URL``); empty: none.
    ui_url: str = ""

    def client(self) -> MlflowClient:
        """A client of the tracking server and of the model registry (one URI for both)."""
        return tracking_client(self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created under ``artifact_root/name`` if missing.

        Against a tracking server (``http(s)://``) a local folder would mean a folder on the
        machine of whichever process logs, not on the server: unless ``artifact_root`` is itself
        a URI (``s3://…``), the server's own artifact store decides (``mlflow server
        --artifacts-destination``, which the server proxies), so every client sees the same files.
        """
        client = self.client()
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        location = self.artifact_root
        if self.tracking_uri.startswith(("http://", "https://")) and "://" not in location:
            return str(client.create_experiment(name))
        if "://" not in location:
            path = Path(location).expanduser().resolve() / name
            path.mkdir(parents=True, exist_ok=True)
            location = path.as_uri()
        else:
            location = f"{location.rstrip('/')}/{name}"
        return str(client.create_experiment(name, artifact_location=location))

    def end_run(self, status: str = "FINISHED") -> None:
        """End MLflow's process-global active run if one is left (dagster-mlflow's hook calls it).

        Our code never leaves one open; this closes anything a library started with the fluent
        API, so that the next Dagster run in the same process cannot log into it.
        """
        if mlflow.active_run() is not None:
            mlflow.end_run(status=status)
