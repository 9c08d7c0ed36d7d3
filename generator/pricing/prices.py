"""The built-in price table: on-demand list prices in US dollars, without taxes or discounts.

When a provider changes a price, update the number, its `as_of` and its source together. A
region missing here is "not priced" in `mlgen plan`, never guessed: add it to a `--prices` file.
"""

from __future__ import annotations

from types import MappingProxyType

from mlgen.pricing.table import Price, PriceTable

AS_OF = "2026-11-30"  # the day the pages below were read

LAMBDA = "https://aws.amazon.com/lambda/pricing/"
APIGW = "https://aws.amazon.com/api-gateway/pricing/"
EC2 = "https://aws.amazon.com/ec2/pricing/on-demand/"
ELB = "https://aws.amazon.com/elasticloadbalancing/pricing/"
S3 = "https://aws.amazon.com/s3/pricing/"
CLOUD_RUN = "https://cloud.google.com/run/pricing"
GCE = "https://cloud.google.com/compute/vm-instance-pricing"
GCP_LB = "https://cloud.google.com/vpc/network-pricing#lb"
GCS = "https://cloud.google.com/storage/pricing"
AZ_FUNCTIONS = "https://azure.microsoft.com/pricing/details/functions/"
AZ_VM = "https://azure.microsoft.com/pricing/details/virtual-machines/linux/"
AZ_LB = "https://azure.microsoft.com/pricing/details/load-balancer/"
AZ_BLOB = "https://azure.microsoft.com/pricing/details/storage/blobs/"

