"""Adaptive batching (`runtime.batching`): inference requests that arrive together are concatenated
along the first axis, run as one model call, and the outputs split back per request.

A model whose call has a large fixed cost (a 300-tree forest, a network on a GPU) answers 32 one-row
requests in one call in about the time of one. Each request is validated, answered, counted and
logged on its own (the Service does that around `submit`); only the model call is shared.

When a batch runs: as soon as it holds `max_batch_size` rows, or `max_latency_ms` after its first
request arrived, and a worker is free. While every worker is busy, requests keep joining the waiting
batch (up to `max_batch_size` rows), so batches grow with the load instead of queueing one by one.

Requests batch together only when they can be concatenated: the same inputs with the same shape
after the first dimension, and the same request parameters (a handler sees one context per call).
When a batched call fails, each request of the batch runs again on its own, so a request that makes
the model raise fails alone and never takes its batch mates with it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import orjson

from .handlers import RequestContext

logger = logging.getLogger("mlgen_runtime")


class _Waiting:
    """A request in a forming batch."""

    __slots__ = ("inference", "rows", "future", "arrived")

    def __init__(self, inference, rows: int) -> None:
        self.inference, self.rows, self.future = inference, rows, Future()
        self.arrived = time.monotonic()


class Batcher:
    def __init__(self, run, max_batch_size: int, max_latency_ms: float, workers: int, metrics) -> None:
        self._run = run  # run(inputs: dict, context) -> outputs: dict (the pipeline)
        self.max_rows = max_batch_size
        self.max_wait_s = max_latency_ms / 1000
        self.workers = workers
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlgen-batch")
        self._changed = threading.Condition()
        self._forming: dict[object, list[_Waiting]] = {}  # by batch key, oldest first
        self._busy = 0
        self._closed = False
        threading.Thread(target=self._dispatch, name="mlgen-batcher", daemon=True).start()

    def submit(self, inference) -> Future:
        """The future outputs (dict by name) of one validated request."""
        rows, key = _rows_and_key(inference)
        waiting = _Waiting(inference, rows if rows is not None else self.max_rows)
        if rows is None or rows >= self.max_rows:
            key = object()  # cannot be concatenated, or fills a batch alone: a batch of its own
        with self._changed:
            self._forming.setdefault(key, []).append(waiting)
            self._changed.notify()
        return waiting.future

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._pool.shutdown(wait=False)

    def _dispatch(self) -> None:
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                wake_at = None
                for key in list(self._forming):
                    if self._busy >= self.workers:
                        break
                    items = self._forming[key]
                    since = items[0].arrived
                    if sum(item.rows for item in items) >= self.max_rows or now - since >= self.max_wait_s:
                        batch = self._take(key)
                        self._busy += 1
                        self._pool.submit(self._execute, batch)
                    else:
                        deadline = since + self.max_wait_s
                        wake_at = deadline if wake_at is None else min(wake_at, deadline)
                # A busy pool wakes this loop when a worker frees (notify in _execute).
                self._changed.wait(None if wake_at is None else max(wake_at - now, 0))

    def _take(self, key) -> list[_Waiting]:
        """Up to max_batch_size rows from the front of a forming batch; the rest keep waiting."""
        items = self._forming[key]
        count, rows = 0, 0
        while count < len(items) and (count == 0 or rows + items[count].rows <= self.max_rows):
            rows += items[count].rows
            count += 1
        batch, rest = items[:count], items[count:]
        if rest:
            self._forming[key] = rest
        else:
            del self._forming[key]
        return batch

    def _execute(self, batch: list[_Waiting]) -> None:
        try:
            if len(batch) == 1:
                self._alone(batch[0])
                return
            try:
                outputs = self._call(batch)
            except Exception as exc:
                logger.warning("a batch of %d requests failed (%s); running each on its own", len(batch),
                               type(exc).__name__)
                for item in batch:
                    self._alone(item)
                return
            for item, produced in zip(batch, outputs):
                item.future.set_result(produced)
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify()

    def _alone(self, item: _Waiting) -> None:
        try:
            self.metrics.batch_ran(item.rows)
            item.future.set_result(self._run(item.inference.inputs, item.inference.context))
        except Exception as exc:
            item.future.set_exception(exc)

    def _call(self, batch: list[_Waiting]) -> list[dict]:
        first = batch[0].inference
        inputs = {name: _concatenate([item.inference.inputs[name] for item in batch]) for name in first.inputs}
        # One context per call: the requests share their parameters (part of the batch key).
        context = RequestContext(first.context.request_id, first.context.parameters)
        rows = [item.rows for item in batch]
        self.metrics.batch_ran(sum(rows))
        produced = self._run(inputs, context)
        if not isinstance(produced, dict):
            raise TypeError("the pipeline returned no dict")
        split = {name: _split(name, value, rows) for name, value in produced.items()}
        return [{name: parts[index] for name, parts in split.items()} for index in range(len(batch))]


def _rows_and_key(inference) -> tuple[int | None, object]:
    """The request's first dimension (None when its inputs disagree on it) and what a batch mate
    must share: input names, the shapes after the first dimension, the parameters."""
    shapes = inference.shapes
    firsts = {shape[0] if shape else None for shape in shapes.values()}
    if len(firsts) != 1 or None in firsts or set(shapes) != set(inference.inputs):
        return None, None
    parameters = orjson.dumps(inference.context.parameters, option=orjson.OPT_SORT_KEYS)
    return firsts.pop(), (tuple(sorted((name, tuple(shape[1:])) for name, shape in shapes.items())), parameters)


def _concatenate(parts: list):
    if isinstance(parts[0], list):  # BYTES: flat lists of str, row-major
        return [value for part in parts for value in part]
    return np.concatenate(parts, axis=0)


def _split(name: str, value, rows: list[int]) -> list:
    """Per-request slices of one batched output along its first axis."""
    total = sum(rows)
    if isinstance(value, list):  # BYTES from a handler: flat, row-major
        if not value or len(value) % total:
            raise ValueError(f"output '{name}' has {len(value)} elements for {total} rows")
        width = len(value) // total
        bounds = np.cumsum([0, *rows]) * width
        return [value[start:end] for start, end in zip(bounds[:-1], bounds[1:])]
    array = np.asarray(value)
    if array.ndim == 0 or array.shape[0] != total:
        raise ValueError(f"output '{name}' has shape {list(array.shape)}, not {total} rows first")
    return np.split(array, np.cumsum(rows)[:-1], axis=0)
