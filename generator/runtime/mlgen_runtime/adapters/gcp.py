"""Google Cloud Functions (2nd gen): an HTTP function for functions-framework. The model loads
once per instance, when main.py is imported."""

from __future__ import annotations

from ..service import load_service
from . import declared_size, refuse_oversized


def http_function(config_path, entry_point: str):
    """The function functions-framework calls for `--target entry_point` (registered as an HTTP
    function under that name)."""
    import functions_framework

    service = load_service(config_path)
    limit = service.config.runtime.max_body_bytes

    def serve(request):
        headers = dict(request.headers)
        response = refuse_oversized(service, request.method, request.path, headers, declared_size(headers))
        if response is None:
            body = request.stream.read(limit + 1)  # bounded: a chunked body stops one byte past the limit
            if len(body) > limit:
                response = service.too_large(request.method, request.path, headers, None)
            else:
                response = service.handle(request.method, request.path, headers, body)
        return response.body, response.status, response.headers

    serve.__name__ = serve.__qualname__ = entry_point
    return functions_framework.http(serve)
