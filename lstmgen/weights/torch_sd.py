"""Reader for PyTorch nn.LSTM state_dicts (.pt/.pth via torch.load(weights_only=True), .safetensors, .npz)."""

from __future__ import annotations

import json
import re
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError
from lstmgen.weights.base import CellWeights, WeightFile, as_float32, npz_file, split_gates
from lstmgen.weights.detect import FORMATS, TORCH_KEY
from lstmgen.weights.raw import SourceArrays
from lstmgen.weights.stfile import Corrupt, SafetensorsFile

# This module is deliberately not called torch.py: a sibling named like the real package is a trap
# for anyone running a script from this directory. torch is imported lazily; safetensors files are
# read by stfile (no package needed).

_KEY = TORCH_KEY
# Keys under which training loops commonly nest the state_dict in a checkpoint dict.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
_SAVE_STATE_DICT = (
    "torch.save(model.state_dict(), 'w.pt') or, for a file that needs no torch to read, "
    "safetensors.torch.save_file(model.state_dict(), 'w.safetensors')"
)
_SHOW_KEYS = 12


@dataclass(frozen=True)
class _Cell:
    """One direction of one layer of one nn.LSTM module: its name and parameter -> file key."""

    name: str
    module: str
    index: int
    reverse: bool
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class _StateDict:
    """Every key of a file plus lazy access to the arrays (safetensors reads only what is used).

    `get(key, notes)` reads one array, adding a note when it converts it; `notes` are the file's own.
    """

    source: str
    keys: list[str]
    get: Callable[[str, list[str]], np.ndarray]
    notes: list[str] = field(default_factory=list)
    release: Callable[[], bool] = lambda: False  # drop mapped pages (True) or nothing to keep (False)


def _cell_name(module: str, index: int, reverse: bool) -> str:
    leaf = f"l{index}{'_reverse' if reverse else ''}"
    return f"{module}.{leaf}" if module else leaf


def _cells(keys: list[str]) -> dict[str, _Cell]:
    """Group LSTM parameter keys into cells, ordered by module name, then as nn.LSTM orders them."""
    cells: dict[str, _Cell] = {}
    for key in keys:
        m = _KEY.match(key)
        if m is None:
            continue
        module, index, reverse = m["module"] or "", int(m["layer"]), m["rev"] is not None
        name = _cell_name(module, index, reverse)
        cells.setdefault(name, _Cell(name, module, index, reverse)).keys[m["param"]] = key
    # Module names sorted so the order is the same whichever container (.pt/.npz/.safetensors)
    # stored the keys; within a module: l0, l0_reverse, l1, ... (PyTorch's own, data-flow order).
    order = sorted(cells.values(), key=lambda c: (c.module, c.index, c.reverse))
    return {c.name: c for c in order}


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS]) or "none"
    return shown + (f", ... ({len(keys)} keys in all)" if len(keys) > _SHOW_KEYS else "")


_CELL_KEYS = ("weight_ih", "weight_hh")  # an nn.LSTMCell's parameters: no _l<k> layer suffix


def _no_lstm(source: str, keys: list[str]) -> WeightFileError:
    cell = [k for k in keys if k.rpartition(".")[2] in _CELL_KEYS]
    hint = (
        " These look like an nn.LSTMCell's parameters: its equations and gate order are nn.LSTM's, one layer, so "
        "the same weights load as an nn.LSTM with the keys renamed weight_ih -> weight_ih_l0, weight_hh -> "
        "weight_hh_l0, bias_ih -> bias_ih_l0, bias_hh -> bias_hh_l0 (e.g. {k + '_l0': v for k, v in "
        "cell.state_dict().items()})."
        if cell
        else ""
    )
    return WeightFileError(
        f"{source}: no PyTorch nn.LSTM parameters found (expected keys like weight_ih_l0, weight_hh_l0, "
        f"bias_ih_l0, bias_hh_l0, optionally under a module prefix such as 'encoder.lstm.'); keys found: "
        f"{_key_list(keys)}. Save the state_dict of the nn.LSTM or of a module holding one: {_SAVE_STATE_DICT}."
        + hint
    )


