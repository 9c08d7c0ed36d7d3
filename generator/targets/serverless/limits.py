"""Platform limits as data, and the size estimate they are checked against.

Every figure carries where it comes from and when it was read, because providers change them:
when one moves, update the number, its `as_of` and its `source` together. Targets read the
tables; nothing here renders anything. `None` means the platform documents no such limit (or
none that applies to the way mlgen deploys), not that it is unlimited in practice.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgen.spec.distributions import installed_with

MB = 1024 * 1024


@dataclass(frozen=True)
class Limit:
    value: int | None
    unit: str  # "MB" (MiB, as the providers write them), "s", "count"
    source: str  # the page that states the figure
    as_of: str  # the date the figure was read there
    note: str = ""

    def __str__(self) -> str:
        return f"{self.value} {self.unit}" if self.value is not None else "none"


_LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
_APIGW_QUOTAS = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"
_GCF_QUOTAS = "https://cloud.google.com/functions/quotas"
_GCF_MEMORY = "https://cloud.google.com/functions/docs/configuring/memory"
_AZ_SCALE = "https://learn.microsoft.com/azure/azure-functions/functions-scale"
_AZ_FLEX = "https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan"
_AZ_LIMITS = "https://learn.microsoft.com/azure/azure-functions/functions-host-json"
_AS_OF = "2025-08-22"  # the newest "last updated" date among the pages above when they were read


@dataclass(frozen=True)
class PlatformLimits:
    """One way of running a function (provider + plan + packaging)."""

    platform: str  # what a user calls it, used in messages
    package_mb: Limit  # the deployed code + dependencies, unzipped (what the platform measures)
    timeout_s: Limit  # longest execution the platform allows
    http_timeout_s: Limit  # longest an HTTP front door waits for the function
    memory_min_mb: Limit
    memory_max_mb: Limit
    request_bytes: Limit  # largest request body that reaches the function
    gpu: Limit  # GPUs a function can get (0: none)


def _l(value, unit, source, note=""):
    return Limit(value, unit, source, _AS_OF, note)


LAMBDA_ZIP = PlatformLimits(
    platform="AWS Lambda (zip package)",
    package_mb=_l(250, "MB", _LAMBDA_QUOTAS, "unzipped deployment package including layers; the 50 MB "
                  "zipped figure applies to direct uploads only, SAM uploads through S3"),
    timeout_s=_l(900, "s", _LAMBDA_QUOTAS),
    http_timeout_s=_l(30, "s", _APIGW_QUOTAS, "HTTP API integration timeout (REST APIs: 29 s by default)"),
    memory_min_mb=_l(128, "MB", _LAMBDA_QUOTAS),
    memory_max_mb=_l(10240, "MB", _LAMBDA_QUOTAS),
    request_bytes=_l(6 * MB, "bytes", _LAMBDA_QUOTAS, "synchronous invocation payload, request and response; "
                     "a base64 body counts encoded"),
    gpu=_l(0, "count", _LAMBDA_QUOTAS, "Lambda offers no GPUs"),
)
LAMBDA_IMAGE = PlatformLimits(
    platform="AWS Lambda (container image)",
    package_mb=_l(10240, "MB", _LAMBDA_QUOTAS, "uncompressed image size, all layers"),
    timeout_s=LAMBDA_ZIP.timeout_s,
    http_timeout_s=LAMBDA_ZIP.http_timeout_s,
    memory_min_mb=LAMBDA_ZIP.memory_min_mb,
    memory_max_mb=LAMBDA_ZIP.memory_max_mb,
    request_bytes=LAMBDA_ZIP.request_bytes,
    gpu=LAMBDA_ZIP.gpu,
)
GCF_GEN2 = PlatformLimits(
    platform="Google Cloud Functions (2nd gen)",
    package_mb=_l(None, "MB", _GCF_QUOTAS, "the quotas page lists no deployment size for 2nd gen (N/A); "
                  "1st gen allowed 500 MB sources plus modules"),
    timeout_s=_l(3600, "s", _GCF_QUOTAS, "HTTP functions; event-driven ones stop at 540 s"),
    http_timeout_s=_l(3600, "s", _GCF_QUOTAS),
    memory_min_mb=_l(128, "MB", _GCF_MEMORY),
    memory_max_mb=_l(32768, "MB", _GCF_QUOTAS),
    request_bytes=_l(32 * MB, "bytes", _GCF_QUOTAS, "max uncompressed HTTP request size, 2nd gen"),
    gpu=_l(0, "count", _GCF_QUOTAS, "`gcloud functions deploy` offers no GPU; Cloud Run services do"),
)
_AZ_COMMON = dict(
    http_timeout_s=_l(230, "s", _AZ_SCALE, "Azure Load Balancer idle timeout: an HTTP-triggered function "
                      "must answer within 230 s whatever functionTimeout says"),
    request_bytes=_l(100 * MB, "bytes", _AZ_LIMITS, "HTTP trigger maxRequestLength default (104857600)"),
    gpu=_l(0, "count", _AZ_SCALE, "no Functions plan offers GPUs (Container Apps does)"),
    package_mb=_l(None, "MB", _AZ_SCALE, "no per-package size is documented"),
)
AZURE_PLANS = {
    "consumption": PlatformLimits(
        platform="Azure Functions Consumption plan",
        timeout_s=_l(600, "s", _AZ_SCALE, "functionTimeout maximum 10 minutes (default 5)"),
        memory_min_mb=_l(1536, "MB", _AZ_SCALE, "fixed 1.5 GB per instance"),
        memory_max_mb=_l(1536, "MB", _AZ_SCALE, "fixed 1.5 GB per instance"),
        **_AZ_COMMON),
    "flex": PlatformLimits(
        platform="Azure Functions Flex Consumption plan",
        timeout_s=_l(None, "s", _AZ_FLEX, "unbounded (guaranteed 60 minutes); HTTP still 230 s"),
        memory_min_mb=_l(512, "MB", _AZ_FLEX, "instance memory 512, 2048 or 4096 MB"),
        memory_max_mb=_l(4096, "MB", _AZ_FLEX, "instance memory 512, 2048 or 4096 MB"),
        **_AZ_COMMON),
    "premium": PlatformLimits(
        platform="Azure Functions Premium plan",
        timeout_s=_l(None, "s", _AZ_SCALE, "unbounded (guaranteed 60 minutes); HTTP still 230 s"),
        memory_min_mb=_l(3584, "MB", _AZ_SCALE, "EP1 3.5 GB, EP2 7 GB, EP3 14 GB"),
        memory_max_mb=_l(14336, "MB", _AZ_SCALE, "EP1 3.5 GB, EP2 7 GB, EP3 14 GB"),
        **_AZ_COMMON),
}
FLEX_INSTANCE_MEMORY_MB = (512, 2048, 4096)
PREMIUM_SKUS = ((3584, "EP1"), (7168, "EP2"), (14336, "EP3"))


# Where a model fetched from model.uri is cached (mlgen_runtime.adapters.platform_cache), and how
# long a cold start may take to fetch it.
_LAMBDA_TMP = "https://docs.aws.amazon.com/lambda/latest/dg/API_EphemeralStorage.html"
_LAMBDA_LIFECYCLE = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html"
_GCF_ENVIRONMENT = "https://cloud.google.com/functions/docs/concepts/execution-environment"
_READ_2026 = "2026-11-30"
LAMBDA_TMP_MIN_MB = Limit(512, "MB", _LAMBDA_TMP, _READ_2026, "/tmp (ephemeral storage) by default")
LAMBDA_TMP_MAX_MB = Limit(10240, "MB", _LAMBDA_TMP, _READ_2026, "/tmp (ephemeral storage), set in 1 MB steps")
LAMBDA_INIT_S = Limit(10, "s", _LAMBDA_LIFECYCLE, _READ_2026,
                      "init phase of an on-demand function; past it Lambda runs the init again inside the first "
                      "invocation, under the function's timeout (provisioned concurrency: up to 15 minutes)")
GCF_TMP_IN_MEMORY = Limit(None, "MB", _GCF_ENVIRONMENT, _READ_2026,
                          "/tmp is an in-memory file system: what is written there counts against the instance's memory")


def serverless_limits(provider: str, packaging: str = "zip", plan: str = "consumption") -> PlatformLimits:
    if provider == "aws":
        return LAMBDA_IMAGE if packaging == "image" else LAMBDA_ZIP
    if provider == "gcp":
        return GCF_GEN2
    return AZURE_PLANS[plan]


# Installed size (MB, unzipped, without __pycache__ and tests folders) of common dependencies (what
# each pulls in: spec/distributions.py). Measured 2026-11-28 on manylinux x86_64 wheels for
# CPython 3.11 (numpy 2.4.6, scipy 1.17.1, scikit-learn 1.9.1, onnxruntime 1.32.0, pillow 13.0.0) with
# `find PKG -type f ! -path '*__pycache__*' ! -path '*/tests/*'` summed over site-packages;
# aarch64 wheels are within a few MB of these.
INSTALLED_MB = {
    "numpy": 48.2, "scipy": 93.2, "scikit-learn": 24.3, "joblib": 0.9, "threadpoolctl": 0.1,
    "narwhals": 2.0, "onnxruntime": 72.1, "protobuf": 2.2, "flatbuffers": 0.1, "packaging": 0.3,
    "orjson": 0.3, "pillow": 19.3, "prometheus-client": 0.2, "sympy": 16.2, "mpmath": 1.4,
    "functions-framework": 3.0, "flask": 1.5, "werkzeug": 1.5, "azure-functions": 1.0,
    # model.uri on S3 (measured 2026-11-30 the same way, botocore 1.43)
    "boto3": 0.9, "botocore": 18.4, "s3transfer": 0.3, "jmespath": 0.1,
}
UNKNOWN_PACKAGE_MB = 5.0  # counted for a requirement not in the table above


def dependencies_mb(projects: list[str]) -> tuple[float, list[str]]:
    """Estimated installed size of `projects` with what they pull in, and the names not in the
    table (counted at UNKNOWN_PACKAGE_MB each)."""
    seen = installed_with(projects)
    unknown = sorted(name for name in seen if name not in INSTALLED_MB)
    return sum(INSTALLED_MB.get(name, UNKNOWN_PACKAGE_MB) for name in seen), unknown


# Lambda Python runtimes: when AWS deprecates each and then blocks creating and updating
# functions on it. Source: https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html as
# carried by cfn-lint 1.51 (data/AdditionalSpecs/LmbdRuntimeLifecycle.json), read 2026-11-28.
LAMBDA_PYTHON_LIFECYCLE = {
    "3.10": {"deprecated": "2026-06-30", "create_block": "2026-07-31", "update_block": "2026-08-31"},
    "3.11": {"deprecated": "2026-06-30", "create_block": "2026-07-31", "update_block": "2026-08-31"},
    "3.12": {"deprecated": "2028-10-31", "create_block": "2028-11-30", "update_block": "2029-01-10"},
    "3.13": {"deprecated": "2029-06-30", "create_block": "2029-07-31", "update_block": "2029-08-31"},
}
LAMBDA_RUNTIMES_SOURCE = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html"


# Gradual releases (rollout): what each provider's traffic shifting can express, and how long a step
# may hold. Read 2026-11-30.
_CODEDEPLOY_CANARY = ("https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/"
                      "aws-properties-codedeploy-deploymentconfig-timebasedcanary.html")
_CODEDEPLOY_LINEAR = ("https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/"
                      "aws-properties-codedeploy-deploymentconfig-timebasedlinear.html")
_CFN_OPERATION = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-ecs-service-canaryconfiguration.html"
_CLOUD_RUN_TRAFFIC = "https://cloud.google.com/functions/docs/configuring/traffic-splitting"
_AZ_SLOTS = "https://learn.microsoft.com/azure/azure-functions/functions-deployment-slots"
CODEDEPLOY_INTERVAL_UNIT_S = Limit(60, "s", _CODEDEPLOY_CANARY, _READ_2026,
                                   "CanaryInterval and LinearInterval are whole minutes (integers)")
CODEDEPLOY_PREDEFINED = {
    # (kind, percent, minutes) → CodeDeploy's own Lambda configuration (CodeDeployDefault.Lambda<name>)
    ("canary", 10, 5): "Canary10Percent5Minutes", ("canary", 10, 10): "Canary10Percent10Minutes",
    ("canary", 10, 15): "Canary10Percent15Minutes", ("canary", 10, 30): "Canary10Percent30Minutes",
    ("linear", 10, 1): "Linear10PercentEvery1Minute", ("linear", 10, 2): "Linear10PercentEvery2Minutes",
    ("linear", 10, 3): "Linear10PercentEvery3Minutes", ("linear", 10, 10): "Linear10PercentEvery10Minutes",
}
CODEDEPLOY_SHAPES = Limit(None, "count", _CODEDEPLOY_LINEAR, _READ_2026,
                          "a Lambda deployment configuration is AllAtOnce, TimeBasedCanary (one share for one interval, "
                          "then all) or TimeBasedLinear (the same share added every interval)")
# SAM's DeploymentPreference makes the shift the stack update's UpdatePolicy: the stack waits for it.
LAMBDA_SHIFT_MAX_S = Limit(36 * 3600, "s", _CFN_OPERATION, _READ_2026,
                           "CloudFormation operations time out after 36 hours; SAM runs the CodeDeploy shift inside the "
                           "stack update, so every pause together must end before that")
GCF_TRAFFIC_STEP_MAX_S = Limit(None, "s", _CLOUD_RUN_TRAFFIC, _READ_2026,
                               "Cloud Run keeps a traffic split until it is changed; deploy.sh holds each step itself")
AZURE_SLOT_PLANS = Limit(None, "count", _AZ_SLOTS, _READ_2026,
                         "deployment slots on Premium (Elastic Premium) and Dedicated plans; none on Linux Consumption "
                         "or Flex Consumption")
AZURE_PREVIEW_MAX_S = Limit(None, "s", _AZ_SLOTS, _READ_2026,
                            "a swap with preview waits in its first phase until it is completed or reset")
