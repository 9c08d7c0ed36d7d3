"""Baseline for bench/runtime_throughput.py: the least an ASGI app can do for the same V2 request
(parse JSON, build the array, predict, serialize the same answer document: model name and version,
the output tensor) with no validation, metrics, logs, request ids or thread pool.
Run: MODEL=path/model.joblib uvicorn runtime_bare_app:app"""

import os

import joblib
import numpy as np
import orjson

MODEL = joblib.load(os.environ["MODEL"])
HEADERS = [(b"content-type", b"application/json")]
# The runtime's answer names the model and its version (the bench's iris bundle: iris 1.0.0).
NAME, VERSION = os.environ.get("MODEL_NAME", "iris"), os.environ.get("MODEL_VERSION", "1.0.0")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        payload = b'{"ready":true}'
    else:
        tensor = orjson.loads(body)["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        payload = orjson.dumps({"model_name": NAME, "model_version": VERSION,
                                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [len(rows)],
                                             "data": MODEL.predict(rows)}]}, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": payload})
