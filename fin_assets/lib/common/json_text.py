"""JSON text the platform writes: one sanitiser, one canonical form.

Reports, monitoring summaries and dbt variables are made JSON-safe the same way
(:func:`json_safe`); everything that is hashed — audit-chain entries, validation-pack digests,
the auditor's bundle — is serialised by one rule (:func:`canonical_json`), so that a digest can be
reproduced by anyone, an auditor's script in another language included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``: sorted keys, no spaces, ASCII only, no NaN.

    One text per value is what makes a hash over JSON reproducible; NaN and infinities are
    refused because they are not JSON (make the value JSON-safe first where they may occur).
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def json_safe(value: Any) -> Any:
    """A JSON-able copy: NaN/inf → None, numpy → Python, dates → ISO, sets → sorted lists."""
    if isinstance(value, Mapping):
        return {_json_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(json_safe(v) for v in value)
    if _is_numpy(value):
        # An array becomes a list, a numpy scalar the Python scalar (``tolist`` does both).
        value = value.tolist()
        if isinstance(value, list):
            return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return json_safe(value.to_dict())
    return str(value)


def _json_key(key: Any) -> str:
    if isinstance(key, (datetime, date)):
        return key.isoformat()
    if _is_numpy(key):
        return str(key.tolist())
    return str(key)


def _is_numpy(value: Any) -> bool:
    """A numpy array or scalar, recognised without importing numpy (pandas' Timestamp is a
    ``datetime``): the audit chain uses this module and must start fast in the command line."""
    return type(value).__module__ == "numpy"
