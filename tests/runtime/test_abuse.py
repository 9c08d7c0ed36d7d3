"""Abusive requests, generated and hand-made: whatever arrives, the runtime answers a 4xx with a
JSON error (or 200 for what is in fact a valid request), never a 5xx, never a traceback. Adds to
test_request_errors.py: Hypothesis bodies through the in-process API (the same `handle` every
transport calls), raw-socket requests no HTTP client would send, and a body that trickles in slower
than runtime.timeout_s."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest

from . import apps

pytest.importorskip("requests")
pytest.importorskip("hypothesis")
import requests  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

INFER = "/v2/models/iris/infer"
EXAMPLES = int(os.environ.get("MLGEN_ABUSE_EXAMPLES", "400"))
ABUSE_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("CI") == "true",
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def service(tmp_path_factory, iris):
    from mlgen_runtime import load_service

    return load_service(apps.sklearn_app(tmp_path_factory.mktemp("abuse-app"), iris[0]))


def assert_clean_refusal_or_answer(response) -> None:
    assert response.status < 500, (response.status, response.body[:300])
    document = json.loads(response.body)
    assert b"Traceback" not in response.body
    if response.status >= 400:
        assert isinstance(document.get("error"), str) and document["error"], document


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                         st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                                 st.dictionaries(st.text(max_size=8), inner, max_size=5)),
                           max_leaves=30)
DATATYPES = ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64",
             "BYTES", "fp32", "", "FLOAT", None, 7]
tensors = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.just("input-0"), st.text(max_size=10), json_values),
    "datatype": st.one_of(st.sampled_from(DATATYPES), json_values),
    "shape": st.one_of(st.lists(st.integers(-3, 10), max_size=4), st.just([1, 4]), json_values),
    "data": st.one_of(st.lists(st.floats(allow_nan=False, width=32), max_size=12),
                      st.lists(st.lists(json_scalars, max_size=5), max_size=4), json_values),
    "parameters": json_values,
})
requests_ = st.one_of(
    st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3)},
                          optional={"outputs": st.one_of(st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)}), max_size=3), json_values),
                                    "parameters": json_values, "id": json_values}),
    json_values)
NUMBER_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 400, b"0x10", b"+1", b".5", b"1."]


@ABUSE_SETTINGS
@given(request=requests_)
def test_generated_json_requests_get_a_json_4xx_or_an_answer(service, request):
    assert_clean_refusal_or_answer(service.handle("POST", INFER, {"content-type": "application/json"},
                                                  json.dumps(request).encode()))


@ABUSE_SETTINGS
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       token=st.sampled_from(NUMBER_TOKENS))
def test_generated_bytes_and_non_json_numbers_get_a_json_4xx(service, body, token):
    assert_clean_refusal_or_answer(service.handle("POST", INFER, {}, body))
    broken = b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [%s, 1, 2, 3]}]}' % token
    assert_clean_refusal_or_answer(service.handle("POST", INFER, {}, broken))


@ABUSE_SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW", "TRACE"]),
       path=st.one_of(st.sampled_from([INFER, "/v2/models/iris", "/v2/health/ready", "/v1/models/iris:predict",
                                       "/metrics", "/v2/models/iris/versions/9/infer", "/v2/models/../../etc/passwd",
                                       "//v2//models//iris//infer", "/v2/models/iris/infer?x=1", "/%00", "/v2/models/%2e%2e/infer"]),
                      st.text(max_size=40).map(lambda s: "/" + s)),
       headers=st.dictionaries(st.sampled_from(["content-type", "inference-header-content-length", "x-request-id",
                                                "content-length", "accept"]), st.text(max_size=30), max_size=3))
def test_generated_routes_methods_and_headers_never_fail_on_the_server_side(service, method, path, headers):
    response = service.handle(method, path, headers, b'{"inputs": []}')
    assert response.status < 500
    if response.body:
        assert b"Traceback" not in response.body


# --- through a real socket: what no HTTP client library sends -------------------------------------

@pytest.fixture(scope="module")
def slow_server(tmp_path_factory, iris):
    from .conftest import Server

    config = apps.sklearn_app(tmp_path_factory.mktemp("abuse-server"), iris[0], runtime={"timeout_s": 2})
    server = Server(config).wait()
    yield server
    server.stop()


def exchange(server, raw: bytes, half_close: bool = False) -> bytes:
    """Send `raw` on a fresh connection; the bytes of one response (b"" when the server closes
    without answering). `half_close` sends EOF after `raw`, as a client that gives up."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(raw)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while not _complete(answer) and (chunk := connection.recv(65536)):
            answer += chunk
    return answer


def _complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length:
        return len(body) >= int(length.group(1))
    return body.endswith(b"0\r\n\r\n") if re.search(rb"(?i)transfer-encoding: *chunked", head) else False


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    if re.search(rb"(?i)transfer-encoding: *chunked", head):
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(head.split(b" ", 2)[1]), body


GOOD = b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}'
RAW = {
    # The HTTP parser refuses these before the application sees them: a plain-text 400, or it
    # closes the connection.
    "garbage-request-line": (b"HELLO\r\n\r\n", 400, False),
    "negative-content-length": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n" % INFER.encode(), 400, False),
    "two-content-lengths": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabc" % INFER.encode(), 400, False),
    "bad-chunk-size": (b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n" % INFER.encode(), 400, False),
    "unknown-method": (b"BREW %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % INFER.encode(), 400, False),
    "latin1-path": (b"GET /v2/models/\xe9\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
    # The application answers these, in JSON.
    "method-not-allowed": (b"DELETE %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % INFER.encode(), 405, True),
    "content-length-over-limit": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n" % INFER.encode(), 413, True),
    "chunked-over-limit": (b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % INFER.encode()
                           + b"100000\r\n" + b" " * 0x100000 + b"\r\n0\r\n\r\n", 413, True),
    "truncated-json": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{" % INFER.encode(), 400, True),
    "unknown-route": (b"GET /v3/everything HTTP/1.1\r\nHost: x\r\n\r\n", 404, True),
    "http-1.0-without-host": (b"POST %s HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (INFER.encode(), len(GOOD), GOOD), 200, True),
    # The client gives up mid-body: closing without an answer is right.
    "body-shorter-than-declared-then-eof": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inputs\"" % INFER.encode(), None, True),
}


@pytest.mark.parametrize("case", RAW)
def test_raw_requests_get_a_4xx_and_the_server_lives_on(slow_server, case):
    raw, expected, json_body = RAW[case]
    answer = exchange(slow_server, raw, half_close=expected is None)
    assert b"Traceback" not in answer
    if expected is None or (not json_body and answer == b""):
        assert answer == b"" or status_and_body(answer)[0] < 500
    else:
        status, body = status_and_body(answer)
        assert status == expected, answer[:300]
        if json_body and status != 200:
            assert json.loads(body)["error"]
    assert requests.get(slow_server.url + "/v2/health/ready", timeout=10).status_code == 200


def test_a_body_that_trickles_in_slower_than_the_timeout_gets_a_408(slow_server):
    """runtime.timeout_s is 2 s here; the client sends a byte every 0.25 s of a 200-byte body (50 s
    in all). The server answers 408 long before, and the loop gives up when the body is sent."""
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=5) as connection:
        connection.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n" % INFER.encode())
        connection.setblocking(False)
        answer = b""
        for _ in range(200):
            try:
                connection.send(b" ")
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                pass
            time.sleep(0.25)
            try:
                answer += connection.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                break
            if _complete(answer):
                break
    status, body = status_and_body(answer)
    assert status == 408, answer
    assert "did not arrive within 2 s" in json.loads(body)["error"]
