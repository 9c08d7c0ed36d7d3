"""The AWS deploy and teardown scripts, end to end with the real aws CLI against moto's server on
127.0.0.1: the fleet is created as the spec says, a second deploy is an update (a new launch
template version and an instance refresh), teardown leaves nothing and succeeds twice."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port, render_spec, require_tool, stop_process
from onprem_bundle import derived_spec
from test_target_kubernetes import checkov

REGION = "eu-central-1"
BUCKET = "shop-ml-bundles"
NAME = "shop-recs"
CLIENTS = ["198.51.100.0/24", "2001:db8:100::/48"]  # the only networks the load balancer lets in


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto's server on a free loopback port (stopped by its pid) and the environment the aws CLI
    needs to talk to it: dummy keys, a throwaway HOME, the endpoint."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "moto_cloud_server.py"), str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    home = tmp_path_factory.mktemp("aws-home")
    aws_dir = os.path.dirname(require_tool("aws"))  # deploy.sh runs the same aws (maybe from its tool venv)
    env = {"PATH": f"{aws_dir}:{os.environ['PATH']}", "HOME": str(home), "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""}
    yield env
    stop_process(server, timeout=10)


def aws(env, *args: str):
    aws_cli = require_tool("aws")
    result = subprocess.run([aws_cli, "--region", REGION, "--output", "json", *args], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture(scope="module")
def network(moto):
    """A VPC with two subnets in two zones and the bucket deploy.sh uploads to (a new account's)."""
    vpc = aws(moto, "ec2", "create-vpc", "--cidr-block", "10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [aws(moto, "ec2", "create-subnet", "--vpc-id", vpc, "--cidr-block", f"10.20.{i}.0/24",
                   "--availability-zone", f"{REGION}{zone}")["Subnet"]["SubnetId"] for i, zone in ((1, "a"), (2, "b"))]
    aws(moto, "s3api", "create-bucket", "--bucket", BUCKET, "--create-bucket-configuration", f"LocationConstraint={REGION}")
    image = aws(moto, "ec2", "describe-images", "--owners", "amazon")["Images"][0]["ImageId"]
    # The HTTPS listener's certificate: one that ACM holds (moto, like AWS, refuses an unknown ARN).
    certificate = aws(moto, "acm", "request-certificate", "--domain-name", "recs.shop.example.com")["CertificateArn"]
    return {"vpc_id": vpc, "subnet_ids": subnets, "image": image, "certificate": certificate, "allowed_cidrs": CLIENTS}


def render(tmp_path, network, version="1.4.0", **cloud):
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations",
                        {"metadata": {"version": version}, "targets": {"cloud": {**network, **cloud}}})
    return render_spec(spec, "cloud", tmp_path / "out", force=True)


def run(script: Path, env, *args):
    result = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"{script.name} {args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fleet(env) -> dict:
    templates = aws(env, "ec2", "describe-launch-templates", "--filters", f"Name=launch-template-name,Values={NAME}-lt")["LaunchTemplates"]
    groups = aws(env, "autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", f"{NAME}-asg")["AutoScalingGroups"]
    target_groups = [t for t in aws(env, "elbv2", "describe-target-groups")["TargetGroups"] if t["TargetGroupName"] == f"{NAME}-tg"]
    balancers = [b for b in aws(env, "elbv2", "describe-load-balancers")["LoadBalancers"] if b["LoadBalancerName"] == f"{NAME}-lb"]
    groups_sg = aws(env, "ec2", "describe-security-groups", "--filters", f"Name=tag:mlgen-service,Values={NAME}")["SecurityGroups"]
    return {"templates": templates, "groups": groups, "target_groups": target_groups, "balancers": balancers, "security_groups": groups_sg}


def checkov_verdicts(resources: dict, folder: Path) -> dict[tuple[str, str], bool]:
    """checkov's CloudFormation checks of the load balancer's edge (ALB listener HTTPS or a redirect
    to it, TLS 1.2 at least, no port 80 open to the world) on `resources`: (check, resource) →
    passed."""
    template = folder / "edge.json"
    template.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}))
    result = subprocess.run([require_tool("checkov"), "--skip-download", "--output", "json", "--framework", "cloudformation",
                             "-f", str(template), "--check", "CKV_AWS_2,CKV_AWS_103,CKV_AWS_260"],
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)["results"]
    return {**{(c["check_id"], c["resource"].split(".")[-1]): True for c in report["passed_checks"]},
            **{(c["check_id"], c["resource"].split(".")[-1]): False for c in report["failed_checks"]}}


