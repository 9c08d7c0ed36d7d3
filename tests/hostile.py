"""Hostile specs: Hypothesis strategies that put adversarial strings everywhere the schema lets
free text in (and values drawn from the schema's own patterns where it restricts them), the
target variants they are rendered for, and the checks that every value came back as data.

Used by tests/test_hostile_specs.py and tests/test_secrets_never_rendered.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from helpers import EXAMPLES, ROOT
from mlgen import targets
from mlgen.targets.base import split_variant

SCHEMA = json.loads((ROOT / "specs" / "mlgen.v1.schema.json").read_text())
IRIS = EXAMPLES / "iris"
MARKER = "@MARKER@"  # replaced by a real path before rendering; the value that tries to create it

# How many specs each variant renders: a few hundred in the normal run, thousands in the long
# one (`MLGEN_HOSTILE_EXAMPLES=5000 ./scripts/test tests/test_hostile_specs.py`). In CI the run is
# derandomized so a failure reproduces from the same seed; locally Hypothesis keeps its database.
EXAMPLES_PER_VARIANT = int(os.environ.get("MLGEN_HOSTILE_EXAMPLES", "100"))
HOSTILE_SETTINGS = settings(max_examples=EXAMPLES_PER_VARIANT, deadline=None, derandomize=os.environ.get("CI") == "true",
                            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.function_scoped_fixture])

# Fragments that mean something to a shell, systemd, YAML, JSON, Jinja or a terminal.
ATOMS = [
    "'", '"', "`", "\\", "\\n", "\\\\", "$", "$(", ")", "${VAR}", "$HOME", "$$", "%", "%n", "%i", "%%", "%(name)s",
    "{{ 7*7 }}", "{% if true %}J{% endif %}", "{# c #}", "{{", "}}", "{%", "%}",
    "yes", "no", "on", "off", "null", "Null", "~", "true", "0x1F", "0o17", "012", "1e3", "1_000", ".inf", "-.inf",
    ".nan", "1:20", "-", "- ", "*", "*a", "&a", "!", "!!str", "|", ">", "#", " #", "a: b", ": ", "? ", "---", "...",
    "<<", "@", "[", "]", "{", "}", ",", ";", "&&", "||", "<", "\n", "\r", "\r\n", "\t", " ", "", "\x00", "\x1b[31m",
    "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u200f", "\u200b", "e\u0301", "\U0001F600", "\ufeff", "\ufffd",
    "=", "KEY=VALUE", "\n[Service]\nExecStartPre=/bin/touch @MARKER@\n", "\nINJECTED=1\n",
]
# Values that try to create MARKER when anything evaluates them: a script, a unit, a template.
INJECTIONS = [
    "$(touch @MARKER@)", "`touch @MARKER@`", "'; touch @MARKER@; '", '"; touch @MARKER@; "', "\n touch @MARKER@\n",
    "'$(touch @MARKER@)'", '"$(touch @MARKER@)"', "\\'; touch @MARKER@ #", "${IFS}$(touch${IFS}@MARKER@)",
    "x\ntouch @MARKER@", "\"\n--set-secrets=A=b\ntouch @MARKER@", "{{ cycler.__init__.__globals__.os.system('touch @MARKER@') }}",
]
# Label values the schema allows that YAML 1.1 would read as something other than a string.
YAML_WORDS = ["yes", "no", "on", "off", "y", "n", "true", "False", "NULL", "null", "0x1F", "0o17", "012", "1e3",
              "1_000", "1.0", "Inf", "NaN", "0", "0b101", "1.5e-3", ""]

_chunk = st.one_of(st.sampled_from(ATOMS), st.sampled_from(INJECTIONS),
                   st.text(st.characters(blacklist_categories=("Cs",)), max_size=6))


# What the schema refuses in env values and in the version (so most examples render; the rest
# check that the refusal names the field).
ENV_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
VERSION_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MARKER_ROOM = 120  # a value grows by up to this much for each MARKER made a real path


def free_text(max_size: int, *, forbidden: re.Pattern | None = None) -> st.SearchStrategy[str]:
    """Adversarial free text that stays within `max_size` characters once MARKER is a real path,
    sometimes very long; without the `forbidden` characters when given."""
    short = st.lists(_chunk, max_size=8).map("".join)
    # Long values are about length: their markers become plain text so they stay within max_size.
    long = st.builds(lambda atom, times: (atom * times).replace(MARKER, "m"), _chunk.filter(bool), st.integers(64, 2048))
    room = max(8, max_size - _MARKER_ROOM * 8)
    text = st.one_of(short, short, short, long).map(lambda s: s[:room] if MARKER in s else s[:max_size])
    if forbidden is not None:
        text = text.map(lambda s: forbidden.sub("", s))
    return text


def _pattern(node: dict) -> str:
    """A schema pattern as Python reads it: ECMA `$` ends the string (see docs/ARCHITECTURE.md)."""
    return re.sub(r"\$$", r"\\Z", node["pattern"])


def from_schema(node: dict, max_size: int | None = None) -> st.SearchStrategy[str]:
    limit = max_size or node.get("maxLength", 64)
    return st.from_regex(_pattern(node), fullmatch=True).filter(lambda s: len(s) <= limit)


_DEFS = SCHEMA["$defs"]
_PROPS = SCHEMA["properties"]
_LABELS = _PROPS["metadata"]["properties"]["labels"]
_SECRET = _PROPS["secrets"]["items"]["properties"]
env_names = from_schema(_DEFS["envName"], 24).filter(lambda n: not n.startswith("MLGEN_"))
label_values = st.one_of(st.sampled_from(YAML_WORDS), from_schema(_LABELS["additionalProperties"]))


def _secrets(env_keys: set[str]) -> st.SearchStrategy[list[dict]]:
    ref = st.fixed_dictionaries({"name": env_names, "secret": from_schema(_SECRET["secret"], 40)},
                                optional={"key": from_schema(_SECRET["key"], 40)})
    return st.lists(ref, max_size=2, unique_by=lambda r: r["name"]).map(
        lambda refs: [r for r in refs if r["name"] not in env_keys])


@st.composite
def hostile_changes(draw) -> dict:
    """Top-level spec changes: description, version, labels, env (one value always an injection),
    requirements and secret references."""
    env_max = _PROPS["env"]["additionalProperties"]["maxLength"]
    env_value = st.one_of(*[free_text(env_max, forbidden=ENV_FORBIDDEN)] * 4, free_text(env_max))
    env = draw(st.dictionaries(env_names, env_value, max_size=3))
    env["HOSTILE_INJECTION"] = draw(st.sampled_from(INJECTIONS))
    version = draw(free_text(64, forbidden=VERSION_FORBIDDEN).map(lambda v: v.replace(MARKER, "m")[:64]).filter(bool))
    return {
        "description": draw(free_text(_PROPS["metadata"]["properties"]["description"]["maxLength"])),
        "version": version,
        "labels": draw(st.dictionaries(from_schema(_LABELS["propertyNames"], 40), label_values, max_size=3)),
        "env": env,
        # The schema wants a letter or digit first and no control characters; the rest is free.
        "requirements": ["scikit-learn==1.9.1", *draw(st.lists(free_text(80, forbidden=ENV_FORBIDDEN).map(lambda s: "pkg" + s.replace("\t", "").replace("\n", "")), max_size=1))],
        "secrets": draw(_secrets(set(env))),
    }


@dataclass(frozen=True)
class Variant:
    target: str
    settings: dict
    extra: st.SearchStrategy = st.just({})  # target settings drawn per example (tags, ...)
    python: str | None = None  # runtime.python, when the variant's scripts run with this machine's
    secrets: bool = True  # False: the target refuses secret references (a fit error), so none are drawn
    spec: dict = field(default_factory=dict)  # top-level fields the mode sets (a rollout strategy)

    @property
    def provider(self) -> str:
        return self.settings.get("provider") or self.settings.get("mode", "venv")


THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # install.sh --dry-run looks for it
_CLOUD_TAGS = SCHEMA["properties"]["targets"]["properties"]["cloud"]["properties"].get("tags")
_cloud_extra = (st.fixed_dictionaries({"tags": st.dictionaries(from_schema(_CLOUD_TAGS["propertyNames"], 30),
                                                             from_schema(_CLOUD_TAGS["additionalProperties"]), max_size=2)})
                if _CLOUD_TAGS else st.just({}))
_ANNOTATIONS = SCHEMA["properties"]["targets"]["properties"]["kubernetes"]["properties"]["service_account_annotations"]
# Free-text ServiceAccount annotations (the identity keys have patterns of their own).
_kubernetes_extra = st.fixed_dictionaries({"service_account_annotations": st.dictionaries(
    from_schema(_ANNOTATIONS["propertyNames"], 40).filter(lambda key: key not in _ANNOTATIONS["properties"]),
    free_text(_ANNOTATIONS["additionalProperties"]["maxLength"], forbidden=VERSION_FORBIDDEN), max_size=2)})
# What the hostile tests add to each target's own variants (Target.variants: every provider and
# mode): settings drawn per example, the Python its scripts run with here, whether it takes secrets.
EXTRAS = {
    "cloud": {"extra": _cloud_extra},
    "onprem": {"python": THIS_PYTHON},
    "kubernetes": {"extra": _kubernetes_extra},
}


def _variants() -> dict[str, Variant]:
    found = {}
    for name in targets.available():
        for variant, target_settings in targets.get(name).all_variants().items():
            # The cloud VMs read each secret under its own name: AWS Secrets Manager holds every name the
            # schema allows, Google's and Azure's stores refuse some (a fit error), so only AWS draws them.
            takes_secrets = name != "cloud" or target_settings.get("provider", "aws") == "aws"
            own, spec_fields = split_variant(target_settings)
            found[f"{name}-{variant}" if variant else name] = Variant(name, own, **EXTRAS.get(name, {}),
                                                                      secrets=takes_secrets, spec=spec_fields)
    return found


VARIANTS = _variants()


@lru_cache(maxsize=1)
def _iris() -> dict:
    return yaml.safe_load((IRIS / "spec.yaml").read_text())


def write_spec(folder: Path, variant: Variant, changes: dict, extra: dict | None = None) -> Path:
    """The iris spec with `changes`, for `variant` only, written as JSON (JSON is YAML, and its
    escapes carry every character, NUL and line separators included, exactly)."""
    data = json.loads(json.dumps(_iris()))
    meta = data["metadata"]
    meta.update({k: changes[k] for k in ("description", "version", "labels") if k in changes})
    for key in ("env", "secrets"):
        if key in changes:
            data[key] = changes[key]
    if not variant.secrets:
        data["secrets"] = []
    if "requirements" in changes:
        data["runtime"]["requirements"] = changes["requirements"]
    data["targets"] = {variant.target: {**variant.settings, **(extra or {})}}
    data.update(json.loads(json.dumps(variant.spec)))
    if variant.python:
        data["runtime"]["python"] = variant.python
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "model").exists():
        shutil.copytree(IRIS / "model", folder / "model")
    spec = folder / "spec.yaml"
    spec.write_text(yaml_json(data))
    return spec


# Characters YAML may not hold raw (DEL, C1 controls, non-characters) or reads as line breaks
# inside a quoted scalar (NEL, LS, PS); BOM only at a stream's start. JSON's escapes carry them.
_YAML_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def yaml_json(data) -> str:
    """JSON that YAML parsers read back exactly (ensure_ascii would write astral characters as
    surrogate pairs, which PyYAML does not join)."""
    return _YAML_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, ensure_ascii=False))


def with_marker(value, marker: Path):
    """`value` (str, list or dict) with MARKER replaced by the real marker path."""
    if isinstance(value, str):
        return value.replace(MARKER, str(marker))
    if isinstance(value, list):
        return [with_marker(v, marker) for v in value]
    if isinstance(value, dict):
        return {k: with_marker(v, marker) for k, v in value.items()}
    return value


# --- reading values back ----------------------------------------------------------------------

def parsed_documents(files: dict[str, bytes]) -> dict[str, list]:
    """Every YAML and JSON file parsed by the real parsers (all documents of a YAML stream)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed = {}
    for path, content in files.items():
        if path.endswith((".yaml", ".yml")):
            parsed[path] = list(yaml.load_all(content, Loader=loader))
        elif path.endswith((".json", ".json.example")):
            parsed[path] = [json.loads(content)]
    return parsed


