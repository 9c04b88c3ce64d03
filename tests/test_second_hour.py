"""Issue 23, the second hour: no lost file, no internal error, no trap after the first success."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from support import invoke, random_tflite_weights


def refused(result, *words: str) -> str:  # type: ignore[no-untyped-def]
    """Exit 2 with one 'lstmgen: error:' paragraph naming `words`, never a traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    for w in words:
        assert w in result.output, (w, result.output)
    return str(result.output)


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(weights .npz, model, input .npy) of a small model."""
    weights = tmp_path / "w.npz"
    np.savez(weights, **random_tflite_weights())
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", weights, "-o", model, "--no-verify").exit_code == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 5), np.float32))
    return weights, model, x


# ------------------------------------------------------------------ 1. outputs are never inputs


def test_export_never_overwrites_its_model(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    _, model, _ = small
    link = tmp_path / "link.npz"
    link.symlink_to(model)
    hard = tmp_path / "hard.npz"
    os.link(model, hard)
    before = model.read_bytes()
    for out in (model, link, hard):
        refused(invoke("export", model, "--format", "tflite", "-o", out), "output", "input MODEL")
    assert model.read_bytes() == before and link.is_symlink()


def test_api_build_and_export_refuse_their_inputs(small: tuple[Path, Path, Path]) -> None:
    import lstmgen
    from lstmgen.errors import OutputError
    from lstmgen.export import export_weights

    weights, model, _ = small
    w_before, m_before = weights.read_bytes(), model.read_bytes()
    with pytest.raises(OutputError):
        lstmgen.build(weights, {}, weights, verify=False)
    with pytest.raises(OutputError):
        export_weights(model, model, "tflite")
    assert weights.read_bytes() == w_before and model.read_bytes() == m_before


def test_fresh_temp_file_of_a_dead_process_is_removed(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    weights, _, _ = small
    stale = tmp_path / ".lstmgen-4194999-cafef00d.tmp"  # a PID above any pid_max; written just now (SIGKILL)
    stale.write_bytes(b"partial")
    live = tmp_path / f".lstmgen-{os.getppid()}-cafef00d.tmp"  # a live process's file stays
    live.write_bytes(b"partial")
    assert invoke("build", "--weights", weights, "-o", tmp_path / "o.tflite", "--no-verify").exit_code == 0
    assert not stale.exists() and live.exists()
