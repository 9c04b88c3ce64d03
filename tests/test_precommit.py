"""The pre-commit hook (.pre-commit-hooks.yaml -> lstmgen-pre-commit): stale committed models fail the commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import ROOT

import lstmgen

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_the_hook_runs_the_packaged_script() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert hook["id"] == "lstmgen-models" and hook["language"] == "python"
    assert scripts[hook["entry"]] == "lstmgen.precommit:main"


def hook(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The hook's entry point as pre-commit runs it (the console script is `python -m lstmgen.precommit`)."""
    return subprocess.run(
        [sys.executable, "-m", "lstmgen.precommit", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one committed model, built from its config and weights."""
    (tmp_path / "models").mkdir()
    for name in ("cell.toml", "weights_tf1.npz"):
        shutil.copy(ROOT / "examples" / name, tmp_path / "models" / name)
    lstmgen.build(config=tmp_path / "models" / "cell.toml").save(tmp_path / "models" / "cell.tflite")
    return tmp_path


def test_an_up_to_date_model_passes(repo: Path) -> None:
    done = hook(repo, "models/cell.toml", "models/cell.tflite")
    assert done.returncode == 0, done.stderr
    assert hook(repo, "--all").returncode == 0
    assert hook(repo, "--all", "--configs", "models/*.toml").returncode == 0


def test_hidden_folders_and_venvs_are_not_searched(repo: Path) -> None:
    """A stale pair inside .venv/ or build/ is no committed model of the repository."""
    for folder in (".venv/lib", "build"):
        (repo / folder).mkdir(parents=True)
        shutil.copy(repo / "models" / "cell.toml", repo / folder / "x.toml")
        (repo / folder / "x.tflite").write_bytes(b"stale")
    assert hook(repo, "--all").returncode == 0
    done = hook(repo, "--all", "--configs", "build/*.toml")  # named explicitly: checked
    assert done.returncode == 1 and "build/x.tflite" in done.stderr


def test_changed_weights_fail_and_the_model_is_rewritten(repo: Path) -> None:
    weights = repo / "models" / "weights_tf1.npz"
    arrays = dict(np.load(weights))
    arrays["kernel"] = arrays["kernel"] * np.float32(1.001)  # retrained
    np.savez(weights, **arrays)
    before = (repo / "models" / "cell.tflite").read_bytes()
    done = hook(repo, "models/weights_tf1.npz")
    assert done.returncode == 1 and "models/cell.tflite is not what models/cell.toml builds" in done.stderr
    after = (repo / "models" / "cell.tflite").read_bytes()
    assert after != before and after == lstmgen.build(config=repo / "models" / "cell.toml").data
    assert hook(repo, "models/weights_tf1.npz").returncode == 0  # staged again: clean


def test_an_edited_model_fails_and_check_only_reports(repo: Path) -> None:
    model = repo / "models" / "cell.tflite"
    tampered = bytearray(model.read_bytes())
    tampered[-1] ^= 1
    model.write_bytes(bytes(tampered))
    done = hook(repo, "--check", "models/cell.tflite")
    assert done.returncode == 1 and "run lstmgen build" in done.stderr
    assert model.read_bytes() == bytes(tampered)  # --check writes nothing
    assert hook(repo, "--check", "README.md").returncode == 0  # an unrelated change rebuilds nothing


def test_a_config_that_no_longer_builds_fails_with_the_reason(repo: Path) -> None:
    config = repo / "models" / "cell.toml"
    config.write_text(config.read_text().replace("cell_clip = 3.0", "cell_clip = -3.0"))
    done = hook(repo, "models/cell.toml")
    assert done.returncode == 1 and "cannot be rebuilt" in done.stderr and "cell_clip" in done.stderr
    assert "Traceback" not in done.stderr
