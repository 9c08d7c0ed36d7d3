"""Serverless bundles pass the providers' own checkers, and specs that cannot fit a platform stop
before anything is rendered, with an error naming the limit, its source and the way out.

The example's golden trees for every provider are kept by scripts/update_goldens.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, ROOT, render_spec, require_tool

EXAMPLE = EXAMPLES / "image-classifier-serverless"
GOLDEN = ROOT / "tests" / "golden" / "image-classifier-serverless"
LEFT_OUT = ("app/mlgen_runtime/", ".mlgen-manifest.json")


def spec_copy(tmp_path: Path, **serverless) -> Path:
    """The example's spec with targets.serverless settings (and top-level overrides) changed."""
    source = tmp_path / "example"
    if not source.exists():
        shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    for key, value in serverless.pop("top", {}).items():  # "secrets" or "runtime.python"
        *section, field = key.split(".")
        (spec[section[0]] if section else spec)[field] = value
    spec["targets"]["serverless"].update(serverless)
    if serverless.get("provider") == "azure":
        spec.pop("rollout", None)  # the example's canary is for Lambda: Azure swaps all traffic at once
    (source / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return source / "spec.yaml"


def render(tmp_path: Path, **serverless) -> Path:
    return render_spec(spec_copy(tmp_path, **serverless), "serverless", tmp_path / "out")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(LEFT_OUT)}


# --- the providers' checkers ----------------------------------------------------------------------

@pytest.fixture(scope="module", params=["zip", "image"])
def sam_bundle(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"sam-{request.param}")
    options = {"packaging": request.param}
    if request.param == "image":  # the other optional parts of the template, rendered once
        options.update(warm_instances=2, public=True, top={"secrets": [{"name": "API_TOKEN", "secret": "digits-api", "key": "token"}]})
    return render(tmp, **options)