def as_cloudformation(listeners: dict, ingress: set[tuple]) -> dict:
    """What deploy.sh made, read back from the API, as the CloudFormation resources checkov reads."""
    resources = {f"Listener{port}": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        key: listener[key] for key in ("Protocol", "Port", "SslPolicy", "Certificates", "DefaultActions") if key in listener}}
        for port, listener in listeners.items()}
    resources["BalancerGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": "the load balancer", "SecurityGroupIngress": [
            {"IpProtocol": protocol, "FromPort": low, "ToPort": high, ("CidrIpv6" if ":" in cidr else "CidrIp"): cidr}
            for protocol, low, high, cidr in sorted(ingress)]}}
    return resources


def lb_ingress(env) -> set[tuple]:
    """The load balancer's security group's inbound rules: (protocol, from, to, CIDR)."""
    (group,) = aws(env, "ec2", "describe-security-groups", "--filters", f"Name=group-name,Values={NAME}-lb")["SecurityGroups"]
    rules = aws(env, "ec2", "describe-security-group-rules", "--filters", f"Name=group-id,Values={group['GroupId']}")
    return {(r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIpv4") or r.get("CidrIpv6"))
            for r in rules["SecurityGroupRules"] if not r["IsEgress"]}


@pytest.mark.slow
def test_deploy_update_and_teardown_against_moto(moto, network, tmp_path) -> None:
    # First without a certificate: plain HTTP forwarded to the fleet.
    bundle = render(tmp_path, network, certificate=None)
    output = run(bundle / "deploy.sh", moto)
    assert "deployed: http://" in output and f"/v2/models/{NAME}/infer" in output, output

    state = fleet(moto)
    (template,) = state["templates"]
    data = aws(moto, "ec2", "describe-launch-template-versions", "--launch-template-id", template["LaunchTemplateId"],
               "--versions", "$Default")["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert base64.b64decode(data["UserData"]) == (bundle / "cloud-init.yaml").read_bytes()
    assert data["ImageId"] == network["image"] and data["InstanceType"] == "t3.medium"
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    (group,) = state["groups"]
    assert (group["MinSize"], group["MaxSize"]) == (2, 10)  # the spec's scaling
    assert {(t["Key"], t["Value"]) for t in group["Tags"]} >= {("mlgen-service", NAME), ("team", "storefront"), ("cost-centre", "shop-42")}
    (target_group,) = state["target_groups"]
    assert target_group["HealthCheckPath"] == "/v2/health/ready" and target_group["Port"] == 8080
    assert group["TargetGroupARNs"] == [target_group["TargetGroupArn"]]
    (balancer,) = state["balancers"]
    (plain,) = aws(moto, "elbv2", "describe-listeners", "--load-balancer-arn", balancer["LoadBalancerArn"])["Listeners"]
    assert (plain["Port"], plain["Protocol"]) == (80, "HTTP")
    assert [(a["Type"], a["TargetGroupArn"]) for a in plain["DefaultActions"]] == [("forward", target_group["TargetGroupArn"])]
    assert lb_ingress(moto) == {("tcp", 80, 80, cidr) for cidr in CLIENTS}

    # The spec gains its certificate (the same cloud-init.yaml: nothing to roll out): HTTPS with it
    # and a modern TLS policy, and the existing HTTP listener now only redirects to it.
    bundle = render(tmp_path, network)
    output = run(bundle / "deploy.sh", moto)
    assert "deployed: https://" in output and "already carries this cloud-init.yaml" in output, output
    assert "update listener HTTP:80" in output and "instance refresh" not in output, output
    listeners = {listener["Port"]: listener for listener in
                 aws(moto, "elbv2", "describe-listeners", "--load-balancer-arn", balancer["LoadBalancerArn"])["Listeners"]}
    assert sorted(listeners) == [80, 443]
    https, http = listeners[443], listeners[80]
    assert https["Protocol"] == "HTTPS" and https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert [c["CertificateArn"] for c in https["Certificates"]] == [network["certificate"]]
    assert [(a["Type"], a["TargetGroupArn"]) for a in https["DefaultActions"]] == [("forward", target_group["TargetGroupArn"])]
    assert http["Protocol"] == "HTTP"
    (redirect,) = http["DefaultActions"]
    assert redirect["Type"] == "redirect" and "TargetGroupArn" not in redirect
    assert {k: redirect["RedirectConfig"][k] for k in ("Protocol", "Port", "StatusCode")} == \
        {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}
    # The balancer lets in the spec's networks on those two ports, and nothing else.
    assert lb_ingress(moto) == {("tcp", port, port, cidr) for port in (80, 443) for cidr in CLIENTS}
    # checkov agrees, on what AWS holds: HTTPS or a redirect to it, TLS 1.2 at least, port 80 not
    # open to the world; and it can disagree: the HTTP listener forwarding instead is a failure.
    deployed = as_cloudformation(listeners, lb_ingress(moto))
    assert checkov_verdicts(deployed, tmp_path) == {
        ("CKV_AWS_2", "Listener80"): True, ("CKV_AWS_2", "Listener443"): True, ("CKV_AWS_103", "Listener80"): True,
        ("CKV_AWS_103", "Listener443"): True, ("CKV_AWS_260", "BalancerGroup"): True}
    deployed["Listener80"]["Properties"]["DefaultActions"] = https["DefaultActions"]
    assert checkov_verdicts(deployed, tmp_path)[("CKV_AWS_2", "Listener80")] is False
    (policy,) = aws(moto, "autoscaling", "describe-policies", "--auto-scaling-group-name", f"{NAME}-asg")["ScalingPolicies"]
    assert policy["TargetTrackingConfiguration"]["TargetValue"] == 60.0
    assert len(state["security_groups"]) == 2
    uploaded = aws(moto, "s3api", "head-object", "--bucket", BUCKET, "--key", "shop-recs/1.4.0/bundle.tar.gz")
    assert uploaded["ContentLength"] == (bundle / "bundle.tar.gz").stat().st_size

    # The same bundle again: nothing to roll out.
    output = run(bundle / "deploy.sh", moto)
    assert "already carries this cloud-init.yaml" in output and "instance refresh" not in output, output

    # Someone opens SSH to the world on the balancer's group, and lets in another group.
    (lb_group,) = [g for g in fleet(moto)["security_groups"] if g["GroupName"] == f"{NAME}-lb"]
    (default,) = aws(moto, "ec2", "describe-security-groups", "--filters", f"Name=vpc-id,Values={network['vpc_id']}",
                     "Name=group-name,Values=default")["SecurityGroups"]
    aws(moto, "ec2", "authorize-security-group-ingress", "--group-id", lb_group["GroupId"], "--ip-permissions", json.dumps([
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 9000, "ToPort": 9000, "UserIdGroupPairs": [{"GroupId": default["GroupId"]}]}]))

    # A new version of the service, for fewer networks: a new launch template version and an
    # instance refresh; the network the spec no longer names and the stray SSH rule are revoked,
    # the rule naming a group (no network) is left alone.
    bundle = render(tmp_path, network, version="1.5.0", allowed_cidrs=CLIENTS[:1])
    output = run(bundle / "deploy.sh", moto)
    assert "new default version 2" in output and "instance refresh" in output, output
    assert lb_ingress(moto) == {("tcp", port, port, CLIENTS[0]) for port in (80, 443)} | {("tcp", 9000, 9000, None)}, output
    assert "revoke tcp:22-22 from 0.0.0.0/0 (not in the spec)" in output, output
    again = {listener["Port"]: listener for listener in
             aws(moto, "elbv2", "describe-listeners", "--load-balancer-arn", balancer["LoadBalancerArn"])["Listeners"]}
    assert {port: (listener["Protocol"], listener["DefaultActions"][0]["Type"]) for port, listener in again.items()} == \
        {80: ("HTTP", "redirect"), 443: ("HTTPS", "forward")}
    (template,) = fleet(moto)["templates"]
    assert template["DefaultVersionNumber"] == 2
    data = aws(moto, "ec2", "describe-launch-template-versions", "--launch-template-id", template["LaunchTemplateId"],
               "--versions", "$Default")["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert base64.b64decode(data["UserData"]) == (bundle / "cloud-init.yaml").read_bytes()
    (refresh,) = aws(moto, "autoscaling", "describe-instance-refreshes", "--auto-scaling-group-name", f"{NAME}-asg")["InstanceRefreshes"]
    assert refresh["Preferences"]["MinHealthyPercentage"] == 90

    output = run(bundle / "teardown.sh", moto)
    assert "removed: nothing of shop-recs is left" in output, output
    assert all(not items for items in fleet(moto).values()), fleet(moto)
    assert "Contents" not in aws(moto, "s3api", "list-objects-v2", "--bucket", BUCKET)  # the upload went too
    output = run(bundle / "teardown.sh", moto)
    assert output.count("already gone") == 7, output


@pytest.mark.slow
def test_without_an_artifact_url_the_bundle_lives_in_a_private_bucket_the_vms_read_with_their_own_role(moto, network, tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations",
                        {"targets": {"cloud": {**network, "artifact_url": None, "artifact_upload": None}}})
    bundle = render_spec(spec, "cloud", tmp_path / "out", force=True)
    run(bundle / "deploy.sh", moto)

    account = aws(moto, "sts", "get-caller-identity")["Account"]
    bucket = f"{NAME}-{account}-{REGION}"
    key = f"{NAME}/{hashlib.sha256((bundle / 'bundle.tar.gz').read_bytes()).hexdigest()}.tar.gz"
    private = aws(moto, "s3api", "get-public-access-block", "--bucket", bucket)["PublicAccessBlockConfiguration"]
    assert private == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    (rule,) = aws(moto, "s3api", "get-bucket-encryption", "--bucket", bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    uploaded = aws(moto, "s3api", "head-object", "--bucket", bucket, "--key", key)
    assert uploaded["ContentLength"] == (bundle / "bundle.tar.gz").stat().st_size and uploaded["ServerSideEncryption"] == "AES256"

    # The VMs' role may read that one object and nothing else; the launch template gives it to them.
    role = aws(moto, "iam", "get-role", "--role-name", f"{NAME}-vm")["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    (policy_name,) = aws(moto, "iam", "list-role-policies", "--role-name", f"{NAME}-vm")["PolicyNames"]
    document = aws(moto, "iam", "get-role-policy", "--role-name", f"{NAME}-vm", "--policy-name", policy_name)["PolicyDocument"]
    assert document["Statement"] == [{"Sid": "ReadServiceBundle", "Effect": "Allow", "Action": "s3:GetObject",
                                      "Resource": [f"arn:aws:s3:::{bucket}/{key}"]}]
    profile = aws(moto, "iam", "get-instance-profile", "--instance-profile-name", f"{NAME}-vm")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [f"{NAME}-vm"]
    (template,) = fleet(moto)["templates"]
    data = aws(moto, "ec2", "describe-launch-template-versions", "--launch-template-id", template["LaunchTemplateId"],
               "--versions", "$Default")["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["IamInstanceProfile"] == {"Name": f"{NAME}-vm"}
    user_data = base64.b64decode(data["UserData"]).decode()
    assert "--aws-sigv4" in user_data and "amazonaws.com" not in user_data.split("IMDS=")[0]  # no public URL

    output = run(bundle / "deploy.sh", moto)  # again: everything is there already
    assert f"bucket {bucket} exists" in output and "create role" not in output, output

    output = run(bundle / "teardown.sh", moto)
    assert f"delete bucket {bucket}" in output and f"delete role {NAME}-vm" in output, output
    assert bucket not in [b["Name"] for b in aws(moto, "s3api", "list-buckets")["Buckets"]]
    assert f"{NAME}-vm" not in [r["RoleName"] for r in aws(moto, "iam", "list-roles")["Roles"]]
    assert not [p for p in aws(moto, "iam", "list-instance-profiles")["InstanceProfiles"] if p["InstanceProfileName"] == f"{NAME}-vm"]
    output = run(bundle / "teardown.sh", moto)
    assert output.count("already gone") == 10, output


def test_preflight_says_when_not_logged_in(moto, network, tmp_path) -> None:
    bundle = render(tmp_path, network)
    env = {**moto, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # nothing answers there
    env.pop("AWS_ACCESS_KEY_ID"), env.pop("AWS_SECRET_ACCESS_KEY")
    result = subprocess.run([str(bundle / "deploy.sh")], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "not logged in to AWS" in result.stderr, result.stderr


MODEL_URI = "s3://shop-models/recs/v7/model*.joblib"  # a '*' in a key is a character, never a wildcard


@pytest.mark.slow
def test_the_vms_role_reads_exactly_the_bundle_the_model_and_the_named_secrets(moto, network, tmp_path) -> None:
    """A spec fetching its model from S3 with a secret and an API key: deploy.sh finds each
    secret's exact ARN and allows the VMs' role s3:GetObject on the bundle and model objects and
    secretsmanager:GetSecretValue on those ARNs, nothing wildcard (checkov agrees); the VMs read the
    secrets at boot into systemd credentials on tmpfs; teardown removes the role and its policy."""
    secrets = {name: aws(moto, "secretsmanager", "create-secret", "--name", name, "--secret-string", value)["ARN"]
               for name, value in (("shop-db", '{"password": "s3cret-db-password"}'), ("shop-api-keys", "k" * 32))}
    aws(moto, "secretsmanager", "create-secret", "--name", "shop-db-other", "--secret-string", "not for these VMs")
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {
        "model": {"path": None, "uri": MODEL_URI},
        "secrets": [{"name": "DB_PASSWORD", "secret": "shop-db", "key": "password"}],
        "security": {"auth": "api_key", "api_keys": [{"secret": "shop-api-keys"}]},
        "targets": {"cloud": {**network, "artifact_url": None, "artifact_upload": None}}})
    bundle = render_spec(spec, "cloud", tmp_path / "out", force=True)
    # An older deploy left the role a policy of its own: vm-reads replaces it.
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    aws(moto, "iam", "create-role", "--role-name", f"{NAME}-vm", "--assume-role-policy-document", json.dumps(trust))
    aws(moto, "iam", "put-role-policy", "--role-name", f"{NAME}-vm", "--policy-name", "read-bundle", "--policy-document",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                            "Resource": "arn:aws:s3:::old-bucket/old-key"}]}))
    output = run(bundle / "deploy.sh", moto)
    assert f"role {NAME}-vm may read the service bundle, the model, the secrets" in output, output
    assert f"delete policy read-bundle of role {NAME}-vm" in output, output

    account = aws(moto, "sts", "get-caller-identity")["Account"]
    key = f"{NAME}/{hashlib.sha256((bundle / 'bundle.tar.gz').read_bytes()).hexdigest()}.tar.gz"
    assert aws(moto, "iam", "list-role-policies", "--role-name", f"{NAME}-vm")["PolicyNames"] == ["vm-reads"]
    policy_name = "vm-reads"
    document = aws(moto, "iam", "get-role-policy", "--role-name", f"{NAME}-vm", "--policy-name", policy_name)["PolicyDocument"]
    assert document["Statement"] == [
        {"Sid": "ReadServiceBundle", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"arn:aws:s3:::{NAME}-{account}-{REGION}/{key}"]},
        {"Sid": "ReadModel", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": ["arn:aws:s3:::shop-models/recs/v7/model${*}.joblib"]},
        {"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": [secrets["shop-db"], secrets["shop-api-keys"]]}]
    assert not [r for s in document["Statement"] for r in s["Resource"] if "*" in r.replace("${*}", "")]
    # checkov reads the policy the role really got, as CloudFormation would declare it.
    template = tmp_path / "vm-policy.json"
    template.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"VmReads": {
        "Type": "AWS::IAM::Policy", "Properties": {"PolicyName": policy_name, "Roles": [f"{NAME}-vm"],
                                                   "PolicyDocument": document}}}}))
    summary = checkov([template], "cloudformation", {})
    assert summary["resources"] == 1 and summary["passed"] >= 5, summary
    (template_data,) = fleet(moto)["templates"]
    data = aws(moto, "ec2", "describe-launch-template-versions", "--launch-template-id", template_data["LaunchTemplateId"],
               "--versions", "$Default")["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["IamInstanceProfile"] == {"Name": f"{NAME}-vm"}

    output = run(bundle / "teardown.sh", moto)
    assert f"delete role {NAME}-vm" in output, output
    assert f"{NAME}-vm" not in [r["RoleName"] for r in aws(moto, "iam", "list-roles")["Roles"]]
    output = run(bundle / "teardown.sh", moto)
    assert output.count("already gone") == 10, output


def test_a_missing_secret_stops_deploy_before_anything_changes(moto, network, tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {
        "secrets": [{"name": "DB_PASSWORD", "secret": "shop-db-never-created"}], "targets": {"cloud": network}})
    bundle = render_spec(spec, "cloud", tmp_path / "out", force=True)
    result = subprocess.run([str(bundle / "deploy.sh")], capture_output=True, text=True, timeout=120, env=moto)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "secret shop-db-never-created is not in Secrets Manager in eu-central-1" in result.stderr, result.stderr
    assert "create" not in result.stdout and not fleet(moto)["templates"], result.stdout


@pytest.mark.slow
def test_a_canary_is_an_instance_refresh_with_checkpoints_alarms_and_rollback(moto, network, tmp_path) -> None:
    """rollout canary: the group names its launch template version; a new version starts an instance
    refresh to it with the steps' checkpoints and pause, AutoRollback, and the release alarms that
    deploy.sh put on this balancer's target group (moto keeps them: describe-alarms)."""
    rollout = {"strategy": "canary", "steps": [{"weight": 20, "pause": "10m"}, {"weight": 60, "pause": "10m"}, {"weight": 100}],
               "analysis": {"max_error_percent": 2, "max_latency_p99_ms": 800}}
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {"rollout": rollout, "targets": {"cloud": network}})
    bundle = render_spec(spec, "cloud", tmp_path / "out", force=True)
    output = run(bundle / "deploy.sh", moto)
    assert "launch template version 1)" in output and "canary:" not in output, output
    (group,) = fleet(moto)["groups"]
    assert group["LaunchTemplate"]["Version"] == "1"  # a number: AWS rolls back to nothing else
    alarms = {a["AlarmName"]: a for a in aws(moto, "cloudwatch", "describe-alarms", "--alarm-name-prefix", f"{NAME}-release")["MetricAlarms"]}
    assert sorted(alarms) == [f"{NAME}-release-errors", f"{NAME}-release-latency"]
    (balancer,) = fleet(moto)["balancers"]
    (target_group,) = fleet(moto)["target_groups"]
    dimensions = {"LoadBalancer": balancer["LoadBalancerArn"].split(":loadbalancer/")[1],
                  "TargetGroup": target_group["TargetGroupArn"].split(":")[-1]}
    latency = alarms[f"{NAME}-release-latency"]
    assert {d["Name"]: d["Value"] for d in latency["Dimensions"]} == dimensions
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == ("TargetResponseTime", "p99", 0.8)
    errors = alarms[f"{NAME}-release-errors"]
    assert errors["Threshold"] == 2.0
    assert {m["Id"]: m.get("Expression") for m in errors["Metrics"]}["error_percent"] == "100 * FILL(errors, 0) / requests"
    for metric in (m for m in errors["Metrics"] if "MetricStat" in m):
        assert {d["Name"]: d["Value"] for d in metric["MetricStat"]["Metric"]["Dimensions"]} == dimensions

    def refreshes() -> list[dict]:  # moto's server keeps those of an earlier group of this name (other tests)
        return aws(moto, "autoscaling", "describe-instance-refreshes", "--auto-scaling-group-name", f"{NAME}-asg")["InstanceRefreshes"]

    earlier = len(refreshes())
    bundle = render_spec(derived_spec(tmp_path / "spec", "ecommerce-recommendations", {
        "metadata": {"version": "1.5.0"}, "rollout": rollout, "targets": {"cloud": network}}), "cloud", tmp_path / "out", force=True)
    output = run(bundle / "deploy.sh", moto)
    assert "canary: instance refresh to launch template version 2" in output and "back to version 1" in output, output
    (refresh,) = refreshes()[earlier:]
    preferences = refresh["Preferences"]
    assert preferences["CheckpointPercentages"] == [20, 60, 100] and preferences["CheckpointDelay"] == 600
    assert preferences["AutoRollback"] is True
    assert preferences["AlarmSpecification"]["Alarms"] == [f"{NAME}-release-errors", f"{NAME}-release-latency"]
    template_id = fleet(moto)["templates"][0]["LaunchTemplateId"]
    assert refresh["DesiredConfiguration"]["LaunchTemplate"] == {"LaunchTemplateId": template_id, "Version": "2"}
    # Until the refresh succeeds the group still names the version it ran: the one to roll back to.
    assert fleet(moto)["groups"][0]["LaunchTemplate"]["Version"] == "1"

    output = run(bundle / "teardown.sh", moto)
    assert "delete the release alarms" in output, output
    assert not aws(moto, "cloudwatch", "describe-alarms", "--alarm-name-prefix", f"{NAME}-release")["MetricAlarms"]
    assert all(not items for items in fleet(moto).values()), fleet(moto)


