"""Where the data files that ship with mlgen live: templates/, specs/ and the runtime sources.

In a source checkout they sit beside the package; in an installed wheel they are inside it
(pyproject.toml force-includes them), so both layouts are searched.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
RUNTIME_DIR = PACKAGE_DIR / "runtime"


def _data_dir(name: str) -> Path:
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mlgen's {name}/ folder is missing from the installation")


def templates_dir() -> Path:
    return _data_dir("templates")


def schema_path() -> Path:
    return _data_dir("specs") / "mlgen.v1.schema.json"


@functools.cache
def schema() -> dict:
    return json.loads(schema_path().read_text(encoding="utf-8"))


def cache_dir(name: str) -> Path:
    """mlgen's cache folder `name` (under $XDG_CACHE_HOME or ~/.cache), not yet created: what is
    kept there can always be made again."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlgen" / name
