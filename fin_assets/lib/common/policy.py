"""The versioned policy file: thresholds are data, not code (docs/architecture.md §4)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policy" / "policy.yaml"


@dataclass(frozen=True)
class Policy:
    """A loaded policy with its declared version and the hash of its exact bytes.

    The hash is recorded next to the version so that an edit which forgot to bump the version
    is still visible in every decision that used it.
    """

    version: str
    sha256: str
    path: str
    values: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        """One section of the policy; a missing section is an error, never a silent default."""
        if name not in self.values:
            raise KeyError(f"policy {self.path} has no section {name!r}")
        section = self.values[name]
        if not isinstance(section, dict):
            raise TypeError(f"policy {self.path}: section {name!r} must be a mapping")
        return section


def load_policy(path: str | Path | None = None) -> Policy:
    """Load the policy from ``path`` (``FIN_POLICY``) or the packaged default."""
    policy_path = Path(path) if path else DEFAULT_POLICY_PATH
    raw = policy_path.read_bytes()
    values = yaml.safe_load(raw)
    if not isinstance(values, dict) or "version" not in values:
        raise ValueError(f"policy {policy_path} must be a mapping with a 'version' key")
    return Policy(
        version=str(values["version"]),
        sha256=hashlib.sha256(raw).hexdigest(),
        path=str(policy_path),
        values=values,
    )
