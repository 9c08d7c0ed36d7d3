"""JSON `data` into a tensor: the runtime's direct route for plain numbers against its general route
(numpy's discovery), on the same parsed request, alternated, best of each.

    python bench/runtime_json_tensors.py [--calls 10000] [--rounds 5]

Best (not median) of the rounds: a call takes microseconds, and on a shared machine the other
work only ever adds to it.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "generator" / "runtime"))

from mlgen_runtime import tensors  # noqa: E402

ROW = [5.1, 3.5, 1.4, 0.2]
CASES = {  # name: (datatype, shape, data as orjson parses it from the wire)
    "FP32 1x4 nested": ("FP32", [1, 4], [ROW]),
    "FP32 64x4 nested": ("FP32", [64, 4], [ROW] * 64),
    "FP32 64x4 flat": ("FP32", [64, 4], ROW * 64),
    "FP64 64x4 nested": ("FP64", [64, 4], [ROW] * 64),
    "INT64 64x4 nested": ("INT64", [64, 4], [[5, 3, 1, 0]] * 64),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"µs per from_json call, best of {args.rounds} alternated rounds of {args.calls}")
    print(f"{'request':20} {'general':>8} {'as served':>10}")
    plain = tensors._PLAIN_NUMBERS
    for name, (datatype, shape, data) in CASES.items():
        data = orjson.loads(orjson.dumps(data))  # fresh objects, as a request brings them
        best = {"general": float("inf"), "as served": float("inf")}
        for _ in range(args.rounds):
            for route in best:
                tensors._PLAIN_NUMBERS = {} if route == "general" else plain
                seconds = timeit.timeit(lambda: tensors.from_json("x", datatype, shape, data), number=args.calls)
                best[route] = min(best[route], seconds / args.calls * 1e6)
        tensors._PLAIN_NUMBERS = plain
        print(f"{name:20} {best['general']:8.2f} {best['as served']:10.2f}")


if __name__ == "__main__":
    main()
