"""The spec's `targets.serverless` settings with provider defaults filled in and every derived
value (names, runtimes, caps, secret references, monitoring) worked out once, so templates only
print them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlgen.spec.distributions import project_name
from mlgen.examples import probes
from mlgen.bundle import requirements
from mlgen.lock import Locked, Platform, locked
from mlgen.spec import ServiceModel
from mlgen.targets.serverless import limits, monitoring, release
from mlgen.targets.serverless.artifact import ModelGrant, lambda_tmp_mb, model_grant
from mlgen.targets.serverless.limits import PlatformLimits

DEFAULT_REGION = {"aws": "us-east-1", "gcp": "us-central1", "azure": "eastus"}
# Lambda's Python runtimes: python3.10 and 3.11 run on Amazon Linux 2 (glibc 2.26), python3.12
# and later on Amazon Linux 2023 (glibc 2.34). Wheels newer than the OS's glibc do not load.
GLIBC_MINOR = {"3.10": 26, "3.11": 26, "3.12": 34, "3.13": 34}
WHEEL_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}
THROTTLE_PER_INSTANCE = 10  # HTTP API requests a second (rate and burst) per allowed instance
GCF_ENTRY_POINT = "serve"
AZURE_STORAGE_NAME_MAX = 24  # storage account names: 3-24 lower-case letters and digits
# Cloud Functions (Ubuntu 22.04) and Azure Functions (Debian) hosts run manylinux_2_28 wheels.
BUILD_PLATFORM = {"gcp": "x86_64-manylinux_2_28", "azure": "x86_64-manylinux_2_28"}
# The HTTP server is not used in a function: the adapter calls the runtime in-process.
SERVER_ONLY = {"uvicorn", "httptools", "uvloop"}
PROVIDER_REQUIREMENTS = {"aws": (), "gcp": ("functions-framework>=3.5",), "azure": ("azure-functions>=1.18",)}


@dataclass(frozen=True)
class FunctionSettings:
    provider: str
    name: str  # the service's name
    region: str
    memory_mb: int
    timeout_s: int
    packaging: str
    architecture: str
    plan: str
    public: bool
    warm_instances: int
    max_instances: int
    log_retention_days: int
    tracing: bool
    limits: PlatformLimits
    max_body_bytes: int  # serving.json's limit: the spec's, lowered to what the platform delivers
    model_grant: ModelGrant | None  # read access to model.uri in the provider's own store; None: nothing to grant
    # AWS Lambda
    stack_name: str
    lambda_runtime: str  # python3.12
    ephemeral_storage_mb: int | None  # Lambda's /tmp; None: Lambda's default (the model is in the package)
    wheel_platforms: tuple[str, ...]
    http_timeout_ms: int  # the HTTP API integration's wait: timeout_s, capped by the front door
    throttle_per_s: int
    application_log_level: str
    aws_secrets: tuple[Mapping[str, str], ...]  # MLGEN_AWS_SECRETS: what the adapter fetches at start
    alarms: Mapping[str, dict]
    dashboard_body: str
    # rollout on AWS: SAM's DeploymentPreference for the `live` alias ({}: none) and the resources it
    # names (the gate's alarms, a custom CodeDeploy configuration)
    deployment_preference: Mapping[str, object]
    release_resources: Mapping[str, dict]
    pre_traffic: release.PreTraffic | None  # the hook that sends the new version the examples first
    # Google Cloud Functions
    entry_point: str
    gcf_runtime: str  # python312
    secret_refs: tuple[str, ...]  # --set-secrets NAME=SECRET:latest
    policies: Mapping[str, dict]  # monitoring/<slug>.policy.json → AlertPolicy
    traffic_steps: tuple[tuple[int, int], ...]  # canary on GCP: (percent on the new revision, seconds held); () otherwise
    release_check_s: int  # how often deploy.sh looks for an open alert on the release policy during a pause
    release_policy: str  # the display name of that policy; "" without a gradual release
    # Azure Functions
    app_name: str
    resource_group: str
    storage_account: str
    instance: str  # Flex instance memory (MB) or Premium SKU; "" on Consumption
    min_instances: int  # Premium plan: instances kept running (at least one)
    function_timeout: str  # host.json's hh:mm:ss
    app_settings_file: str  # the environment for `az ... appsettings set --settings @FILE`; "" without env
    alerts: tuple[Mapping[str, str], ...]  # az monitor metrics alert create settings
    staging_slot: str  # blue_green on Azure: the slot published to and swapped in; "" otherwise
    preview_s: int  # how long the swap's preview phase holds before it completes
    release_examples: Mapping[str, bytes]  # file → inference request sent to the staging slot (the spec's examples)
    locked: Locked  # requirements.txt (and app/'s): pinned with hashes when the spec's lock covers the function

    @property
    def require_hashes(self) -> bool:
        return self.locked.hashed

    @property
    def s3_model_object(self) -> str:
        """bucket/key of the model the Lambda role may read (IAM-escaped); "" when nothing is granted."""
        grant = self.model_grant
        return grant.iam_object if grant and grant.store == "s3" else ""

    @property
    def gcs_model_bucket(self) -> str:
        """gs://BUCKET the function's service account may read; "" when nothing is granted."""
        grant = self.model_grant
        return f"gs://{grant.bucket}" if grant and grant.store == "gs" else ""

    @property
    def blob_model(self) -> ModelGrant | None:
        """The Azure Blob container (and its account) the app's managed identity may read; None when nothing is granted."""
        grant = self.model_grant
        return grant if grant and grant.store == "azure" else None

    @property
    def alias(self) -> bool:
        """The function publishes versions behind a `live` alias (provisioned concurrency, gradual releases)."""
        return bool(self.warm_instances or self.deployment_preference)

    @property
    def policy_names(self) -> dict[str, str]:
        return {path: policy["displayName"] for path, policy in self.policies.items()}


