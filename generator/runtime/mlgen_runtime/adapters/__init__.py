"""Function platform adapters: each turns its platform's request into the runtime's one call,
`Service.handle(method, path, headers, body)`, and the Response back. A bundle's entry point
(handler.py, main.py, function_app.py) is a few lines that call one of these:

    handler = aws_lambda.lambda_handler(APP / "serving.json")   # AWS Lambda
    serve = gcp.http_function(APP / "serving.json", "serve")    # Google Cloud Functions
    app = azure.function_app(APP / "serving.json", public=False) # Azure Functions

Each adapter imports its platform's library itself, so the runtime never needs one. All of them
refuse a body over serving.json's max_body_bytes with the runtime's JSON 413 before reading it whole.
"""

from __future__ import annotations

from ..service import Response, Service


def declared_size(headers) -> int | None:
    """The Content-Length the caller declared; None when it is absent or not a byte count."""
    for key, value in headers.items():
        if str(key).lower() == "content-length":
            value = str(value).strip()
            return int(value) if value.isdigit() else None
    return None


def refuse_oversized(service: Service, method: str, path: str, headers, size: int | None) -> Response | None:
    """The 413 when a body of `size` bytes would pass max_body_bytes; None when it may be read."""
    if size is not None and size > service.config.runtime.max_body_bytes:
        return service.too_large(method, path, headers, size)
    return None