def _select(cells: dict[str, _Cell], layer: str | None, sd: _StateDict) -> _Cell:
    """Pick one cell by exact name, module path or a dot-boundary suffix ('1', 'l1', 'lstm.l0_reverse')."""
    if not cells:
        raise _no_lstm(sd.source, sd.keys)
    names = ", ".join(cells)
    if layer is None:
        if len(cells) == 1:
            return next(iter(cells.values()))
        raise WeightFileError(
            f"{sd.source} holds {len(cells)} LSTM cells ({names}) and no --layer was given, so it is ambiguous "
            f"which to build. Pass --layer with one of these names (a module path selects its only layer)."
        )
    want = layer.strip().rstrip(".")
    if want in cells:
        return cells[want]
    if re.fullmatch(r"\d+(_reverse)?", want):
        want = f"l{want}"  # --layer 1 means layer 1 of the only module

    def hits(name: str) -> bool:
        return name == want or name.endswith(f".{want}")

    found = [c for c in cells.values() if hits(c.name) or hits(c.module)]
    if len(found) == 1:
        return found[0]
    if found:
        raise WeightFileError(
            f"{sd.source}: --layer {layer!r} matches {len(found)} LSTM cells ({', '.join(c.name for c in found)}), "
            f"so it is ambiguous which to build. Pass one full name: {names}."
        )
    raise WeightFileError(
        f"{sd.source}: --layer {layer!r} names no LSTM cell in the file; its cells are: {names}. "
        "Pass one of these (a module path such as 'encoder.lstm' selects its only layer)."
    )


def _float32(key: str, array: np.ndarray, source: str, notes: list[str]) -> np.ndarray:
    """Half precision is widened exactly (with a note); float32/float64 go through as_float32."""
    if array.dtype.kind != "f":
        raise WeightFileError(
            f"{source}: tensor '{key}' has dtype {array.dtype}, expected a float tensor (float32; float64, "
            "float16 and bfloat16 are converted). Quantized PyTorch weights cannot be read: save the float "
            "model's state_dict()."
        )
    if array.dtype.itemsize == 2:
        notes.append(f"{key}: converted from float16 to float32 (exact)")
        array = array.astype(np.float32)
    return as_float32(key, array, source, notes)


def _shape(a: np.ndarray) -> list[int]:
    return [int(d) for d in a.shape]


def _ignored(keys: list[str]) -> list[str]:
    """A note naming the keys that are not nn.LSTM parameters (a head, an embedding): said, not dropped silently."""
    others = [key for key in keys if _KEY.match(key) is None]
    return [f"ignored {len(others)} key(s) that are not nn.LSTM parameters: {_key_list(others)}"] if others else []


