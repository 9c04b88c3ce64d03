"""verify --plot draws on a Figure of its own: the caller's matplotlib backend and pyplot state are untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")


def test_plot_error_leaves_the_backend_alone(tmp_path: Path) -> None:
    from lstmgen.check.tolerance import plot_error

    before = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    report = {
        "mode": "int8",
        "outputs": [{"name": "output", "max_error_per_step": [0.1, 0.2], "tolerance": {"per_step": [0.3, 0.3]}}],
    }
    plot_error(report, tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == before
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


@pytest.mark.parametrize("name", ["error.npy", "error"])
def test_a_plot_path_that_is_not_a_png_is_bad_input(tmp_path: Path, name: str) -> None:
    """Red team: `verify --plot error.npy` exited 70 (matplotlib refused the suffix after the verification)."""
    from click.testing import CliRunner

    from lstmgen.build import build
    from lstmgen.cli.main import main

    model = tmp_path / "m.tflite"
    build(model, {"num_units": 4, "input_size": 3, "time_steps": 5, "quantize": "dynamic-int8"}, verify=False)
    result = CliRunner().invoke(main, ["verify", str(model), "--plot", str(tmp_path / name)])
    assert result.exit_code == 2 and "ending in .png" in result.output, result.output
    assert not (tmp_path / name).exists()