# key: (value, unit, source). Regions: the providers' defaults in mlgen (us-east-1, us-central1,
# eastus) and the examples' (eu-west-1).
_TABLE = {
    # AWS Lambda, first tier (up to 6 billion GB-s a month), same in both regions below.
    "aws.lambda.request@us-east-1": (0.20e-6, "USD per request", LAMBDA),
    "aws.lambda.request@eu-west-1": (0.20e-6, "USD per request", LAMBDA),
    "aws.lambda.gb_second.x86_64@us-east-1": (0.0000166667, "USD per GB-second", LAMBDA),
    "aws.lambda.gb_second.x86_64@eu-west-1": (0.0000166667, "USD per GB-second", LAMBDA),
    "aws.lambda.gb_second.arm64@us-east-1": (0.0000133334, "USD per GB-second", LAMBDA),
    "aws.lambda.gb_second.arm64@eu-west-1": (0.0000133334, "USD per GB-second", LAMBDA),
    "aws.lambda.provisioned_gb_second.x86_64@us-east-1": (0.0000041667, "USD per GB-second configured", LAMBDA),
    "aws.lambda.provisioned_duration_gb_second.x86_64@us-east-1": (0.0000097222, "USD per GB-second", LAMBDA),
    "aws.lambda.provisioned_gb_second.arm64@us-east-1": (0.0000033334, "USD per GB-second configured", LAMBDA),
    "aws.lambda.provisioned_duration_gb_second.arm64@us-east-1": (0.0000077778, "USD per GB-second", LAMBDA),
    "aws.lambda.free_requests@*": (1_000_000, "requests per month, per account", LAMBDA),
    "aws.lambda.free_gb_seconds@*": (400_000, "GB-seconds per month, per account", LAMBDA),
    # The SAM template fronts the function with an HTTP API (first 300 million requests a month).
    "aws.apigateway.http_request@us-east-1": (1.00e-6, "USD per request", APIGW),
    # EC2 on-demand, Linux.
    "aws.ec2.t3.small@us-east-1": (0.0208, "USD per instance-hour", EC2),
    "aws.ec2.t3.small@eu-west-1": (0.0228, "USD per instance-hour", EC2),
    "aws.ec2.t3.medium@us-east-1": (0.0416, "USD per instance-hour", EC2),
    "aws.ec2.t3.medium@eu-west-1": (0.0456, "USD per instance-hour", EC2),
    "aws.ec2.c5.large@us-east-1": (0.085, "USD per instance-hour", EC2),
    "aws.ec2.c5.large@eu-west-1": (0.096, "USD per instance-hour", EC2),
    "aws.ec2.m5.large@us-east-1": (0.096, "USD per instance-hour", EC2),
    "aws.ec2.m5.large@eu-west-1": (0.107, "USD per instance-hour", EC2),
    # Application Load Balancer: hours plus Load Balancer Capacity Units (see fleets.alb_lcu).
    "aws.alb.hour@us-east-1": (0.0225, "USD per ALB-hour", ELB),
    "aws.alb.hour@eu-west-1": (0.0252, "USD per ALB-hour", ELB),
    "aws.alb.lcu_hour@us-east-1": (0.008, "USD per LCU-hour", ELB),
    "aws.alb.lcu_hour@eu-west-1": (0.008, "USD per LCU-hour", ELB),
    "aws.storage.gb_month@us-east-1": (0.023, "USD per GB-month (S3 Standard)", S3),
    "aws.storage.gb_month@eu-west-1": (0.023, "USD per GB-month (S3 Standard)", S3),
    # Cloud Run functions (2nd gen) are billed as Cloud Run services with request-based billing,
    # Tier 1 regions; billable time is rounded up to 100 ms.
    "gcp.functions.request@us-central1": (0.40e-6, "USD per request", CLOUD_RUN),
    "gcp.functions.vcpu_second@us-central1": (0.000024, "USD per vCPU-second", CLOUD_RUN),
    "gcp.functions.gib_second@us-central1": (0.0000025, "USD per GiB-second", CLOUD_RUN),
    "gcp.functions.idle_vcpu_second@us-central1": (0.0000025, "USD per idle vCPU-second (min instances)", CLOUD_RUN),
    "gcp.functions.idle_gib_second@us-central1": (0.0000025, "USD per idle GiB-second (min instances)", CLOUD_RUN),
    "gcp.functions.free_requests@*": (2_000_000, "requests per month, per billing account", CLOUD_RUN),
    "gcp.functions.free_vcpu_seconds@*": (180_000, "vCPU-seconds per month, per billing account", CLOUD_RUN),
    "gcp.functions.free_gib_seconds@*": (360_000, "GiB-seconds per month, per billing account", CLOUD_RUN),
    # Compute Engine E2: e2-small bills 0.5 vCPU + 2 GB, e2-medium 1 vCPU + 4 GB, e2-standard-2 2 vCPU + 8 GB.
    "gcp.gce.e2-small@us-central1": (0.016751, "USD per instance-hour", GCE),
    "gcp.gce.e2-medium@us-central1": (0.033503, "USD per instance-hour", GCE),
    "gcp.gce.e2-standard-2@us-central1": (0.067006, "USD per instance-hour", GCE),
    # The cloud target's regional external passthrough load balancer: one forwarding rule + data.
    "gcp.lb.hour@us-central1": (0.025, "USD per forwarding-rule-hour (first 5 rules)", GCP_LB),
    "gcp.lb.gb@us-central1": (0.008, "USD per GB processed", GCP_LB),
    "gcp.storage.gb_month@us-central1": (0.020, "USD per GB-month (Standard)", GCS),
    # Azure Functions. Consumption: observed memory rounded up to 128 MB (at most 1,536 MB), at
    # least 100 ms a run. Flex Consumption, on demand: the instance memory chosen (512/2048/4096).
    "azure.functions.consumption.execution@eastus": (0.20e-6, "USD per execution", AZ_FUNCTIONS),
    "azure.functions.consumption.gb_second@eastus": (0.000016, "USD per GB-second", AZ_FUNCTIONS),
    "azure.functions.consumption.free_executions@*": (1_000_000, "executions per month, per subscription", AZ_FUNCTIONS),
    "azure.functions.consumption.free_gb_seconds@*": (400_000, "GB-seconds per month, per subscription", AZ_FUNCTIONS),
    "azure.functions.flex.execution@eastus": (0.40e-6, "USD per execution", AZ_FUNCTIONS),
    "azure.functions.flex.gb_second@eastus": (0.000026, "USD per GB-second", AZ_FUNCTIONS),
    "azure.functions.flex.free_executions@*": (250_000, "executions per month, per subscription", AZ_FUNCTIONS),
    "azure.functions.flex.free_gb_seconds@*": (100_000, "GB-seconds per month, per subscription", AZ_FUNCTIONS),
    "azure.vm.Standard_B2s@eastus": (0.0416, "USD per instance-hour", AZ_VM),
    "azure.vm.Standard_D2s_v5@eastus": (0.096, "USD per instance-hour", AZ_VM),
    "azure.lb.hour@eastus": (0.025, "USD per hour (Standard, first 5 rules)", AZ_LB),
    "azure.lb.gb@eastus": (0.005, "USD per GB processed", AZ_LB),
    "azure.storage.gb_month@eastus": (0.018, "USD per GB-month (Hot, LRS)", AZ_BLOB),
}

# How many of this machine's cores one vCPU of a family is worth for a single-threaded prediction:
# the measured time is multiplied by the factor. None of these is measured on the target: 1.0
# says "as fast as a core here", the honest default until someone measures; override per family
# in a --prices file (`cpu_factors:`) after timing the model there.
CPU_FACTORS = {"lambda-x86_64": 1.0, "lambda-arm64": 1.0, "gcp-functions": 1.0, "azure-functions": 1.0,
               "t3": 1.0, "c5": 1.0, "m5": 1.0, "e2": 1.0, "B": 1.0, "D": 1.0, "node": 1.0, "host": 1.0}


def builtin() -> PriceTable:
    return PriceTable(MappingProxyType({key: Price(value, unit, source, AS_OF)
                                        for key, (value, unit, source) in _TABLE.items()}),
                      MappingProxyType(dict(CPU_FACTORS)))

