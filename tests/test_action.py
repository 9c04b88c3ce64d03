"""The reusable GitHub Action (action.yml) runs as GitHub would run it: its shell steps, in order, with inputs.

Like tests/test_readme.py's CI block: the action's `run:` steps are taken from action.yml, `${{ ... }}`
expressions substituted (inputs with their defaults, github.action_path = this checkout), `if:`
conditions evaluated, and run with bash in a directory holding a copy of examples/. The install step
is not run (the test's environment has lstmgen); `uses:` steps are checked, not run (the artifact's
files must exist). The README's action example is run with its own inputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT

ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass
class Job:
    """One run of the action: what each step did, the job summary, the files it left."""

    cwd: Path
    exits: dict[str, int] = field(default_factory=dict)  # step name -> exit status (skipped steps absent)
    uploaded: list[Path] = field(default_factory=list)
    summary: str = ""
    logs: str = ""


def _value(expr: str, inputs: dict[str, str]) -> str:
    if expr.startswith("inputs."):
        return inputs[expr[len("inputs.") :]]
    assert expr == "github.action_path", f"action.yml uses an expression this test does not know: {expr}"
    return str(ROOT)


def _substitute(text: str, inputs: dict[str, str]) -> str:
    return EXPR.sub(lambda m: _value(m.group(1), inputs), text)


def _condition(cond: str | None, inputs: dict[str, str], failed: bool) -> bool:
    """GitHub's `if:` for the expressions action.yml uses: always(), inputs.x == '...', !=, &&, ||."""
    if cond is None:
        return not failed  # success(): every earlier step passed
    expr = EXPR.sub(lambda m: m.group(1), cond)
    status = "always()" in expr  # a status function: without one, GitHub adds success()
    expr = re.sub(r"inputs\.([\w-]+)", lambda m: repr(inputs[m.group(1)]), expr)
    expr = expr.replace("always()", "True").replace("&&", " and ").replace("||", " or ")
    result = eval(expr, {"__builtins__": {}}, {"True": True})  # only the literals and operators above
    return bool(result) and (status or not failed)


def run_action(given: dict[str, str], cwd: Path) -> Job:
    inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    unknown = set(given) - set(inputs)
    assert not unknown, f"inputs the action does not declare: {unknown}"
    inputs.update(given)
    job = Job(cwd)
    (cwd / "summary.md").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("LSTMGEN_RUNTIME",)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["GITHUB_STEP_SUMMARY"] = str(cwd / "summary.md")
    failed = False
    assert ACTION["runs"]["using"] == "composite"
    for k, step in enumerate(ACTION["runs"]["steps"]):
        name = step.get("name") or step.get("uses") or f"step {k}"
        if not _condition(step.get("if"), inputs, failed):
            continue
        if "uses" in step:
            _check_uses(step, inputs, job)
            continue
        if "pip install" in step["run"]:
            assert "ACTION_PATH" in step["run"], "the install step installs the action's own checkout by default"
            continue
        assert step["shell"] == "bash"
        step_env = env | {key: _substitute(str(v), inputs) for key, v in (step.get("env") or {}).items()}
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", _substitute(step["run"], inputs)],
            cwd=cwd,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        job.exits[name] = done.returncode
        job.logs += f"--- {name}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        failed = failed or done.returncode != 0
    job.summary = (cwd / "summary.md").read_text()
    return job


def _check_uses(step: dict[str, Any], inputs: dict[str, str], job: Job) -> None:
    action = step["uses"]
    if action.startswith("actions/setup-python@"):
        assert _substitute(step["with"]["python-version"], inputs) == inputs["python-version"]
    elif action.startswith("actions/upload-artifact@"):
        paths = [p for p in _substitute(step["with"]["path"], inputs).splitlines() if p.strip()]
        job.uploaded = [job.cwd / p.strip() for p in paths if (job.cwd / p.strip()).exists()]
    else:
        raise AssertionError(f"action.yml uses {action}, which this test does not know")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def readme_inputs() -> dict[str, str]:
    """The `with:` of the README's example job that uses this action."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for body in re.findall(r"^```yaml\n(.*?)^```$", text, re.M | re.S):
        jobs = yaml.safe_load(body).get("jobs", {})
        for step in (jobs.get("lstm-model") or {}).get("steps", []):
            if "lstmgen@" in step.get("uses", ""):
                return {k: str(v) for k, v in step.get("with", {}).items()}
    raise AssertionError("README.md shows no job using the lstmgen action")


def test_the_readme_job_builds_verifies_uploads_and_summarises(workdir: Path) -> None:
    job = run_action(readme_inputs(), workdir)
    assert set(job.exits.values()) == {0}, job.logs
    out = readme_inputs().get("output", "model.tflite")
    names = sorted(p.name for p in job.uploaded)
    assert names == sorted([out, f"{out}.build.json", f"{out}.verify.json", f"{out}.summary.md"]), job.logs
    build = json.loads((workdir / f"{out}.build.json").read_text())
    assert build["ok"] and build["verification"]["passed"]
    assert json.loads((workdir / f"{out}.verify.json").read_text())["passed"]
    assert f"### `{out}`: PASS" in job.summary and "| layer | direction |" in job.summary
    assert "against the source" in job.summary


def test_args_and_no_verification(workdir: Path) -> None:
    job = run_action(
        {
            "args": "--weights examples/encoder.npz --num-layers 2 --bidirectional",
            "verify": "false",
            "output": "enc.tflite",
            "artifact-name": "",
        },
        workdir,
    )
    assert set(job.exits) == {"Build the model", "Job summary"} and set(job.exits.values()) == {0}, job.logs
    assert not job.uploaded and not (workdir / "enc.tflite.verify.json").exists()
    assert "not verified" in job.summary and job.summary.count("| 0 | ") == 2  # layer 0: forward and backward


def test_a_failed_build_fails_the_job_and_says_why_in_the_summary(workdir: Path) -> None:
    job = run_action({"args": "--weights examples/missing.npz"}, workdir)
    assert job.exits["Build the model"] == 2 and "Verify the written file" not in job.exits, job.logs
    assert job.exits["Job summary"] == 0
    assert "build failed" in job.summary and "does not exist" in job.summary
    assert [p.name for p in job.uploaded] == ["model.tflite.build.json"]  # the report of the failure
    assert not (workdir / "model.tflite").exists()


def test_summary_md_may_not_be_the_model(tmp_path: Path) -> None:
    from support import invoke

    out = tmp_path / "m.tflite"
    result = invoke("build", "--num-units", "4", "--input-size", "3", "-o", out, "--summary-md", out)
    assert result.exit_code == 2 and "same file" in result.output and not out.exists()
    assert (
        invoke("build", "--num-units", "4", "--input-size", "3", "-o", out, "--summary-md", tmp_path / "s.md").exit_code
        == 0
    )
    assert "| 0 | forward | 4 | 3 | 4 |" in (tmp_path / "s.md").read_text()
