"""The cloud section of docs/choosing-a-target.md: each provider's user-data limit, from the
table the render checks (userdata.LIMITS)."""

from __future__ import annotations

from mlgen.targets.cloud.userdata import LIMITS


def limits_markdown() -> str:
    lines = ["## VM user data (cloud target)", "", "| provider | limit | source |", "|---|---|---|",
             *(f"| {limit.provider} | {limit.what} | {limit.source} |" for limit in LIMITS.values()),
             "", "Over the limit, set `targets.cloud.artifact_url` (and `artifact_upload`): the VMs then "
             "download the bundle and check its sha256."]
    return "\n".join(lines) + "\n"
