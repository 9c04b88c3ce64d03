"""The lazy public API (lstmgen.build, ...) and a start-up that loads only what a command needs."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import lstmgen
from lstmgen.cli.main import COMMANDS

# Loaded by `lstmgen --help` / `--version` neither directly nor through a dependency.
HEAVY = (
    "lstmgen.quant",
    "lstmgen.check",
    "lstmgen.numerics",
    "lstmgen.tflite",
    "lstmgen.weights",
    "lstmgen.build",
    "numpy",
    "tflite",
)

PROBE = """
import json, sys
from lstmgen.cli.main import main
try:
    main(sys.argv[1:], prog_name="lstmgen")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(*argv: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["-h"]])
def test_group_help_and_version_load_nothing_heavy(argv: list[str]) -> None:
    loaded = _modules_after(*argv)
    heavy = [m for m in loaded if m.startswith(HEAVY)]
    assert not heavy, f"lstmgen {' '.join(argv)} imported {heavy}"
    assert not [m for m in loaded if m.startswith("lstmgen.cli.cmd_")], "listing commands must not import them"


def test_import_lstmgen_loads_nothing_else() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import json, sys, lstmgen; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [m for m in json.loads(out) if m.startswith("lstmgen.")] == ["lstmgen.version"]  # a constant


def test_a_command_loads_on_use() -> None:
    assert "lstmgen.cli.cmd_inspect" in _modules_after("inspect", "--help")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_table_help_matches_the_command(name: str) -> None:
    module, short = COMMANDS[name]
    command = importlib.import_module(module).command
    assert command.name == name
    assert short == command.get_short_help_str(limit=1000), f"update COMMANDS[{name!r}] in cli/main.py"


# The stable public API: a change here is a change users see (add names deliberately, never remove casually).
PUBLIC = ["BuildResult", "CellConfig", "build", "errors", "export", "inspect", "load_weights", "run", "verify"]


def test_facade_exports() -> None:
    assert sorted(lstmgen.__all__) == PUBLIC
    for name in lstmgen.__all__:
        assert getattr(lstmgen, name) is not None
    for name in ("build", "verify", "run", "inspect", "export"):
        assert callable(getattr(lstmgen, name)) and getattr(lstmgen, name).__module__ == "lstmgen.api"
    assert isinstance(lstmgen.errors, types.ModuleType)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lstmgen.nope  # noqa: B018
    # A fresh import offers exactly these (submodules bind themselves as attributes once imported).
    code = "import lstmgen, json; print(json.dumps(sorted(n for n in dir(lstmgen) if not n.startswith('_'))))"
    fresh = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    modules = {"annotations", "importlib", "sys", "types", "TYPE_CHECKING", "Any", "version"}
    assert set(fresh) - modules == set(PUBLIC)


def test_every_public_name_is_documented() -> None:
    """`make docs` renders these docstrings (pdoc): each public name has one, with an example or its fields."""
    for name in PUBLIC:
        doc = getattr(lstmgen, name).__doc__ or ""
        assert len(doc.strip()) > 40, f"lstmgen.{name} needs a docstring"


def test_facade_survives_its_submodules_loading() -> None:
    """lstmgen.build stays the function after `import lstmgen.build` binds the submodule to the package."""
    script = (
        "import lstmgen.build, lstmgen.run, lstmgen.export, lstmgen.api, lstmgen\n"
        "assert lstmgen.build.__module__ == 'lstmgen.api', lstmgen.build\n"
        "assert callable(lstmgen.run) and callable(lstmgen.export) and callable(lstmgen.inspect)\n"
        "from lstmgen.build import BuildResult\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_facade_builds(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    result = lstmgen.build(None, out, num_units=4, input_size=3, verify=False)
    assert len(result.data) == out.stat().st_size
    assert lstmgen.inspect(out)["num_units"] == 4


def test_a_float_build_does_not_load_quantization(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    loaded = _modules_after("build", "--num-units", "8", "--input-size", "4", "-o", str(out), "--no-verify", "-q")
    assert out.is_file()
    # Not the quantizer: of numerics, only the tables and the affine arithmetic (the interpreter adapters use it).
    assert not [m for m in loaded if m.startswith("lstmgen.quant")]
    numerics = {"lstmgen.numerics", "lstmgen.numerics.tables", "lstmgen.numerics.affine"}
    assert {m for m in loaded if m.startswith("lstmgen.numerics")} <= numerics
    # --no-verify loads neither the references nor an interpreter adapter (a faster start for big builds)
    assert not [m for m in loaded if m.startswith(("lstmgen.check.verify", "lstmgen.check.source"))]


# What a float build from an .npz without verification has no use for (issue 10: start fast): other
# formats' readers, verification, quantization, the interpreters, vela's rules, version lookups, TOML.
NOT_FOR_A_PLAIN_BUILD = (
    "lstmgen.check",
    "lstmgen.numerics.graph",
    "lstmgen.numerics.reference",
    "lstmgen.numerics.float_bound",
    "lstmgen.quant.quantize",
    "lstmgen.quant.calibrate",
    "lstmgen.runtimes.interpreter",
    "lstmgen.runtimes.micro",
    "lstmgen.targets.ethos_u",
    "lstmgen.targets.rules",
    "lstmgen.targets.checks",
    "lstmgen.targets.micro",
    "lstmgen.weights.keras",
    "lstmgen.weights.torch_sd",
    "lstmgen.weights.onnx_lstm",
    "lstmgen.weights.onnx_fold",
    "lstmgen.weights.tf_checkpoint",
    "lstmgen.weights.tfbundle",
    "tflite.",
    "importlib.metadata",
    "tomllib",
    "ai_edge_litert",
    "tflite_runtime",
)


def test_plain_npz_build_loads_only_what_it_uses(tmp_path: Path) -> None:
    weights = tmp_path / "w.npz"
    np.savez(weights, kernel=np.zeros((12, 16), np.float32), bias=np.zeros(16, np.float32))
    loaded = _modules_after("build", "--weights", str(weights), "-o", str(tmp_path / "m.tflite"), "--no-verify", "-q")
    assert "lstmgen.build" in loaded and (tmp_path / "m.tflite").exists()
    needless = [m for m in loaded if m.startswith(NOT_FOR_A_PLAIN_BUILD)]
    assert not needless, f"a plain float build imported {needless}"


@pytest.mark.parametrize("given, expected", [(None, "1"), ("4", "4")])
def test_cli_runs_single_threaded_blas_unless_told(given: str | None, expected: str) -> None:
    """The CLI sets OPENBLAS_NUM_THREADS=1 before NumPy loads (its GEMVs are memory-bound), unless the user set it."""
    code = (
        "import os\nfrom lstmgen.cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "import numpy\nprint(os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == expected
