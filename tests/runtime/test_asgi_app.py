"""The HTTP transport's app called in-process, as uvicorn calls it: every request still counted, logged
with its id and validated exactly as the in-process API does, whether the model call runs on the
event loop or on the pool; a body that never arrives gets its 408 and a server's own cancellation
passes through."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from mlgen_runtime.asgi import INLINE_BELOW_S, TOO_LARGE, BodyDeadlines, ServingApp
from mlgen_runtime.config import load_config
from mlgen_runtime.service import Service

from . import apps

ROW = [6.7, 3.0, 5.2, 2.3]
GOOD = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}).encode()


def call(app, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request through the ASGI app: (status, headers, body)."""
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "server": ("127.0.0.1", 8080),
             "headers": [(name.encode(), value.encode()) for name, value in
                         {"content-type": "application/json", **(headers or {})}.items()]}
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, end = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, end["body"]


@pytest.fixture
def app(tmp_path, iris):
    serving = ServingApp(Service(load_config(apps.sklearn_app(tmp_path, iris[0]))))
    serving.service.load()
    yield serving
    serving.executor.shutdown()


@pytest.mark.parametrize("inline", [True, False], ids=["on the loop", "on the pool"])
def test_every_inference_is_answered_counted_and_logged_with_its_id(app, iris, capfd, caplog, inline):
    caplog.set_level(logging.INFO, logger="mlgen_runtime")  # the access log's level, as log_level info sets
    app.typical_s = 0.0 if inline else 1.0
    paths = ["/v2/models/iris/infer", "/v2/models/iris/versions/1.0.0/infer"]
    ids = []
    for number in range(6):
        headers = {"x-request-id": f"asgi-{number}"} if number % 2 else {}
        status, answer_headers, body = call(app, "POST", paths[number % 2], GOOD, headers)
        assert status == 200, body
        assert json.loads(body)["outputs"][0]["data"] == iris[0].predict([ROW]).tolist()
        ids.append(answer_headers["x-request-id"])
    status, _, body = call(app, "POST", "/v1/models/iris:predict", json.dumps({"instances": [ROW]}).encode())
    assert status == 200 and json.loads(body)["predictions"][0]["predict"] == iris[0].predict([ROW])[0]
    assert ids[1::2] == ["asgi-1", "asgi-3", "asgi-5"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", generated) for generated in ids[0::2]) and len(set(ids)) == 6
    metrics = call(app, "GET", "/metrics")[2].decode()
    assert 'mlgen_requests_total{route="v2_infer",stage="all",status="200"} 6' in metrics
    assert 'mlgen_requests_total{route="v1_predict",stage="all",status="200"} 1' in metrics
    assert 'mlgen_request_duration_seconds_count{route="v2_infer",stage="all"} 6' in metrics
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if '"msg":"request"' in line]
    assert [line["request_id"] for line in lines if line["path"] in paths] == ids
    assert [(line["method"], line["status"]) for line in lines] == [("POST", 200)] * 7 + [("GET", 200)]  # and /metrics


REFUSED = [
    ("POST", "/v2/models/iris/infer", b"{"),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]}'),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": ["a", 2, 3, 4]}]}'),
    ("POST", "/v2/models/iris/versions/9/infer", GOOD),
    ("POST", "/v2/models/tulip/infer", GOOD),
    ("GET", "/v2/models/iris/infer", b""),
    ("POST", "/v1/models/iris:predict", b'{"instances": [[1, 2]]}'),
    ("POST", "/v1/models/tulip:predict", b'{"instances": [[1, 2, 3, 4]]}'),
    ("POST", "/v2/models/iris/infer/more", GOOD),
    ("POST", "/v2/health/live", b""),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [true, 4], "data": [1, 2, 3, 4]}]}'),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [true, false, true, true]}]}'),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1e39, 2, 3, 4]}]}'),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}], "parameters": null}'),
    ("POST", "/v2/models/iris/infer", b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}], "outputs": [{"name": "colour"}]}'),
]