def _read_cell(cell: _Cell, sd: _StateDict) -> CellWeights:
    src, notes, k = sd.source, list(sd.notes), cell.keys  # loaders add conversion notes as arrays are read
    for needed in ("weight_ih", "weight_hh"):
        if needed not in k:
            expected = f"{cell.module + '.' if cell.module else ''}{needed}_l{cell.index}{'_reverse' * cell.reverse}"
            raise WeightFileError(
                f"{src}: LSTM cell {cell.name} has {', '.join(k.values())} but no '{expected}'. An nn.LSTM layer "
                f"always has weight_ih_l<k> and weight_hh_l<k>; re-save the complete state_dict(): {_SAVE_STATE_DICT}."
            )
    raw = {p: sd.get(key, notes) for p, key in k.items()}
    w = {p: _float32(k[p], a, src, notes) for p, a in raw.items()}
    wi, wh, wr = w["weight_ih"], w["weight_hh"], w.get("weight_hr")
    if wh.ndim == 2 and wr is None and wh.shape[1] and wh.shape[0] in (wh.shape[1], 3 * wh.shape[1]):
        kind = "nn.GRU (3 gates)" if wh.shape[0] == 3 * wh.shape[1] else "nn.RNN (1 gate)"
        raise WeightFileError(
            f"{src}: '{k['weight_hh']}' has shape {_shape(wh)}, expected [4*hidden_size, hidden_size] for an "
            f"nn.LSTM; {wh.shape[0] // wh.shape[1]}x as many rows as columns looks like an {kind}. Only nn.LSTM "
            "weights can be built into an LSTM model."
        )
    if wi.ndim != 2 or wi.shape[0] % 4 or 0 in wi.shape:
        raise WeightFileError(
            f"{src}: '{k['weight_ih']}' has shape {_shape(wi)}, expected [4*hidden_size, input_size] (gates i, f, g, "
            "o stacked along the rows) as nn.LSTM stores it. Save the parameters unchanged from state_dict()."
        )
    n4, n = wi.shape[0], wi.shape[0] // 4
    if wr is not None and (wr.ndim != 2 or wr.shape[1] != n or wr.shape[0] == 0):
        raise WeightFileError(
            f"{src}: '{k['weight_hr']}' has shape {_shape(wr)}, expected [proj_size, {n}] (hidden_size {n} from "
            f"'{k['weight_ih']}' {_shape(wi)}). Save the parameters unchanged from state_dict()."
        )
    p = wr.shape[0] if wr is not None else n
    if wh.shape != (n4, p):
        if wh.ndim == 2 and wh.shape[0] == n4 and wr is None and wh.shape[1] < n:
            why = f"; {wh.shape[1]} columns look like proj_size {wh.shape[1]}, but '{cell.name}' has no weight_hr"
        else:
            cols = "proj_size" if wr is not None else "hidden_size"
            why = f": 4*hidden_size rows like '{k['weight_ih']}' {_shape(wi)}, and {cols} = {p} columns"
        raise WeightFileError(
            f"{src}: '{k['weight_hh']}' has shape {_shape(wh)}, expected [{n4}, {p}]{why}. The two matrices must "
            "come from the same nn.LSTM layer; re-save its complete state_dict()."
        )
    tensors: dict[str, np.ndarray] = {}
    # nn.LSTM already stores [out, in] matrices, the TFLite layout: split the gate rows, no transpose.
    for gate, block in split_gates(wi, "torch").items():
        tensors[f"input_to_{gate}_weights"] = block
    for gate, block in split_gates(wh, "torch").items():
        tensors[f"recurrent_to_{gate}_weights"] = block
    bi, bh = w.get("bias_ih"), w.get("bias_hh")
    if (bi is None) != (bh is None):
        have, miss = ("bias_ih", "bias_hh") if bh is None else ("bias_hh", "bias_ih")
        raise WeightFileError(
            f"{src}: LSTM cell {cell.name} has '{k[have]}' but no {miss}_l{cell.index}{'_reverse' * cell.reverse}; "
            f"nn.LSTM adds both biases, so one alone would give a silently wrong model. Re-save the complete "
            f"state_dict() (with bias=False there are neither): {_SAVE_STATE_DICT}."
        )
    if bi is not None and bh is not None:
        for p_name, b in (("bias_ih", bi), ("bias_hh", bh)):
            if b.shape != (n4,):
                raise WeightFileError(f"{src}: '{k[p_name]}' has shape {_shape(b)}, expected [{n4}] (4*hidden_size).")
        # TFLite has one bias per gate: sum in float64 and round once, the closest float32 to b_ih + b_hh.
        bias = (bi.astype(np.float64) + bh.astype(np.float64)).astype(np.float32)
        notes.append(f"{cell.name}: gate bias = bias_ih + bias_hh (summed in float64, rounded to float32)")
    else:
        bias = np.zeros(n4, np.float32)
        notes.append(f"{cell.name}: no bias_ih/bias_hh (bias=False), gate biases are zero")
    for gate, b in split_gates(bias, "torch").items():
        tensors[f"{gate}_gate_bias"] = b
    notes.extend(_ignored(sd.keys))
    if wr is not None:
        tensors["projection_weights"] = wr  # [proj, hidden], as TFLite; nn.LSTM's projection has no bias
    return CellWeights(
        tensors,
        "torch",
        src,
        forget_bias_default=0.0,
        notes=tuple(notes),
        hyperparameters={"activation": "tanh"},  # nn.LSTM has no other activation
        layer=cell.name,
        # l<k>_reverse runs over the time-reversed input; nn.LSTM re-aligns its output to input positions.
        direction="backward" if cell.reverse else "forward",
        origin=SourceArrays("torch", raw, {"reverse": cell.reverse}),
    )


# ------------------------------------------------------------------------------------------- files


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header size, then that many bytes of a JSON object."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
            # Checked in full, as a stray '{' at byte 8 of another binary file must not count.
            if not 2 <= n <= min(size - 8, 1 << 27) or fh.read(1) != b"{":
                return False
            return isinstance(json.loads(b"{" + fh.read(n - 1)), dict)
    except (OSError, ValueError):
        return False


