"""A model the function fetches from `model.uri` when an instance starts: what the function's own
identity is granted to read it (that one object on S3, the bucket on Cloud Storage, the container
on Azure Blob Storage) and the room it needs where it is cached (Lambda's /tmp)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlgen.spec import ServiceModel
from mlgen.spec.artifact_uri import parse_uri
from mlgen.targets.serverless import limits

# IAM reads `*` and `?` in a Resource as wildcards and `${...}` as a policy variable; its own
# variables ${*}, ${?} and ${$} stand for the characters themselves (policy version 2012-10-17).
_IAM_LITERAL = {"$": "${$}", "*": "${*}", "?": "${?}"}
# A fetch writes a partial file and renames it into place; a download cut off by the function's
# timeout leaves its partial file behind, and the next cold start in that environment writes another.
CACHE_COPIES = 2


@dataclass(frozen=True)
class ModelGrant:
    """Read access for the function's identity to a model in its own cloud's store."""

    store: str  # s3 | gs | azure
    bucket: str  # the S3 or Cloud Storage bucket, the Azure container
    key: str  # the object (Azure: the blob)
    account: str = ""  # the Azure storage account

    @property
    def iam_object(self) -> str:
        """bucket/key for an S3 object ARN, matching that object only."""
        return "".join(_IAM_LITERAL.get(c, c) for c in f"{self.bucket}/{self.key}")


def model_grant(model: ServiceModel, provider: str) -> ModelGrant | None:
    """The grant the deployment makes, when the model lives in the provider's own store (a model in
    another cloud's store is a warning from plan.fetch_problems, and https or file need none)."""
    if not model.model.fetched:
        return None
    artifact = parse_uri(model.model.uri)
    if artifact.cloud != provider:
        return None
    return ModelGrant(artifact.store, artifact.bucket, artifact.key, artifact.account)


def lambda_tmp_mb(model: ServiceModel, configured: int | None) -> int | None:
    """Lambda's ephemeral storage: the spec's, else room for CACHE_COPIES of model.max_size (not
    the artifact's real size: the bundle must not change with the model version). None: Lambda's
    default, for a model carried in the package."""
    if configured is not None:
        return configured
    if not model.model.fetched:
        return None
    wanted = math.ceil(CACHE_COPIES * model.model.max_bytes / limits.MB)
    return min(limits.LAMBDA_TMP_MAX_MB.value, max(limits.LAMBDA_TMP_MIN_MB.value, wanted))
