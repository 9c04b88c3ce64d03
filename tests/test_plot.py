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
