"""Handler references and handler imports, checked at validate time by reading the modules with
`ast`: a user's code is never imported or run here (that is `mlgen verify`'s job).

- A reference (`module:function`) names something defined at the top level of its module, and a
  function takes the arguments the runtime passes (docs/runtime.md, "Handler contract"): a pipeline
  step the tensors and optionally a context; `model.handler`, a class or factory, nothing.
- A handler module's top-level imports are provided by the standard library, the runtime, the
  modules the bundle carries, or a distribution of runtime.requirements."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mlgen.errors import Level, Problem
from mlgen.spec.distributions import (
    FORMAT_REQUIREMENTS, GPU_REQUIREMENTS, GRPC_REQUIREMENTS, IMPORTS, RUNTIME_REQUIREMENTS, distributions_for,
    installed_with, project_name,
)
from mlgen.spec.load import SourceMap

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Reference:
    """A `module:attribute` of the spec, with the module file it names (already found on disk)."""

    where: tuple  # the spec field, e.g. ("pipeline", "postprocess")
    text: str  # "handlers:postprocess"
    path: Path  # the module's file
    files: tuple[Path, ...]  # every file of it the bundle carries (a package's modules too)

    @property
    def role(self) -> str:
        return self.where[-1]


def handler_problems(references: list[Reference], data: dict, sources: SourceMap, spec_dir: Path,
                     bundled: set[Path]) -> list[Problem]:
    problems: list[Problem] = []
    trees: dict[Path, ast.Module | Problem] = {}
    checked: set[Path] = set()
    provided = _provided_distributions(data)
    for reference in references:
        tree = _parse(reference.path, trees, data, sources, reference)
        if isinstance(tree, Problem):
            problems.append(tree)
            continue
        problems += _reference_problems(reference, tree, sources, spec_dir)
        for path in reference.files:
            if path in checked:
                continue
            checked.add(path)
            tree = _parse(path, trees, data, sources, reference)
            if isinstance(tree, Problem):
                problems.append(tree)
                continue
            problems += _import_problems(reference, path, tree, provided, sources, spec_dir, bundled)
    return problems


def _parse(path: Path, trees: dict, data: dict, sources: SourceMap, reference: Reference):
    if path not in trees:
        try:
            trees[path] = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as error:
            # Newer syntax than this interpreter reads may be fine on the deployed Python.
            newer = tuple(map(int, data["runtime"]["python"].split("."))) > sys.version_info[:2]
            problem = sources.problem(reference.where, f"{path.name} line {error.lineno}: {error.msg}",
                                      hint=f"Python {sys.version_info[0]}.{sys.version_info[1]} could not read it; "
                                           f"runtime.python is {data['runtime']['python']}" if newer else None)
            trees[path] = replace(problem, level=Level.WARNING) if newer else problem
        except (OSError, ValueError) as error:
            trees[path] = sources.problem(reference.where, f"{path.name} cannot be read: {error}")
    return trees[path]


# --- references -------------------------------------------------------------------------------

def _top_level(tree: ast.Module) -> tuple[dict[str, ast.AST], bool]:
    """Names the module binds at its top level (inside if/try/with too, not inside functions or
    classes), and whether a `from x import *` makes the list incomplete."""
    names: dict[str, ast.AST] = {}
    star = False
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (*FUNCTIONS, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                star |= alias.name == "*"
                names[alias.asname or alias.name.split(".")[0]] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            pending += [*node.body, *getattr(node, "orelse", ()), *getattr(node, "finalbody", ())]
            pending += [child for handler in getattr(node, "handlers", ()) for child in handler.body]
    return names, star


def _reference_problems(reference: Reference, tree: ast.Module, sources: SourceMap, spec_dir: Path) -> list[Problem]:
    module, _, attribute = reference.text.partition(":")
    first, *rest = attribute.split(".")
    names, star = _top_level(tree)
    shown = reference.path.relative_to(spec_dir).as_posix()
    if first not in names:
        if star:
            return []
        import difflib  # only for a reference that misses

        wanted = (ast.FunctionDef, ast.ClassDef) if reference.role == "handler" else FUNCTIONS
        candidates = [name for name, node in names.items() if isinstance(node, wanted)]
        close = difflib.get_close_matches(first, candidates, n=1, cutoff=0.6)
        hint = (f"did you mean {module}:{close[0]}?" if close else
                f"{shown} defines {', '.join(sorted(candidates))}" if candidates else f"{shown} defines no function")
        return [sources.problem(reference.where, f"{shown} defines no {first} at its top level", hint=hint)]
    node = names[first]
    if rest:
        if isinstance(node, ast.ClassDef):
            members = [item.name for item in node.body if isinstance(item, FUNCTIONS)]
            if rest[0] not in members and not node.bases:
                import difflib

                close = difflib.get_close_matches(rest[0], members, n=1, cutoff=0.6)
                return [sources.problem(reference.where, f"class {first} in {shown} has no method {rest[0]}",
                                        hint=f"did you mean {module}:{first}.{close[0]}?" if close else None)]
        return []
    if reference.role == "handler":
        return _model_handler_problems(reference, node, shown, sources)
    if isinstance(node, FUNCTIONS):
        problem = _step_signature_problem(node, reference.role)
        if problem:
            return [sources.problem(reference.where, f"{first}() in {shown} (line {node.lineno}) {problem[0]}", hint=problem[1])]
    elif isinstance(node, ast.ClassDef):
        return [sources.problem(reference.where, f"{first} in {shown} is a class; the runtime calls {reference.role} "
                                                 "with the tensors and uses what it returns",
                                hint=f"point {'.'.join(reference.where)} at a function: def {reference.role}(tensors): ...")]
    return []


def _step_signature_problem(node, role: str) -> tuple[str, str] | None:
    """Why a pre/postprocess function cannot take (tensors) or (tensors, context), if it cannot."""
    example = f"def {node.name}({'inputs' if role == 'preprocess' else 'outputs'}) or def {node.name}(tensors, context)"
    if isinstance(node, ast.AsyncFunctionDef):
        return "is async, but the runtime calls handlers synchronously (on a thread pool)", f"make it a plain {example}"
    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    required = len(positional) - len(arguments.defaults)
    required_keywords = [arg.arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is None]
    if not positional and not arguments.vararg:
        return "takes no arguments, but the runtime passes it the tensors by name", example
    if required > 2:
        return (f"requires {required} arguments, but the runtime passes at most two (the tensors and a context)", example)
    if required_keywords:
        return f"requires the keyword argument {required_keywords[0]}, which the runtime never passes", example
    return None


def _model_handler_problems(reference: Reference, node: ast.AST, shown: str, sources: SourceMap) -> list[Problem]:
    """model.handler: called with no arguments, then load(path) and predict(inputs) on the result."""
    if isinstance(node, ast.ClassDef):
        methods = {item.name: item for item in node.body if isinstance(item, FUNCTIONS)}
        init = methods.get("__init__")
        if init is not None and _required(init) > 1:
            return [sources.problem(reference.where, f"{node.name}() in {shown} needs arguments, but the runtime creates it with none",
                                    hint="give __init__'s parameters defaults; the model file comes to load(path)")]
        if "predict" not in methods and not node.bases:
            return [sources.problem(reference.where, f"class {node.name} in {shown} has no predict method",
                                    hint="def predict(self, inputs): return the outputs by name")]
    elif isinstance(node, FUNCTIONS) and _required(node) > 0:
        return [sources.problem(reference.where, f"{node.name}() in {shown} needs arguments, but the runtime calls the "
                                                 "factory with none", hint="give its parameters defaults")]
    return []


def _required(node) -> int:
    positional = [*node.args.posonlyargs, *node.args.args]
    return len(positional) - len(node.args.defaults)


# --- imports ----------------------------------------------------------------------------------

def _provided_distributions(data: dict) -> set[str]:
    """Every distribution a bundle of this spec installs (the runtime's, the format's, the user's
    runtime.requirements) and what they bring along."""
    wanted = [*RUNTIME_REQUIREMENTS, *FORMAT_REQUIREMENTS[data["model"]["format"]], *data["runtime"]["requirements"]]
    if data["resources"]["gpu"] > 0:
        wanted = [GPU_REQUIREMENTS.get(requirement, requirement) for requirement in wanted]
    if data["runtime"].get("grpc_port") is not None:
        wanted += GRPC_REQUIREMENTS
    return installed_with([project_name(requirement) for requirement in wanted])


def _top_level_imports(tree: ast.Module) -> list[tuple[int, str, int]]:
    """(line, module, level) of the imports a module runs when it is imported: at its top level and
    inside if/with blocks, not inside `try` (an optional import guards itself) or functions."""
    found = []
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module != "__future__":
                found.append((node.lineno, node.module or "", node.level))
        elif isinstance(node, (ast.If, ast.With)):
            if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
                pending += [*node.body, *getattr(node, "orelse", ())]
    return found


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_problems(reference: Reference, path: Path, tree: ast.Module, provided: set[str], sources: SourceMap,
                     spec_dir: Path, bundled: set[Path]) -> list[Problem]:
    problems = []
    shown = path.relative_to(spec_dir).as_posix()
    package = path.parent.relative_to(spec_dir).parts
    for line, module, level in _top_level_imports(tree):
        if level:  # relative: a module of the handler's own package
            base = package[:len(package) - (level - 1)] if level > 1 else package
            local = _local_module(spec_dir, (*base, *module.split(".")) if module else base)
        else:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            local = _local_module(spec_dir, tuple(module.split(".")))
            if local is None:
                choices = distributions_for(module)
                if not choices or provided & set(choices) or top in _imported_by(provided):
                    continue
                problems.append(sources.problem(
                    reference.where, f"{shown} line {line} imports {module}, which no requirement provides",
                    hint=f"add {_pin(choices[0])} to runtime.requirements"))
                continue
        if local is not None and local not in bundled:
            problems.append(sources.problem(
                reference.where, f"{shown} line {line} imports {local.relative_to(spec_dir).as_posix()}, "
                                 "which the bundle does not carry (it carries the handler modules and their packages)",
                hint="put the handlers and the modules they import in one package (a folder with __init__.py) "
                     "and reference the package's module"))
    return problems


def _imported_by(provided: set[str]) -> set[str]:
    """Import names a set of distributions provides beyond their own names (IMPORTS read backwards)."""
    return {name.split(".")[0] for name, choices in IMPORTS.items() if provided & set(choices)} | \
        {name.replace("-", "_") for name in provided}


def _local_module(spec_dir: Path, parts: tuple[str, ...]) -> Path | None:
    """The file beside the spec that `import a.b` (parts) would load inside app/, if there is one."""
    if not parts or not all(parts):
        return None
    for depth in range(len(parts), 0, -1):
        base = spec_dir.joinpath(*parts[:depth])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate.resolve()
    return None


def _pin(distribution: str) -> str:
    """`name==version` when this machine has the distribution installed (the version the user
    most likely developed against), else the name."""
    from importlib import metadata  # only when there is something to report

    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return distribution
