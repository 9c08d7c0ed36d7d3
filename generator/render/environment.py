"""The one Jinja environment: StrictUndefined, escaping filters, compiled templates cached.

User overrides (`--templates DIR`) are searched first, one file at a time, and then rendered in
a sandboxed environment, since those templates are not mlgen's code.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import jinja2

from mlgen import __version__
from mlgen.errors import Problem, RenderError
from mlgen.render.filters import FILTERS, UnsafeValue
from mlgen.resources import templates_dir


@dataclass(frozen=True)
class RenderedFile:
    """One file of a target's output, in memory until it is written."""

    path: str  # posix, relative to the target's output folder
    content: bytes
    mode: int = 0o644
    # False for files copied as they are (the runtime package, the model, the user's modules):
    # parse-back checks what templates produced, not code mlgen ships or the user wrote.
    generated: bool = True

    @classmethod
    def text(cls, path: str, text: str, mode: int = 0o644) -> "RenderedFile":
        if not text.endswith("\n"):
            text += "\n"
        return cls(path, text.encode("utf-8"), mode)


class Renderer:
    """Renders templates by name. `Renderer(dir)` knows the core filters; `for_target` gives the
    renderer a target's plan receives, with that target's own filters and Jinja options."""

    def __init__(self, user_templates: Path | None = None, *, _env: jinja2.Environment | None = None):
        self.user_templates = str(user_templates) if user_templates else None
        self.env = _env or _core_environment(self.user_templates)

    def for_target(self, name: str, filters: Mapping | None = None, options: Mapping | None = None,
                   templates: str | None = None) -> "Renderer":
        key = (self.user_templates, name)
        env = _TARGET_ENVIRONMENTS.get(key)
        if env is None:
            env = _TARGET_ENVIRONMENTS[key] = _environment(self.user_templates, dict(filters or {}), dict(options or {}),
                                                           templates)
        return Renderer(self.user_templates, _env=env)

    def render(self, template: str, **context) -> str:
        try:
            return self.env.get_template(template).render(**context)
        except UnsafeValue as exc:
            raise RenderError(Problem(f"{exc}", file=template)) from None
        except jinja2.TemplateNotFound as exc:
            raise RenderError(Problem(f"template {exc.name} was not found")) from None
        except jinja2.UndefinedError as exc:
            raise RenderError(Problem(f"template uses an undefined value: {exc.message}", file=template)) from None
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(Problem(f"template syntax error: {exc.message}", file=exc.filename or template, line=exc.lineno)) from None
        except jinja2.exceptions.SecurityError as exc:  # from the sandbox of --templates
            raise RenderError(Problem(f"template tried an unsafe operation: {exc}", file=template)) from None

    def file(self, path: str, template: str, mode: int = 0o644, **context) -> RenderedFile:
        return RenderedFile.text(path, self.render(template, **context), mode)


@functools.cache
def _core_environment(user_templates: str | None) -> jinja2.Environment:
    return _environment(user_templates, {}, {})


# (user templates, target name) → that target's environment, built once per process.
_TARGET_ENVIRONMENTS: dict[tuple[str | None, str], jinja2.Environment] = {}


def _environment(user_templates: str | None, filters: dict, options: dict,
                 target_templates: str | None = None) -> jinja2.Environment:
    folders = [str(target_templates)] if target_templates else []
    builtin = jinja2.FileSystemLoader([*folders, str(templates_dir())])
    if user_templates:
        from jinja2.sandbox import ImmutableSandboxedEnvironment  # only for a user's --templates

        cls = ImmutableSandboxedEnvironment
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(user_templates), builtin])
    else:
        cls, loader = jinja2.Environment, builtin
    settings = dict(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                    trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env = cls(loader=loader, bytecode_cache=_bytecode_cache(), **{**settings, **options})
    clash = FILTERS.keys() & filters.keys()
    if clash:
        raise ValueError(f"target filters may not replace the core escaping filters: {', '.join(sorted(clash))}")
    env.filters.update(FILTERS)
    env.filters.update(filters)
    return env


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    # Compiling the templates dominates a cold render (~250 ms); cached bytecode takes ~8 ms.
    # Jinja keys the cache by each template's source checksum, so edits are always picked up.
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "mlgen", f"jinja-{__version__}")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(directory) if os.access(directory, os.W_OK) else None
