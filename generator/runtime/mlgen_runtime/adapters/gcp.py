"""Google Cloud Functions (2nd gen): an HTTP function for functions-framework. The model loads
once per instance, when main.py is imported: functions-framework imports it before it listens, so
the first request waits for a model fetched from `model.uri` (into /tmp, in the instance's memory)."""

from __future__ import annotations

from . import FunctionInstance, declared_size, refuse_oversized


def http_function(config_path, entry_point: str):
    """The function functions-framework calls for `--target entry_point` (registered as an HTTP
    function under that name)."""
    import functions_framework

    instance = FunctionInstance(config_path)
    limit = instance.service.config.runtime.max_body_bytes

    def serve(request):
        service = instance.ready_service()
        headers = dict(request.headers)
        response = refuse_oversized(service, request.method, request.path, headers, declared_size(headers))
        if response is None:
            body = request.stream.read(limit + 1)  # bounded: a chunked body stops one byte past the limit
            if len(body) <= limit:
                response = service.handle(request.method, request.path, headers, body)
            else:
                response = service.too_large(request.method, request.path, headers, None)
        if response.status == 413:
            _discard(request.stream)
        return response.body, response.status, response.headers

    serve.__name__ = serve.__qualname__ = entry_point
    return functions_framework.http(serve)


def _discard(stream, chunk: int = 64 * 1024) -> None:
    """Read what is left of a refused body without keeping it. functions-framework reads every
    request body whole into memory after the answer (so the client, which sends its body before
    reading, gets the answer instead of a reset connection); once drained there is nothing left."""
    while stream.read(chunk):
        pass
