"""Settings as a Dagster resource: the report folders and the policy file, for assets."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource


class SettingsResource(ConfigurableResource):
    """Paths for reports and other plain files, exposed to assets as a resource."""

    home: str
    reports_dir: str
    policy_path: str = ""

    def report_dir(self, *parts: str) -> Path:
        """A directory under the reports root, created on demand."""
        path = Path(self.reports_dir).joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path
