"""mlgen serving runtime: copied verbatim into every bundle's app/ folder next to serving.json.

In-process API (serverless handlers call exactly this):

    from mlgen_runtime import load_service
    service = load_service("/path/to/serving.json")   # loads and verifies the model once
    response = service.handle("POST", "/v2/models/iris/infer", {"content-type": "application/json"}, body)
    # response.status: int, response.headers: dict[str, str], response.body: bytes
"""

from .config import ConfigError
from .service import RUNTIME_VERSION as __version__
from .service import Response, Service, load_service

__all__ = ["ConfigError", "Response", "Service", "load_service", "__version__"]
