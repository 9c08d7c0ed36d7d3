"""Plan → disk, without losing anything.

Each target's folder is rebuilt beside itself and swapped in with one atomic exchange of two
directory entries, so an interrupted render leaves the complete old tree or the complete new one.
Unchanged files are hard-linked across (same inode, same mtime); files a person edited since the
last render stop the write unless forced; only files the manifest says mlgen wrote are removed;
files mlgen did not write are carried over untouched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from mlgen import __version__
from mlgen.errors import ConflictError, Problem
from mlgen.render import RenderedFile
from mlgen.render.filters import pretty_json

MANIFEST = ".mlgen-manifest.json"
LOCK = ".mlgen.lock"


@dataclass
class Changes:
    """How the folder on disk differs from the plan."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # generated earlier, deleted by someone since
    conflicts: list[Problem] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def as_json(self) -> dict:
        return {"created": self.created, "updated": self.updated, "removed": self.removed,
                "restored": self.restored, "unchanged": len(self.unchanged)}


def compare(files: list[RenderedFile], dest: Path, spec_digest: str, *, want_diffs: bool = False) -> Changes:
    _check_paths(files, dest)
    old = _read_manifest(dest)
    changes = Changes()
    planned = {f.path: f for f in files}
    for path, rendered in sorted(planned.items()):
        on_disk = dest / path
        content = _read_bytes(on_disk)
        if content is None:
            changes.created.append(path)
            if path in old:
                changes.restored.append(path)
        elif content == rendered.content and _mode(on_disk) == rendered.mode:
            changes.unchanged.append(path)  # compared as bytes: no hashing on the common path
            continue
        else:
            changes.updated.append(path)
            if old.get(path) != _digest(content):
                why = "was edited since mlgen wrote it" if path in old else "exists and was not written by mlgen"
                changes.conflicts.append(Problem(f"{why}; rendering would overwrite it", str(on_disk),
                                                 hint="use --force to overwrite, or move your change into the spec"))
        if want_diffs:
            changes.diffs[path] = _diff(on_disk, rendered, path)
    for path in sorted(set(old) - set(planned)):
        current = _file_digest(dest / path)
        if current is None:
            continue
        changes.removed.append(path)
        if current != old[path]:
            changes.conflicts.append(Problem("was edited since mlgen wrote it; rendering would remove it",
                                             str(dest / path), hint="use --force to remove it"))
    if not changes.any and _manifest_bytes(files, spec_digest) != _read_bytes(dest / MANIFEST):
        changes.updated.append(MANIFEST)
    return changes


