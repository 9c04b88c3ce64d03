"""benchmarks/bench_peers.py without its peer venv: --help works, and it skips cleanly (make bench needs no TF)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_peers.py"
ENV = {k: v for k, v in os.environ.items() if k != "LSTMGEN_PEER_PYTHON"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=ENV, timeout=120)


def test_help_names_the_peer_venv() -> None:
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    assert "--peer-python" in done.stdout and "LSTMGEN_PEER_PYTHON" in done.stdout


@pytest.mark.parametrize(
    ("peer", "why"),
    [
        ((), "LSTMGEN_PEER_PYTHON is unset"),
        (("--peer-python", "/nonexistent/peers-venv/bin/python"), "does not exist"),
        # the test venv has no TensorFlow: a python that cannot import the peers is no peer venv either
        (("--peer-python", sys.executable), "cannot import"),
    ],
)
def test_skips_cleanly_without_a_peer_venv(tmp_path: Path, peer: tuple[str, ...], why: str) -> None:
    out = tmp_path / "peers.json"
    done = _run(*peer, "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("skipped: no peer venv") and why in done.stdout
    assert not out.exists()  # docs/update_numbers.py then leaves the bench:peers tables as they are


def test_the_docs_have_the_peers_region() -> None:
    text = (ROOT / "docs" / "measurements.md").read_text(encoding="utf-8")
    assert text.count("<!-- bench:peers -->") == 1 and text.count("<!-- /bench:peers -->") == 1
    assert "not in the repository" not in text


def test_update_numbers_renders_the_peers_tables() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    from update_numbers import PEER_FORMS, peers_table

    forms = {f"{f}_{k}": 1.0 for f in PEER_FORMS for k in ("ms", "rss_mb")}
    err = {"max_abs_error": 0.0123, "mean_abs_error": 0.001}
    names = [f"dynamic-int8_{f}" for f in PEER_FORMS] + ["int8_lstmgen", "int8_tf"]
    build = {"wall_s": 2.0, "walls_s": [2.0], "cpu_s": 1.0, "rss_mb": 70, "tf_over_this": 7.5}
    doc = {
        "date": "2026-12-06",
        "machine": {"cpus": 2, "load_before": [3.0], "load_after": [4.0]},
        "versions": {"litert": "2.3.0", "peer": {"onnx2tf": "1.29.24", "tensorflow": "2.19.0", "tf-keras": "2.19.0"}},
        "steps": 50,
        "rounds": 3,
        "rows": [
            forms
            | {
                "units": 64,
                "input": 32,
                "mode": "dynamic-int8",
                "threads": 2,
                "graph_over_onnx2tf": 0.25,
                "loop_over_onnx2tf": 1.5,
            }
        ],
        "accuracy": {"64": {f"{n} {k}": err for n in names for k in ("xnnpack", "builtin")}},
        "peer_float_check": {"64": {"keras_float_max_abs_error": 2e-7, "onnx2tf_float_max_abs_error": 3e-7}},
        "builds": [
            {"units": 64, "input": 32, "calibration_sequences": 100, "builders": {"lstmgen": build, "tf": build}}
        ],
    }
    text = peers_table(doc)
    assert "| 64 (32) | hybrid | 2 | 1 ms | 1 ms | 1 ms | 1 ms | **0.25** | 1.50 | 1 / 1 / 1 / 1 MB |" in text
    assert "| 64 | XNNPACK | " + " | ".join(["0.0123 / 0.001"] * 6) + " |" in text
    assert "| 64 (32) | TF's converter (tf.keras LSTM) | 2 s | 2 | 1 s | 70 MB | 7.5x |" in text
