"""A target from outside mlgen: tests/plugins/mlgen-nomad is a package as a third party would
publish it (a HashiCorp Nomad job), installed with pip and found through the `mlgen.targets` entry
point. Everything it needs sits in its own folder — settings schema, escaping filter, parse-back
check, templates, trade-off row — and it gets what a built-in target gets: located settings errors,
`mlgen targets`, render and `--check`, and a place in the generated docs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, ROOT, run_mlgen

PLUGIN = ROOT / "tests" / "plugins" / "mlgen-nomad"
HOSTILE_DESCRIPTION = 'Nomad reads ${attr.unique.hostname} and %{ if true }x%{ endif } as templates; "quotes" and \\ too'


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin, pip-installed into a folder of its own (no build isolation: nothing is fetched)."""
    hcl2 = pytest.importorskip("hcl2")  # the plugin's parse-back check; a test dependency of mlgen
    folder = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("plugin") / "mlgen-nomad"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(folder), str(source)], check=True, capture_output=True, timeout=300)
    assert (folder / "mlgen_nomad" / "templates" / "nomad" / "job.nomad.hcl.j2").exists()
    assert hcl2
    return folder


def with_plugin(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(site)}


def nomad_spec(tmp_path: Path, settings: dict, **metadata) -> Path:
    shutil.copytree(EXAMPLES / "iris", tmp_path / "iris", ignore=shutil.ignore_patterns("__pycache__"))
    spec = tmp_path / "iris" / "spec.yaml"
    data = yaml.safe_load(spec.read_text())
    data["metadata"].update(metadata)
    data["targets"] = {"nomad": settings}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def test_mlgen_targets_lists_the_plugin(site):
    listed = run_mlgen("targets", env=with_plugin(site))
    assert listed.returncode == 0, listed.stderr
    assert "nomad" in listed.stdout and "a HashiCorp Nomad service job" in listed.stdout


def test_the_plugins_settings_are_validated_with_located_errors(site, tmp_path):
    spec = nomad_spec(tmp_path, {"count": 0, "driver": "podman"})
    result = run_mlgen("validate", spec, env=with_plugin(site))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    count_line = next(n for n, text in enumerate(spec.read_text().splitlines(), 1) if "count: 0" in text)
    assert any(f"spec.yaml:{count_line}:" in line and "targets.nomad.count" in line for line in lines), result.stderr
    assert any("targets.nomad.driver" in line and "'podman' is not one of: docker, exec" in line for line in lines), result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_plugin_its_settings_are_an_unknown_field(tmp_path):
    result = run_mlgen("validate", nomad_spec(tmp_path, {"count": 2}))
    assert result.returncode == 1
    assert "unknown field 'nomad'" in result.stderr


def test_the_plugin_renders_checks_and_escapes_like_a_builtin_target(site, tmp_path):
    import hcl2

    spec = nomad_spec(tmp_path, {"count": 2, "datacenters": ["eu-1", "eu-2"]}, description=HOSTILE_DESCRIPTION)
    out = tmp_path / "deploy"
    rendered = run_mlgen("render", spec, "-t", "nomad", "-o", out, env=with_plugin(site))
    assert rendered.returncode == 0, rendered.stderr
    job_text = (out / "nomad" / "iris.nomad.hcl").read_text()
    job = hcl2.loads(job_text)["job"][0]['"iris"']
    group = job["group"][0]['"model"']
    assert group["count"] == 2 and job["datacenters"] == ['"eu-1"', '"eu-2"']
    # What Nomad reads as the description: HCL string escapes undone, `$${`/`%%{` back to literal.
    description = json.loads(job["meta"][0]["description"]).replace("$${", "${").replace("%%{", "%{")
    assert description == HOSTILE_DESCRIPTION
    assert (out / "nomad" / "app" / "serving.json").exists()
    checked = run_mlgen("render", spec, "-t", "nomad", "-o", out, "--check", env=with_plugin(site))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_template_bug_in_the_plugin_is_caught_by_its_own_parse_back_check(site, tmp_path):
    overrides = tmp_path / "templates" / "nomad"
    overrides.mkdir(parents=True)
    (overrides / "job.nomad.hcl.j2").write_text('job {{ settings.name | hcl }} {\n  count = [\n}\n')
    result = run_mlgen("render", nomad_spec(tmp_path, {}), "-t", "nomad", "-o", tmp_path / "out",
                       "--templates", tmp_path / "templates", env=with_plugin(site))
    assert result.returncode == 1
    assert "nomad/iris.nomad.hcl" in result.stderr and "does not parse" in result.stderr
    assert not (tmp_path / "out" / "nomad").exists()


def test_generated_docs_include_the_plugin(site):
    env = with_plugin(site)
    choosing = subprocess.run([sys.executable, "-m", "mlgen.choosing"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=60)
    assert choosing.returncode == 0, choosing.stderr
    assert "| `nomad` | you already schedule services with Nomad |" in choosing.stdout
    reference = subprocess.run([sys.executable, "-m", "mlgen.docs"], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=60)
    assert "| `targets.nomad.count` | integer | `1` |" in reference.stdout
