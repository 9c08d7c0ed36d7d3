"""How fast the target runs what `mlgen plan` measured here, and how much CPU one instance has.

The prediction's time is measured on this machine; a target runs it on its own CPU. Two effects,
kept apart because only the second one is documented by the providers:
- the family's speed against a core here (`PriceTable.cpu_factors`, 1.0 until measured there);
- the CPU share the platform gives: a function gets a fraction of a vCPU for its memory, a
  burstable VM sustains only its baseline.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

LAMBDA_MEMORY = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html"
GCF_MEMORY = "https://cloud.google.com/functions/docs/configuring/memory"
# "At 1,769 MB, a function has the equivalent of one vCPU"; below that, CPU scales with memory.
LAMBDA_MB_PER_VCPU = 1769
# Cloud Run functions: the vCPU that comes with each memory size.
GCF_VCPU = ((128, 0.083), (256, 0.167), (512, 0.333), (1024, 0.583), (2048, 1.0), (4096, 2.0),
            (8192, 2.0), (16384, 4.0), (32768, 8.0))


@dataclass(frozen=True)
class Shape:
    family: str  # key into PriceTable.cpu_factors
    vcpus: int
    sustained_vcpus: float  # what the instance runs indefinitely (a burstable's baseline)
    memory_gib: float
    source: str


_T3 = "https://aws.amazon.com/ec2/instance-types/t3/"
_EC2 = "https://aws.amazon.com/ec2/instance-types/"
_E2 = "https://cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types"
_B = "https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/bv1-series"
_D = "https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/dsv5-series"
SHAPES = {
    # T3 baseline: 20 % of each vCPU for small and medium; above it, "unlimited" mode bills extra credits.
    "t3.small": Shape("t3", 2, 0.4, 2, _T3),
    "t3.medium": Shape("t3", 2, 0.4, 4, _T3),
    "c5.large": Shape("c5", 2, 2.0, 4, _EC2),
    "m5.large": Shape("m5", 2, 2.0, 8, _EC2),
    # Shared-core E2: e2-small sustains 0.5 vCPU, e2-medium 1 vCPU (bursting to 2).
    "e2-small": Shape("e2", 2, 0.5, 2, _E2),
    "e2-medium": Shape("e2", 2, 1.0, 4, _E2),
    "e2-standard-2": Shape("e2", 2, 2.0, 8, _E2),
    # B2s: base CPU performance 40 % (of 200 %).
    "Standard_B2s": Shape("B", 2, 0.4, 4, _B),
    "Standard_D2s_v5": Shape("D", 2, 2.0, 8, _D),
}


def lambda_vcpu(memory_mb: int) -> float:
    """The share of a vCPU a single-threaded prediction gets on Lambda."""
    return min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)


def gcf_vcpu(memory_mb: int) -> float:
    """The vCPU billed (and given) with a Cloud Run function's memory (the next size up)."""
    sizes = [mb for mb, _ in GCF_VCPU]
    return GCF_VCPU[min(bisect.bisect_left(sizes, memory_mb), len(GCF_VCPU) - 1)][1]
