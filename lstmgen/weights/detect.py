"""What format auto-detection knows of each weight format, without importing any reader.

Detection asks, in this order: the file type (`suffixes`), then for an .npz its array names
(`matches`), and for any other file the readers that can sniff one (`sniffs`, imported only then).
Each reader takes its `description`, `suffixes` and `matches` from here, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# TF1 LSTMCell variable leaves (bare, or the last part of a scoped TF name).
TF1_KEYS = ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag", "projection/kernel")
# A Keras LSTM layer's arrays.
KERAS_ROLES = ("kernel", "recurrent_kernel", "bias")
# The ONNX LSTM's weight inputs.
ONNX_KEYS = ("W", "R", "B", "P")
# `<prefix.>weight_ih_l0[_reverse]`: the names nn.LSTM gives its parameters (prefix = module path).
TORCH_KEY = re.compile(
    r"^(?:(?P<module>.*)\.)?(?P<param>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<layer>\d+)(?P<rev>_reverse)?$"
)


# HDF5's superblock signature, at byte 0 or (after a user block) at 512, 1024, 2048, ... (HDF5 spec §II.A).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


def bare(key: str) -> str:
    """A TF variable name without its output index: 'rnn/lstm_cell/kernel:0' -> 'rnn/lstm_cell/kernel'."""
    return key[:-2] if key.endswith(":0") else key


def _tflite(keys: frozenset[str]) -> bool:
    return "input_to_forget_weights" in keys


def _tf1(keys: frozenset[str]) -> bool:
    names = {bare(k) for k in keys}
    if any(k.endswith("recurrent_kernel") for k in names):
        return False  # a Keras layer
    return {"kernel", "bias"} <= names or any(
        k.endswith("/kernel") and f"{k[:-6]}bias" in names and not k.endswith("projection/kernel") for k in names
    )


def _torch(keys: frozenset[str]) -> bool:
    return any((m := TORCH_KEY.match(k)) is not None and m["param"] == "weight_ih" for k in keys)


def _keras(keys: frozenset[str]) -> bool:
    """Some '<prefix>/recurrent_kernel' (or a bare one), and a kernel beside every one."""
    groups: dict[str, set[str]] = {}
    for key in keys:
        prefix, _, leaf = bare(key).rpartition("/")
        if leaf in KERAS_ROLES:
            groups.setdefault(prefix, set()).add(leaf)
    cells = [roles for roles in groups.values() if "recurrent_kernel" in roles]
    return bool(cells) and all("kernel" in roles for roles in cells)


def _onnx(keys: frozenset[str]) -> bool:
    return {"W", "R"} <= keys <= set(ONNX_KEYS)


def _cudnn_opaque(keys: frozenset[str]) -> bool:
    """A CudnnLSTM 'opaque_kernel', unless the canonical cells its checkpoints also hold are there."""
    return any(bare(k).rpartition("/")[2] == "opaque_kernel" for k in keys) and not _tf1(keys)


def _never(keys: frozenset[str]) -> bool:
    return False  # never an .npz


@dataclass(frozen=True)
class Format:
    """One weight format as detection sees it."""

    reader: str  # "module:Class", imported on first use
    description: str  # its .npz layout (or files), for the "layouts tried" message
    suffixes: tuple[str, ...]  # native file types its reader opens itself
    matches: Callable[[frozenset[str]], bool]  # whether a set of .npz array names is in this layout
    sniffs: bool = False  # whether its reader's `claims(path)` can take a file of another name


# In detection order (the first suffix match wins, then the first reader that claims the file).
FORMATS: dict[str, Format] = {
    "tflite": Format(
        "lstmgen.weights.tflite_npz:TfliteReader",
        "arrays keyed by the op's input names: input_to_forget_weights [N,I], ... (biases complete)",
        (),
        _tflite,
    ),
    "tf1": Format(
        "lstmgen.weights.tf1:Tf1Reader",
        "TF1 LSTMCell variables: kernel [I+P,4N] (gates i,j,f,o), bias [4N], w_*_diag, projection/kernel, "
        "bare or as TF names them ('rnn/lstm_cell/kernel:0')",
        (),
        _tf1,
    ),
    "torch": Format(
        "lstmgen.weights.torch_sd:TorchReader",
        "PyTorch nn.LSTM state_dict: weight_ih_l<k> [4H,I], weight_hh_l<k> [4H,H|P], bias_ih/bias_hh_l<k>, "
        "weight_hr_l<k> [P,H] (gates i,f,g,o; optional module prefix, _reverse)",
        (".pt", ".pth", ".safetensors"),
        _torch,
        sniffs=True,
    ),
    "keras": Format(
        "lstmgen.weights.keras:KerasReader",
        "Keras LSTM weights: kernel [I,4N], recurrent_kernel [N,4N], bias [4N] (gates i,f,c,o), bare or as "
        "'<layer path>/kernel' keys; also .weights.h5, full-model .h5 (any HDF5 file, e.g. .hdf5) and .keras "
        "files; Keras 2 CuDNNLSTM weights (bias [8N]) are converted",
        (".h5", ".keras"),
        _keras,
        sniffs=True,  # an HDF5 file by its signature, whatever its name ('.hdf5', '.weights')
    ),
    "onnx": Format(
        "lstmgen.weights.onnx_lstm:OnnxReader",
        "ONNX LSTM: an .onnx model, or an .npz with W [dirs,4H,I], R [dirs,4H,H], B [dirs,8H], P [dirs,3H]",
        (".onnx",),
        _onnx,
    ),
    "cudnn-opaque": Format(
        "lstmgen.weights.cudnn:OpaqueReader",
        "TF CudnnLSTM 'opaque_kernel' buffer (a {v.name: v.eval()} dump), cuDNN canonical layout; sizes from "
        "--num-units, --input-size, --num-layers, --bidirectional",
        (),
        _cudnn_opaque,
    ),
    "tf-checkpoint": Format(
        "lstmgen.weights.tf_checkpoint:TfCheckpointReader",
        "TF checkpoint (.index + .data shards): TF1 LSTMCell, TFLiteLSTMCell or Keras LSTM variables",
        (".index",),
        _never,
        sniffs=True,
    ),
}


def by_suffix(filename: str) -> str | None:
    """The format whose file types include this name's ending, or None."""
    name = filename.lower()
    return next((f for f, info in FORMATS.items() if any(name.endswith(s) for s in info.suffixes)), None)


def by_keys(keys: frozenset[str]) -> list[str]:
    """Every format whose .npz layout these array names match."""
    return [f for f, info in FORMATS.items() if info.matches(keys)]
