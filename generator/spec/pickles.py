"""What a scikit-learn pickle says about itself, read WITHOUT unpickling it: the pickle's opcodes
are walked on a stack of plain values (class references stay names, nothing is imported, called
or built), so a hostile file runs no code. joblib's files interleave the pickle with raw numpy
array data, which is skipped by the size its wrapper records; compressed files are read through
the standard library's decompressors.

scikit-learn stores its version in every estimator's state (`_sklearn_version`, written by
BaseEstimator.__getstate__) and the number of input columns in `n_features_in_`."""

from __future__ import annotations

import io
import math
import pickletools
import re
from dataclasses import dataclass, field
from typing import BinaryIO

MARK = object()


class Unreadable(ValueError):
    """The file is not a pickle this scan can follow."""


# Plain classes, not dataclasses: this module is imported on every validate of a scikit-learn
# spec, and each dataclass costs about 0.4 ms to create.
class Global:
    """A class or function the pickle names (module, name): a name, never imported."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __eq__(self, other) -> bool:
        return isinstance(other, Global) and (self.module, self.name) == (other.module, other.name)

    def __hash__(self) -> int:
        return hash((self.module, self.name))


class Instance:
    """What calling `cls` would have made, with the state BUILD would have given it."""

    __slots__ = ("cls", "args", "state")

    def __init__(self, cls: object, args: object = None, state: object = None) -> None:
        self.cls, self.args, self.state = cls, args, state


class Blob:
    """Bytes the scan skipped over."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


@dataclass(frozen=True)
class PickleFacts:
    """What the opcodes of a scikit-learn pickle say about the estimator, read without unpickling."""

    estimator: str | None  # "sklearn.pipeline.Pipeline"
    sklearn_version: str | None  # of the outermost estimator, or the first one the scan met
    n_features_in: int | None  # columns the estimator was fitted on, where the state says
    versions: frozenset[str] = field(default_factory=frozenset)  # every _sklearn_version seen


def scan(path) -> PickleFacts:
    with open(path, "rb") as raw:
        stream = _decompressed(raw)
        top, versions = _Scan(stream).run()
    version = _state(top).get("_sklearn_version") if isinstance(top, Instance) else None
    if not isinstance(version, str):
        version = next(iter(sorted(versions)), None)
    return PickleFacts(estimator=_class_name(top), sklearn_version=version, n_features_in=_n_features(top),
                       versions=frozenset(versions))


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """joblib's compressors, recognised by their magic bytes (joblib/compressor.py)."""
    head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    if head.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.GzipFile(fileobj=raw)
    if head.startswith(b"BZ"):
        import bz2

        return bz2.BZ2File(raw)
    if head.startswith(b"\xfd7zXZ") or head.startswith(b"\x5d\x00\x00"):
        import lzma

        return lzma.LZMAFile(raw)
    if head[:1] == b"\x78":
        return io.BufferedReader(_ZlibReader(raw), 1 << 16)
    if head.startswith(b"\x04\x22\x4d\x18"):
        raise Unreadable("lz4-compressed (mlgen reads zlib, gzip, bz2, xz and lzma without extra packages)")
    return raw


class _ZlibReader(io.RawIOBase):
    """joblib's zlib files are a bare zlib stream, which the standard library opens only whole."""

    def __init__(self, raw: BinaryIO) -> None:
        import zlib

        self.raw, self.inflate, self.pending, self.offset = raw, zlib.decompressobj(), b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.offset >= len(self.pending) and not self.inflate.eof:
            chunk = self.raw.read(1 << 16)
            if not chunk:
                break
            self.pending, self.offset = self.inflate.decompress(chunk), 0
        size = min(len(buffer), len(self.pending) - self.offset)
        buffer[:size] = self.pending[self.offset:self.offset + size]
        self.offset += size
        return size


WRAPPER = Global("joblib.numpy_pickle", "NumpyArrayWrapper")  # joblib's numpy arrays


