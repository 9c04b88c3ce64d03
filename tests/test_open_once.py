"""Each weight file is opened and parsed once per build, arrays read only for the cells built; lazy detection."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import TF_FIXTURES

import lstmgen
from lstmgen.build import build as build_model  # the pipeline's own signature
from lstmgen.errors import WeightFileError
from lstmgen.weights import FORMATS, READER_CLASSES, WeightReader, detect, get_reader
from lstmgen.weights import open as open_weights

REAL = Path(__file__).parent / "fixtures" / "real"
REPO = Path(__file__).resolve().parents[1]


def _optional(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


torch, h5py, onnx, safetensors_torch = (_optional(n) for n in ("torch", "h5py", "onnx", "safetensors.torch"))


@contextmanager
def counting(m: pytest.MonkeyPatch, owner: Any, name: str, of: Path | None = None) -> Iterator[Counter[str]]:
    """Count calls of owner.name (those whose first argument names `of`, when given)."""
    calls: Counter[str] = Counter()
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else None
        if of is None or (isinstance(first, (str, Path)) and Path(first) == of):
            calls[name] += 1
        return real(*args, **kwargs)

    m.setattr(owner, name, spy)
    yield calls


def _build(tmp_path: Path, weights: Path, verify: bool = True, **kw: Any) -> None:
    build_model(tmp_path / "m.tflite", kw.pop("options", {}), weights, verify=verify, **kw)
    assert (tmp_path / "m.tflite").exists()


def _torch_lstm() -> Any:
    torch.manual_seed(0)
    return torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)


# ------------------------------------------------------------------------------------- one parse per build


def test_npz_is_opened_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = TF_FIXTURES / "keras3_stacked.weights.npz"
    with counting(monkeypatch, zipfile, "ZipFile", weights) as calls:
        _build(tmp_path, weights, options={"num_layers": 2})
    assert calls == {"ZipFile": 1}


@pytest.mark.skipif(h5py is None, reason="needs h5py")
@pytest.mark.parametrize("name", ["keras3_stacked.weights.h5", "keras3_stacked.keras", "tfkeras2_lstm.h5"])
def test_keras_file_is_opened_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    weights = TF_FIXTURES / name
    layers = 2 if "stacked" in name else 1
    with counting(monkeypatch, h5py, "File") as h5, counting(monkeypatch, zipfile, "ZipFile", weights) as zips:
        _build(tmp_path, weights, options={"num_layers": layers})
    assert h5 == {"File": 1}
    assert zips == ({"ZipFile": 1} if name.endswith(".keras") else {})


@pytest.mark.skipif(onnx is None, reason="needs onnx")
@pytest.mark.parametrize("name", ["onnx_dynamo_l2_bi_bf.onnx", "onnx_ts_l2_bi_bf.onnx"])  # external data, inline
def test_onnx_model_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with counting(monkeypatch, onnx, "load") as calls:
        _build(tmp_path, REAL / name, options={"num_layers": 2, "bidirectional": True})
    assert calls == {"load": 1}


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_pt_is_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "w.pt"
    torch.save(_torch_lstm().state_dict(), weights)
    with counting(monkeypatch, torch, "load") as calls:
        _build(tmp_path, weights, options={"num_layers": 2, "bidirectional": True})
    assert calls == {"load": 1}


@pytest.mark.skipif(torch is None or safetensors_torch is None, reason="needs torch and safetensors")
def test_safetensors_header_is_read_once_and_tensors_on_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmgen.weights import stfile, torch_sd

    lstm, other = _torch_lstm(), torch.nn.LSTM(3, 2)
    state = {f"enc.{k}": v for k, v in lstm.state_dict().items()}
    state |= {f"dec.{k}": v for k, v in other.state_dict().items()}
    weights = tmp_path / "w.safetensors"
    safetensors_torch.save_file(state, str(weights))
    read: list[str] = []
    real_get = stfile.SafetensorsFile.get
    monkeypatch.setattr(stfile.SafetensorsFile, "get", lambda self, key: read.append(key) or real_get(self, key))
    m = monkeypatch
    m.setattr(stfile, "json", types.SimpleNamespace(loads=json.loads))  # stfile's own JSON parses only
    with counting(m, stfile.json, "loads") as parses, counting(m, torch_sd, "SafetensorsFile") as st:
        _build(tmp_path, weights, layer="enc", options={"num_layers": 2, "bidirectional": True})
    assert st == {"SafetensorsFile": 1} and parses == {"loads": 1}
    assert sorted(read) == sorted(k for k in state if k.startswith("enc."))  # each once, none of 'dec'


@pytest.mark.parametrize(
    ("name", "layers"), [("ckpt_tf1_sharded", 1), ("ckpt_tf2_keras", 1), ("ckpt_tflite_cell", 1)]
)
def test_checkpoint_index_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, layers: int) -> None:  # noqa: E501
    from lstmgen.weights import tfbundle

    with counting(monkeypatch, tfbundle, "_load") as calls:
        _build(tmp_path, TF_FIXTURES / name, options={"num_layers": layers})
    assert calls == {"_load": 1}


def test_checkpoint_reads_only_the_loaded_cells_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tf_bundle_writer import write_bundle

    from lstmgen.weights import tfbundle

    rng = np.random.default_rng(0)
    tensors = {"global_step": np.array(7, np.int64)}
    for scope, i in (("enc/lstm_cell", 5), ("dec/lstm_cell", 3)):
        tensors[f"{scope}/kernel"] = rng.standard_normal((i + 4, 16)).astype(np.float32)
        tensors[f"{scope}/bias"] = rng.standard_normal(16).astype(np.float32)
    ckpt = write_bundle(tmp_path / "ck" / "model.ckpt", tensors).prefix
    read: list[str] = []
    real = tfbundle._read_plain
    monkeypatch.setattr(tfbundle, "_read_plain", lambda b, e, name, s: read.append(name) or real(b, e, name, s))
    with counting(monkeypatch, tfbundle, "_load") as calls:
        _build(tmp_path, ckpt, layer="enc/lstm_cell", verify=False)
    assert calls == {"_load": 1}
    assert read and all(n.startswith("enc/") for n in read) and len(read) == len(set(read)), read


@pytest.mark.skipif(h5py is None, reason="needs h5py")
def test_release_closes_what_it_can_and_a_later_use_reopens(monkeypatch: pytest.MonkeyPatch) -> None:
    with counting(monkeypatch, h5py, "File") as calls, open_weights(TF_FIXTURES / "keras3_stacked.keras") as src:
        first = src.load_layers()
        src.release()  # closed: the loaded weights are arrays of their own
        np.testing.assert_array_equal(first[0][0].tensors["input_to_forget_weights"], src.load("lstm").tensors[
            "input_to_forget_weights"])  # fmt: skip
    assert calls == {"File": 2}


# ------------------------------------------------------------------------------------------ the protocol


@pytest.mark.parametrize("name", sorted(READER_CLASSES))
def test_readers_take_their_facts_from_the_detection_table(name: str) -> None:
    reader = get_reader(name)
    assert isinstance(reader, WeightReader)
    info = detect.FORMATS[name]
    assert (reader.name, reader.description, reader.suffixes) == (name, info.description, info.suffixes)
    if not info.sniffs:  # detection never asks it, so it must take no file by content
        assert not reader.claims(TF_FIXTURES / "ckpt_tf1_sharded") and not reader.claims(Path(__file__))
    assert tuple(FORMATS) == ("auto", *detect.FORMATS)


def test_tf_checkpoint_is_never_an_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", kernel=np.zeros((3, 8), np.float32), bias=np.zeros(8, np.float32))
    with pytest.raises(WeightFileError, match="read from checkpoint files, not .npz"):
        open_weights(tmp_path / "w.npz", "tf-checkpoint").cell_names()


# ---------------------------------------------------------------------------------- lazy detection


PROBE = (
    "import json, sys\n"
    "from lstmgen.cli.main import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    assert not exc.code, exc.code\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('lstmgen.weights.'))))\n"
)


def _reader_modules(*argv: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


COMMON = [
    "lstmgen.weights.base",
    "lstmgen.weights.detect",
    "lstmgen.weights.library_errors",
    "lstmgen.weights.npz",
    "lstmgen.weights.raw",
]


@pytest.mark.parametrize(
    ("make", "own"),
    [
        (lambda p: np.savez(p, kernel=np.zeros((12, 16), np.float32), bias=np.zeros(16, np.float32)),
         ["lstmgen.weights.tf1", "lstmgen.weights.tf_scopes"]),
        (lambda p: np.savez(p, W=np.zeros((1, 16, 8), np.float32), R=np.zeros((1, 16, 4), np.float32)),
         ["lstmgen.weights.onnx_lstm", "lstmgen.weights.onnx_fold"]),
        (lambda p: np.savez(p, weight_ih_l0=np.zeros((16, 8), np.float32), weight_hh_l0=np.zeros((16, 4), np.float32)),
         ["lstmgen.weights.stfile", "lstmgen.weights.torch_sd"]),
    ],
    ids=["tf1", "onnx", "torch"],
)  # fmt: skip
def test_an_npz_build_imports_only_its_own_reader(tmp_path: Path, make: Callable[[Path], None], own: list[str]) -> None:
    weights = tmp_path / "w.npz"
    make(weights)
    loaded = _reader_modules("build", "--weights", str(weights), "-o", str(tmp_path / "m.tflite"), "--no-verify", "-q")
    assert loaded == sorted(COMMON + own)


def test_an_unknown_npz_layout_still_lists_every_layout_without_importing_readers(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", foo=np.zeros(3, np.float32))
    with pytest.raises(WeightFileError, match="matches no known layout") as caught:
        open_weights(tmp_path / "w.npz")
    for name, info in detect.FORMATS.items():
        assert f"{name}: {info.description}" in str(caught.value)


# --------------------------------------------------------------------------- .keras read in place


def _rezip(src: Path, dst: Path, compression: int, edit: Callable[[bytes], bytes] = lambda b: b) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item.filename, edit(data) if item.filename == "model.weights.h5" else data)
    return dst


@pytest.mark.skipif(h5py is None, reason="needs h5py")
def test_keras_archive_weights_are_read_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmgen import guard

    src = TF_FIXTURES / "keras3_stacked.keras"
    read: list[str] = []
    real = guard.zip_member
    monkeypatch.setattr(guard, "zip_member", lambda zf, name, *a: read.append(name) or real(zf, name, *a))
    expected = [[w.tensors["input_to_forget_weights"] for w in row] for row in lstmgen.weights.load_layers(src)]
    assert read == ["config.json"]  # the stored model.weights.h5 is not copied into memory
    read.clear()
    deflated = _rezip(src, tmp_path / "deflated.keras", zipfile.ZIP_DEFLATED)
    got = [[w.tensors["input_to_forget_weights"] for w in row] for row in lstmgen.weights.load_layers(deflated)]
    assert read == ["model.weights.h5", "config.json"]  # a compressed member is decompressed, as before
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.skipif(h5py is None, reason="needs h5py")
def test_keras_archive_with_a_damaged_weight_byte_is_corrupt(tmp_path: Path) -> None:
    """The member is read in place, not through zipfile: its CRC-32 is still checked, once, at open."""
    damaged = _rezip(TF_FIXTURES / "keras3_lstm.keras", tmp_path / "d.keras", zipfile.ZIP_STORED)
    data = bytearray(damaged.read_bytes())
    with zipfile.ZipFile(damaged) as zf:
        info = zf.getinfo("model.weights.h5")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="CRC-32 for member model.weights.h5.*truncated or corrupt"):
        open_weights(damaged).cells()