@pytest.mark.slow
def test_the_health_check_asks_the_admin_port_which_only_the_balancer_reaches(moto, network, tmp_path) -> None:
    """runtime.admin_port: the target group checks health there, the instances' group admits it from
    the load balancer's group only, and the balancer's own group still lets the clients reach its
    listeners alone; removing admin_port moves the check back to the traffic port."""
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations",
                        {"runtime": {"admin_port": 9180}, "targets": {"cloud": {**network, "certificate": None}}})
    bundle = render_spec(spec, "cloud", tmp_path / "out", force=True)
    run(bundle / "deploy.sh", moto)
    (group,) = fleet(moto)["target_groups"]
    assert (group["HealthCheckPort"], group["HealthCheckPath"], group["Port"]) == ("9180", "/v2/health/ready", 8080)
    groups = {g["GroupName"]: g for g in fleet(moto)["security_groups"]}
    instances = aws(moto, "ec2", "describe-security-group-rules", "--filters", f"Name=group-id,Values={groups[f'{NAME}-instances']['GroupId']}")
    inbound = {(r["FromPort"], r.get("ReferencedGroupInfo", {}).get("GroupId"), r.get("CidrIpv4")) for r in instances["SecurityGroupRules"]
               if not r["IsEgress"]}
    lb_group = groups[f"{NAME}-lb"]["GroupId"]
    assert inbound == {(8080, lb_group, None), (9180, lb_group, None)}, inbound
    assert all(port == 80 for _, port, _, _ in lb_ingress(moto)), lb_ingress(moto)
    run(render(tmp_path / "without", network, certificate=None) / "deploy.sh", moto)
    (group,) = fleet(moto)["target_groups"]
    assert group["HealthCheckPort"] == "traffic-port"
    run(bundle / "teardown.sh", moto)


