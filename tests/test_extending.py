"""Extending mlgen: template overrides one file at a time (sandboxed), and third-party targets
registered through the `mlgen.targets` entry-point group."""

from __future__ import annotations

import textwrap
from pathlib import Path

from helpers import EXAMPLES, run_mlgen

IRIS = EXAMPLES / "iris" / "spec.yaml"


def test_a_user_template_replaces_one_file_and_the_rest_stay_built_in(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    (overrides / "onprem").mkdir(parents=True)
    (overrides / "onprem" / "environment.j2").write_text("# ours\n{% for k, v in model.env.items() %}{{ k }}={{ v | envfile }}\n{% endfor %}")
    out = tmp_path / "out"
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", out, "--templates", overrides)
    assert result.returncode == 0, result.stderr
    assert (out / "onprem" / "iris.env").read_text() == '# ours\nLOG_LEVEL="info"\n'
    assert "[Service]" in (out / "onprem" / "iris.service").read_text()


def test_user_templates_run_sandboxed(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    (overrides / "onprem").mkdir(parents=True)
    (overrides / "onprem" / "environment.j2").write_text("{{ model.__class__.__init__.__globals__ }}\n")
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", tmp_path / "out", "--templates", overrides)
    assert result.returncode == 1
    assert "template tried an unsafe operation" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_template_that_uses_an_undefined_value_is_a_clear_error(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    (overrides / "onprem").mkdir(parents=True)
    (overrides / "onprem" / "environment.j2").write_text("{{ model.no_such_field }}\n")
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", tmp_path / "out", "--templates", overrides)
    assert result.returncode == 1
    assert "template uses an undefined value" in result.stderr and "no_such_field" in result.stderr


def test_a_third_party_target_registers_through_an_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "hello_target-0.1.dist-info").mkdir(parents=True)
    (site / "hello_target-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-target\nVersion: 0.1\n")
    (site / "hello_target-0.1.dist-info" / "entry_points.txt").write_text("[mlgen.targets]\nhello = hello_target:TARGET\n")
    (site / "hello_target.py").write_text(textwrap.dedent("""
        from mlgen.render import RenderedFile
        from mlgen.targets.base import Target

        def plan(model, renderer):
            return [RenderedFile.text("hello.txt", f"hello from {model.name}")]

        TARGET = Target(name="hello", summary="says hello", plan=plan)
    """))
    env = {"PYTHONPATH": str(site)}
    listed = run_mlgen("targets", env=env)
    assert "hello" in listed.stdout and "says hello" in listed.stdout
    out = tmp_path / "out"
    result = run_mlgen("render", IRIS, "-t", "hello", "-o", out, env=env)
    assert result.returncode == 0, result.stderr
    assert (out / "hello" / "hello.txt").read_text() == "hello from iris\n"
