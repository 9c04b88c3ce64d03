"""Calibration / test sample sets in the shapes users hold them: each reading accepted is said, others refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError
from lstmgen.samples import read_samples

T, F = 6, 3  # time steps, features


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


@pytest.mark.parametrize(
    ("shape", "sig", "time_major", "data", "n", "words"),
    [
        pytest.param((1, T, F), None, False, (5, T, F), 5, "5 sequence(s), one per sample", id="NTI-batch-1"),
        pytest.param((T, 1, F), None, True, (5, T, F), 5, "5 sequence(s), one per sample", id="NTI-batch-1-time-major"),
        pytest.param((2, T, F), None, False, (4, 2, T, F), 4, "4 sample(s)", id="N-B-T-F"),
        pytest.param((2, T, F), None, False, (2, T, F), 1, "one sample", id="one-batch"),
        pytest.param((2, T, F), None, False, (6, T, F), 3, "grouped into 3 batch(es) of 2", id="rows-grouped"),
        pytest.param((1, T, F), (1, -1, F), False, (5, 9, F), 5, "5 sequence(s)", id="dynamic-time"),
    ],
)
def test_readings(
    tmp_path: Path, shape: tuple[int, ...], sig: tuple[int, ...] | None, time_major: bool, data: tuple[int, ...],
    n: int, words: str,
) -> None:  # fmt: skip
    x = np.random.default_rng(0).standard_normal(data).astype(np.float32)
    samples, reading = read_samples(_save(tmp_path / "x.npy", x), shape, sig, time_major, "calibration data")
    assert samples.shape[0] == n and words in reading, reading
    assert samples.ndim == 4 and all(
        s == -1 or g == d for g, d, s in zip(samples.shape[1:], shape, sig or shape, strict=True)
    )
    # Every sequence is kept, in order.
    assert np.array_equal(samples.reshape(-1), x.reshape(-1)) or time_major


def test_directory_and_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((2, T, F)).astype(np.float32) for _ in range(3)]
    folder = tmp_path / "calib"
    folder.mkdir()
    for k, p in enumerate(parts):
        np.save(folder / f"s{k}.npy", p)
    samples, reading = read_samples(folder, (1, T, F), None, False, "calibration data")
    assert samples.shape == (6, 1, T, F) and "6 sample(s) in all" in reading
    np.savez(tmp_path / "c.npz", a=parts[0], b=parts[1])
    samples, _ = read_samples(tmp_path / "c.npz", (1, T, F), None, False, "calibration data")
    assert samples.shape == (4, 1, T, F)
    np.save(folder / "s9.npy", rng.standard_normal((2, T + 1, F)).astype(np.float32))
    with pytest.raises(ConfigError, match="differ in shape"):
        read_samples(folder, (1, -1, F), (1, -1, F), False, "calibration data")


def test_refused_with_the_accepted_shapes(tmp_path: Path) -> None:
    path = _save(tmp_path / "x.npy", np.zeros((5, T, F + 1), np.float32))
    with pytest.raises(ConfigError, match=r"expected \[n, 1, 6, 3\].*\[N, T, I\] sequences"):
        read_samples(path, (1, T, F), None, False, "calibration data")


def test_build_calibrates_on_sequences_and_says_so(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((8, T, F)).astype(np.float32)
    result = build(
        tmp_path / "m.tflite",
        {"num_units": 4, "input_size": F, "time_steps": T, "quantize": "int8"},
        calibration_data=_save(tmp_path / "calib.npy", x),
    )
    assert any("8 sequence(s), one per sample" in n and "8 sample(s)" in n for n in result.notes), result.notes


def test_verify_input_runs_every_sample_and_reports_the_worst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.tflite"
    build(model, {"num_units": 4, "input_size": F, "time_steps": T}, verify=False)
    path = _save(tmp_path / "calib.npy", np.random.default_rng(3).standard_normal((5, T, F)).astype(np.float32))
    runner = CliRunner()
    result = runner.invoke(main, ["verify", str(model), "--input", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["samples"]["count"] == 5 and "5 sequence(s), one per sample" in doc["samples"]["reading"]
    some = runner.invoke(main, ["verify", str(model), "--input", str(path), "--samples", "2"])
    assert some.exit_code == 0 and "ran 2, the worst is sample" in some.output, some.output

    # Shown able to fail: sample 3 alone disagrees; it is the one reported, and verify exits 1.
    import lstmgen.cli.cmd_verify as cmd

    calls = []
    real = cmd.verify_model

    def flaky(*args: Any, **kwargs: Any) -> Any:
        report = real(*args, **kwargs)
        calls.append(kwargs["x"])
        if len(calls) == 4:
            report.checks[0].passed = False
        return report

    monkeypatch.setattr(cmd, "verify_model", flaky)
    bad = runner.invoke(main, ["verify", str(model), "--input", str(path), "--json"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["samples"]["worst"] == 3
    assert len(calls) == 5 and all(np.array_equal(c[0], s) for c, s in zip(calls, np.load(path), strict=True))


def test_integer_samples_are_read_as_they_are_and_say_so(tmp_path: Path) -> None:
    """A fresh user's int64 calibration data was converted without a word; raw int16 audio is often meant scaled."""
    path = tmp_path / "ints.npy"
    np.save(path, np.arange(24, dtype=np.int16).reshape(2, 1, 4, 3))
    samples, reading = read_samples(path, (1, 4, 3), None, False, "calibration data")
    assert samples.shape == (2, 1, 4, 3) and float(samples.max()) == 23.0
    assert "int16 values taken as real numbers as they are (no scaling)" in reading
    np.save(path, np.zeros((2, 1, 4, 3), np.float32))
    assert "no scaling" not in read_samples(path, (1, 4, 3), None, False, "calibration data")[1]
