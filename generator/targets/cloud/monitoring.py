"""The cloud fleet's monitoring/ folder: the shared rules and dashboard, and scrape jobs that find
the group's VMs as it scales (EC2 discovery by the mlgen-service tag on AWS; a targets file on
Google Cloud and Azure, whose discovery needs credentials Prometheus usually does not have); and
the alarms (AWS), alert policy (GCP) or metric alerts (Azure) that gate a canary release (release.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from mlgen.monitoring import NODE_EXPORTER_PORT, host_resources, monitoring_files, node_job, static_job
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel

if TYPE_CHECKING:  # settings.py builds the release alarms from this module
    from mlgen.targets.cloud.settings import CloudSettings

# Stand-ins for the ARN suffixes CloudWatch names the balancer and the target group by; deploy.sh
# puts the real ones in once it has them.
LOAD_BALANCER_DIMENSION = "@LOAD_BALANCER@"
TARGET_GROUP_DIMENSION = "@TARGET_GROUP@"
# Stand-in for the count of 5xx answers an Azure release alert allows in one window: deploy.sh works
# it out from the gateway's traffic of the hour before the release.
ERRORS_ALLOWED = "@ERRORS@"


def _ec2(settings: CloudSettings, port: int) -> dict:
    discovery = {"port": port, "filters": [{"name": "tag:mlgen-service", "values": [settings.name]},
                                           {"name": "instance-state-name", "values": ["running"]}]}
    if settings.region:
        discovery["region"] = settings.region
    return {"ec2_sd_configs": [discovery],
            "relabel_configs": [{"source_labels": ["__meta_ec2_instance_id"], "target_label": "instance"}]}


def monitoring(model: ServiceModel, settings: CloudSettings, renderer: Renderer) -> list[RenderedFile]:
    if not model.observability.metrics:
        return []
    if settings.provider == "aws":
        service = {**static_job(model, []), **_ec2(settings, settings.port)}
        service.pop("static_configs")
        jobs, note = [service, node_job([], **_ec2(settings, NODE_EXPORTER_PORT))], "cloud-aws"
    else:
        service = {**static_job(model, []), "file_sd_configs": [{"files": [f"targets/{model.name}.json"]}]}
        service.pop("static_configs")
        jobs = [service, node_job([], file_sd_configs=[{"files": [f"targets/{model.name}-node.json"]}])]
        note = "cloud-file"
    return monitoring_files(model, renderer, jobs, host_resources(), note=note)


def aws_release_alarm_names(name: str) -> tuple[str, ...]:
    return (f"{name}-release-errors", f"{name}-release-latency")


def aws_release_alarms(model: ServiceModel, name: str, tags: Mapping[str, str], period_s: int) -> tuple[dict, ...]:
    """`aws cloudwatch put-metric-alarm --cli-input-json` of each alarm an instance refresh watches:
    the target group's share of 5xx answers and its p99 response time over rollout.analysis. ALB
    metrics are the whole group's, old and new instances together: a canary's errors show diluted
    by its share of the instances."""
    gate = model.rollout
    errors_alarm, latency_alarm = aws_release_alarm_names(name)
    dimensions = [{"Name": "LoadBalancer", "Value": LOAD_BALANCER_DIMENSION},
                  {"Name": "TargetGroup", "Value": TARGET_GROUP_DIMENSION}]

    def metric(metric_id: str, metric_name: str) -> dict:
        return {"Id": metric_id, "ReturnData": False, "MetricStat": {
            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric_name, "Dimensions": dimensions},
            "Period": period_s, "Stat": "Sum"}}

    over = {"ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
            "TreatMissingData": "notBreaching", "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())]}
    return (
        {"AlarmName": errors_alarm, **over, "Threshold": round(gate.max_error_ratio * 100, 6),
         "AlarmDescription": f"{model.name} release: over {gate.max_error_ratio:.2%} of the fleet's answers were 5xx",
         "Metrics": [metric("errors", "HTTPCode_Target_5XX_Count"), metric("requests", "RequestCount"),
                     {"Id": "error_percent", "Expression": "100 * FILL(errors, 0) / requests",
                      "Label": "5xx answers (percent)", "ReturnData": True}]},
        {"AlarmName": latency_alarm, **over, "Threshold": gate.max_latency_p99_ms / 1000,
         "AlarmDescription": f"{model.name} release: p99 response time of the fleet over {gate.max_latency_p99_ms} ms",
         "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime", "Dimensions": dimensions,
         "Period": period_s, "ExtendedStatistic": "p99"},
    )


def gcp_release_policy(model: ServiceModel, name: str, period_s: int) -> dict:
    """The AlertPolicy deploy.sh checks between a canary's steps (`gcloud alpha monitoring policies
    create --policy-from-file`): rollout.analysis's share of 5xx answers and p99 latency at the
    HTTPS balancer's backend service NAME-lb (a passthrough balancer reports no HTTP answers).
    Like AWS's, the whole group's answers: a canary's errors show diluted by its share of the VMs."""
    gate = model.rollout
    rule = f'resource.type="https_lb_rule" AND resource.labels.backend_target_name="{name}-lb"'
    align = f"{period_s}s"
    rate = [{"alignmentPeriod": align, "perSeriesAligner": "ALIGN_RATE", "crossSeriesReducer": "REDUCE_SUM"}]
    requests = f'metric.type="loadbalancing.googleapis.com/https/backend_request_count" AND {rule}'
    return {
        "displayName": gcp_release_policy_name(name), "combiner": "OR", "severity": "ERROR",
        "documentation": {"mimeType": "text/markdown",
                          "content": f"{name}: the release gate (rollout.analysis); deploy.sh rolls a canary back while it is open."},
        "conditions": [
            {"displayName": f"{name} release: over {gate.max_error_ratio:.2%} of answers 5xx", "conditionThreshold": {
                "filter": f"{requests} AND metric.labels.response_code_class=500", "denominatorFilter": requests,
                "aggregations": rate, "denominatorAggregations": rate,
                "comparison": "COMPARISON_GT", "thresholdValue": gate.max_error_ratio, "duration": "0s", "trigger": {"count": 1}}},
            {"displayName": f"{name} release: p99 latency over {gate.max_latency_p99_ms} ms", "conditionThreshold": {
                "filter": f'metric.type="loadbalancing.googleapis.com/https/backend_latencies" AND {rule}',
                "aggregations": [{"alignmentPeriod": align, "perSeriesAligner": "ALIGN_PERCENTILE_99",
                                  "crossSeriesReducer": "REDUCE_MAX"}],
                "comparison": "COMPARISON_GT", "thresholdValue": gate.max_latency_p99_ms, "duration": "0s",
                "trigger": {"count": 1}}},
        ]}


def gcp_release_policy_name(name: str) -> str:
    return f"mlgen {name}: release"


@dataclass(frozen=True)
class AzureGate:
    """The metric alerts on the Application Gateway that hold an Azure canary (`az monitor metrics
    alert create`), each `(name, condition, description)` in az's condition syntax."""

    alerts: tuple[tuple[str, str, str], ...]
    window: str  # az's --window-size: rollout.analysis.interval rounded up to a window Azure offers
    window_s: int
    error_percent: float  # rollout.analysis.max_error_percent: the share of the hour's requests allowed as 5xx


def azure_release_gate(model: ServiceModel, names: tuple[str, ...], window: str, window_s: int) -> AzureGate:
    """Azure's metric alerts cannot divide one metric by another, nor take a percentile of the
    gateway's timings (it reports their average and maximum): the errors alert counts the backends'
    5xx answers in a window against the share allowed of the requests the gateway carried in the hour
    before the release (deploy.sh puts the count in), and the latency alert compares the backends'
    average last-byte time with the p99 objective, which lets through a release that slows only its tail."""
    gate = model.rollout
    errors, latency = names
    return AzureGate(
        alerts=((errors, f"total BackendResponseStatus > {ERRORS_ALLOWED} where HttpStatusGroup includes 5xx",
                 f"{model.name} release: over {gate.max_error_ratio:.2%} of the gateway's answers were 5xx"),
                (latency, f"avg BackendLastByteResponseTime > {gate.max_latency_p99_ms}",
                 f"{model.name} release: the backends' average response time over {gate.max_latency_p99_ms} ms")),
        window=window, window_s=window_s,
        error_percent=round(gate.max_error_ratio * 100, 6))