@pytest.mark.parametrize("method, path, body", REFUSED)
def test_refusals_are_the_ones_the_in_process_api_gives(app, method, path, body):
    over_http = call(app, method, path, body, {"x-request-id": "same"})
    in_process = app.service.handle(method, path, {"Content-Type": "application/json", "X-Request-ID": "same"}, body)
    assert over_http[0] == in_process.status and 400 <= over_http[0] < 500
    assert over_http[2] == in_process.body and json.loads(over_http[2])["error"]


def messages(*sent: dict):
    """An ASGI receive handing out `sent` in turn, then waiting forever."""
    queue = list(sent)

    async def receive():
        if queue:
            return queue.pop(0)
        return await asyncio.get_running_loop().create_future()

    return receive


def test_a_body_that_does_not_arrive_in_time_is_a_timeout_and_other_cancellations_pass_through():
    async def scenario():
        deadlines = BodyDeadlines(0.05)
        with pytest.raises(asyncio.TimeoutError):
            await deadlines.read(messages(), 100)
        with pytest.raises(asyncio.TimeoutError):  # a body that starts and then stalls
            await deadlines.read(messages({"type": "http.request", "body": b"ab", "more_body": True}), 100)
        assert not deadlines.expired
        assert await deadlines.read(messages({"type": "http.request", "body": b"body"}), 100) == b"body"

        reading = asyncio.create_task(deadlines.read(messages(), 100))
        await asyncio.sleep(0)
        reading.cancel()  # the server's cancellation (the client went away), not the deadline's
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert not deadlines.expired

    asyncio.run(scenario())


def test_a_body_is_read_whole_in_chunks_refused_past_the_limit_and_dropped_when_the_client_leaves():
    async def scenario():
        deadlines = BodyDeadlines(5)
        chunks = [{"type": "http.request", "body": part, "more_body": True} for part in (b"ab", b"", b"cd")]
        assert await deadlines.read(messages(*chunks, {"type": "http.request", "body": b"e"}), 5) == b"abcde"
        assert await deadlines.read(messages(*chunks, {"type": "http.request", "body": b"ef"}), 5) is TOO_LARGE
        assert await deadlines.read(messages({"type": "http.request", "body": b"abcdef"}), 5) is TOO_LARGE
        assert await deadlines.read(messages({"type": "http.request", "body": b"abcde"}), 5) == b"abcde"
        assert await deadlines.read(messages({"type": "http.request"}), 5) == b""
        assert await deadlines.read(messages(chunks[0], {"type": "http.disconnect"}), 5) is None
        assert await deadlines.read(messages({"type": "http.disconnect"}), 5) is None
        assert not deadlines.expired

    asyncio.run(scenario())


def test_a_body_past_the_limit_in_chunks_gets_the_413_over_asgi(tmp_path, iris):
    service = Service(load_config(apps.sklearn_app(tmp_path, iris[0], runtime={"max_body_bytes": 64})))
    serving = ServingApp(service)
    scope = {"type": "http", "method": "POST", "path": "/v2/models/iris/infer", "query_string": b"",
             "server": ("127.0.0.1", 8080), "headers": [(b"x-request-id", b"big")]}
    sent = []

    async def send(message):
        sent.append(message)

    part = {"type": "http.request", "body": b"x" * 40, "more_body": True}
    asyncio.run(serving(scope, messages(part, part), send))
    serving.executor.shutdown()
    assert sent[0]["status"] == 413 and (b"x-request-id", b"big") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"error": "body exceeds max_body_bytes 64"}


def test_the_loop_learns_how_long_an_inference_takes_from_its_counted_duration(app):
    app.typical_s = 0.0
    assert call(app, "POST", "/v2/models/iris/infer", GOOD)[0] == 200
    assert 0.0 < app.typical_s < INLINE_BELOW_S
    metrics = app.service.metrics
    assert app.typical_s == pytest.approx(0.1 * metrics._durations["v2_infer"].total)
