"""Code versions of the Python assets: a digest of the code that computes each group.

Dagster shows an asset as changed when its ``code_version`` differs from the one recorded with its
last materialization. Deriving the version from the source files (the group's asset module, its
library package and the shared ``common`` package) means nobody has to remember to bump a number
after a change, and an unchanged checkout always reports the same version.
"""

import hashlib
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def group_code_version(group: str) -> str:
    """12 hex digits over ``fin_assets/<group>.py``, ``lib/<group>/`` and ``lib/common/``."""
    files = [_PACKAGE / f"{group}.py"]
    for folder in (_PACKAGE / "lib" / group, _PACKAGE / "lib" / "common"):
        files += sorted(folder.rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(_PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
