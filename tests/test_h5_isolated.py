"""A Keras HDF5 file is parsed in a forked child first: libhdf5's crashes and loops on damaged files are refusals."""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import pytest
from support import ROOT, assert_user_error, invoke

from lstmgen.weights import keras

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux only")
STACKED = ROOT / "examples" / "stacked.weights.h5"


def test_a_file_libhdf5_loops_on_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weight fuzzer's find (seed 3, stacked.weights.h5 mutation 249): libhdf5 never returned, and lstmgen
    hung with it. Now the child is killed at the time limit and the file refused."""
    sys.path.insert(0, str(ROOT / "tests"))
    import fuzz_weights

    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(fuzz_weights._mutate(STACKED.read_bytes(), random.Random(f"3:{STACKED.name}:249")))
    monkeypatch.setattr(keras, "H5_SECONDS", 2.0)
    message = assert_user_error(invoke("build", "--weights", bad, "-o", tmp_path / "m.tflite"), "did not finish")
    assert "damaged" in message and not (tmp_path / "m.tflite").exists()


def test_a_crash_in_the_child_is_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras, "_read_cells", lambda path: os.kill(os.getpid(), signal.SIGSEGV))
    message = assert_user_error(invoke("build", "--weights", STACKED, "-o", tmp_path / "m.tflite"), "SIGSEGV")
    assert "refused" in message


def test_what_the_child_raises_this_process_reports(tmp_path: Path) -> None:
    """A truncated file makes h5py raise in the child and here alike: the usual message, not a crash report."""
    bad = tmp_path / "cut.weights.h5"
    bad.write_bytes(STACKED.read_bytes()[:4000])
    message = assert_user_error(invoke("build", "--weights", bad, "-o", tmp_path / "m.tflite"))
    assert "test process" not in message


def test_a_sound_file_passes_the_child(tmp_path: Path) -> None:
    assert invoke("build", "--weights", STACKED, "-o", tmp_path / "m.tflite").exit_code == 0
