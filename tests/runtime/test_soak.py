"""A bounded soak on 127.0.0.1: MLGEN_SOAK_REQUESTS requests (default 20,000) from 16 concurrent
keep-alive clients, three good requests for each bad one, against a real server process. Every good
request is answered 200 (zero 5xx), every bad one a 4xx, and the server's resident memory after
the soak stays within RSS_MARGIN of what it was after a warm-up. The loop stops by itself at
SOAK_DEADLINE_S whatever the count; the server is stopped by its own pid."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import apps

REQUESTS = int(os.environ.get("MLGEN_SOAK_REQUESTS", "20000"))
CLIENTS = 16
WARM_UP = 2000
SOAK_DEADLINE_S = 300
RSS_MARGIN = (1.25, 16 * 1024)  # after <= warm-up * 1.25 + 16 MiB (KiB units, as /proc reports)
INFER = "/v2/models/iris/infer"
GOOD = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4],
                               "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}).encode()
BAD = [
    b"{", b"[]", b'{"inputs": []}',
    b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [NaN, 1, 2, 3]}]}',
    b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}',
    b'{"inputs": [{"name": "input-0", "datatype": "INT8", "shape": [1, 4], "data": [1, 2, 3, 300]}]}',
    b'{"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}',
    b'{"inputs": [{"name": "input-0", "datatype": [], "shape": [1, 4], "data": [1, 2, 3, 4]}]}',
    b"[" * 3000 + b"]" * 3000,
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def client(port: int, first: int, count: int, deadline: float) -> Counter:
    """Requests first..first+count-1 on one keep-alive connection: every fourth one is bad."""
    outcomes: Counter = Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for number in range(first, first + count):
            if time.monotonic() > deadline:
                outcomes["stopped at the deadline"] += 1
                break
            bad = number % 4 == 3
            body = BAD[number % len(BAD)] if bad else GOOD
            connection.request("POST", INFER, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            kind = "bad" if bad else "good"
            outcomes[f"{kind} {response.status // 100}xx"] += 1
            if bad and response.status < 500:
                outcomes["bad with a JSON error"] += "error" in json.loads(payload)
            if response.will_close:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    finally:
        connection.close()
    return outcomes


def run(port: int, first: int, total: int, deadline: float) -> Counter:
    share = total // CLIENTS
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = pool.map(lambda i: client(port, first + i * share, share, deadline), range(CLIENTS))
    return sum(results, Counter())


@pytest.mark.slow
def test_soak_good_and_bad_requests_zero_5xx_and_flat_memory(tmp_path, iris, start_server):
    config = apps.sklearn_app(tmp_path, iris[0], observability={"log_level": "warning"})
    server = start_server(config).wait()
    deadline = time.monotonic() + SOAK_DEADLINE_S

    warm = run(server.port, 0, WARM_UP, deadline)
    before = rss_kib(server.process.pid)
    started = time.monotonic()
    soak = run(server.port, WARM_UP, REQUESTS, deadline)
    seconds = time.monotonic() - started
    after = rss_kib(server.process.pid)

    sent = sum(v for k, v in soak.items() if k.startswith(("good", "bad")) and k.endswith("xx"))
    print(f"\nsoak: {sent} requests in {seconds:.1f} s ({sent / seconds:.0f}/s) from {CLIENTS} clients "
          f"after {WARM_UP} warm-up; RSS {before} KiB -> {after} KiB; {dict(soak)}")
    assert warm["good 5xx"] == 0 and soak["good 5xx"] == 0 and soak["bad 5xx"] == 0, soak
    assert soak["good 2xx"] == sent - soak["bad 4xx"], soak
    assert soak["bad 4xx"] == soak["bad with a JSON error"] > 0, soak
    assert sent == REQUESTS // CLIENTS * CLIENTS, f"stopped at the {SOAK_DEADLINE_S} s deadline: {soak}"
    factor, slack = RSS_MARGIN
    assert after <= before * factor + slack, f"RSS grew from {before} KiB to {after} KiB"
    assert server.process.poll() is None
