"""specs/mlgen.v1.schema.json, the published schema: the core (generator/spec/core.schema.json)
with every built-in target's settings fragment (`Target.schema`, the `schema.json` in its folder).
`python -m mlgen.schema > specs/mlgen.v1.schema.json`; a test fails when it is stale."""

from __future__ import annotations

import orjson

from mlgen import targets
from mlgen.spec.schema import compose, core_schema


def published_schema() -> dict:
    return compose(core_schema(), {name: targets.get(name).schema for name in targets.BUILTIN})


def published_text() -> str:
    # Key order is kept: it is the order docs/spec.md lists the fields in.
    return orjson.dumps(published_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"


if __name__ == "__main__":
    print(published_text(), end="")
