"""The spec's JSON Schema, put together from its parts.

The core (generator/spec/core.schema.json) describes everything but `targets.<name>`; each target
brings the fragment for its own settings (`Target.schema`). The built-in targets' fragments are
merged once, into the published specs/mlgen.v1.schema.json (`python -m mlgen.schema`), so a
normal validation reads one file. A spec that configures a plugin target (an entry point in the
group `mlgen.targets`) gets that plugin's fragment merged in as well, so plugin settings are
validated, defaulted and located like any other field.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Mapping

from mlgen.resources import schema as published_schema

CORE_SCHEMA = Path(__file__).resolve().parent / "core.schema.json"
# A plugin target that declares no schema takes no settings.
NO_SETTINGS = {"type": "object", "additionalProperties": False, "default": {}}


def core_schema() -> dict:
    return json.loads(CORE_SCHEMA.read_text(encoding="utf-8"))


def compose(base: dict, fragments: Mapping[str, Mapping]) -> dict:
    """`base` with each fragment as `targets.<name>`; a fragment's own `$defs` move to the root,
    where its `#/$defs/…` references resolve."""
    composed = copy.deepcopy(base)
    properties = composed["properties"]["targets"].setdefault("properties", {})
    definitions = composed.setdefault("$defs", {})
    for name, fragment in fragments.items():
        fragment = copy.deepcopy(dict(fragment))
        for key, definition in fragment.pop("$defs", {}).items():
            if key in definitions and definitions[key] != definition:
                raise ValueError(f"target {name!r} redefines $defs/{key} differently from the core schema")
            definitions[key] = definition
        properties[name] = fragment
    return composed


def plugin_targets(data: object) -> tuple[str, ...]:
    """Names under the spec's `targets` that the published schema does not know: plugin targets
    (or typos, which validation then reports as unknown fields)."""
    configured = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(configured, dict):
        return ()
    known = published_schema()["properties"]["targets"]["properties"]
    return tuple(sorted(name for name in configured if isinstance(name, str) and name not in known))


@functools.cache
def spec_schema(plugins: tuple[str, ...] = ()) -> dict:
    """The schema a spec is validated against: the published one, plus the fragments of the
    installed plugin targets among `plugins`."""
    if not plugins:
        return published_schema()
    fragments = _plugin_fragments()
    return compose(published_schema(), {name: fragments[name] for name in plugins if name in fragments})


def installed_plugin_targets() -> tuple[str, ...]:
    """Every plugin target installed beside mlgen, for documentation that lists them all."""
    return tuple(sorted(_plugin_fragments()))


@functools.cache
def _plugin_fragments() -> dict[str, Mapping]:
    from importlib.metadata import entry_points  # only specs naming a plugin target pay for the scan

    fragments = {}
    for entry in entry_points(group="mlgen.targets"):
        target = entry.load()
        fragment = getattr(target, "schema", None)
        fragments[entry.name] = fragment or NO_SETTINGS
    return fragments