def test_cfn_lint_finds_nothing(sam_bundle):
    result = subprocess.run([require_tool("cfn-lint"), "template.yaml"], cwd=sam_bundle, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_fails_no_check(sam_bundle):
    result = subprocess.run([require_tool("checkov"), "--skip-download", "-o", "json",
                             "--framework", "cloudformation", "-f", "template.yaml"],
                            cwd=sam_bundle, capture_output=True, text=True)
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["resource_count"] >= 4, "checkov parsed no resources"  # it exits 0 on files it cannot read
    assert summary["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:3000]
    skipped = {c["check_id"] for c in report["results"].get("skipped_checks", [])}
    assert skipped <= {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173", "CKV_AWS_158"}  # docs/targets/serverless.md


def test_sam_validate_lint(sam_bundle):
    sam = require_tool("sam")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
    result = subprocess.run([sam, "validate", "--lint", "-t", "template.yaml"], cwd=sam_bundle, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_packaging_uses_the_lambda_base_image(sam_bundle):
    template = yaml.safe_load((sam_bundle / "template.yaml").read_text())
    function = template["Resources"]["Function"]
    if function["Properties"]["PackageType"] == "Image":
        assert (sam_bundle / "Dockerfile").read_text().count("FROM public.ecr.aws/lambda/python:3.12") == 1
        assert not (sam_bundle / "build.sh").exists()
        assert function["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
        resources = function["Properties"]["Policies"][0]["Statement"][0]
        assert resources["Action"] == ["secretsmanager:GetSecretValue"]  # only what it needs
    else:
        assert (sam_bundle / "build.sh").exists() and not (sam_bundle / "Dockerfile").exists()
        assert "Policies" not in function["Properties"]


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_scripts_pass_shellcheck_and_dry_run(tmp_path, provider):
    # A value meant literally ($HOME, a quote): shellcheck runs with no check left out.
    bundle = render(tmp_path, provider=provider, top={"secrets": [{"name": "API_TOKEN", "secret": "digits-api"}],
                                                      "env": {"GREETING": "it's $HOME, `not` $(run)"}})
    scripts = sorted(str(p) for p in bundle.glob("*.sh"))
    result = subprocess.run([require_tool("shellcheck"), "--severity=style", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    extra = ["--key-vault", "kv-digits"] if provider == "azure" else []
    dry = subprocess.run(["bash", "deploy.sh", "--dry-run", "--region", "somewhere-1", *extra], cwd=bundle,
                         capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0, dry.stderr
    expected = {"aws": "sam deploy", "gcp": "gcloud functions deploy digits --gen2", "azure": "func azure functionapp publish"}
    assert expected[provider] in dry.stdout
    assert "somewhere-1" in dry.stdout and "eu-west-1" not in dry.stdout  # --region means the same everywhere
    assert "GREETING" not in dry.stdout  # the environment travels in a file, never on a command line
    usage = subprocess.run(["bash", "deploy.sh", "--help"], cwd=bundle, capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "--region REGION" in usage.stdout and "--dry-run" in usage.stdout
    wrong = subprocess.run(["bash", "deploy.sh", "--location", "x"], cwd=bundle, capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 2 and "unknown argument: --location" in wrong.stderr
    # Without the provider's CLI on PATH the script stops before doing anything, and says why.
    bare = subprocess.run(["/bin/bash", "deploy.sh", *extra], cwd=bundle, capture_output=True, text=True,
                          env={"PATH": "/nonexistent", "HOME": str(tmp_path)}, timeout=30)
    assert bare.returncode == 1 and "is not installed" in bare.stderr


def test_build_script_dry_run_names_the_lambda_wheels(tmp_path):
    bundle = render(tmp_path, architecture="arm64")
    dry = subprocess.run(["bash", "build.sh", "--dry-run"], cwd=bundle, capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0, dry.stderr
    pip = next(line for line in dry.stdout.splitlines() if " -m pip install " in line)
    assert "--platform manylinux_2_34_aarch64" in pip and "x86_64" not in pip
    assert not (bundle / "build").exists()  # a dry run changes nothing


def test_hostile_env_values_stay_data(tmp_path):
    hostile = "x' $(touch pwned) \"; rm -rf / #\n--set-secrets=A=b"
    for provider in ("aws", "gcp", "azure"):
        bundle = render(tmp_path / provider, provider=provider, top={"env": {"TOKEN": hostile}})
        if provider == "aws":
            env = yaml.safe_load((bundle / "template.yaml").read_text())["Resources"]["Function"]["Properties"]["Environment"]
            assert env["Variables"]["TOKEN"] == hostile
        elif provider == "gcp":
            assert yaml.safe_load((bundle / "env.yaml").read_text())["TOKEN"] == hostile
        else:
            dry = subprocess.run(["bash", "deploy.sh", "--dry-run"], cwd=bundle, capture_output=True, text=True, timeout=30)
            assert not (bundle / "pwned").exists() and dry.returncode == 0


# --- platform limits, before rendering ------------------------------------------------------------

def fit_errors(tmp_path: Path, **serverless) -> str:
    from mlgen.errors import RenderError

    with pytest.raises(RenderError) as caught:
        render(tmp_path, **serverless)
    return " ".join(p.render() for p in caught.value.problems)


def test_a_600_mb_model_does_not_fit_a_zip_lambda(tmp_path):
    spec = spec_copy(tmp_path)
    model = spec.parent / "model" / "digits.onnx"
    with open(model, "r+b") as handle:  # a sparse file: 600 MB on paper, nothing on disk
        handle.truncate(600 * 1024 * 1024)
    data = yaml.safe_load(spec.read_text())
    del data["model"]["sha256"]
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    from mlgen.errors import RenderError

    with pytest.raises(RenderError) as caught:
        render_spec(spec, "serverless", tmp_path / "out")
    text = " ".join(p.render() for p in caught.value.problems)
    assert "250 MB" in text and "packaging: image" in text and "spec.yaml:" in text


def test_20_minutes_on_azure_consumption_is_refused(tmp_path):
    text = fit_errors(tmp_path, provider="azure", timeout_s=1200)
    assert "600 s" in text and "plan: flex" in text


def test_any_gpu_is_refused(tmp_path):
    text = fit_errors(tmp_path, top={"resources.gpu": 1})
    assert "no GPUs" in text and "kubernetes" in text


def test_a_deprecated_lambda_runtime_is_refused(tmp_path):
    text = fit_errors(tmp_path, top={"runtime.python": "3.11"})
    assert "python3.11" in text and "3.12" in text


def test_limits_carry_their_source_and_date():
    from mlgen.targets.serverless import limits as fitness

    for limits in (fitness.LAMBDA_ZIP, fitness.LAMBDA_IMAGE, fitness.GCF_GEN2, *fitness.AZURE_PLANS.values()):
        for limit in vars(limits).values():
            if isinstance(limit, fitness.Limit):
                assert limit.source.startswith("https://") and len(limit.as_of) == 10
    for limit in (fitness.LAMBDA_TMP_MIN_MB, fitness.LAMBDA_TMP_MAX_MB, fitness.LAMBDA_INIT_S, fitness.GCF_TMP_IN_MEMORY):
        assert limit.source.startswith("https://") and len(limit.as_of) == 10
