"""docs/spec.md, generated from the JSON Schema so the reference cannot drift from what mlgen
accepts (with the settings of any plugin target installed beside mlgen). `python -m mlgen.docs`
prints it; a test fails when the committed copy is stale."""

from __future__ import annotations

import json

from mlgen.spec.schema import installed_plugin_targets, spec_schema

HEADER = """# The mlgen spec (mlgen.dev/v1)

Generated from `specs/mlgen.v1.schema.json` by `python -m mlgen.docs > docs/spec.md`; do not
edit by hand. `mlgen schema` prints the schema itself for editors. Paths are relative to the
spec's folder; every field not marked required has the default shown.

| field | type | default | description |
|---|---|---|---|
"""


def spec_reference() -> str:
    root = spec_schema(installed_plugin_targets())
    rows: list[str] = []
    _walk(root, root, "", set(root.get("required", [])), rows)
    return HEADER + "\n".join(rows) + "\n"


def _walk(node: dict, root: dict, path: str, required: set[str], rows: list[str]) -> None:
    for name, prop in node.get("properties", {}).items():
        prop = _resolve(prop, root)
        field = f"{path}.{name}" if path else name
        rows.append(_row(field, prop, root, name in required))
        if "properties" in prop:
            _walk(prop, root, field, set(prop.get("required", [])), rows)
        items = _resolve(prop.get("items", {}), root) if isinstance(prop.get("items"), dict) else {}
        if "properties" in items:
            _walk(items, root, f"{field}[]", set(items.get("required", [])), rows)


def _row(field: str, prop: dict, root: dict, required: bool) -> str:
    kind = _type(prop, root)
    if "default" in prop and prop["default"] not in ({}, []):
        default = f"`{json.dumps(prop['default'])}`"
    else:
        default = "**required**" if required else ""
    text = prop.get("description", "")
    if prop.get("pattern"):
        text += f" Pattern: `{prop['pattern']}`."
    if "examples" in prop:
        text += f" Example: `{json.dumps(prop['examples'][0], ensure_ascii=False)}`."
    cell = text.replace("|", "\\|")
    return f"| `{field}` | {kind} | {default} | {cell} |"


def _type(prop: dict, root: dict) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "oneOf" in prop:
        return " or ".join(_type(_resolve(option, root), root) for option in prop["oneOf"])
    kind = prop.get("type", "")
    if kind == "array" and isinstance(prop.get("items"), dict):
        return f"list of {_type(_resolve(prop['items'], root), root)}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {_type(prop['additionalProperties'], root)}"
    return kind or "any"


def _resolve(prop: dict, root: dict) -> dict:
    if "$ref" not in prop:
        return prop
    target = root
    for part in prop["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    merged = dict(target)
    merged.update({k: v for k, v in prop.items() if k != "$ref"})
    return merged


if __name__ == "__main__":
    print(spec_reference(), end="")
