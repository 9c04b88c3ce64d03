"""Every example in every --help runs as written: in a folder holding the examples/ files, in command order."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, invoke


def order() -> list[str]:
    """The overview, build (which makes the models the others use), then every other command as --help lists them."""
    from lstmgen.cli.main import main

    return ["", "build", *(c for c in main.list_commands(None) if c != "build")]  # type: ignore[arg-type]

NEEDS = {"tflite_micro": "--micro, --runtime micro, --target micro", "matplotlib": "verify --plot"}


def examples(command: str) -> list[str]:
    """The shell lines of a command's Examples block (continuation lines joined, comment lines dropped)."""
    text = invoke(*([command] if command else []), "--help").output
    block = text.split("Examples:", 1)[1].split("\n\n", 1)[0]
    lines: list[str] = []
    for raw in block.splitlines():
        line = raw.strip()
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1].rstrip() + " " + line
        elif line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_every_command_has_examples() -> None:
    for command in order():
        found = examples(command)
        assert found and all("lstmgen " in line for line in found), (command, found)


@pytest.mark.slow
def test_every_help_example_runs_as_written(tmp_path: Path) -> None:
    missing = [f"{m} ({what})" for m, what in NEEDS.items() if importlib.util.find_spec(m) is None]
    if missing or shutil.which("jq") is None:
        pytest.skip(f"the examples use {', '.join(missing) or 'jq'}, not installed here")
    work = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", work)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "lstmgen"  # the console script, for this interpreter and this checkout
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lstmgen "$@"\n')
    shim.chmod(0o755)
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    for command in order():
        for line in examples(command):
            proc = subprocess.run(
                ["bash", "-o", "pipefail", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=600
            )
            assert proc.returncode == 0, f"lstmgen {command} --help: `{line}` exited {proc.returncode}:\n{proc.stderr}"
