"""An MLflow client for a tracking URI, without Dagster: what the governance commands need.

``MlflowResource`` (``fin_resources.mlflow_tracking``) hands the same client to assets; the command
line builds it here so that ``fin-mlops pending`` does not import Dagster.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient


def tracking_client(tracking_uri: str) -> MlflowClient:
    """A client of the tracking server and of the model registry at ``tracking_uri``.

    A ``sqlite:///`` store's folder is created first: MLflow creates the file, not its folder.
    """
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


class TrackingServer:
    """A tracking URI with its client: what library code that loads models needs, sans Dagster."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def client(self) -> MlflowClient:
        """A client of this server's tracking store and model registry."""
        return tracking_client(self.tracking_uri)
