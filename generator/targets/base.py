"""What a target is: everything mlgen needs to know about one way of deploying, in one place.

A target is one folder (`generator/targets/<name>/` for the built-in ones, any package for a
plugin): its settings schema fragment, escaping filters, parse-back checks, Jinja options, the
row it adds to docs/choosing-a-target.md and the variants its tests render all hang off its
`Target`, so adding a target touches nothing outside its folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from mlgen.errors import Problem
from mlgen.lock import Platform
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel

# suffix → check(display path, content) → problems; what a target adds to the parse-back step.
FileCheck = Callable[[str, bytes], list[Problem]]


def _fits_always(model: ServiceModel) -> list[Problem]:
    return []


@dataclass(frozen=True)
class TradeOff:
    """The target's row in docs/choosing-a-target.md."""

    choose_when: str
    give_up: str


@dataclass(frozen=True)
class Target:
    """One way of deploying: how it plans its files and everything else mlgen needs to know about it."""

    name: str
    summary: str  # one line: what this target is for
    plan: Callable[[ServiceModel, Renderer], list[RenderedFile]]
    # Platform limits and lossy mappings: errors stop the render, warnings are printed.
    fit: Callable[[ServiceModel], list[Problem]] = _fits_always
    providers: Mapping[str, str] = field(default_factory=dict)  # provider → one line
    # JSON Schema of `targets.<name>` in a spec (defaults included: the schema is the only place
    # defaults live). Built-in fragments are merged into specs/mlgen.v1.schema.json.
    schema: Mapping = field(default_factory=dict)
    filters: Mapping[str, Callable] = field(default_factory=dict)  # escaping filters for this target's own syntaxes
    checks: Mapping[str, FileCheck] = field(default_factory=dict)  # parse-back checks by file suffix, beyond YAML/JSON/…
    jinja_options: Mapping = field(default_factory=dict)  # Environment options, e.g. other delimiters for Helm-like output
    # A folder of the target's own templates, searched after a user's --templates and before the
    # built-in templates/ (a plugin ships its templates in its package; built-in ones use templates/<name>/).
    templates: str | None = None
    trade_off: TradeOff | None = None
    # Named settings for `targets.<name>` that together exercise every provider and mode: the
    # goldens render each example with each, and the hostile-spec tests attack each. A mode set
    # outside `targets.<name>` (a rollout strategy) goes under SPEC_FIELDS (see split_variant).
    # Empty: one variant, the spec as written (or one per provider when there are providers).
    variants: Mapping[str, Mapping] = field(default_factory=dict)
    docs: str | None = None  # the target's page, relative to the repository (docs/targets/<name>.md)
    limits_markdown: Callable[[], str] | None = None  # platform limits section for docs/choosing-a-target.md
    # Where the bundle's Python environment is built (Python, OS and architecture) and from which
    # requirements: what `mlgen lock` resolves for this target. None: the target installs nothing.
    platform: Callable[[ServiceModel], Platform] | None = None
    # Who can call the model when the spec asks for no credentials (security.auth none), in words
    # for the warning; None from the function: only callers the platform already vets.
    open_to: Callable[[ServiceModel], str | None] | None = None
    # Routes its probes, health checks and scrapes to runtime.admin_port (else the field is refused).
    admin_port: bool = False
    # Warnings on whether the platform's identity can read model.uri, for a target whose identity
    # comes from its own settings (Kubernetes' ServiceAccount annotations); None: the store's cloud
    # against the target's `provider`.
    model_access: Callable[[ServiceModel], list[Problem]] | None = None
    # The rollout strategies its bundles carry out (rollout.strategy; others are refused at that line).
    rollouts: tuple[str, ...] = ("all_at_once",)

    def all_variants(self) -> dict[str, Mapping]:
        """variant name → `targets.<name>` settings to merge over the spec's."""
        if self.variants:
            return dict(self.variants)
        if self.providers:
            return {provider: {"provider": provider} for provider in self.providers}
        return {"": {}}


# The key of a variant's settings that holds top-level spec fields instead of `targets.<name>` ones.
SPEC_FIELDS = "spec:"


def split_variant(settings: Mapping) -> tuple[dict, dict]:
    """A variant's (`targets.<name>` settings, top-level spec fields to merge over the spec's)."""
    own = {key: value for key, value in settings.items() if key != SPEC_FIELDS}
    return own, dict(settings.get(SPEC_FIELDS, {}))


def schema_fragment(package_file: str) -> Mapping:
    """A built-in target's `schema.json`, read from beside its `__init__.py`."""
    return json.loads((Path(package_file).parent / "schema.json").read_text(encoding="utf-8"))


__all__ = ["SPEC_FIELDS", "FileCheck", "Target", "TradeOff", "schema_fragment", "split_variant"]