def _is_torch_zip(path: Path) -> bool:
    """torch.save's zip format (torch.jit.save's too, refused later with its own message): <dir>/data.pkl."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names)


def _open_state_dict(path: Path) -> _StateDict:
    if not path.exists():
        raise WeightFileError(f"weights file {path} does not exist. Check the --weights path.")
    if path.is_dir():
        raise WeightFileError(
            f"weights file {path} is a directory, expected a PyTorch state_dict file (.pt, .pth, .safetensors or "
            ".npz). Pass the file itself."
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors" or (suffix not in (".pt", ".pth") and _is_safetensors(path)):
        return _open_safetensors(path)
    return _open_torch(path)


def _st_corrupt(path: Path, why: object) -> WeightFileError:
    return WeightFileError(
        f"{path}: not a readable .safetensors file, it is truncated or corrupt ({' '.join(str(why).split())}). "
        f"Re-save it with safetensors.torch.save_file(model.state_dict(), '{path.name}')."
    )


def _open_safetensors(path: Path) -> _StateDict:
    try:
        st = SafetensorsFile(path)
    except (Corrupt, OSError, ValueError) as exc:
        raise _st_corrupt(path, exc) from None

    def get(key: str, notes: list[str]) -> np.ndarray:
        try:
            array = st.get(key)
        except Corrupt as exc:
            raise WeightFileError(
                f"{path}: tensor '{key}' (dtype {st.dtype(key)}) cannot be read ({exc}); expected float32 "
                "(float64, float16 and bfloat16 are converted). Re-save the float weights."
            ) from None
        if st.dtype(key) == "BF16":  # numpy has no bfloat16: the top half of a float32, widened exactly
            notes.append(f"{key}: converted from bfloat16 to float32 (exact)")
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array

    return _StateDict(str(path), st.keys(), get, release=st.release)


# The CPU build on Linux: plain `pip install torch` there pulls the CUDA build (~3 GB of GPU libraries), which
# reading a state_dict does not need. macOS and Windows wheels on PyPI are CPU builds already.
_TORCH_INSTALL = (
    "pip install torch --index-url https://download.pytorch.org/whl/cpu (the CPU build; plain pip install torch "
    "pulls ~3 GB of CUDA libraries on Linux)"
    if sys.platform.startswith("linux")
    else "pip install torch"
)


def _open_torch(path: Path) -> _StateDict:
    try:
        import torch
    except ImportError:
        raise WeightFileError(
            f"{path}: reading a PyTorch .pt/.pth file needs torch, which is not installed. Either "
            f"{_TORCH_INSTALL}, or where torch is available save the weights as safetensors - "
            "safetensors.torch.save_file(model.state_dict(), 'w.safetensors') - and pass that file "
            "(lstmgen reads it without torch or any other package)."
        ) from None
    # weights_only=True: torch's restricted unpickler builds tensors and plain containers only and
    # refuses every other global, so nothing in the file can run code. Never loosen this.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _torch_load_error(path, exc) from None
    notes = [f"torch.load: {str(w.message).split('. ')[0]}" for w in caught]
    keys, state = _state_dict_of(obj, path, notes, torch)
    return _StateDict(str(path), keys, lambda key, notes: _tensor_to_numpy(state[key], key, path, notes, torch), notes)


def _torch_load_error(path: Path, exc: Exception) -> WeightFileError:
    text = " ".join(str(exc).split())
    # torch's own explanation of a weights_only refusal, without its advice to load unsafely.
    reason = text.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
    if "Weights only load failed" in text and "Unsupported operand" not in text:
        m = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
        what = f" (it refers to {m[1]})" if m else ""
        return WeightFileError(
            f"{path}: the file holds pickled Python objects, not just tensors{what}, and "
            "torch.load(weights_only=True) refused it. lstmgen never unpickles arbitrary objects, since that "
            "runs code from the file. If it was saved with torch.save(model, ...) (a whole module) or as a "
            f"checkpoint with custom objects, re-save only the weights, where you trust the file: {_SAVE_STATE_DICT}."
        )
    if "TorchScript" in text:
        return WeightFileError(
            f"{path}: a TorchScript archive (torch.jit.save), expected a state_dict. lstmgen does not load "
            f"TorchScript programs; load it with torch.jit.load where you trust it and re-save its weights: "
            f"{_SAVE_STATE_DICT}."
        )
    # First sentence only: torch's messages go on with advice that does not apply here.
    detail = reason if "Weights only load failed" in text else f"{type(exc).__name__}: {text.split('. ')[0]}"
    return WeightFileError(
        f"{path}: not a readable PyTorch file, it is truncated or corrupt or was not written by torch.save "
        f"({detail[:200] or type(exc).__name__}). Re-save it with {_SAVE_STATE_DICT}."
    )


def _state_dict_of(obj: Any, path: Path, notes: list[str], torch: Any) -> tuple[list[str], Mapping[str, Any]]:
    """The state_dict itself, or the one under 'state_dict'/'model_state_dict'/'model' of a checkpoint dict."""
    if not isinstance(obj, Mapping):
        raise WeightFileError(
            f"{path}: holds a {type(obj).__name__}, expected a state_dict (a dict of parameter names to tensors). "
            f"Save one with {_SAVE_STATE_DICT}."
        )

    def lstm_keys(d: Mapping[Any, Any]) -> bool:
        return any(isinstance(k, str) and _KEY.match(k) and isinstance(v, torch.Tensor) for k, v in d.items())

    if not lstm_keys(obj):
        for wrap in _CHECKPOINT_KEYS:
            inner = obj.get(wrap)
            if isinstance(inner, Mapping) and lstm_keys(inner):
                notes.append(f"state_dict read from the checkpoint's '{wrap}' entry")
                obj = inner
                break
    return [str(k) for k in obj], obj


def _tensor_to_numpy(value: Any, key: str, path: Path, notes: list[str], torch: Any) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise WeightFileError(
            f"{path}: '{key}' is a {type(value).__name__}, expected a tensor. Save the module's state_dict()."
        )
    guard.declared_bytes(tuple(value.shape), 4, f"{path}: tensor '{key}'")  # stride-0 views declare terabytes
    t = value.detach().cpu()
    if t.is_quantized or t.layout != torch.strided:
        raise WeightFileError(
            f"{path}: tensor '{key}' is {'quantized' if t.is_quantized else 'sparse'}, expected a dense float "
            "tensor. Save the float model's state_dict()."
        )
    if t.dtype == torch.bfloat16:
        notes.append(f"{key}: converted from bfloat16 to float32 (exact)")
        t = t.to(torch.float32)
    try:
        return t.numpy()
    except (TypeError, RuntimeError) as exc:
        raise WeightFileError(
            f"{path}: tensor '{key}' has dtype {t.dtype}, which NumPy cannot hold ({exc}); expected float32 "
            "(float64, float16 and bfloat16 are converted)."
        ) from None


def _modules(cells: dict[str, _Cell]) -> dict[str, list[_Cell]]:
    """Module path -> its cells, modules sorted by name (as _cells orders them)."""
    out: dict[str, list[_Cell]] = {}
    for cell in cells.values():
        out.setdefault(cell.module, []).append(cell)
    return out


def _layers_of(cells: list[_Cell], source: str) -> list[tuple[str, ...]]:
    """One module's cells as nn.LSTM layers: (l<k>,) or (l<k>, l<k>_reverse), in layer order."""
    by_index: dict[int, dict[bool, _Cell]] = {}
    for cell in cells:
        by_index.setdefault(cell.index, {})[cell.reverse] = cell
    layers = []
    for index in sorted(by_index):
        pair = by_index[index]
        if False not in pair:
            raise WeightFileError(
                f"{source}: {pair[True].name} has no forward partner "
                f"{_cell_name(pair[True].module, index, False)}; an nn.LSTM layer always has its forward "
                f"direction. Re-save the complete state_dict(): {_SAVE_STATE_DICT}."
            )
        layers.append(tuple(pair[r].name for r in (False, True) if r in pair))
    return layers