def function_settings(model: ServiceModel) -> FunctionSettings:
    s = model.target("serverless")
    provider, name, python = s["provider"], model.name, model.runtime.python
    platform = limits.serverless_limits(provider, s["packaging"], s["plan"])
    max_instances = s.get("max_instances") or model.scaling.max_replicas
    strategy = model.rollout.strategy
    # Only what the provider carries out (fit refuses the rest before anything renders).
    shift = release.codedeploy_shift(model.rollout) if provider == "aws" and strategy == "canary" else None
    hook = release.pre_traffic(model, s["timeout_s"]) if shift else None
    gcp_canary = provider == "gcp" and strategy == "canary"
    azure_slot = provider == "azure" and strategy == "blue_green"
    return FunctionSettings(
        provider=provider,
        name=name,
        region=s.get("region") or DEFAULT_REGION[provider],
        memory_mb=s["memory_mb"],
        timeout_s=s["timeout_s"],
        packaging=s["packaging"],
        architecture=s["architecture"],
        plan=s["plan"],
        public=s["public"],
        warm_instances=s["warm_instances"],
        max_instances=max_instances,
        log_retention_days=s["log_retention_days"],
        tracing=s["tracing"],
        limits=platform,
        max_body_bytes=min(model.runtime.max_body_bytes, platform.request_bytes.value),
        model_grant=model_grant(model, provider),
        stack_name=f"mlgen-{name}",
        lambda_runtime=f"python{python}",
        ephemeral_storage_mb=lambda_tmp_mb(model, s.get("ephemeral_storage_mb")),
        wheel_platforms=wheel_platforms(python, s["architecture"]),
        http_timeout_ms=min(s["timeout_s"], platform.http_timeout_s.value) * 1000,
        throttle_per_s=max_instances * THROTTLE_PER_INSTANCE,
        application_log_level=monitoring.lambda_log_level(model),
        aws_secrets=tuple({"name": x.name, "secret": x.secret, "key": x.key} for x in model.secrets),
        alarms=monitoring.cloudwatch_alarms(model) if provider == "aws" else {},
        dashboard_body=monitoring.cloudwatch_dashboard(model) if provider == "aws" else "",
        deployment_preference=deployment_preference(shift, hook),
        pre_traffic=hook,
        release_resources={**monitoring.release_alarms(model), **custom_config(shift)} if shift else {},
        entry_point=GCF_ENTRY_POINT,
        gcf_runtime="python" + python.replace(".", ""),
        # Secret Manager secrets hold one value each: the reference's key is not used.
        secret_refs=tuple(f"{x.name}={x.secret}:latest" for x in model.secrets),
        policies={**monitoring.gcp_alert_policies(model), **(monitoring.gcp_release_policy(model) if gcp_canary else {})}
        if provider == "gcp" else {},
        traffic_steps=tuple((step.weight, step.pause_s) for step in model.rollout.steps) if gcp_canary else (),
        release_check_s=max(1, model.rollout.interval_s),
        release_policy=f"mlgen {model.name}: release" if gcp_canary else "",
        app_name=f"mlgen-{name}",
        resource_group=f"mlgen-{name}-rg",
        storage_account=("mlgen" + name.replace("-", ""))[:AZURE_STORAGE_NAME_MAX],
        instance=azure_instance(s["memory_mb"], s["plan"]),
        min_instances=max(s["warm_instances"], 1),
        function_timeout=hours_minutes_seconds(s["timeout_s"]),
        app_settings_file="appsettings.json" if model.env else "",
        alerts=tuple(monitoring.azure_metric_alerts(model)) if provider == "azure" else (),
        staging_slot=release.STAGING_SLOT if azure_slot else "",
        preview_s=model.rollout.preview_s,
        release_examples={f"release/example-{index}.json": probe.body
                          for index, probe in enumerate(probes(model), 1)} if azure_slot else {},
        locked=locked(model, function_platform(model), header=REQUIREMENTS_HEADER),
    )


