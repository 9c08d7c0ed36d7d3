"""Azure Functions (Python v2 programming model): a FunctionApp with one catch-all HTTP trigger.
The model loads once per worker, when function_app.py is imported (a model fetched from `model.uri`
is fetched beside the import, into the worker's temp folder, since wwwroot is read-only, and the
first invocation waits for it); host.json sets routePrefix to
"" so the paths are the runtime's own (/v2/models/NAME/infer)."""

from __future__ import annotations

from urllib.parse import urlsplit

from . import FunctionInstance, declared_size, refuse_oversized


def function_app(config_path, public: bool):
    """The FunctionApp the host indexes: anonymous when `public`, function keys otherwise."""
    import azure.functions as func

    # The host gives the worker's indexing of function_app.py only seconds, so a model.uri model
    # is fetched beside the import rather than in it; the first invocation waits for it.
    instance = FunctionInstance(config_path, fetch_in_background=True)
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS if public else func.AuthLevel.FUNCTION)

    @app.route(route="{*path}", methods=["GET", "POST"])
    def serve(req: func.HttpRequest) -> func.HttpResponse:
        service = instance.ready_service()
        path, headers = urlsplit(req.url).path or "/", dict(req.headers)
        response = refuse_oversized(service, req.method, path, headers, declared_size(headers))
        if response is None:
            response = service.handle(req.method, path, headers, req.get_body())
        # HttpResponse carries the content type as mimetype and charset, not as a header.
        others = {key: value for key, value in response.headers.items() if key != "content-type"}
        mimetype, _, parameters = response.headers.get("content-type", "application/octet-stream").partition(";")
        charset = parameters.partition("charset=")[2].strip() or "utf-8"
        return func.HttpResponse(response.body, status_code=response.status, headers=others,
                                 mimetype=mimetype.strip(), charset=charset)

    return app