def write(files: list[RenderedFile], dest: Path, spec_digest: str, *, force: bool = False,
          before_write: Callable[[Changes], None] | None = None,
          staged: Callable[[str], None] | None = None) -> Changes:
    """Make `dest` hold exactly `files` (plus files mlgen never wrote), atomically.
    `before_write(changes)` runs under the lock once the changes are known (the CLI parses
    back the files about to be written there) and may raise to stop the write. `staged(path)`
    runs after each file is staged (tests kill the process there to prove nothing half-written
    ever shows)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest.parent):
        _recover(dest)
        changes = compare(files, dest, spec_digest)
        if changes.conflicts and not force:
            raise ConflictError(changes.conflicts)
        if not changes.any:
            return changes
        if before_write:
            before_write(changes)
        staging = dest.parent / f".{dest.name}.mlgen-new"
        shutil.rmtree(staging, ignore_errors=True)
        _stage(files, dest, staging, spec_digest, set(changes.unchanged), staged or _nothing)
        _swap(staging, dest)
        return changes


def _nothing(path: str) -> None:
    pass


def _stage(files: list[RenderedFile], dest: Path, staging: Path, spec_digest: str, unchanged: set[str],
           staged: Callable[[str], None]) -> None:
    staging.mkdir()
    old = _read_manifest(dest)
    planned = {f.path for f in files}
    if dest.is_dir():  # carry over what mlgen did not write, exactly as it is
        for source in sorted(dest.rglob("*")):
            relative = source.relative_to(dest).as_posix()
            if relative == MANIFEST or relative in planned or relative in old:
                continue
            target = staging / relative
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(source, target)
    for rendered in files:
        target = staging / rendered.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if rendered.path in unchanged:
            _link_or_copy(dest / rendered.path, target)
        else:
            target.write_bytes(rendered.content)
            os.chmod(target, rendered.mode)
        staged(rendered.path)
    # No fsync: the swap is atomic against a killed process, which is the promise; surviving a
    # power cut would need every file synced (~50 ms a render here), as git's core.fsync does.
    (staging / MANIFEST).write_bytes(_manifest_bytes(files, spec_digest))


def _swap(staging: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(staging, dest)
    elif _exchange(staging, dest):
        shutil.rmtree(staging)  # now holds the old tree
    else:  # no RENAME_EXCHANGE (non-Linux, old kernel): two renames, repaired by _recover
        old = dest.parent / f".{dest.name}.mlgen-old"
        os.rename(dest, old)
        os.rename(staging, dest)
        shutil.rmtree(old)


def _recover(dest: Path) -> None:
    """Finish or undo what an interrupted render left behind."""
    old = dest.parent / f".{dest.name}.mlgen-old"
    if old.exists():
        if dest.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, dest)
    shutil.rmtree(dest.parent / f".{dest.name}.mlgen-new", ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two paths with renameat2(2); False where the call is unavailable."""
    import ctypes  # only when a tree is swapped

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _check_paths(files: list[RenderedFile], dest: Path) -> None:
    """Refuse planned paths that escape `dest` and symlinks inside it (they could point anywhere)."""
    problems = []
    seen: set[str] = set()
    for rendered in files:
        pure = PurePosixPath(rendered.path)
        if pure.is_absolute() or ".." in pure.parts or rendered.path in ("", MANIFEST):
            problems.append(Problem(f"refusing to write {rendered.path!r}: outside the output folder", str(dest)))
            continue
        walk = str(dest)
        for part in pure.parts:
            walk = f"{walk}/{part}"
            if walk in seen:
                continue
            seen.add(walk)
            if os.path.islink(walk):
                problems.append(Problem("is a symbolic link; mlgen does not write through links", walk,
                                        hint="remove the link, or render into another folder"))
                break
    if problems:
        raise ConflictError(problems)


def _read_manifest(dest: Path) -> dict[str, str]:
    raw = _read_bytes(dest / MANIFEST)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
        return {path: entry["sha256"] for path, entry in data["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConflictError(Problem("the manifest is damaged, so mlgen cannot tell which files it wrote",
                                    str(dest / MANIFEST),
                                    hint="restore it from version control, or delete it and render with --force")) from None


def _manifest_bytes(files: list[RenderedFile], spec_digest: str) -> bytes:
    manifest = {
        "generator": f"mlgen {__version__}",
        "spec_digest": spec_digest,
        "files": {f.path: {"sha256": _digest(f.content), "mode": f"{f.mode:04o}"} for f in sorted(files, key=lambda f: f.path)},
    }
    return (pretty_json(manifest) + "\n").encode()


def _diff(on_disk: Path, rendered: RenderedFile, path: str) -> str:
    import difflib  # only for --check

    before, after = _read_bytes(on_disk) or b"", rendered.content
    if b"\0" in before or b"\0" in after:
        return f"Binary files a/{path} and b/{path} differ\n"
    lines = difflib.unified_diff(before.decode("utf-8", "replace").splitlines(True),
                                 after.decode("utf-8", "replace").splitlines(True),
                                 f"a/{path}", f"b/{path}", n=2)
    return "".join(lines)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _file_digest(path: Path) -> str | None:
    content = _read_bytes(path)
    return None if content is None else _digest(content)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


@contextlib.contextmanager
def _locked(directory: Path):
    """One render at a time per output folder; a second one waits for the first."""
    with open(directory / LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
