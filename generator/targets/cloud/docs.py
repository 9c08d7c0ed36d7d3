"""The cloud sections of docs/choosing-a-target.md: each provider's user-data limit, from the
table the render checks (userdata.LIMITS), and how its balancer carries gRPC (balancers.GRPC)."""

from __future__ import annotations

from mlgen.targets.cloud.balancers import GRPC
from mlgen.targets.cloud.userdata import LIMITS


def limits_markdown() -> str:
    lines = ["## VM user data (cloud target)", "", "| provider | limit | source |", "|---|---|---|",
             *(f"| {limit.provider} | {limit.what} | {limit.source} |" for limit in LIMITS.values()),
             "", "Over the limit the bundle goes to a private bucket of the fleet's own, or to "
             "`targets.cloud.artifact_url` (and `artifact_upload`): the VMs then download it and check its sha256.",
             "", "## gRPC through the fleet's load balancer (cloud target, runtime.grpc_port)", "",
             "| provider | balancer | forwards gRPC | how | source |", "|---|---|---|---|---|",
             *(f"| {g.provider} | {g.balancer} | {'yes' if g.forwards else 'no (refused at runtime.grpc_port)'} | "
               f"{g.how} | {g.source} |" for g in GRPC.values())]
    return "\n".join(lines) + "\n"
