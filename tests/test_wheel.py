"""The package as users get it: the wheel's contents and dependencies, and the installed wheel at work.

The contents checks build the wheel and sdist with setuptools' PEP 517 hooks (or take them from
LSTMGEN_WHEEL_DIR, where `make test-wheel` put them). The smoke tests need a venv with the wheel
installed (not editable) and nothing else: `make test-wheel` makes one and names it in
LSTMGEN_WHEEL_VENV; they run its commands from a directory outside the checkout, with PYTHONPATH unset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from support import ROOT

import lstmgen

# What `pip install lstmgen` brings (pyproject's [project] dependencies): a new one is a decision, made here.
DEFAULT_DEPENDENCIES = {
    "numpy>=1.23",
    "flatbuffers>=23.5",
    "click>=8.1",
    "tomli>=2.0; python_version < '3.11'",
    "ai-edge-litert>=1.0; platform_system != 'Windows'",
}
# Optional packages a default install must not have pulled in.
OPTIONAL = ("torch", "onnx", "h5py", "tflite", "matplotlib", "jsonschema", "tflite_runtime", "tflite_micro", "yaml")


def _build(hook: str, src: Path, out: Path) -> None:
    code = "import sys; from setuptools import build_meta; getattr(build_meta, sys.argv[1])(sys.argv[2])"
    done = subprocess.run(
        [sys.executable, "-c", code, hook, str(out)], cwd=src, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("LSTMGEN_WHEEL_DIR")
    if given:
        return ROOT / given
    pytest.importorskip("setuptools")
    # Built from a copy of the checkout: setuptools writes build/ and *.egg-info beside its sources.
    src = tmp_path_factory.mktemp("src") / "lstmgen"
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "*.tflite")
    shutil.copytree(ROOT, src, ignore=skip)
    for name in (".pre-commit-hooks.yaml",):  # dotfiles the sdist ships
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    for hook in ("build_wheel", "build_sdist"):  # one per process: build_wheel rewrites sys.argv
        _build(hook, src, out)
    return out


def _wheel(dist: Path) -> zipfile.ZipFile:
    (path,) = dist.glob("lstmgen-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_every_module_and_nothing_else(dist: Path) -> None:
    names = set(_wheel(dist).namelist())
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lstmgen").rglob("*.py") if "__pycache__" not in p.parts}
    packaged = {n for n in names if n.startswith("lstmgen/")}
    assert packaged == source | {"lstmgen/py.typed"}
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]


def test_the_wheel_requires_only_the_default_dependencies(dist: Path) -> None:
    meta = _wheel(dist).read(next(n for n in _wheel(dist).namelist() if n.endswith(".dist-info/METADATA")))
    requires = Parser().parsestr(meta.decode()).get_all("Requires-Dist") or []
    plain = {r.replace('"', "'") for r in requires if "extra ==" not in r}
    assert plain == DEFAULT_DEPENDENCIES
    entry = _wheel(dist).read(next(n for n in _wheel(dist).namelist() if n.endswith("entry_points.txt"))).decode()
    assert "lstmgen = lstmgen.cli.main:main" in entry and "lstmgen-pre-commit = lstmgen.precommit:main" in entry


def test_the_sdist_holds_what_the_readme_and_ci_use(dist: Path) -> None:
    (path,) = dist.glob("lstmgen-*.tar.gz")
    with tarfile.open(path) as tar:
        names = {n.partition("/")[2] for n in tar.getnames()}
    wanted = {"pyproject.toml", "README.md", "LICENSE", "action.yml", ".pre-commit-hooks.yaml", "Makefile"}
    wanted |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "schemas").glob("*.json")}
    wanted |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").rglob("*") if p.is_file()}
    wanted -= {n for n in wanted if "__pycache__" in n}
    assert wanted <= names, sorted(wanted - names)


# ------------------------------------------------------------------------------------ installed


VENV = os.environ.get("LSTMGEN_WHEEL_VENV")
installed = pytest.mark.skipif(not VENV, reason="needs LSTMGEN_WHEEL_VENV (make test-wheel)")


def _in_venv(cwd: Path, *argv: str) -> str:
    assert VENV
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LSTMGEN_RUNTIME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str((ROOT / VENV / "bin").absolute()), env.get("PATH", "")])
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory away from the checkout holding a copy of examples/, as a user's project would."""
    root = tmp_path_factory.mktemp("user")
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@installed
def test_installed_not_editable_and_without_optional_packages(outside: Path) -> None:
    code = (
        "import importlib.util, json, lstmgen; "
        f"print(json.dumps([lstmgen.__file__, [m for m in {OPTIONAL!r} if importlib.util.find_spec(m)]]))"
    )
    where, optional = json.loads(_in_venv(outside, "python", "-c", code))
    assert "site-packages" in where and not where.startswith(str(ROOT / "lstmgen")), where
    assert optional == [], f"a default install pulled in {optional}"


@installed
def test_every_command_has_help(outside: Path) -> None:
    listed = json.loads(
        _in_venv(
            outside,
            "python",
            "-c",
            "import json; from lstmgen.cli.main import COMMANDS; print(json.dumps(sorted(COMMANDS)))",
        )
    )
    assert "build" in listed and "verify" in listed
    assert "Usage" in _in_venv(outside, "lstmgen", "--help")
    for command in listed:
        assert f"lstmgen {command}" in _in_venv(outside, "lstmgen", command, "--help")
    assert "usage: lstmgen-pre-commit" in _in_venv(outside, "lstmgen-pre-commit", "--help")


@installed
def test_the_installed_wheel_builds_verifies_and_inspects_the_example(outside: Path) -> None:
    out = _in_venv(outside, "lstmgen", "build", "--config", "examples/cell.toml", "-o", "demo.tflite")
    assert "PASS" in out and "FAIL" not in out
    assert "PASS" in _in_venv(outside, "lstmgen", "verify", "demo.tflite")
    info = json.loads(_in_venv(outside, "lstmgen", "inspect", "demo.tflite", "--json"))
    assert info["num_units"] == 32
    # The same bytes as this checkout builds: builds are deterministic across installs.
    assert (outside / "demo.tflite").read_bytes() == lstmgen.build(config=ROOT / "examples" / "cell.toml").data
    api = "import lstmgen; r = lstmgen.build(config='examples/cell.toml'); print(r.report.passed, len(r.data))"
    assert _in_venv(outside, "python", "-c", api).split() == ["True", str(len((outside / "demo.tflite").read_bytes()))]
