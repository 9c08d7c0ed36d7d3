"""Serverless providers' own monitoring, from the same objectives as the Prometheus rules
(rules.slo): CloudWatch alarms and a dashboard for the SAM template. A function exports no
/metrics to scrape, so these watch the platform's metrics instead (docs/monitoring.md maps each
Prometheus alert to its alarm)."""

from __future__ import annotations

import json
import math

from mlgen.monitoring.rules import slo
from mlgen.spec import ServiceModel

PERIOD_S = 300
MAX_EVALUATED_S = 86400  # CloudWatch: EvaluationPeriods x Period may not pass one day
LAMBDA_LOG_LEVEL = {"debug": "DEBUG", "info": "INFO", "warning": "WARN", "error": "ERROR"}


def seconds(duration: str) -> int:
    """A schema duration (5m, 2h, 30s) in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def _periods(duration: str) -> int:
    return max(1, min(math.ceil(seconds(duration) / PERIOD_S), MAX_EVALUATED_S // PERIOD_S))


def _lambda_metric(name: str, statistic: str = "Sum", extended: bool = False) -> dict:
    alarm = {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "Function"}}],
             "Period": PERIOD_S}
    alarm["ExtendedStatistic" if extended else "Statistic"] = statistic
    return alarm


def _api_metric(name: str, period: int = PERIOD_S) -> dict:
    return {"Metric": {"Namespace": "AWS/ApiGateway", "MetricName": name,
                       "Dimensions": [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}, {"Name": "Stage", "Value": "$default"}]},
            "Period": period, "Stat": "Sum"}


# The version CodeDeploy is shifting the `live` alias to: Lambda counts an alias's invocations
# per version it ran (ExecutedVersion), and SAM's Function.Version is the version this stack publishes.
_NEW_VERSION = [{"Name": "FunctionName", "Value": {"Ref": "Function"}},
                {"Name": "Resource", "Value": {"Fn::Sub": "${Function}:live"}},
                {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": ["Function.Version", "Version"]}}]


def _alarm_resources(alarms: dict[str, tuple[str, dict]], disabled=()) -> dict[str, dict]:
    """CloudFormation alarms (logical id → resource) notifying the AlarmTopicArn parameter's SNS
    topic when one is given."""
    actions = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    return {logical: {"Type": "AWS::CloudWatch::Alarm",
                      "Properties": {"AlarmName": {"Fn::Sub": f"${{AWS::StackName}}-{logical}"},
                                     "ActionsEnabled": True, "AlarmActions": actions, "OKActions": actions, **props}}
            for name, (logical, props) in alarms.items() if name not in disabled}


RELEASE_ALARMS = ("ReleaseVersionErrorsAlarm", "ReleaseServerErrorsAlarm", "ReleaseLatencyAlarm")
# What the runtime's Lambda adapter writes per 5xx it answers (mlgen_runtime/adapters/aws_lambda.py,
# embedded metric format): the metric CloudWatch Logs extracts, per function name and version.
SERVER_ERRORS = {"Namespace": "mlgen/Lambda", "MetricName": "ServerErrors"}
_VERSION_OF_FUNCTION = [{"Name": "FunctionName", "Value": {"Ref": "Function"}},
                        {"Name": "Version", "Value": {"Fn::GetAtt": ["Function.Version", "Version"]}}]


def release_alarms(model: ServiceModel) -> dict[str, dict]:
    """The gate CodeDeploy watches while it shifts the `live` alias (DeploymentPreference.Alarms),
    from rollout.analysis, measured every rollout.analysis.interval (at least CloudWatch's minute),
    on the new version alone. Lambda counts function errors (crashes, timeouts, a failed init) per
    version; a 5xx the runtime answers itself is no function error, and the HTTP API counts it for
    every version together (and cannot gate the shift: it integrates the alias CodeDeploy shifts, so
    its alarm in DeploymentPreference would be a dependency cycle, cfn-lint E3004). So the runtime's
    adapter writes an embedded-metric-format line per 5xx, with the version as a dimension, and
    ReleaseServerErrorsAlarm divides those by the version's invocations."""
    gate = model.rollout
    period = max(60, math.ceil(gate.interval_s / 60) * 60)
    version = {"Namespace": "AWS/Lambda", "Dimensions": _NEW_VERSION}

    def ratio(errors: dict, requests: dict) -> list[dict]:
        # No 5xx line in a period is no data point, not a zero: FILL makes it one.
        return [{"Id": "errors", "ReturnData": False, "MetricStat": errors},
                {"Id": "requests", "ReturnData": False, "MetricStat": requests},
                {"Id": "ratio", "Label": "error ratio", "ReturnData": True,
                 "Expression": "IF(requests > 0, FILL(errors, 0) / requests, 0)"}]

    def lambda_stat(name: str) -> dict:
        return {"Metric": {**version, "MetricName": name}, "Period": period, "Stat": "Sum"}

    over = {"ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
            "TreatMissingData": "notBreaching"}
    return _alarm_resources({
        "version-errors": ("ReleaseVersionErrorsAlarm", {
            "AlarmDescription": f"{model.name} release: over {gate.max_error_ratio:.2%} of the new version's invocations failed",
            "Metrics": ratio(lambda_stat("Errors"), lambda_stat("Invocations")), "Threshold": gate.max_error_ratio, **over}),
        "server-errors": ("ReleaseServerErrorsAlarm", {
            "AlarmDescription": f"{model.name} release: over {gate.max_error_ratio:.2%} of the new version's invocations "
                                "answered 5xx by the runtime",
            "Metrics": ratio({"Metric": {**SERVER_ERRORS, "Dimensions": _VERSION_OF_FUNCTION}, "Period": period, "Stat": "Sum"},
                             lambda_stat("Invocations")),
            "Threshold": gate.max_error_ratio, **over}),
        "latency": ("ReleaseLatencyAlarm", {
            "AlarmDescription": f"{model.name} release: p99 duration of the new version over {gate.max_latency_p99_ms} ms",
            **version, "MetricName": "Duration", "ExtendedStatistic": "p99", "Period": period,
            "Threshold": gate.max_latency_p99_ms, **over}),
    })


def cloudwatch_alarms(model: ServiceModel) -> dict[str, dict]:
    """CloudFormation resources (logical id → resource) for the SAM template; each alarm notifies
    the AlarmTopicArn parameter's SNS topic when one is given."""
    s = slo(model)
    alarms = {
        # The HTTP API's 5xx share: the error budget alert (CloudWatch has no two-window rule: two
        # five-minute periods in a row over the burn threshold).
        "MlgenErrorBudgetBurn": ("ErrorRatioAlarm", {
            "AlarmDescription": f"{s.service}: over {s.error_ratio:.2%} of HTTP requests answered 5xx "
                                f"({s.burn_rate:g}x the {s.availability:.3%} availability budget)",
            "Metrics": [{"Id": "errors", "ReturnData": False, "MetricStat": _api_metric("5xx")},
                        {"Id": "requests", "ReturnData": False, "MetricStat": _api_metric("Count")},
                        {"Id": "ratio", "Label": "5xx ratio", "ReturnData": True,
                         "Expression": "IF(requests > 0, errors / requests, 0)"}],
            "ComparisonOperator": "GreaterThanThreshold", "Threshold": s.error_ratio,
            "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "TreatMissingData": "notBreaching"}),
        "MlgenLatencyHigh": ("LatencyAlarm", {
            "AlarmDescription": f"{s.service}: p99 function duration over the {s.latency_p99_s * 1000:g} ms objective",
            **_lambda_metric("Duration", "p99", extended=True),
            "ComparisonOperator": "GreaterThanThreshold", "Threshold": s.latency_p99_s * 1000,
            "EvaluationPeriods": _periods(s.latency_for), "TreatMissingData": "notBreaching"}),
        "MlgenNoTraffic": ("NoTrafficAlarm", {
            "AlarmDescription": f"{s.service}: no invocations for {s.no_traffic_for}",
            **_lambda_metric("Invocations"),
            "ComparisonOperator": "LessThanThreshold", "Threshold": 1,
            "EvaluationPeriods": _periods(s.no_traffic_for), "TreatMissingData": "breaching"}),
        # A model that cannot load fails the function's init: every invocation is a function error
        # (the runtime answers request errors itself, with a status, so those are not counted here).
        "MlgenModelNotReady": ("FunctionErrorsAlarm", {
            "AlarmDescription": f"{s.service}: the function failed (model load or handler crash); see its log group",
            **_lambda_metric("Errors"),
            "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0,
            "EvaluationPeriods": 1, "TreatMissingData": "notBreaching"}),
        "MlgenTargetDown": ("ThrottlesAlarm", {
            "AlarmDescription": f"{s.service}: invocations throttled (reserved concurrency reached)",
            **_lambda_metric("Throttles"),
            "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0,
            "EvaluationPeriods": 1, "TreatMissingData": "notBreaching"}),
    }
    return _alarm_resources(alarms, s.disabled)


def cloudwatch_dashboard(model: ServiceModel) -> str:
    """DashboardBody for Fn::Sub: ${Function}, ${HttpApi} and ${AWS::Region} are filled at deploy."""
    s = slo(model)
    fn = ["AWS/Lambda", None, "FunctionName", "${Function}"]
    api = ["AWS/ApiGateway", None, "ApiId", "${HttpApi}", "Stage", "$default"]

    def widget(title: str, metrics: list, stat: str, x: int, y: int, line: float | None = None) -> dict:
        properties = {"title": title, "region": "${AWS::Region}", "view": "timeSeries", "stat": stat,
                      "period": PERIOD_S, "metrics": metrics}
        if line is not None:
            properties["annotations"] = {"horizontal": [{"label": "objective", "value": line}]}
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": properties}

    def named(base: list, name: str) -> list:
        return [base[0], name, *base[2:]]

    body = {"widgets": [
        widget("HTTP requests, 4xx, 5xx", [named(api, "Count"), named(api, "4xx"), named(api, "5xx")], "Sum", 0, 0),
        widget("Function duration p50 / p99 (ms)", [named(fn, "Duration") + [{"stat": "p50"}],
                                                    named(fn, "Duration") + [{"stat": "p99"}]], "p99", 12, 0,
               line=s.latency_p99_s * 1000),
        widget("Invocations, errors, throttles", [named(fn, "Invocations"), named(fn, "Errors"), named(fn, "Throttles")],
               "Sum", 0, 6),
        widget("Concurrent executions", [named(fn, "ConcurrentExecutions")], "Maximum", 12, 6),
    ]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def lambda_log_level(model: ServiceModel) -> str:
    return LAMBDA_LOG_LEVEL[model.observability.log_level]


def _cloud_run(name: str, metric: str, extra: str = "") -> str:
    # A 2nd gen function runs as the Cloud Run service of the same name.
    return (f'metric.type="run.googleapis.com/{metric}" AND resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name="{name}"{extra}')


def gcp_alert_policies(model: ServiceModel) -> dict[str, dict]:
    """file name → AlertPolicy (what `gcloud alpha monitoring policies create --policy-from-file`
    reads), on the Cloud Run metrics of the function's service."""
    s = slo(model)
    rate = [{"alignmentPeriod": f"{PERIOD_S}s", "perSeriesAligner": "ALIGN_RATE", "crossSeriesReducer": "REDUCE_SUM"}]
    conditions = {
        "MlgenErrorBudgetBurn": ("errors", "CRITICAL", f"over {s.error_ratio:.2%} of requests answered 5xx "
                                 f"({s.burn_rate:g}x the {s.availability:.3%} availability budget)", {"conditionThreshold": {
            "filter": _cloud_run(s.service, "request_count", ' AND metric.labels.response_code_class="5xx"'),
            "denominatorFilter": _cloud_run(s.service, "request_count"),
            "aggregations": rate, "denominatorAggregations": rate,
            "comparison": "COMPARISON_GT", "thresholdValue": s.error_ratio, "duration": f"{PERIOD_S}s",
            "trigger": {"count": 1}}}),
        "MlgenLatencyHigh": ("latency", "WARNING", f"p99 latency over the {s.latency_p99_s * 1000:g} ms objective", {"conditionThreshold": {
            "filter": _cloud_run(s.service, "request_latencies"),
            "aggregations": [{"alignmentPeriod": f"{PERIOD_S}s", "perSeriesAligner": "ALIGN_PERCENTILE_99",
                              "crossSeriesReducer": "REDUCE_MAX"}],
            "comparison": "COMPARISON_GT", "thresholdValue": s.latency_p99_s * 1000,
            "duration": f"{seconds(s.latency_for)}s", "trigger": {"count": 1}}}),
        "MlgenNoTraffic": ("no-traffic", "WARNING", f"no requests for {s.no_traffic_for}", {"conditionAbsent": {
            "filter": _cloud_run(s.service, "request_count"), "aggregations": rate,
            "duration": f"{max(120, seconds(s.no_traffic_for))}s", "trigger": {"count": 1}}}),
    }
    return {f"monitoring/{slug}.policy.json": {
        "displayName": f"mlgen {s.service}: {slug}", "combiner": "OR", "severity": severity,
        "documentation": {"mimeType": "text/markdown", "content": f"{s.service}: {summary}. See docs/monitoring.md."},
        "conditions": [{"displayName": f"{s.service} {summary}", **condition}]}
        for name, (slug, severity, summary, condition) in conditions.items() if name not in s.disabled}


RELEASE_POLICY = "monitoring/release.policy.json"


def gcp_release_policy(model: ServiceModel) -> dict[str, dict]:
    """The gate deploy.sh checks between traffic steps (an open alert on it rolls the release
    back): rollout.analysis's error ratio and p99 latency on the function's service, aligned on
    rollout.analysis.interval (at least a minute, Cloud Run's metrics' own resolution)."""
    gate, name = model.rollout, slo(model).service
    align = f"{max(60, gate.interval_s)}s"
    rate = [{"alignmentPeriod": align, "perSeriesAligner": "ALIGN_RATE", "crossSeriesReducer": "REDUCE_SUM"}]
    return {RELEASE_POLICY: {
        "displayName": f"mlgen {name}: release", "combiner": "OR", "severity": "ERROR",
        "documentation": {"mimeType": "text/markdown",
                          "content": f"{name}: the release gate (rollout.analysis); deploy.sh rolls a release back while it is open."},
        "conditions": [
            {"displayName": f"{name} release: over {gate.max_error_ratio:.2%} of requests answered 5xx", "conditionThreshold": {
                "filter": _cloud_run(name, "request_count", ' AND metric.labels.response_code_class="5xx"'),
                "denominatorFilter": _cloud_run(name, "request_count"),
                "aggregations": rate, "denominatorAggregations": rate,
                "comparison": "COMPARISON_GT", "thresholdValue": gate.max_error_ratio, "duration": "0s", "trigger": {"count": 1}}},
            {"displayName": f"{name} release: p99 latency over {gate.max_latency_p99_ms} ms", "conditionThreshold": {
                "filter": _cloud_run(name, "request_latencies"),
                "aggregations": [{"alignmentPeriod": align, "perSeriesAligner": "ALIGN_PERCENTILE_99",
                                  "crossSeriesReducer": "REDUCE_MAX"}],
                "comparison": "COMPARISON_GT", "thresholdValue": gate.max_latency_p99_ms, "duration": "0s",
                "trigger": {"count": 1}}},
        ]}}


# az monitor metrics alert --window-size accepts these (ISO 8601 periods PT1M … P1D).
AZURE_WINDOWS_MIN = (1, 5, 15, 30, 60, 360, 720, 1440)


def azure_metric_alerts(model: ServiceModel) -> list[dict]:
    """`az monitor metrics alert create` settings on the function app's own metrics. Azure metric
    alerts compare one metric, so errors are a 5xx count, latency the average response time."""
    s = slo(model)
    quiet_min = seconds(s.no_traffic_for) / 60
    window = next((w for w in AZURE_WINDOWS_MIN if w >= quiet_min), AZURE_WINDOWS_MIN[-1])
    alerts = {
        "MlgenErrorBudgetBurn": ("errors", "total Http5xx > 0", 5, 1, "requests answered 5xx"),
        "MlgenLatencyHigh": ("latency", f"avg HttpResponseTime > {s.latency_p99_s:g}", max(5, min(60, seconds(s.latency_for) // 60)), 2,
                             f"average response time over the {s.latency_p99_s * 1000:g} ms p99 objective"),
        "MlgenNoTraffic": ("no-traffic", "total Requests < 1", window, 3, f"no requests for {window} minutes"),
    }
    return [{"name": f"{s.service}-{slug}", "condition": condition,
             "window": f"{window_min}m" if window_min < 60 else f"{window_min // 60}h", "severity": severity,
             "frequency": "1m" if window_min < 60 else "5m",
             "description": f"mlgen {s.service}: {text}"}
            for name, (slug, condition, window_min, severity, text) in alerts.items() if name not in s.disabled]
