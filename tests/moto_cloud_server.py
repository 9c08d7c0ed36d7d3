"""moto's server for the cloud target's AWS tests: `python moto_cloud_server.py PORT` serves on
127.0.0.1:PORT. moto 5.2 does not implement the auto-scaling instance refresh that deploy.sh starts
on an update, so this adds StartInstanceRefresh / DescribeInstanceRefreshes that record each
request (after the aws CLI has validated it against the real API model) and report it back; no
instance is actually replaced."""

from __future__ import annotations

import sys
import uuid

from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

REFRESHES: dict[str, list[dict]] = {}


def start_instance_refresh(self) -> ActionResult:
    group = self._get_param("AutoScalingGroupName")
    if not self.autoscaling_backend.describe_auto_scaling_groups([group]):
        raise ValueError(f"no auto-scaling group {group}")
    refresh = {"InstanceRefreshId": str(uuid.uuid4()), "AutoScalingGroupName": group, "Status": "Pending",
               "Preferences": self._get_param("Preferences") or {},
               **({"DesiredConfiguration": desired} if (desired := self._get_param("DesiredConfiguration")) else {})}
    REFRESHES.setdefault(group, []).append(refresh)
    return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})


def describe_instance_refreshes(self) -> ActionResult:
    return ActionResult({"InstanceRefreshes": REFRESHES.get(self._get_param("AutoScalingGroupName"), [])})


AutoScalingResponse.start_instance_refresh = start_instance_refresh
AutoScalingResponse.describe_instance_refreshes = describe_instance_refreshes

if __name__ == "__main__":
    from moto.server import main

    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
