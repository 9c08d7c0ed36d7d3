"""Monitoring as a component of every bundle: alert rules, SLO thresholds, Grafana dashboards and
Prometheus scrape configurations, built once from the ServiceModel so every target ships the same
content (docs/monitoring.md).

- `slo(model)`: the objectives and thresholds, worked out once (defaults live in the schema).
- `rule_groups(model)`: Prometheus alert rules as data; onprem/cloud rule files, the Kubernetes
  PrometheusRule and the compose Prometheus all dump this one structure.
- `dashboard(model, resource_panels)`: the Grafana dashboard; a target brings its resource panels
  (`host_resources()` for hosts; Kubernetes builds its own from cAdvisor with `row`/`panel`).
- `scrape_config(model, jobs)`: a Prometheus configuration with the rule file and the given jobs.
- Serverless providers' native alarms are in generator/targets/serverless/monitoring.py.
"""

from __future__ import annotations

from mlgen.monitoring.dashboard import dashboard, host_resources, panel, row
from mlgen.monitoring.metrics import EXTERNAL_METRICS, RUNTIME_METRICS, metric_names
from mlgen.monitoring.rules import ALERTS, SLO, rule_groups, slo
from mlgen.monitoring.scrape import (NODE_EXPORTER_PORT, RULES_FILE, monitoring_files, node_job, scrape_config,
                                        static_job)

__all__ = ["ALERTS", "EXTERNAL_METRICS", "RULES_FILE", "RUNTIME_METRICS", "SLO", "dashboard", "host_resources", "metric_names",
           "monitoring_files", "node_job", "NODE_EXPORTER_PORT", "panel", "row", "rule_groups", "scrape_config", "slo",
           "static_job"]
