"""Gradual releases (the spec's `rollout`) on each function platform: which strategies each
provider carries out, how the steps map onto its own traffic shifting, and the located problems
of a rollout it cannot express (the figures are in limits.py).

- AWS: CodeDeploy shifts the `live` alias (SAM's AutoPublishAlias + DeploymentPreference), with a
  predefined configuration when the steps match one, else an AWS::CodeDeploy::DeploymentConfig.
  CodeDeploy expresses one canary step or equal linear steps; blue_green is refused (see below).
  Before any traffic moves, a PreTraffic hook (pre_traffic.py) sends the new version the spec's
  examples: the runtime's own 5xx answers are no Lambda function errors, so the alarms miss them.
- GCP: deploy.sh pins the traffic to the serving revision, deploys (the new revision gets none),
  then moves traffic step by step with `gcloud run services update-traffic`.
- Azure: a staging slot (Premium plan only) swapped in with preview: blue_green.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgen.examples import probes
from mlgen.spec import ServiceModel
from mlgen.spec.model import Rollout, SecretRef
from mlgen.targets.serverless import limits

WHERE = ("rollout", "strategy")
# Where each strategy is carried out, for the messages that refuse it elsewhere.
STRATEGY_PROVIDERS = {"canary": ("aws", "gcp"), "blue_green": ("azure",)}
PROVIDER_NAMES = {"aws": "AWS Lambda", "gcp": "Google Cloud Functions", "azure": "Azure Functions (plan: premium)"}
STAGING_SLOT = "staging"
# SAM's CodeDeploy role (the AWSCodeDeployRoleForLambda policy) may invoke hooks named
# CodeDeployHook_*; a function name holds at most 64 characters, so the stack name at most 49.
HOOK_PREFIX = "CodeDeployHook_"
HOOK_STACK_NAME_MAX = 64 - len(HOOK_PREFIX)
# The hook's package: pre_traffic.py and event.json beside examples.release_files (release/).
HOOK_DIR = "release"
HOOK_MODULE = "pre_traffic"
# What one invocation may take beyond the function's timeout: a cold start's init (the model loads).
COLD_START_S = 30
HOOK_MARGIN_S = 30  # the hook's own start and its report to CodeDeploy
LAMBDA_TIMEOUT_MAX_S = 900  # Lambda's longest timeout


@dataclass(frozen=True)
class PreTraffic:
    """The Lambda that CodeDeploy runs before it shifts any traffic (DeploymentPreference.Hooks)."""

    logical_id: str
    function_name: str  # Fn::Sub of the name SAM's CodeDeploy role may invoke
    code_dir: str
    handler: str
    invoke_timeout_s: int  # one invocation of the new version
    timeout_s: int  # the hook's own Lambda timeout: every example's invocation
    header: str | None  # security.auth api_key: the header the key goes in
    api_key: SecretRef | None  # and the secret the function itself reads it from
    stack_name_max: int  # deploy.sh refuses a longer --stack-name: the hook's name would not fit


def pre_traffic(model: ServiceModel, function_timeout_s: int) -> PreTraffic | None:
    """None with security.auth jwt: the hook cannot sign a token the issuer would accept, and a
    check that always fails would stop every release."""
    if model.security.auth == "jwt":
        return None
    invoke = function_timeout_s + COLD_START_S
    key = model.security.api_keys[0] if model.security.auth == "api_key" else None
    return PreTraffic(
        logical_id="PreTrafficHook",
        function_name=HOOK_PREFIX + "${AWS::StackName}",
        code_dir=HOOK_DIR,
        handler=f"{HOOK_MODULE}.handler",
        invoke_timeout_s=invoke,
        timeout_s=min(LAMBDA_TIMEOUT_MAX_S, HOOK_MARGIN_S + invoke * len(probes(model))),
        header=model.security.header if key else None,
        api_key=key,
        stack_name_max=HOOK_STACK_NAME_MAX,
    )


@dataclass(frozen=True)
class CodeDeployShift:
    """How CodeDeploy moves the `live` alias: a predefined configuration's name, or the
    TrafficRoutingConfig of a custom one."""

    predefined: str  # "Canary10Percent5Minutes", "AllAtOnce"; "" for a custom configuration
    routing: dict  # TrafficRoutingConfig of the custom configuration; {} for a predefined one


def codedeploy_shift(rollout: Rollout) -> CodeDeployShift | None:
    """The CodeDeploy configuration that carries out the canary's steps; None when CodeDeploy
    cannot express them (release_problems says why)."""
    steps = rollout.steps
    unit = limits.CODEDEPLOY_INTERVAL_UNIT_S.value
    if len(steps) == 1:
        return CodeDeployShift("AllAtOnce", {})
    minutes = steps[0].pause_s // unit
    if any(step.pause_s % unit for step in steps[:-1]) or minutes < 1:
        return None
    share = steps[0].weight
    if len(steps) == 2:
        kind, routing = "canary", {"Type": "TimeBasedCanary",
                                   "TimeBasedCanary": {"CanaryPercentage": share, "CanaryInterval": minutes}}
    elif (all(step.weight == share * index for index, step in enumerate(steps, 1))
          and len({step.pause_s for step in steps[:-1]}) == 1):
        kind, routing = "linear", {"Type": "TimeBasedLinear",
                                   "TimeBasedLinear": {"LinearPercentage": share, "LinearInterval": minutes}}
    else:
        return None
    predefined = limits.CODEDEPLOY_PREDEFINED.get((kind, share, minutes), "")
    return CodeDeployShift(predefined, {} if predefined else routing)


def release_problems(model: ServiceModel, provider: str, plan: str) -> list:
    """A strategy the provider cannot carry out, steps its traffic shifting cannot express, and
    pauses over its limits, each at the line that says it."""
    rollout = model.rollout
    if not rollout.gradual:
        return []
    able = STRATEGY_PROVIDERS[rollout.strategy]
    if provider not in able or (provider == "azure" and plan != "premium"):
        return [_refused(model, provider, plan, rollout.strategy, able)]
    if provider == "aws":
        return _codedeploy_problems(model)
    if provider == "gcp":
        return [model.problem(("rollout", "steps", index, "pause"), f"Cloud Run's request metrics come per minute: a "
                              f"{step.pause_s} s pause ends before the release policy can see this step",
                              hint="pause: 1m or longer", warning=True)
                for index, step in enumerate(rollout.steps[:-1]) if step.pause_s < 60]
    if provider == "azure" and model.model.fetched and model.model.uri.startswith("az"):
        return [model.problem(WHERE, "blue_green on Azure publishes to a staging slot, whose managed identity deploy.sh "
                                     "does not grant the model's blob container",
                              hint="grant the slot's identity 'Storage Blob Data Reader' yourself, or use all_at_once")]
    return []


def _refused(model: ServiceModel, provider: str, plan: str, strategy: str, able: tuple[str, ...]) -> object:
    where = ", ".join(PROVIDER_NAMES[name] for name in able)
    if provider == "azure" and "azure" in able:
        slots = limits.AZURE_SLOT_PLANS
        return model.problem(WHERE, f"blue_green on Azure swaps a staging slot, and the {plan} plan has none "
                                    f"({slots.note}; {slots.source}, as of {slots.as_of})",
                             hint="use targets.serverless.plan: premium, or the kubernetes target")
    why = {"aws": "Lambda has no slot to preview a version in: CodeDeploy only shifts the alias's traffic",
           "gcp": "deploy.sh shifts Cloud Run traffic in steps; it has no preview phase",
           "azure": "Azure Functions' slots swap all the traffic at once"}[provider]
    return model.problem(WHERE, f"the serverless target cannot release with {strategy} on {provider}: {why}",
                         hint=f"{strategy} runs on {where} (and the kubernetes target); on {provider} use "
                              + ("a canary with one step (weight 10, pause 5m, then 100)" if strategy == "blue_green"
                                 else "blue_green or all_at_once"))


def _codedeploy_problems(model: ServiceModel) -> list:
    steps, problems = model.rollout.steps, []
    unit, most = limits.CODEDEPLOY_INTERVAL_UNIT_S, limits.LAMBDA_SHIFT_MAX_S
    for index, step in enumerate(steps[:-1]):
        where = ("rollout", "steps", index, "pause")
        if step.pause_s % unit.value or step.pause_s < unit.value:
            problems.append(model.problem(where, f"CodeDeploy holds a step for whole minutes ({unit.note}; {unit.source}, "
                                                 f"as of {unit.as_of}), not {step.pause_s} s",
                                          hint=f"pause: {max(1, -(-step.pause_s // unit.value))}m"))
    total = 0
    for index, step in enumerate(steps[:-1]):
        total += step.pause_s
        if total > most.value:
            problems.append(model.problem(("rollout", "steps", index, "pause"),
                                          f"the release would hold {total} s by this step, over {most} ({most.note}; "
                                          f"{most.source}, as of {most.as_of})", hint="shorten the pauses"))
            break
    if not problems and codedeploy_shift(model.rollout) is None:
        shapes = limits.CODEDEPLOY_SHAPES
        weights = ", ".join(f"{step.weight}%" for step in steps)
        problems.append(model.problem(("rollout", "steps"), f"CodeDeploy cannot shift Lambda traffic as {weights}: "
                                      f"{shapes.note} ({shapes.source}, as of {shapes.as_of})",
                                      hint="one step then 100 ([{weight: 10, pause: 5m}, {weight: 100}]), or equal steps "
                                           "with equal pauses ([{weight: 25, pause: 2m}, {weight: 50, pause: 2m}, "
                                           "{weight: 75, pause: 2m}, {weight: 100}])"))
    return problems