def _select_layers(cells: dict[str, _Cell], layer: str | None, sd: _StateDict) -> list[tuple[str, ...]]:
    """The layers of the file's only nn.LSTM module, of the module `layer` names, or the one cell it names."""
    if not cells:
        raise _no_lstm(sd.source, sd.keys)
    modules = _modules(cells)
    shown = ", ".join(f"'{m}' ({len(c)} cells)" if m else f"the top level ({len(c)} cells)" for m, c in modules.items())
    if layer is None:
        if len(modules) == 1:
            return _layers_of(next(iter(modules.values())), sd.source)
        raise WeightFileError(
            f"{sd.source} holds {len(modules)} nn.LSTM modules ({shown}), so it is ambiguous which to build. "
            "Pass --layer <module> with one of the module paths (or one cell name: " + ", ".join(cells) + ")."
        )
    want = layer.strip().rstrip(".")
    found = [m for m in modules if m == want] or [m for m in modules if m.endswith(f".{want}")]
    if len(found) == 1:
        return _layers_of(modules[found[0]], sd.source)
    if len(found) > 1:
        raise WeightFileError(
            f"{sd.source}: --layer {layer!r} matches {len(found)} nn.LSTM modules ({', '.join(found)}), so it is "
            "ambiguous which to build. Pass one full module path."
        )
    return [(_select(cells, layer, sd).name,)]  # one cell by name; its errors list every cell


