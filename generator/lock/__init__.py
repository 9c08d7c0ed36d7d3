"""The lock beside a spec (`<spec>.lock.json`, written by `mlgen lock`): for each platform the
spec deploys to, every distribution the bundle installs, pinned, with the sha256 and size of each
file that platform can install. Bundles install from it with `--require-hashes`, so the same spec
and lock give the same environment on every build; `render` refuses a lock whose requirements or
platform no longer match the spec's.

A platform is what decides which wheels install: the Python version, and the operating system,
architecture and C library of the machine, written as uv's `--python-platform` tag. Each target
names its own (Target.platform).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mlgen.errors import Problem, RenderError
from mlgen.spec import ServiceModel

LOCK_VERSION = 1
SUFFIX = ".lock.json"
# What may reach a requirements line: a distribution name (PEP 508), a version (PEP 440's
# characters) and a hex sha256. Anything else in a lock is refused, never written into a bundle.
NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")
SHA256 = re.compile(r"[0-9a-f]{64}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}")


@dataclass(frozen=True)
class Platform:
    """Where one target's environment is built, and from which requirements."""

    label: str  # the target (and provider): "onprem", "serverless/aws"
    python: str  # "3.12"
    tag: str  # uv's --python-platform: "x86_64-manylinux_2_28", "aarch64-manylinux_2_34"
    requirements: tuple[str, ...]  # what the bundle asks for: the user's, then the runtime's own

    @property
    def arch(self) -> str:
        return self.tag.split("-", 1)[0]

    def describe(self) -> str:
        return f"CPython {self.python} on {self.tag}"


@dataclass(frozen=True)
class Artifact:
    """One file of a locked package, as the index serves it."""

    file: str  # the wheel's (or sdist's) file name
    sha256: str
    size: int  # bytes, as the index reports them


@dataclass(frozen=True)
class Package:
    """One pinned distribution of a platform's environment."""

    name: str
    version: str
    files: tuple[Artifact, ...]  # the platform's wheels; the sdist only where no wheel fits

    @property
    def size(self) -> int:
        """The largest file the platform may install (pip picks one; count the heaviest)."""
        return max((f.size for f in self.files), default=0)


@dataclass(frozen=True)
class Entry:
    """The lock of one platform: what it was resolved from, and the packages it installs."""

    python: str
    tag: str
    requirements: tuple[str, ...]
    packages: tuple[Package, ...]

    def matches(self, platform: Platform) -> bool:
        return (self.python, self.tag, self.requirements) == (platform.python, platform.tag, platform.requirements)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.packages)


@dataclass(frozen=True)
class Lock:
    """A lock file as read: its entries by platform label."""

    path: Path
    resolver: str
    entries: dict[str, Entry]  # by platform label

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def lock_path(spec_path: Path) -> Path:
    """`spec.yaml` → `spec.lock.json` in the same folder."""
    return spec_path.with_name(spec_path.name.rsplit(".", 1)[0] + SUFFIX)


