"""No module imports upward: the command line uses the library, targets use render and spec, and
never the reverse. Read from the source with `ast`, so a lazy import inside a function counts too.
The serving runtime (generator/runtime) imports nothing of mlgen's at all: bundles carry it alone."""

from __future__ import annotations

import ast

from helpers import ROOT

PACKAGE = ROOT / "generator"
# Lower layers first. A module may import its own part or a lower layer.
LAYERS = [
    {"__init__", "errors", "resources", "smoke"},  # smoke: standard library only, copied into bundles
    {"spec"},
    {"render"},
    {"bundle", "examples", "lock", "monitoring", "output"},
    {"targets"},
    {"plan", "schema", "docs", "serve", "scaffold"},
    {"jobs", "pricing", "verify"},
    {"advisor", "choosing"},
    {"cli"},
    {"__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
IMPORT_NAMES = ("generator", "mlgen")


def _part(module_path: str) -> str:
    """The top-level part of mlgen a dotted module name belongs to (`spec` for mlgen.spec.load)."""
    parts = module_path.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in IMPORT_NAMES and not node.level:
            if node.module in IMPORT_NAMES:  # `from mlgen import targets`: the names are the parts
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] in IMPORT_NAMES]
    return found


def test_no_module_imports_a_higher_layer():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "runtime":
            continue
        importer = relative.parts[0].removesuffix(".py")
        assert importer in RANK, f"{relative} belongs to no layer: add its part to LAYERS"
        for line, module in _imports(path):
            imported = _part(module)
            if imported in RANK and imported != importer and RANK[imported] >= RANK[importer]:
                offences.append(f"generator/{relative}:{line}: {importer} imports {module}")
    assert not offences, "imports that go upward or sideways:\n" + "\n".join(offences)


def test_the_runtime_imports_nothing_of_mlgen():
    runtime = PACKAGE / "runtime"
    offences = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in sorted(runtime.rglob("*.py"))
                for line, module in _imports(path)]
    assert not offences, offences
