"""What the Kubernetes dashboard shows about resources: CPU and memory per pod from the kubelet's
cAdvisor (the runtime exports no process metrics), against the pods' limits."""

from __future__ import annotations

from mlgen.monitoring import panel, row
from mlgen.spec import ServiceModel
from mlgen.targets.kubernetes.settings import KubernetesSettings


def pod_resources(model: ServiceModel, settings: KubernetesSettings) -> list[dict]:
    rate = "$__rate_interval"
    pods = f'namespace="{settings.namespace}",container="{settings.container}",pod=~"{model.name}-.*"'
    return [
        row("Resources (cAdvisor)"),
        panel("CPU per pod (cores)", [(f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{pods}}}[{rate}]))", "{{pod}}")],
              thresholds=[("green", None), ("red", model.resources.millicores / 1000)]),
        panel("Memory working set per pod", [(f"sum by (pod) (container_memory_working_set_bytes{{{pods}}})", "{{pod}}")],
              unit="bytes", thresholds=[("green", None), ("red", model.resources.memory_mib * 1024 * 1024)]),
    ]