class _Scan:
    """The pickle machine's stack and memo, with plain values only."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.stack: list = []
        self.memo: dict = {}
        self.versions: set[str] = set()

    def run(self):
        read = self.stream.read
        while True:
            code = read(1)
            if not code:
                raise Unreadable("the file ends before the pickle's STOP")
            op = pickletools.code2op.get(code.decode("latin-1"))
            if op is None:
                raise Unreadable(f"byte {code!r} is not a pickle opcode")
            if op.name in ("BINBYTES", "BINBYTES8", "BYTEARRAY8"):
                arg = Blob(self._skip_sized(4 if op.name == "BINBYTES" else 8))
            else:
                arg = op.arg.reader(self.stream) if op.arg is not None else None
            if op.name == "STOP":
                return (self.stack.pop() if self.stack else None), self.versions
            self._step(op.name, arg)

    def _skip_sized(self, width: int) -> int:
        size = int.from_bytes(self._read(width), "little")
        self._skip(size)
        return size

    def _read(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise Unreadable("the file ends inside the pickle")
        return data

    def _skip(self, size: int) -> None:
        if self.stream.seekable():
            self.stream.seek(size, 1)
            return
        while size:
            size -= len(self._read(min(size, 1 << 20)))

    def _pop_mark(self) -> list:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is MARK:
                items, self.stack[index:] = self.stack[index + 1:], []
                return items
        raise Unreadable("a pickle opcode needs a MARK that is not there")

    def _step(self, name: str, arg) -> None:
        stack = self.stack
        if name in ("PROTO", "FRAME"):
            return
        if name == "MARK":
            stack.append(MARK)
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(self.memo.get(arg))
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            stack.append({"EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_SET": list}[name]())
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            size = int(name[-1])
            items = tuple(stack[-size:])
            del stack[-size:]
            stack.append(items)
        elif name in ("TUPLE", "LIST", "FROZENSET"):
            items = self._pop_mark()
            stack.append(tuple(items) if name == "TUPLE" else list(items))
        elif name == "DICT":
            items = self._pop_mark()
            stack.append(self._dict(items))
        elif name == "APPEND":
            item = stack.pop()
            if isinstance(stack[-1], list):
                stack[-1].append(item)
        elif name in ("APPENDS", "ADDITEMS"):
            items = self._pop_mark()
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            self._set(stack[-1], [key, value])
        elif name == "SETITEMS":
            items = self._pop_mark()
            self._set(stack[-1], items)
        elif name == "GLOBAL":
            module, _, qualname = arg.partition(" ")
            stack.append(Global(module, qualname))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            stack.append(Global(str(module), str(qualname)))
        elif name in ("REDUCE", "NEWOBJ"):
            args, cls = stack.pop(), stack.pop()
            stack.append(Instance(cls, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = stack.pop(), stack.pop(), stack.pop()
            stack.append(Instance(cls, args))
        elif name == "OBJ":
            items = self._pop_mark()
            stack.append(Instance(items[0] if items else None, tuple(items[1:])))
        elif name == "INST":
            module, _, qualname = arg.partition(" ")
            stack.append(Instance(Global(module, qualname), tuple(self._pop_mark())))
        elif name == "BUILD":
            state = stack.pop()
            target = stack[-1]
            if isinstance(target, Instance):
                target.state = state
                if target.cls == WRAPPER:
                    self._skip_array(state)
        elif name in ("PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER"):
            if name == "BINPERSID":
                stack.pop()
            stack.append(None)
        elif name == "READONLY_BUFFER":
            return
        else:  # every opcode that pushes its argument: numbers, strings, bytes
            stack.append(arg)

    @staticmethod
    def _dict(items: list) -> dict:
        result = {}
        for key, value in zip(items[::2], items[1::2]):
            if isinstance(key, (str, int, float, bool, type(None), tuple)):
                result[key] = value
        return result

    def _set(self, target, items: list) -> None:
        if not isinstance(target, dict):
            return
        for key, value in zip(items[::2], items[1::2]):
            if key == "_sklearn_version" and isinstance(value, str):
                self.versions.add(value)
            if isinstance(key, (str, int, float, bool, type(None), tuple)):
                target[key] = value

    def _skip_array(self, state) -> None:
        """joblib writes a wrapped array's data right after the wrapper (NumpyArrayWrapper.write_array):
        a nested pickle for object arrays, else a padding-length byte and padding when the wrapper
        records an alignment, then the raw items."""
        state = _state_dict(state)
        shape, dtype = state.get("shape"), state.get("dtype")
        itemsize, has_objects = _dtype_facts(dtype)
        if has_objects:
            _Scan(self.stream).run()
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            self._skip(self._read(1)[0])
        if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape) or itemsize is None:
            raise Unreadable("a joblib array whose size the scan cannot tell")
        self._skip(math.prod(shape) * itemsize)


def _dtype_facts(dtype) -> tuple[int | None, bool]:
    """(item size, holds Python objects) of a pickled numpy.dtype: numpy.dtype(typestr, ...)
    with the state (version, byteorder, subarray, names, fields, elsize, alignment, flags)."""
    if not isinstance(dtype, Instance) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None, False
    typestr = str(dtype.args[0])
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    fields = state[4] if len(state) > 4 and isinstance(state[4], dict) else {}
    has_objects = typestr.startswith("O") or any(
        isinstance(value, tuple) and value and _dtype_facts(value[0])[1] for value in fields.values())
    if len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5], has_objects
    digits = re.search(r"\d+$", typestr)
    return (int(digits.group()) if digits else None), has_objects


def _state_dict(state) -> dict:
    """An object's __dict__ from its BUILD state: a dict, or (dict, slots)."""
    if isinstance(state, tuple) and state and isinstance(state[0], dict):
        return state[0]
    return state if isinstance(state, dict) else {}


def _state(instance: Instance) -> dict:
    return _state_dict(instance.state)


def _class_name(value) -> str | None:
    if isinstance(value, Instance) and isinstance(value.cls, Global):
        return f"{value.cls.module}.{value.cls.name}"
    return None


def _n_features(value, depth: int = 0) -> int | None:
    """n_features_in_ of the estimator, or of a Pipeline's first step (a Pipeline has none of its own)."""
    if not isinstance(value, Instance) or depth > 8:
        return None
    state = _state(value)
    features = state.get("n_features_in_")
    if isinstance(features, int) and not isinstance(features, bool):
        return features
    steps = state.get("steps")
    if isinstance(steps, (list, tuple)):
        for step in steps:
            if isinstance(step, tuple) and len(step) == 2 and isinstance(step[1], Instance):
                return _n_features(step[1], depth + 1)
    return None