def list_cells(path: str | Path) -> list[str]:
    """Name every LSTM cell in a state_dict file: '<module>.l<k>' plus '_reverse' for the backward direction.

    The names are what --layer accepts, e.g. ['encoder.lstm.l0', 'encoder.lstm.l0_reverse',
    'encoder.lstm.l1', 'encoder.lstm.l1_reverse'] (just 'l0', ... without a module prefix): modules
    sorted by name, then each module's layers in nn.LSTM's order. The list is the same for the
    .pt, .safetensors and .npz copies of one state_dict. Raises WeightFileError when the file holds
    no nn.LSTM parameters (the message lists the keys it found).
    """
    from lstmgen.weights import open as open_weights

    with open_weights(path, "torch") as source:
        return source.cell_names()


def _npz_state_dict(arrays: Mapping[str, np.ndarray], source: str) -> _StateDict:
    return _StateDict(source, list(arrays), lambda key, notes: arrays[key])


def _names(sd: _StateDict, cells: dict[str, _Cell]) -> list[str]:
    if not cells:
        raise _no_lstm(sd.source, sd.keys)
    return list(cells)


class TorchFile:
    """A .pt/.pth (torch.load once) or .safetensors (header once, tensors mapped on use) state_dict."""

    def __init__(self, path: Path) -> None:
        self.sd = _open_state_dict(path)
        self._cells = _cells(self.sd.keys)

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """One module's nn.LSTM layers: [('lstm.l0', 'lstm.l0_reverse'), ('lstm.l1', 'lstm.l1_reverse')].

        `layer` names the module (its full path or a dot-boundary suffix: 'encoder.lstm', 'lstm'); a
        file with several modules needs it. A cell name ('lstm.l1') gives just that cell: [('lstm.l1',)].
        """
        return _select_layers(self._cells, layer, self.sd)

    def load(self, cell: str | None = None) -> CellWeights:
        return _read_cell(_select(self._cells, cell, self.sd), self.sd)

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        return [[_read_cell(self._cells[name], self.sd) for name in row] for row in self.cells(layer)]

    def cell_names(self) -> list[str]:
        return _names(self.sd, self._cells)

    def release(self) -> bool:
        """A .safetensors file drops its mapped pages and stays open; a torch.load result is dropped."""
        return self.sd.release()

    def close(self) -> None:
        self.sd.release()


class TorchReader:
    name = "torch"
    description = FORMATS[name].description
    suffixes = FORMATS[name].suffixes

    def matches(self, keys: frozenset[str]) -> bool:
        return FORMATS[self.name].matches(keys)

    def claims(self, path: Path) -> bool:
        """Other names torch or safetensors files go by (pytorch_model.bin, ...): sniff the header."""
        return path.is_file() and (_is_safetensors(path) or _is_torch_zip(path))

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        sd = _npz_state_dict(arrays, source)
        return _read_cell(_select(_cells(sd.keys), layer, sd), sd)

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        sd = _npz_state_dict(arrays, source)
        return _select_layers(_cells(sd.keys), layer, sd)

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        sd = _npz_state_dict(arrays, source)
        return _names(sd, _cells(sd.keys))

    def open_file(self, path: Path) -> WeightFile:
        return npz_file(self, path) if path.suffix.lower() == ".npz" else TorchFile(path)