def pairs(node) -> set[tuple]:
    """Every (key, value) a parsed document states: mapping entries and {name:, value:} items."""
    found: set[tuple] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("name"), str) and isinstance(item.get("value"), str):
                found.add((item["name"], item["value"]))
            for key, value in item.items():
                if isinstance(value, str):
                    found.add((key, value))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def envfile_values(text: str) -> dict[str, str]:
    """A systemd EnvironmentFile read by systemd's rules for double-quoted values (systemd.exec(5),
    "EnvironmentFile="; load_env_file in src/basic/env-file.c): inside "...", a backslash before
    one of " \\ ` $ yields that character, before a newline continues the line, and before anything
    else is kept; newlines are kept. The real systemd reads the same values in the on-prem nspawn
    test (tests/test_target_onprem_systemd.py); this decoder lets every hostile example be checked."""
    values: dict[str, str] = {}
    position = 0
    while position < len(text):
        end_of_line = text.find("\n", position)
        line_end = len(text) if end_of_line < 0 else end_of_line
        line = text[position:line_end]
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            position = line_end + 1
            continue
        key, _, rest = line.partition("=")
        assert rest.startswith('"'), f"unquoted value for {key!r}: {line!r}"
        index = position + len(key) + 2
        value = []
        while text[index] != '"':
            char = text[index]
            if char == "\\":
                following = text[index + 1]
                if following in '"\\`$':
                    value.append(following)
                elif following != "\n":
                    value.append(char + following)
                index += 2
                continue
            value.append(char)
            index += 1
        values[key.strip()] = "".join(value)
        position = text.find("\n", index) + 1 if text.find("\n", index) >= 0 else len(text)
    return values


def unit_values(text: str, key: str) -> list[str]:
    """The values of `key=` in a unit file, with the %% specifier escape undone."""
    return [line.split("=", 1)[1].replace("%%", "%") for line in text.split("\n") if line.startswith(key + "=")]
