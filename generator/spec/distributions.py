"""Which pip distribution provides which import, as data: what every bundle installs besides the
spec's runtime.requirements, what those bring along, and the import names that differ from their
distribution's name. Read by the handler-import check (spec/handlers.py) and by the bundle's
requirements file (bundle.py), so both agree on what a service has installed."""

from __future__ import annotations

import re

# What the runtime itself imports, and what each model format adds. Bounds, not pins: the
# user's runtime.requirements pin what their model was trained with and take precedence.
RUNTIME_REQUIREMENTS = ("numpy>=1.24", "orjson>=3.9", "uvicorn>=0.30", "httptools>=0.6",
                        "uvloop>=0.19; sys_platform != 'win32'")
FORMAT_REQUIREMENTS = {
    "sklearn": ("scikit-learn>=1.3", "joblib>=1.3"),
    "onnx": ("onnxruntime>=1.17",),
    "python": (),
}
# With resources.gpu > 0 an ONNX model runs on CUDA: onnxruntime-gpu replaces onnxruntime (it
# carries the CPU provider too, for the fallback).
GPU_REQUIREMENTS = {"onnxruntime>=1.17": "onnxruntime-gpu>=1.17"}
# runtime.grpc_port: the gRPC server, the message classes generated from the protocol file (they
# need this protobuf runtime or newer) and the standard health service.
GRPC_REQUIREMENTS = ("grpcio>=1.60", "protobuf>=6.33.5", "grpcio-health-checking>=1.60")
# security.auth jwt: PyJWT verifies the tokens, cryptography the issuer's RSA, EC and EdDSA keys.
JWT_REQUIREMENTS = ("PyJWT[crypto]>=2.10",)
# model.uri: the SDK of the store the model is fetched from (its credentials come from the platform's
# identity through it); https:// and file:// need nothing beyond the standard library.
STORE_REQUIREMENTS = {
    "s3": ("boto3>=1.34",),
    "gs": ("google-cloud-storage>=2.14",),
    "azure": ("azure-storage-blob>=12.19", "azure-identity>=1.15"),
}

# What a distribution installs along with it (its own Requires-Dist, for the versions the
# examples pin: scikit-learn 1.9.1, scipy 1.17.1, onnxruntime 1.32.0, functions-framework 3.9),
# so a handler may import scipy when scikit-learn is required.
DEPENDS_ON = {
    "scikit-learn": ("numpy", "scipy", "joblib", "threadpoolctl", "narwhals"),
    "scipy": ("numpy",),
    "onnxruntime": ("numpy", "protobuf", "flatbuffers", "packaging"),
    "onnxruntime-gpu": ("numpy", "protobuf", "flatbuffers", "packaging"),
    "functions-framework": ("flask", "werkzeug"),
    "boto3": ("botocore", "s3transfer", "jmespath"),
}

# Import names that are not their distribution's name, from each distribution's top_level.txt
# (or its wheel's RECORD). The first distribution is the one to suggest: for OpenCV the headless
# build, since a service has no display.
IMPORTS = {
    "sklearn": ("scikit-learn",),
    "skimage": ("scikit-image",),
    "PIL": ("pillow",),
    "yaml": ("pyyaml",),
    "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"),
    "bs4": ("beautifulsoup4",),
    "dateutil": ("python-dateutil",),
    "dotenv": ("python-dotenv",),
    "jose": ("python-jose",),
    "jwt": ("pyjwt",),
    "multipart": ("python-multipart",),
    "slugify": ("python-slugify",),
    "magic": ("python-magic",),
    "docx": ("python-docx",),
    "pptx": ("python-pptx",),
    "fitz": ("pymupdf",),
    "attr": ("attrs",),
    "Crypto": ("pycryptodome",),
    "OpenSSL": ("pyopenssl",),
    "serial": ("pyserial",),
    "usb": ("pyusb",),
    "zmq": ("pyzmq",),
    "websocket": ("websocket-client",),
    "psycopg2": ("psycopg2-binary", "psycopg2"),
    "MySQLdb": ("mysqlclient",),
    "kafka": ("kafka-python",),
    "Levenshtein": ("levenshtein",),
    "sentence_transformers": ("sentence-transformers",),
    "tf_keras": ("tf-keras",),
    "lightgbm": ("lightgbm",),
    "google.protobuf": ("protobuf",),
    "google.cloud.storage": ("google-cloud-storage",),
    "azure.functions": ("azure-functions",),
    "azure.storage.blob": ("azure-storage-blob",),
    "azure.identity": ("azure-identity",),
    "grpc": ("grpcio",),
    "grpc_health": ("grpcio-health-checking",),
    "functions_framework": ("functions-framework",),
    "mlgen_runtime": (),  # the serving runtime, carried in every bundle's app/
}


def project_name(requirement: str) -> str:
    """A requirement's normalised distribution name: "Scikit_Learn[x]>=1.3" -> "scikit-learn"."""
    name = requirement
    for stop in "<>=!~;[ @":
        name = name.split(stop)[0]
    return re.sub(r"[-_.]+", "-", name.strip().lower())


def installed_with(projects: list[str]) -> set[str]:
    """`projects` and everything DEPENDS_ON says they bring along."""
    seen: set[str] = set()
    pending = list(projects)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(DEPENDS_ON.get(name, ()))
    return seen


def distributions_for(module: str) -> tuple[str, ...]:
    """The distributions that provide `import module` (a dotted name): the table's entry for the
    longest prefix, else the distribution named like the import."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        known = IMPORTS.get(".".join(parts[:length]))
        if known is not None:
            return known
    return (project_name(parts[0]),)