def read_lock(spec_path: Path) -> Lock | None:
    """The spec's lock, or None when there is none. A lock that is not mlgen's, or holds a value
    that could not be a name, version or hash, is an error naming the file and the field."""
    path = lock_path(Path(spec_path))
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return _read(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read(path: Path, _mtime: int, _size: int) -> Lock:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RenderError(Problem(f"not JSON: {error.msg}", str(path), error.lineno, error.colno,
                                  hint="write it again with `mlgen lock SPEC`")) from None
    if not isinstance(data, dict) or data.get("lock_version") != LOCK_VERSION:
        raise RenderError(Problem(f"not an mlgen lock of version {LOCK_VERSION}", str(path), field="lock_version",
                                  hint="write it again with `mlgen lock SPEC`"))
    entries = {}
    for label, entry in _field(data, "platforms", dict, path).items():
        where = f"platforms.{label}"
        packages = tuple(_package(item, f"{where}.packages[{index}]", path)
                         for index, item in enumerate(_field(entry, "packages", list, path, where)))
        entries[label] = Entry(_field(entry, "python", str, path, where), _field(entry, "tag", str, path, where),
                               tuple(_field(entry, "requirements", list, path, where)), packages)
    return Lock(path, str(data.get("resolver", "")), entries)


def _package(item: object, where: str, path: Path) -> Package:
    name, version = _field(item, "name", str, path, where), _field(item, "version", str, path, where)
    _shaped(name, NAME, path, f"{where}.name", "a distribution name")
    _shaped(version, VERSION, path, f"{where}.version", "a version")
    files = []
    for index, artifact in enumerate(_field(item, "files", list, path, where)):
        at = f"{where}.files[{index}]"
        sha256, size = _field(artifact, "sha256", str, path, at), _field(artifact, "size", int, path, at)
        _shaped(sha256, SHA256, path, f"{at}.sha256", "a sha256 in lower-case hex")
        files.append(Artifact(_shaped(_field(artifact, "file", str, path, at), FILE_NAME, path, f"{at}.file", "a file name"),
                              sha256, size))
    return Package(name, version, tuple(files))


def _field(data: object, key: str, kind: type, path: Path, where: str = "") -> object:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        field = f"{where}.{key}" if where else key
        raise RenderError(Problem(f"{field} should be {kind.__name__}", str(path), field=field,
                                  hint="write it again with `mlgen lock SPEC`"))
    return value


def _shaped(value: str, pattern: re.Pattern, path: Path, field: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise RenderError(Problem(f"{value!r} is not {what}", str(path), field=field,
                                  hint="a lock holds only what `mlgen lock` wrote; write it again"))
    return value


@dataclass(frozen=True)
class Locked:
    """What one target's bundle installs: its requirements file's text, and whether every line
    carries hashes (then the installers pass --require-hashes)."""

    text: str
    hashed: bool
    entry: Entry | None
    problems: tuple[Problem, ...]


def locked(model: ServiceModel, platform: Platform, header: str = "") -> Locked:
    """The requirements file `platform`'s bundle installs from: pinned with hashes from the lock's
    entry when it matches, the plain requirements (and a warning) when the spec has no lock or the
    lock has no entry for this target, and an error when the entry was made for other
    requirements or another platform."""
    where = ("runtime", "requirements")
    plain = Locked("\n".join([header, *platform.requirements] if header else platform.requirements), False, None, ())
    lock = read_lock(model.spec_path)
    if lock is None:
        return _with(plain, model.problem(where, "no lock: each bundle installs whatever the index serves on the day it is built",
                                          hint=f"run `mlgen lock {model.spec_path}` and commit {lock_path(model.spec_path).name}",
                                          warning=True))
    entry = lock.entries.get(platform.label)
    if entry is None:
        return _with(plain, model.problem(where, f"{lock.path.name} has no entry for {platform.label}: it installs unlocked",
                                          hint=f"run `mlgen lock {model.spec_path}` again", warning=True))
    if not entry.matches(platform):
        return _with(plain, model.problem(where, f"{lock.path.name} no longer matches the spec for {platform.label}: "
                                                 f"{_difference(entry, platform)}",
                                          hint=f"run `mlgen lock {model.spec_path}` and commit the new lock"))
    # The option line makes every pip that reads the file check hashes, the platforms' own builds
    # (Cloud Functions, Azure) included.
    lines = [f"# Pinned with hashes by mlgen from {lock.path.name} ({platform.label}: {platform.describe()}).",
             *([header] if header else []), "--require-hashes"]
    for package in entry.packages:
        hashes = "".join(f" \\\n    --hash=sha256:{f.sha256}" for f in package.files)
        lines.append(f"{package.name}=={package.version}{hashes}")
    return Locked("\n".join(lines), True, entry, ())


def _with(plain: Locked, problem: Problem) -> Locked:
    return Locked(plain.text, False, None, (problem,))


def _difference(entry: Entry, platform: Platform) -> str:
    if entry.python != platform.python:
        return f"locked for Python {entry.python}, the spec says {platform.python}"
    if entry.tag != platform.tag:
        return f"locked for {entry.tag}, the target runs on {platform.tag}"
    added = [r for r in platform.requirements if r not in entry.requirements]
    removed = [r for r in entry.requirements if r not in platform.requirements]
    parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
    return "requirements " + ("; ".join(parts) or "reordered")


__all__ = ["Artifact", "Entry", "Lock", "Locked", "Package", "Platform", "lock_path", "locked", "read_lock"]