RELEASE_CONFIG = "ReleaseDeploymentConfig"


def deployment_preference(shift: release.CodeDeployShift | None, hook: release.PreTraffic | None) -> dict:
    """SAM's DeploymentPreference: CodeDeploy's configuration, the gate's alarms and the hook
    that runs before any traffic moves ({}: no gradual release)."""
    if shift is None:
        return {}
    kind = shift.predefined or {"Ref": RELEASE_CONFIG}
    preference = {"Type": kind, "Alarms": [{"Ref": logical} for logical in monitoring.RELEASE_ALARMS]}
    if hook:
        preference["Hooks"] = {"PreTraffic": {"Ref": hook.logical_id}}
    return preference


def custom_config(shift: release.CodeDeployShift) -> dict:
    if shift.predefined:
        return {}
    return {RELEASE_CONFIG: {"Type": "AWS::CodeDeploy::DeploymentConfig",
                             "Properties": {"ComputePlatform": "Lambda", "TrafficRoutingConfig": shift.routing}}}


REQUIREMENTS_HEADER = "# Generated by mlgen: what the function imports (the HTTP server is left out)."


def function_requirements(model: ServiceModel, provider: str) -> list[str]:
    """The app's requirements without the HTTP server, plus the provider's function library."""
    kept = [req for req in requirements(model) if project_name(req) not in SERVER_ONLY]
    named = {project_name(req) for req in kept}
    return kept + [req for req in PROVIDER_REQUIREMENTS[provider] if project_name(req) not in named]


def function_platform(model: ServiceModel) -> Platform:
    """Where the function's packages install: Lambda's Amazon Linux for its Python and
    architecture (built on this machine by build.sh for that platform), the other providers' hosts."""
    s = model.target("serverless")
    provider, python = s["provider"], model.runtime.python
    tag = (f"{WHEEL_ARCH[s['architecture']]}-manylinux_2_{GLIBC_MINOR[python]}" if provider == "aws"
           else BUILD_PLATFORM[provider])
    return Platform(f"serverless/{provider}", python, tag, tuple(function_requirements(model, provider)))


def wheel_platforms(python: str, architecture: str) -> tuple[str, ...]:
    """pip --platform tags a Lambda of this runtime and architecture can load, oldest first
    (pip does not widen an explicit --platform to compatible tags by itself)."""
    arch = WHEEL_ARCH[architecture]
    return (f"manylinux2014_{arch}", *(f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MINOR[python] + 1)))


def azure_instance(memory_mb: int, plan: str) -> str:
    """Flex instance memory or Premium SKU that holds memory_mb (rounded up); "" on Consumption
    or when none is that large (the fitness check refuses the spec then)."""
    if plan == "flex":
        return next((str(size) for size in limits.FLEX_INSTANCE_MEMORY_MB if size >= memory_mb), "")
    if plan == "premium":
        return next((sku for size, sku in limits.PREMIUM_SKUS if size >= memory_mb), "")
    return ""


def hours_minutes_seconds(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