@pytest.mark.slow
def test_grpc_has_an_https_listener_of_its_own_forwarding_to_a_grpc_target_group(moto, network, tmp_path) -> None:
    """runtime.grpc_port with a certificate: an HTTPS listener on the gRPC port with the same
    certificate and TLS policy, a target group of protocol version GRPC checked through
    grpc.health.v1 (status 0), the clients' networks on that port only at the balancer, the
    instances taking it from the balancer's group, the auto-scaling group in both target groups."""
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations",
                        {"runtime": {"grpc_port": 9000}, "targets": {"cloud": network}})
    bundle = render_spec(spec, "cloud", tmp_path / "out", force=True)
    run(bundle / "deploy.sh", moto)
    (grpc,) = [t for t in aws(moto, "elbv2", "describe-target-groups")["TargetGroups"] if t["TargetGroupName"] == f"{NAME}-grpc"]
    assert (grpc["ProtocolVersion"], grpc["Port"], grpc["HealthCheckPath"], grpc["Matcher"]) == \
        ("GRPC", 9000, "/grpc.health.v1.Health/Check", {"GrpcCode": "0"}), grpc
    (balancer,) = fleet(moto)["balancers"]
    listeners = {listener["Port"]: listener for listener in
                 aws(moto, "elbv2", "describe-listeners", "--load-balancer-arn", balancer["LoadBalancerArn"])["Listeners"]}
    assert sorted(listeners) == [80, 443, 9000]
    assert listeners[9000]["Protocol"] == "HTTPS" and listeners[9000]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listeners[9000]["Certificates"][0]["CertificateArn"] == network["certificate"]
    assert listeners[9000]["DefaultActions"][0]["TargetGroupArn"] == grpc["TargetGroupArn"]
    assert lb_ingress(moto) == {("tcp", port, port, cidr) for port in (80, 443, 9000) for cidr in CLIENTS}
    (group,) = fleet(moto)["groups"]
    assert set(group["TargetGroupARNs"]) == {grpc["TargetGroupArn"], fleet(moto)["target_groups"][0]["TargetGroupArn"]}
    output = run(bundle / "teardown.sh", moto)
    assert "delete target group shop-recs-grpc" in output and all(not items for items in fleet(moto).values()), output
