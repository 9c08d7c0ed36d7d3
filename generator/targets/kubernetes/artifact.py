"""What the pod that loads a `model.uri` model needs, worked out once for every flavor: a writable
cache on an emptyDir (the root file system stays read-only), a startup allowance for the download,
egress to the store, and the platform identity that reads it (a ServiceAccount annotation).

The runtime fetches and verifies the model itself on every flavor (KServe's storage initializer
is not used): it checks model.sha256, which the initializer does not, and one fetch means one
cache, one not-ready reason and one credential chain wherever the model runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.spec.artifact_uri import access_problems, parse_uri

CACHE_VOLUME = "model-cache"
# Where the emptyDir is mounted and MLGEN_MODEL_CACHE points: the same place serving.json's
# default (`../model-cache` from /app) names, so the env variable only makes it explicit.
CACHE_PATH = "/model-cache"
MIB = 1 << 20
# The startup probe's allowance: what a model in the image gets (LOAD_S, also the floor), plus the
# download at a throughput a busy node and a remote store should still reach (10 MiB/s, about
# 80 Mbit/s: cloud stores give a pod several times that), plus the runtime's retries (fetch.py:
# up to three more attempts after a 30 s timeout each, with 1, 2 and 4 s between them).
LOAD_S = 300
THROUGHPUT_BYTES_S = 10 * MIB
RETRIES_S = 3 * 30 + 1 + 2 + 4
PROBE_PERIOD_S = 5
HTTPS_PORT = 443
# Knative's default progress deadline (config-deployment's progress-deadline): a revision whose pods
# are not ready by then fails. A fetched model's revision gets the startup allowance, never less.
KNATIVE_PROGRESS_DEADLINE_S = 600
# GKE Workload Identity hands out tokens from the GKE metadata server, which a NetworkPolicy has to
# let the pod reach (GKE's Workload Identity troubleshooting page: 169.254.169.254 on port 80, and
# 169.254.169.252 on port 988 on clusters without Dataplane V2).
GKE_METADATA = (("169.254.169.254/32", 80), ("169.254.169.252/32", 988))


@dataclass(frozen=True)
class Identity:
    """How Kubernetes on one cloud gives a pod that cloud's identity."""

    annotation: str  # on the ServiceAccount
    name: str
    example: str
    pod_labels: Mapping[str, str]  # what the pods need beside the annotation


IDENTITIES = {
    "aws": Identity("eks.amazonaws.com/role-arn", "IRSA (IAM roles for service accounts, EKS)",
                    "arn:aws:iam::ACCOUNT:role/ROLE", {}),
    "gcp": Identity("iam.gke.io/gcp-service-account", "GKE Workload Identity",
                    "NAME@PROJECT.iam.gserviceaccount.com", {}),
    # The webhook only mutates pods that carry this label (azure-workload-identity docs, "Quick start").
    "azure": Identity("azure.workload.identity/client-id", "Azure Workload Identity", "CLIENT-ID",
                      {"azure.workload.identity/use": "true"}),
}


@dataclass(frozen=True)
class ModelFetch:
    cache_volume: str
    cache_path: str  # the emptyDir's mount and MLGEN_MODEL_CACHE
    # The emptyDir's sizeLimit. model.max_size, not the artifact's size, so the manifests stay the
    # same from one model version to the next (a rollback changes uri, sha256 and version only).
    size_limit: str
    startup_failure_threshold: int  # periods of PROBE_PERIOD_S
    startup_s: int  # the same allowance in seconds
    progress_deadline_s: int  # Knative's per-revision deadline, which stands for the startup probe there
    store_port: int | None  # the port the store listens on; None for a file:// model (no egress)
    metadata_egress: tuple[tuple[str, int], ...]  # the GKE metadata server, with its identity


def identity_clouds(annotations: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(cloud for cloud, identity in IDENTITIES.items() if identity.annotation in annotations)


def identity_pod_labels(annotations: Mapping[str, str]) -> dict[str, str]:
    return {key: value for cloud in identity_clouds(annotations) for key, value in IDENTITIES[cloud].pod_labels.items()}


def model_fetch(model: ServiceModel, annotations: Mapping[str, str]) -> ModelFetch | None:
    """None for a model carried in the image."""
    if not model.model.fetched:
        return None
    artifact = parse_uri(model.model.uri)
    startup_s = LOAD_S + math.ceil(model.model.max_bytes / THROUGHPUT_BYTES_S) + RETRIES_S
    port = None if artifact.store == "file" else (urlsplit(model.model.uri).port or HTTPS_PORT)
    metadata = GKE_METADATA if artifact.store == "gs" and "gcp" in identity_clouds(annotations) else ()
    return ModelFetch(
        cache_volume=CACHE_VOLUME,
        cache_path=CACHE_PATH,
        size_limit=f"{cache_mib(model)}Mi",
        startup_failure_threshold=math.ceil(startup_s / PROBE_PERIOD_S),
        startup_s=startup_s,
        progress_deadline_s=max(startup_s, KNATIVE_PROGRESS_DEADLINE_S),
        store_port=port,
        metadata_egress=metadata,
    )


def cache_mib(model: ServiceModel) -> int:
    """Room for the model once per uvicorn worker process (each downloads to a temporary file of its
    own before the rename: runtime.workers > 1 fetch side by side), plus one partial file a container
    killed mid-download leaves behind (the emptyDir outlives the container, not the pod)."""
    copies = model.runtime.workers + 1
    return math.ceil(model.model.max_bytes * copies / MIB)


def access_warnings(model: ServiceModel, annotations: Mapping[str, str]) -> list[Problem]:
    """A model in a cloud store needs that cloud's identity on the ServiceAccount; with another
    cloud's identity the generic warning says how to give the pods credentials instead."""
    if not model.model.fetched:
        return []
    artifact = parse_uri(model.model.uri)
    clouds = identity_clouds(annotations)
    if artifact.cloud is not None and not clouds:
        identity = IDENTITIES[artifact.cloud]
        return [model.problem(
            ("targets", "kubernetes"), f"model.uri is in {artifact.store} storage, and no ServiceAccount annotation gives "
            f"the pods an identity that reads it", warning=True,
            hint=f"set targets.kubernetes.service_account_annotations: {{{identity.annotation}: {identity.example}}} "
                 f"for {identity.name}, naming an identity allowed to read the object; on another platform, give the "
                 "pods credentials the store's SDK finds in their environment")]
    provider = artifact.cloud if artifact.cloud in clouds else (clouds[0] if clouds else None)
    return access_problems(model, "kubernetes", provider)
