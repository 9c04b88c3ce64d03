"""Reader for Keras LSTM weights: .weights.h5, full-model .h5, .keras archives and kernel/recurrent_kernel .npz."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen import guard
from lstmgen.errors import LstmgenError, UnknownOrderError, WeightFileError
from lstmgen.tflite.tables import REFUSED_ACTIVATIONS
from lstmgen.weights.base import (
    CellWeights,
    FrameworkReader,
    WeightFile,
    as_float32,
    gate_tensors,
    npz_file,
)
from lstmgen.weights.detect import KERAS_ROLES
from lstmgen.weights.library_errors import parser_errors
from lstmgen.weights.raw import SourceArrays
from lstmgen.weights.zipped import stored_member

ROLES = KERAS_ROLES
# Keras activation name -> lstmgen name (same function in the fused kernel's float path).
ACTIVATIONS: dict[str, str] = {"tanh": "tanh", "relu": "relu", "relu6": "relu6", "hard_tanh": "relu_n1_to_1"}
# Layer classes whose cell is Keras' LSTMCell math (gates i, f, c, o; sigmoid gates; no peepholes).
LSTM_CLASSES = ("LSTM", "LSTMV1", "LSTMV2")
# A cell's own name segment in variable paths: 'lstm_cell', 'lstm_cell_1', 'cell'.
_CELL_SEGMENT = re.compile(r"^(lstm_)?cell(_\d+)?$")
PLANNED = "support for stateful models is planned"
NO_CLIP_NOTE = (
    "cell_clip 0: Keras LSTMs have no cell clip (TF's converter writes cell_clip=10 into the models it "
    "converts from Keras; lstmgen keeps the Keras math)"
)


@dataclass
class _Cell:
    """One LSTM cell found in a file, before its arrays are read."""

    name: str  # canonical name: the Keras layer path without model name and cell, e.g. 'bidirectional/forward_layer'
    where: str  # where the arrays live, for messages
    arrays: dict[str, Any]  # role -> ndarray or h5py.Dataset (read only once selected)
    aliases: set[str] = field(default_factory=set)  # other names --layer accepts (raw paths, Keras layer names)
    config_missing: bool = False  # the file has a model config, but no LSTM entry of this name
    config: dict[str, Any] | None = None  # the layer's Keras config (LSTM, or RNN merged with its LSTMCell)
    direction: str | None = None  # 'forward' / 'backward' inside a Bidirectional wrapper
    merge_mode: str | None = None  # the Bidirectional wrapper's merge_mode, when the config states it
    path: str = ""  # where the file keeps it ('lstm_1' in Keras 3: by class and position), for model order
    guessed: bool = False  # the name is the storage path's, not the Keras name (the file does not record it)
    rank: int | None = None  # position in the model as the file records it (layer_names, config); None: unknown
    feeds: frozenset[str] | None = None  # per the config, the layers whose outputs reach this one's input

    @property
    def order(self) -> list[tuple[int, str]]:
        return _natural_key(self.path or self.name)


def _natural_key(name: str) -> list[tuple[int, str]]:
    """lstm, lstm_1, ..., lstm_10, forward before backward: Keras' own order when the file records none."""
    key: list[tuple[int, str]] = []
    for seg in name.split("/"):
        seg = {"forward_layer": "\0", "backward_layer": "\1"}.get(seg, seg)
        key.extend((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", seg) if p)
        key.append((-2, ""))  # segment boundary sorts first, so 'lstm' precedes 'lstm/x' and 'lstm_1'
    return key


# A Keras 3 / tf_keras saving_lib group name: the layer's class in snake case, then _<k> for the k-th
# further layer of that class in its model's layer list ('lstm', 'lstm_1', ..., 'lstm_10').
_SLOT = re.compile(r"^(?P<stem>.+?)(?:_(?P<k>\d+))?$")


def _layer_path(cell: _Cell) -> str:
    """The storage path of the layer holding `cell` (a Bidirectional's, for one of its halves)."""
    parent, _, leaf = cell.path.rpartition("/")
    return parent if leaf in ("forward_layer", "backward_layer") else cell.path


def _slot(cell: _Cell) -> tuple[str, str, int] | None:
    """(parent path, class stem, position) of the layer that holds `cell`, from its storage path."""
    path = _layer_path(cell)
    if not path:
        return None
    parent, _, leaf = path.rpartition("/")
    match = _SLOT.match(leaf)
    assert match is not None  # the pattern matches any non-empty name
    return parent, match["stem"], int(match["k"] or 0)


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _shape(array: Any) -> list[int]:
    return [int(d) for d in array.shape]


def _bidirectional_names(paths: list[list[str]]) -> list[list[str]]:
    """Name the halves of a Bidirectional 'forward_layer'/'backward_layer' (its Keras 3 attribute names).

    Variable paths call them forward_<layer>/backward_<layer>; renaming only when both halves are
    present under one parent keeps an ordinary layer that happens to be called 'forward_x' as it is.
    """
    out = [list(p) for p in paths]
    keys = {tuple(p) for p in paths}
    for p in out:
        if len(p) >= 2 and p[-1].startswith(("forward_", "backward_")):
            stem = p[-1].split("_", 1)[1]
            if (*p[:-1], f"forward_{stem}") in keys and (*p[:-1], f"backward_{stem}") in keys:
                p[-1] = "forward_layer" if p[-1].startswith("forward_") else "backward_layer"
    return out


# ----------------------------------------------------------------------------------------- .npz


def _is_lstm_recurrent(array: Any) -> bool:
    """recurrent_kernel [N, 4N]: tells an LSTM from a GRU ([N, 3N]) or SimpleRNN ([N, N]) in a many-layer file."""
    shape = tuple(array.shape)
    return len(shape) == 2 and shape[0] > 0 and shape[1] == 4 * shape[0]


def _npz_cells(arrays: Mapping[str, np.ndarray], by_shape: bool = True) -> tuple[list[_Cell], list[str]]:
    """Group keys '<prefix>/kernel', '<prefix>/recurrent_kernel', '<prefix>/bias' (':0' allowed) into cells.

    Prefixed groups whose recurrent_kernel is not [N, 4N] belong to other recurrent layers and are
    left out (with by_shape); a bare-key group is always the cell, so its shape errors get reported.
    """
    groups: dict[str, dict[str, str]] = {}
    for key in arrays:
        bare = key[:-2] if key.endswith(":0") else key
        prefix, _, leaf = bare.rpartition("/")
        if leaf in ROLES:
            groups.setdefault(prefix, {})[leaf] = key
    prefixes = [
        p
        for p, roles in groups.items()
        if "recurrent_kernel" in roles
        and (not by_shape or not p or _is_lstm_recurrent(arrays[roles["recurrent_kernel"]]))
    ]
    used = {k for p in prefixes for k in groups[p].values()}
    others = sorted(k for k in arrays if k not in used)
    paths = []
    for p in prefixes:
        segs = [s for s in p.split("/") if s]
        if segs and _CELL_SEGMENT.match(segs[-1]):
            segs = segs[:-1]
        paths.append(segs)
    raw_paths, paths = paths, _bidirectional_names(paths)
    # Drop the leading segments every cell shares (the model name, 'sequential'), never the layer
    # itself nor a Bidirectional wrapper, so Keras 3 paths give the same names as its .weights.h5.
    keep = [len(s) - (2 if s and s[-1] in ("forward_layer", "backward_layer") else 1) for s in paths]
    common = 0
    while paths and all(common < k for k in keep) and len({s[common] for s in paths}) == 1:
        common += 1
    cells = []
    for rank, (p, segs, raw) in enumerate(zip(prefixes, paths, raw_paths, strict=True)):
        name = "/".join(segs[common:])
        aliases = {p, "/".join(segs), "/".join(raw), "/".join(raw[common:])} | ({raw[-1]} if raw else set())
        where = f"keys {', '.join(repr(k) for k in groups[p].values())}"
        # The keys' order in the archive (the order they were passed to numpy.savez) is the layer order.
        cells.append(_Cell(name, where, {r: arrays[k] for r, k in groups[p].items()}, aliases - {name}, rank=rank))
    return cells, others


# ------------------------------------------------------------------------------------------- h5


def _import_h5py(path: Path) -> Any:
    try:
        import h5py
    except ImportError:
        raise WeightFileError(
            f"{path}: reading Keras .h5/.keras files needs the h5py package, which is not installed. "
            "Install it with: pip install 'lstmgen[h5]' (or save the weights as .npz: kernel, "
            "recurrent_kernel, bias)."
        ) from None
    return h5py


def _h5_datasets(h5: Any) -> list[str]:
    import h5py  # imported by now: h5 is open

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(f"/{name} {_shape(obj)}")

    h5.visititems(visit)
    return found


def _keras3_cells(h5: Any) -> list[_Cell]:
    """Keras 3 (and tf_keras' .weights.h5) layout: <layer path>/cell/vars/{0,1,2}, indexed not named."""
    import h5py  # imported by now: h5 is open

    cells = []
    groups: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if name == "vars" or name.endswith("/vars"):
            groups.append((name, obj))

    h5.visititems(visit)
    for name, group in groups:
        if not isinstance(group, h5py.Group) or "0" not in group or "1" not in group:
            continue
        ds = {k: group[k] for k in group if isinstance(group[k], h5py.Dataset)}
        k, r = ds.get("0"), ds.get("1")
        if k is None or r is None or len(k.shape) != 2 or set(ds) - {"0", "1", "2"} or not _is_lstm_recurrent(r):
            continue
        segs = name.split("/")[:-1]
        if segs and segs[-1] == "cell":
            segs = segs[:-1]
        layer_vars = "/".join([*segs, "vars"])
        by_path = "/".join(s for s in segs if s != "layers")
        # Keras 3 keys groups by class and position ('lstm', 'lstm_1'); each group's vars record the
        # layer's Keras name ('encoder', or 'lstm_2' in a session that made models before): name by that.
        canonical = "/".join(_keras3_names(h5, segs))
        arrays = {role: ds[i] for role, i in zip(ROLES, ("0", "1", "2"), strict=True) if i in ds}
        aliases = {name, "/".join(segs), by_path}
        if layer_vars in h5 and "name" in h5[layer_vars].attrs:  # the Keras layer name, e.g. forward_lstm
            keras_name = _decode(h5[layer_vars].attrs["name"])
            aliases |= {keras_name, "/".join([*canonical.split("/")[:-1], keras_name])}
        cell = _Cell(canonical, f"/{name}/{{0,1,2}}", arrays, aliases - {canonical}, path=by_path)
        cell.guessed = canonical == by_path and not _named(h5, layer_vars)
        cells.append(cell)
    return cells


def _other_weights(h5: Any, cells: list[_Cell]) -> list[str]:
    """Layers of a Keras 3 / tf_keras weights file that hold weights but are not the LSTM cells ('dense')."""
    import h5py  # imported by now: h5 is open

    if _is_classic(h5):
        return []
    lstm = {_layer_path(c) for c in cells if c.path} | {c.path for c in cells if c.path}
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        vars_group = isinstance(obj, h5py.Group) and name.split("/")[-1] == "vars" and name != "vars"
        if vars_group and any(isinstance(obj[k], h5py.Dataset) for k in obj):
            segs = [s for s in name.split("/")[:-1] if s != "layers"]
            if segs and segs[-1] == "cell":
                segs = segs[:-1]
            path = "/".join(segs)
            if path and path not in lstm and not any(path.startswith(f"{p}/") for p in lstm):
                found.append(path)

    h5.visititems(visit)
    return sorted(set(found), key=_natural_key)


def _named(h5: Any, vars_path: str) -> bool:
    return vars_path in h5 and "name" in h5[vars_path].attrs


def _keras3_names(h5: Any, segs: list[str]) -> list[str]:
    """Each layer segment of a Keras 3 weights path by its Keras name (its vars' 'name' attribute);
    a Bidirectional's forward_layer/backward_layer keep their attribute names."""
    out, here = [], []
    for seg in segs:
        here.append(seg)
        if seg == "layers":
            continue
        vars_path = "/".join([*here, "vars"])
        if seg not in ("forward_layer", "backward_layer") and vars_path in h5 and "name" in h5[vars_path].attrs:
            out.append(_decode(h5[vars_path].attrs["name"]))
        else:
            out.append(seg)
    return out


def _attr_list(group: Any, name: str) -> list[str]:
    """A list attribute as Keras 2 writes it: whole, or split into name0, name1, ... when over 64 KB."""
    if name in group.attrs:
        return [_decode(v) for v in group.attrs[name]]
    out: list[str] = []
    i = 0
    while f"{name}{i}" in group.attrs:
        out.extend(_decode(v) for v in group.attrs[f"{name}{i}"])
        i += 1
    return out


def _is_classic(h5: Any) -> bool:
    root = h5.get("model_weights", h5)
    return "layer_names" in root.attrs or "layer_names0" in root.attrs


def _classic_cells(h5: Any) -> list[_Cell]:
    """tf.keras 2 / Keras 2 layout: [model_weights/]<layer>/<weight name> listed in the layer's weight_names."""
    root = h5.get("model_weights", h5)
    # Keras 3 writes its legacy .h5 weight names as variable paths, led by the model's name
    # ('sequential/enc/lstm_cell/kernel' in layer 'enc'); tf.keras 2 starts them with the layer's.
    keras3 = _decode(root.attrs.get("keras_version", h5.attrs.get("keras_version", ""))).startswith("3.")
    found: list[tuple[list[str], str, dict[str, Any], str]] = []
    for layer in _attr_list(root, "layer_names"):
        if layer not in root:
            continue
        group = root[layer]
        groups: dict[str, dict[str, str]] = {}
        for wn in _attr_list(group, "weight_names"):
            prefix, _, leaf = wn.rpartition("/")
            leaf = leaf.split(":", 1)[0]
            if leaf in ROLES:
                groups.setdefault(prefix, {})[leaf] = wn
        for prefix, roles in groups.items():
            if "recurrent_kernel" not in roles or any(wn not in group for wn in roles.values()):
                continue
            if not _is_lstm_recurrent(group[roles["recurrent_kernel"]]):  # a GRU or SimpleRNN layer
                continue
            segs = [s for s in prefix.split("/") if s]
            if segs and _CELL_SEGMENT.match(segs[-1]):
                segs = segs[:-1]
            if keras3 and len(segs) >= 2 and segs[1] == layer:
                segs = segs[2:]
            elif segs and segs[0] == layer:  # 'lstm/lstm_cell/kernel:0' in layer 'lstm'
                segs = segs[1:]
            arrays = {r: group[wn] for r, wn in roles.items()}
            found.append(([layer, *segs], f"{group.name}/{prefix}/{{kernel,recurrent_kernel,bias}}:0", arrays, prefix))
    paths = _bidirectional_names([f[0] for f in found])
    cells = []
    for rank, (segs, (raw, where, arrays, prefix)) in enumerate(zip(paths, found, strict=True)):
        name = "/".join(segs)
        aliases = {"/".join(raw), prefix, raw[-1]} - {name}
        # layer_names lists the layers in model order (Keras loads a legacy .h5 by it): that order is kept.
        cells.append(_Cell(name, where, arrays, aliases, rank=rank))
    return cells


def _h5_config(h5: Any, path: Path) -> dict[str, Any] | None:
    """The classic full-model .h5 'model_config' attribute (tf.keras 2 model.save('x.h5'))."""
    if "model_config" not in h5.attrs:
        return None
    try:
        return json.loads(_decode(h5.attrs["model_config"]))
    except (ValueError, RecursionError) as exc:  # RecursionError: a nesting bomb
        raise WeightFileError(
            f"{path}: the 'model_config' attribute is not valid JSON ({exc}). Re-save the model with Keras."
        ) from None


# ----------------------------------------------------------------------------------- configs


_Entry = tuple[dict[str, Any], str | None, str, str | None]


def _layer_configs(root: Mapping[str, Any] | None) -> dict[str, _Entry]:
    """Canonical cell name -> (merged LSTM config, Bidirectional direction, Keras class, merge_mode)."""
    out: dict[str, _Entry] = {}

    def lstm_config(item: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
        cls, cfg = item.get("class_name", ""), item.get("config") or {}
        if cls in LSTM_CLASSES:
            return dict(cfg), cls
        if cls == "RNN" and isinstance(cfg.get("cell"), Mapping):
            cell = cfg["cell"]
            if cell.get("class_name") == "LSTMCell":  # RNN(LSTMCell(...)): cell math + the RNN's settings
                return {**(cell.get("config") or {}), **{k: v for k, v in cfg.items() if k != "cell"}}, "RNN"
            return {}, f"RNN({cell.get('class_name')})"
        return {}, cls

    def walk(items: Any, prefix: list[str]) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            cfg = item.get("config") or {}
            name = cfg.get("name") or item.get("name")
            if not isinstance(name, str):
                continue
            here = [*prefix, name]
            if isinstance(cfg.get("layers"), list):  # a nested Sequential / Functional model
                walk(cfg["layers"], here)
            elif item.get("class_name") == "Bidirectional" and isinstance(cfg.get("layer"), Mapping):
                fw = lstm_config(cfg["layer"])
                bw_item = cfg.get("backward_layer")
                bw = lstm_config(bw_item) if isinstance(bw_item, Mapping) else None
                if bw is None and fw is not None:  # Keras derives the backward half, direction flipped
                    bw = ({**fw[0], "go_backwards": not fw[0].get("go_backwards", False)}, fw[1])
                merge = cfg.get("merge_mode", "concat")
                for direction, entry in (("forward", fw), ("backward", bw)):
                    if entry is not None:
                        out["/".join([*here, f"{direction}_layer"])] = (entry[0], direction, entry[1], merge)
            else:
                entry = lstm_config(item)
                if entry is not None:
                    out["/".join(here)] = (entry[0], None, entry[1], None)

    if isinstance(root, Mapping):
        walk((root.get("config") or {}).get("layers"), [])
    return out


def _maskers(item: Any) -> list[str]:
    """Layers of a model config that attach a mask: Masking, or an Embedding with mask_zero=True."""
    found: list[str] = []
    if isinstance(item, Mapping):
        cls, cfg = item.get("class_name"), item.get("config")
        if isinstance(cfg, Mapping) and (cls == "Masking" or (cls == "Embedding" and cfg.get("mask_zero"))):
            found.append(f"{cls} '{cfg.get('name', '?')}'")
        for value in item.values():
            found.extend(_maskers(value))
    elif isinstance(item, list):
        for value in item:
            found.extend(_maskers(value))
    return found


# Layers that pass their input through unchanged at inference: a stack may have them between LSTMs.
_PASS_THROUGH = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "GaussianDropout",
        "GaussianNoise",
        "AlphaDropout",
        "ActivityRegularization",
        "Identity",
    }
)


def _histories(value: Any) -> list[str]:
    """Names of the layers whose outputs a config's inbound node uses: Keras 3 {'keras_history': [name,
    node, tensor]}, tf_keras [name, node, tensor, kwargs]; anywhere in args and kwargs (initial_state too)."""
    if isinstance(value, Mapping):
        hist = value.get("keras_history")
        if isinstance(hist, list) and hist and isinstance(hist[0], str):
            return [hist[0]]
        return [n for v in value.values() for n in _histories(v)]
    if isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int) and isinstance(value[2], int):
            return [value[0], *(_histories(value[3]) if len(value) > 3 else [])]
        return [n for v in value for n in _histories(v)]
    return []


_MODEL = "(nested model)"  # a nested model's node: its output is its output layers'


def _wiring(root: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Each layer's name path -> the layers feeding it, passed through Dropout-like layers and nested
    models' boundaries: the previous layer in a Sequential, the inbound nodes' layers in a Functional
    model ('?' where a layer is called more than once or its inputs are not stated)."""
    direct: dict[str, tuple[str, list[str]]] = {}  # name path -> (class, inputs)

    def walk(model: Mapping[str, Any], prefix: list[str], sequential: bool, outer: list[str]) -> list[str]:
        """Record the layers of one model (its config), fed by `outer`; return its outputs."""
        previous = outer
        items = model.get("layers")
        for item in items if isinstance(items, list) else []:
            cfg = item.get("config") if isinstance(item, Mapping) else None
            name = cfg.get("name") if isinstance(cfg, Mapping) else None
            if not isinstance(name, str) or not isinstance(cfg, Mapping):
                continue
            cls = str(item.get("class_name"))
            path = "/".join([*prefix, name])
            if cls == "InputLayer":
                inputs = outer  # a nested model's input is what feeds the model
            elif sequential:
                inputs = previous
            else:
                nodes = item.get("inbound_nodes")
                inputs = ["/".join([*prefix, n]) for n in _histories(nodes)] if isinstance(nodes, list) else []
                inputs = inputs if isinstance(nodes, list) and len(nodes) <= 1 else ["?"]
            if isinstance(cfg.get("layers"), list):
                direct[path] = (_MODEL, walk(cfg, [*prefix, name], cls == "Sequential", inputs))
            else:
                direct[path] = (cls, inputs)
            if cls != "InputLayer":
                previous = [path]
        return previous if sequential else ["/".join([*prefix, n]) for n in _histories(model.get("output_layers"))]

    top = root.get("config")
    walk(top if isinstance(top, Mapping) else {}, [], root.get("class_name") == "Sequential", [])

    def passes(src: str) -> bool:
        cls, inputs = direct.get(src, ("", []))
        return cls in _PASS_THROUGH or cls == _MODEL or (cls == "InputLayer" and bool(inputs))

    def sources(path: str, seen: frozenset[str]) -> frozenset[str]:
        out: set[str] = set()
        for src in direct.get(path, ("", ["?"]))[1] or ["?"]:
            out |= sources(src, seen | {src}) if passes(src) and src not in seen else {src}
        return frozenset(out)

    return {path: sources(path, frozenset({path})) for path in direct}


def _snake(class_name: str) -> str:
    """A Keras class name as Keras' weight files name its layers' groups: 'LSTM' -> 'lstm',
    'Bidirectional' -> 'bidirectional', 'InputLayer' -> 'input_layer' (a 'package>Name' by its Name)."""
    name = re.sub(r"\W+", "", class_name.rpartition(">")[2])
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _storage_names(root: Mapping[str, Any]) -> dict[str, str]:
    """Each config layer's weight-group path -> its name path ('lstm_1' -> 'top', 'bidirectional' -> 'bi').

    Keras 3 and tf_keras save a model's layers (its layer list, the config's order) under their class
    in snake case, numbered per class: 'lstm', 'bidirectional', 'lstm_1'; nested models likewise.
    """
    out: dict[str, str] = {}

    def walk(items: Any, store: list[str], names: list[str]) -> None:
        used: dict[str, int] = {}
        for item in items if isinstance(items, list) else []:
            cfg = item.get("config") if isinstance(item, Mapping) else None
            cls = item.get("class_name") if isinstance(item, Mapping) else None
            name = cfg.get("name") if isinstance(cfg, Mapping) else None
            if not isinstance(name, str) or not isinstance(cls, str) or not isinstance(cfg, Mapping):
                continue
            stem = _snake(cls)
            used[stem] = used.get(stem, -1) + 1
            here = ([*store, stem if used[stem] == 0 else f"{stem}_{used[stem]}"], [*names, name])
            out["/".join(here[0])] = "/".join(here[1])
            if isinstance(cfg.get("layers"), list):  # a nested Sequential / Functional model
                walk(cfg["layers"], *here)

    walk((root.get("config") or {}).get("layers"), [], [])
    return out


def _by_storage(cells: list[_Cell], config: Mapping[str, Any], configs: Mapping[str, _Entry]) -> dict[str, str]:
    """Cell name -> config name for cells the file does not name by their Keras name (tf_keras files
    record none; their group names 'lstm', 'lstm_1' may coincide with other layers' Keras names), or
    whose name the config lacks, paired through the weight-group path Keras gives each config layer."""
    storage = _storage_names(config)
    out = {}
    for cell in cells:
        if not (cell.guessed or cell.name not in configs) or not cell.path:
            continue
        layer = _layer_path(cell)
        if layer in storage:
            out[cell.name] = storage[layer] + cell.path[len(layer) :]
    return out


def _attach_configs(cells: list[_Cell], config: Mapping[str, Any] | None, source: str = "") -> list[_Cell]:
    """Give each cell its layer config; drop cells the config says are not LSTMs (e.g. a GRU's vars)."""
    if config is None:
        return cells
    masks = _maskers(config)
    if masks:
        raise WeightFileError(
            f"{source}: the model has a mask ({', '.join(masks)}): Keras skips the masked (padded) time steps, "
            "holding h and c, while TFLite's fused LSTM runs every step, so the model would give different "
            "outputs and states wherever a mask applies. Build from the weights alone (save_weights to a "
            ".weights.h5, or pass the LSTM's arrays in an .npz) and feed unpadded sequences, or remove the mask."
        )
    configs = _layer_configs(config)
    wiring = _wiring(config)
    renamed = _by_storage(cells, config, configs)
    kept = []
    for cell in cells:
        placed = cell.name in renamed
        if placed:
            cell.aliases.add(cell.name)
            cell.name = renamed[cell.name]
        # An unnamed cell its group path does not place is never matched by a lookalike Keras name.
        entry = configs.get(cell.name) if placed or not cell.guessed else None
        if entry is None:
            cell.config_missing = True
            kept.append(cell)
            continue
        cfg, direction, cls, merge = entry
        if cls in (*LSTM_CLASSES, "RNN"):
            cell.config, cell.direction, cell.merge_mode = cfg, direction, merge
            cell.feeds = wiring.get(_config_layer(cell.name))
            kept.append(cell)
    # Model order from the config, not the alphabetical order HDF5 groups come back in (a classic
    # file's layer_names order is the same and is kept).
    order = {name: i for i, name in enumerate(configs)}
    for cell in kept:
        if cell.rank is None and cell.name in order:
            cell.rank = order[cell.name]
    return _listed(kept)


def _config_layer(name: str) -> str:
    """The name path of the Keras layer a cell belongs to (a Bidirectional's, for one of its halves)."""
    parent, _, leaf = name.rpartition("/")
    return parent if leaf in ("forward_layer", "backward_layer") else name


def _check_chained(layers: list[tuple[_Cell, ...]], source: str) -> None:
    """Refuse to stack two LSTM layers that the model config does not wire one into the next (a Dense
    between them, parallel branches): lstmgen would drop what lies between and still pass its checks."""
    for below, above in itertools.pairwise(layers):
        feeds, lower = above[0].feeds, _config_layer(below[0].name)
        if feeds is None or feeds == {lower}:
            continue
        upper = _config_layer(above[0].name)
        raise WeightFileError(
            f"{source}: the model config does not feed LSTM layer '{lower}' straight into '{upper}' ('{upper}' "
            f"takes its input from {', '.join(repr(f) for f in sorted(feeds))}), so they are no stack of fused "
            "LSTM ops: lstmgen builds LSTM layers only (Dropout-like layers between them are skipped, as at "
            "inference), and the layers between them or another wiring would be lost. Build each LSTM layer "
            f"alone with --layer NAME (e.g. --layer {lower})."
        )


def _listed(cells: list[_Cell]) -> list[_Cell]:
    """Cells in model order where the file records it, the others after them by storage name."""
    return sorted(cells, key=lambda c: (c.rank is None, c.rank or 0, c.order))


# ------------------------------------------------------------------------------ config checks


def _activation(value: Any, setting: str, cell: str, source: str) -> str:
    name = value
    if isinstance(value, Mapping):  # a serialized function: {"class_name": "function", "config": "tanh", ...}
        name = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    name = str(name)
    if setting == "activation" and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if setting == "recurrent_activation" and name == "sigmoid":
        return name
    if setting == "recurrent_activation":
        raise WeightFileError(
            f"{source}: layer '{cell}' has recurrent_activation={name!r}, but TFLite's fused LSTM always "
            "computes its gates with the logistic sigmoid, so the model would give different outputs. "
            "Only recurrent_activation='sigmoid' (the Keras default since 2.3) can be converted; retrain or "
            "fine-tune the layer with it."
        )
    why = REFUSED_ACTIVATIONS.get(name, "the fused LSTM has no such activation")
    raise WeightFileError(
        f"{source}: layer '{cell}' has activation={name!r}, which TFLite's fused LSTM cannot express ({why}). "
        f"Supported Keras activations: {', '.join(f'{k} (lstmgen {v})' for k, v in ACTIVATIONS.items())}; "
        "retrain the layer with one of them."
    )


def _check_config(cell: _Cell, source: str, n: int, has_bias: bool, notes: list[str]) -> dict[str, object]:
    """Refuse what a single forward fused LSTM cannot reproduce; return the hyperparameters the config states."""
    cfg = cell.config
    if cfg is None:
        what = "the model config has no LSTM entry" if cell.config_missing else "no Keras layer config (weights only)"
        notes.append(
            f"{what} for '{cell.name or 'the cell'}': activation tanh, recurrent_activation sigmoid, forward "
            "direction and return_sequences=True are assumed; the .keras file (or a full-model .h5) lets "
            "lstmgen check them"
        )
        if _direction(cell) == "backward":
            notes.append(_backward_note(cell))
        return {}
    hyper: dict[str, object] = {
        "activation": _activation(cfg.get("activation", "tanh"), "activation", cell.name, source)
    }
    _activation(cfg.get("recurrent_activation", "sigmoid"), "recurrent_activation", cell.name, source)
    units = cfg.get("units")
    if units is not None and units != n:
        raise WeightFileError(
            f"{source}: layer '{cell.name}' has units={units} in its config, but its recurrent_kernel has "
            f"{n} rows. The file is inconsistent; re-save the model with Keras."
        )
    if cfg.get("use_bias", True) != has_bias:
        found = "has a bias array" if has_bias else "has no bias array"
        raise WeightFileError(
            f"{source}: layer '{cell.name}' has use_bias={cfg.get('use_bias', True)} in its config but {found}. "
            "The file is inconsistent; re-save the model with Keras."
        )
    backwards = bool(cfg.get("go_backwards", False))
    if cell.direction is None and backwards:
        # Keras returns the outputs in processing order: y[:, t] follows x[:, T-1-t] (and y[:, -1] == h).
        hyper["go_backwards"] = True
        notes.append(
            f"'{cell.name}' has go_backwards=True: Keras runs it from the last time step to the first and "
            "returns its outputs in that (reversed) order"
        )
    elif cell.direction is not None and backwards != (cell.direction == "backward"):
        raise WeightFileError(
            f"{source}: the {cell.direction} half '{cell.name}' of a Bidirectional layer has "
            f"go_backwards={backwards}: the wrapped LSTM itself runs backwards, so Keras' 'forward' half reads "
            "the sequence reversed and its 'backward' half reads it in order, which a bidirectional layer of "
            "fused ops (forward op + time-reversed op) does not compute. Rebuild the Bidirectional with "
            "go_backwards=False on the wrapped layer."
        )
    elif cell.direction == "backward":
        notes.append(_backward_note(cell))
    if cell.merge_mode not in (None, "concat"):
        notes.append(
            f"the Bidirectional wrapper has merge_mode={cell.merge_mode!r}; this cell alone is exact, but whole "
            "bidirectional layers are built with merge_mode='concat' only"
        )
    if not cfg.get("return_sequences", False):
        # Keras returns only the last step [batch, units], which is the last step of the whole sequence.
        hyper["return_sequences"] = False
        notes.append(f"'{cell.name}' has return_sequences=False: Keras returns only the last step [batch, units]")
    if cfg.get("stateful", False):
        raise WeightFileError(
            f"{source}: layer '{cell.name}' has stateful=True: Keras carries h and c from one batch to the "
            "next with a fixed batch size, a contract lstmgen's models do not state yet (their state tensors "
            f"do persist across invoke(), see the README); {PLANNED}. Until then, build from the weights-only "
            ".weights.h5 (or an .npz) and manage the state with `lstmgen run --initial-state`."
        )
    dropouts = {k: cfg.get(k) for k in ("dropout", "recurrent_dropout") if cfg.get(k)}
    if dropouts:
        shown = ", ".join(f"{k}={v}" for k, v in dropouts.items())
        notes.append(f"{shown} ignored: dropout is applied only in training")
    if cfg.get("unroll"):
        notes.append("unroll=True only changes how Keras runs the loop; the math is the same")
    # tf.keras 2 states time_major; the model is built the same way by default (--batch-major overrides).
    if cfg.get("time_major"):
        hyper["time_major"] = True
        notes.append("the Keras layer took time-major input [time, batch, input]: the model is built time-major")
    return hyper


def _backward_note(cell: _Cell) -> str:
    return (
        f"'{cell.name}' is the backward half of a Bidirectional layer: Keras feeds it the input reversed in "
        "time and flips its output back to input order (direction=backward)"
    )


def _direction(cell: _Cell) -> str:
    """'backward' for a Bidirectional backward half (by config, else by name) or a go_backwards LSTM."""
    if cell.direction is not None:
        return cell.direction
    if cell.config is None:
        return "backward" if cell.name.endswith("backward_layer") else "forward"
    return "backward" if cell.config.get("go_backwards", False) else "forward"


# ------------------------------------------------------------------------------------ reader


class KerasReader(FrameworkReader):
    name = "keras"

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        cells, others = _checked_npz_cells(arrays, source)
        cell = _select(cells, layer, source)
        notes = [f"ignored {len(others)} array(s) of other layers: {', '.join(others)}"] if others else []
        return _to_weights(cell, source, notes)

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        cells, _ = _checked_npz_cells(arrays, source)
        return [tuple(c.name for c in group) for group in _layers(cells, layer, source)]

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        return [c.name for c in _npz_cells(arrays)[0]]

    def open_file(self, path: Path) -> WeightFile:
        return npz_file(self, path) if path.suffix.lower() == ".npz" else KerasFile(path)


def _h5_errors(where: str) -> contextlib.AbstractContextManager[None]:
    """What h5py raises on a damaged file (a bad heap, an address past the end, an unknown string
    encoding: TypeError): bad input, exit 2, when raised inside h5py."""
    advice = "The file is truncated or corrupt; save it again with Keras."
    return parser_errors("h5py", (OSError, RuntimeError, KeyError, ValueError, TypeError), where, advice)


class KerasFile:
    """A .weights.h5, full-model .h5 or .keras file, open from the first use to `close()`.

    The HDF5 file (a .keras archive's model.weights.h5, read once into memory) is opened and its LSTM
    cells found once; a cell's datasets are read when it is loaded.
    """

    def __init__(self, path: Path) -> None:
        with _h5_errors(str(path)):
            self._h5, self._handle, self._cells, self.source = _open_cells(path)

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """The LSTM layers in model order: ('lstm',), ('lstm_1',), a Bidirectional as one layer
        ('bidirectional/forward_layer', 'bidirectional/backward_layer').

        `layer` restricts the list to a nested model or wrapper ('encoder', 'bidirectional') or names
        one cell (any name `load` accepts). Several layers in an order the file does not record raise
        UnknownOrderError; layers the config does not wire one into the next, WeightFileError. Whether
        their sizes chain is checked by the caller.
        """
        with _h5_errors(self.source):
            return [tuple(c.name for c in group) for group in _layers(self._cells, layer, self.source)]

    def load(self, cell: str | None = None) -> CellWeights:
        with _h5_errors(self.source):
            return _to_weights(_select(self._cells, cell, self.source), self.source, [])

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        with _h5_errors(self.source):
            return self._load_layers(layer)

    def _load_layers(self, layer: str | None) -> list[list[CellWeights]]:
        layers, note = _model_order(_grouped(self._cells, layer, self.source), self.source)
        _check_chained(layers, self.source)
        notes = [note] if note else []
        if len(layers) > 1 and any(c.config is None for g in layers for c in g):
            others = _other_weights(self._h5, self._cells)
            if others:
                notes.append(
                    f"the file also holds weights of other layers ({', '.join(others)}) and does not record where "
                    "they sit: lstmgen assumes none lies between the stacked LSTM layers (one there, e.g. a Dense, "
                    "would be dropped); the .keras file (model.save('m.keras')) records it and lets lstmgen check"
                )
        return [[_to_weights(c, self.source, notes if k == 0 else []) for c in g] for k, g in enumerate(layers)]

    def cell_names(self) -> list[str]:
        """Canonical names of every LSTM cell in the file, in model order when the file records it.

        Names are Keras layer paths without the model's own name: 'lstm', 'lstm_1', nested models as
        'encoder/lstm', the halves of a Bidirectional as 'bidirectional/forward_layer' and
        'bidirectional/backward_layer'. Each name is accepted by `load` / `--layer`.
        """
        return [c.name for c in self._cells]

    def release(self) -> bool:
        self.close()  # the loaded weights are arrays of their own
        return False

    def close(self) -> None:
        self._h5.close()
        if self._handle is not None:
            self._handle.close()


def _open_cells(path: Path) -> tuple[Any, io.IOBase | None, list[_Cell], str]:
    """Open a Keras .h5/.keras file and find its LSTM cells (datasets still unread).

    Returns the h5py File, the file object it reads (a .keras archive's model.weights.h5; None for an
    .h5 opened by name), the cells and the source name; the caller closes the first two.
    """
    h5py = _import_h5py(path)
    config: dict[str, Any] | None = None
    member: io.IOBase | None = None
    if path.name.lower().endswith(".keras"):
        member, config = _read_keras_zip(path)  # h5py reads a file object: nothing is extracted to disk
        handle: Any = member
        where = f"{path} (its model.weights.h5)"
    else:
        handle, where = path, str(path)
    try:
        h5 = h5py.File(handle, "r")
    except BaseException as exc:
        if member is not None:
            member.close()
        if isinstance(exc, OSError):
            raise WeightFileError(
                f"{where} is not a readable HDF5 file ({exc}): it is truncated, corrupt or not HDF5. Expected "
                "the output of Keras' model.save_weights('x.weights.h5') or model.save('x.keras' / 'x.h5'); "
                "save it again."
            ) from None
        raise
    try:
        return h5, member, _find_cells(h5, config, path, where), str(path)
    except BaseException:
        h5.close()
        if member is not None:
            member.close()
        raise


def _find_cells(h5: Any, config: dict[str, Any] | None, path: Path, where: str) -> list[_Cell]:
    guard.h5_contained(h5, where)  # nothing outside the file's own bytes, no bombs
    if config is None:
        config = _h5_config(h5, path)
    classic = _is_classic(h5)
    cells = _classic_cells(h5) if classic else _keras3_cells(h5)
    cells = _listed(_attach_configs(cells, config, str(path)))
    if not cells:
        found = _h5_datasets(h5)
        shown = "; ".join(found[:12]) + ("; ..." if len(found) > 12 else "") if found else "no datasets"
        raise WeightFileError(
            f"{where}: no Keras LSTM weights found. Expected a layer with kernel [input, 4*units], "
            "recurrent_kernel [units, 4*units] and bias [4*units] (Keras 3: layers/<name>/cell/vars/0,1,2; "
            f"tf.keras 2: <name>/<name>/lstm_cell/kernel:0, ...). Found: {shown}. Check that the file "
            "comes from a model with a keras.layers.LSTM layer."
        )
    return cells


def _read_keras_zip(path: Path) -> tuple[io.IOBase, dict[str, Any] | None]:
    """config.json and model.weights.h5 from a .keras archive: the weights as a file object (close it).

    Keras stores model.weights.h5 uncompressed: it is then read in place, dataset by dataset, after
    its CRC-32 is checked; a compressed one is decompressed into memory.
    """
    weights: io.IOBase | None = None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "model.weights.h5" not in names:
                raise WeightFileError(
                    f"{path}: this .keras archive has no model.weights.h5 (found: {', '.join(names) or 'nothing'}). "
                    "Expected a file written by Keras 3 model.save('x.keras'); save it again."
                )
            info = guard.zip_member_size(zf, "model.weights.h5", str(path))
            weights = stored_member(path, info) or io.BytesIO(guard.zip_member(zf, "model.weights.h5", str(path)))
            raw = guard.zip_member(zf, "config.json", str(path), guard.TEXT_LIMIT) if "config.json" in names else None
    except BaseException as exc:
        if weights is not None:
            weights.close()
        broken = (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile, NotImplementedError)
        if isinstance(exc, broken) and not isinstance(exc, LstmgenError):
            raise WeightFileError(
                f"{path} is not a readable .keras archive ({exc}): it is truncated or corrupt. Expected the zip "
                "file that Keras 3 model.save('x.keras') writes; save it again."
            ) from None
        raise
    assert weights is not None  # set, or the block raised
    if raw is None:
        return weights, None
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: a nesting bomb
        weights.close()
        raise WeightFileError(
            f"{path}: config.json in the archive is not valid JSON ({exc}). Save the model again with Keras."
        ) from None
    return weights, config if isinstance(config, dict) else None


def _checked_npz_cells(arrays: Mapping[str, np.ndarray], source: str) -> tuple[list[_Cell], list[str]]:
    """The .npz's cells and other keys; no cells, or stray keys beside bare ones, are errors."""
    cells, others = _npz_cells(arrays)
    if not cells:
        raise WeightFileError(
            f"{source}: no Keras LSTM weights: expected keys kernel [input, 4*units], recurrent_kernel "
            f"[units, 4*units] and optionally bias [4*units], bare or as '<layer>/kernel' "
            f"(found: {', '.join(sorted(arrays)) or 'nothing'}). Save them with numpy.savez(path, "
            "kernel=k, recurrent_kernel=r, bias=b)."
        )
    if any(c.name == "" for c in cells) and others:  # a bare-key file is one cell: anything else is a typo
        raise WeightFileError(
            f"{source}: unknown key(s) {', '.join(others)} for --weights-format keras. Allowed keys: "
            f"{', '.join(ROLES)}, or '<layer>/<key>' for several layers."
        )
    return cells, others


def _layers(cells: list[_Cell], layer: str | None, source: str) -> list[tuple[_Cell, ...]]:
    """Cells grouped into layers in model order: a Bidirectional's two halves (forward first) are one.

    Several layers whose order the file does not record raise UnknownOrderError (see _model_order).
    """
    layers = _model_order(_grouped(cells, layer, source), source)[0]
    _check_chained(layers, source)
    return layers


def _model_order(layers: list[tuple[_Cell, ...]], source: str) -> tuple[list[tuple[_Cell, ...]], str | None]:
    """The layers in model order, and a note when that order comes from the storage group names.

    A file with a model config or a layer_names list records the order. A weights-only Keras 3 /
    tf_keras .weights.h5 does not: it keeps each layer under its class name and its position among
    the layers of that class in its model ('lstm', 'lstm_1', 'bidirectional'; HDF5 lists them
    alphabetically, so 'lstm_10' before 'lstm_2'). Those positions order layers of one class in one
    model; between classes or nested models the order is lost, and lstmgen refuses to guess it.
    """
    if len(layers) <= 1:
        return layers, None
    ranks = [[c.rank for c in group] for group in layers]
    if all(r is not None for row in ranks for r in row):
        return sorted(layers, key=lambda g: min(c.rank or 0 for c in g)), None
    slots = [_slot(group[0]) for group in layers]
    kinds = {s[:2] for s in slots if s is not None}
    if None not in slots and len(kinds) == 1 and len({s[2] for s in slots if s is not None}) == len(slots):
        ordered = [g for _, g in sorted(zip(slots, layers, strict=True), key=lambda p: p[0][2] if p[0] else 0)]
        paths = ", ".join(_layer_path(g[0]) for g in ordered)
        note = (
            f"the file records no model order (weights only): the {len(layers)} layers are stacked in the order "
            f"Keras numbered their weight groups ({paths}), each one's position among the model's "
            f"'{next(iter(kinds))[1]}' layers"
        )
        return ordered, note
    names = "; ".join(" + ".join(c.name for c in g) for g in layers)
    groups = ", ".join(sorted({_layer_path(g[0]) for g in layers if g[0].path}))
    raise UnknownOrderError(
        f"{source}: holds {len(layers)} LSTM layers ({names}) but does not record their order in the model. "
        "A weights-only Keras file (model.save_weights('x.weights.h5')) keeps each layer's weights under its "
        "class and its position among the layers of that class"
        + (f" (here: {groups})" if groups else "")
        + ", so the order between layers of different classes (LSTM, Bidirectional) or nested models is "
        "lost, and lstmgen does not guess it. Save the whole model (model.save('m.keras')) and build from "
        "that file, or build one layer at a time with --layer NAME."
    )


def _grouped(cells: list[_Cell], layer: str | None, source: str) -> list[tuple[_Cell, ...]]:
    """The cells (of `layer`, when given) as layers, a Bidirectional's two halves (forward first) as one."""
    if layer is not None:
        want = layer.strip("/")
        inside = [c for c in cells if c.name == want or c.name.startswith(f"{want}/")]
        cells = inside or [_select(cells, layer, source)]
    groups: list[list[_Cell]] = []
    wrappers: dict[str, list[_Cell]] = {}
    for cell in cells:
        parent, _, leaf = cell.name.rpartition("/")
        if leaf not in ("forward_layer", "backward_layer"):
            groups.append([cell])
        elif parent in wrappers:
            wrappers[parent].append(cell)
        else:
            wrappers[parent] = [cell]
            groups.append(wrappers[parent])
    out = []
    for group in groups:
        group.sort(key=lambda c: c.name.endswith("backward_layer"))
        merge = group[0].merge_mode
        if len(group) == 2 and merge not in (None, "concat"):
            parent = group[0].name.rpartition("/")[0]
            raise WeightFileError(
                f"{source}: the Bidirectional layer '{parent}' has merge_mode={merge!r}; lstmgen builds a "
                "bidirectional layer as its two fused ops with the outputs concatenated along the features "
                "(merge_mode='concat'), and has no op to sum, multiply or average them (or to return two "
                "outputs, merge_mode=None). Re-train with merge_mode='concat', or build one half alone with "
                f"--layer {group[0].name}."
            )
        out.append(tuple(group))
    return out


def _select(cells: list[_Cell], layer: str | None, source: str) -> _Cell:
    names = ", ".join(repr(c.name) for c in cells)
    if layer is None:
        if len(cells) > 1:
            raise WeightFileError(
                f"{source}: holds {len(cells)} LSTM cells ({names}), so it is ambiguous which to build. "
                "Pick one with --layer NAME (e.g. --layer " + cells[0].name + ")."
            )
        return cells[0]
    want = layer.strip("/")
    for test in (
        lambda c: c.name == want,
        lambda c: want in c.aliases,
        lambda c: c.name.endswith("/" + want),  # 'lstm' for 'encoder/lstm'
    ):
        hits = [c for c in cells if test(c)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise WeightFileError(
                f"{source}: --layer {layer!r} matches several LSTM cells ({', '.join(repr(c.name) for c in hits)}). "
                "Pass the full name."
            )
    if len(cells) == 1 and cells[0].name == "" and want == "":
        return cells[0]
    raise WeightFileError(
        f"{source}: --layer {layer!r} is not an LSTM cell in this file; its LSTM cells are: {names or 'one, unnamed'}. "
        "Pass one of those names (or drop --layer for a single-cell file)."
    )


def _to_weights(cell: _Cell, source: str, notes: list[str]) -> CellWeights:
    """Read the selected cell's arrays and lay them out per gate (views of the arrays as read)."""
    where = f"{source} [{cell.name}]" if cell.name else source
    if "kernel" not in cell.arrays:
        raise WeightFileError(
            f"{where}: recurrent_kernel has no matching kernel ({cell.where}). Expected kernel [input, 4*units] "
            "next to it; save all of the layer's weights."
        )
    try:
        raw = {role: np.asarray(a[()]) if not isinstance(a, np.ndarray) else a for role, a in cell.arrays.items()}
    except OSError as exc:  # a dataset whose bytes are cut off or damaged
        raise WeightFileError(
            f"{where}: the weights in {cell.where} cannot be read ({exc}): the file is truncated or corrupt. "
            "Save it again with Keras."
        ) from None
    local: list[str] = []
    kernel = as_float32("kernel", raw["kernel"], where, local)
    recurrent = as_float32("recurrent_kernel", raw["recurrent_kernel"], where, local)
    if recurrent.ndim != 2 or recurrent.shape[1] != 4 * recurrent.shape[0] or recurrent.shape[0] == 0:
        raise WeightFileError(
            f"{where}: recurrent_kernel has shape {list(recurrent.shape)}, expected [units, 4*units] (a Keras LSTM "
            "with gates i, f, c, o). A GRU has [units, 3*units] and is not an LSTM; otherwise check the export."
        )
    n = recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 4 * n or kernel.shape[0] == 0:
        raise WeightFileError(
            f"{where}: kernel has shape {list(kernel.shape)} but recurrent_kernel has {list(recurrent.shape)}: "
            f"expected kernel [input_size, {4 * n}] for {n} units. The two arrays do not belong to one LSTM "
            "layer; check the export (or --layer)."
        )
    hyper = _check_config(cell, where, n, "bias" in raw, local)
    if "bias" in raw:
        bias = as_float32("bias", raw["bias"], where, local)
        if bias.shape != (4 * n,):
            hint = " (8*units: CuDNNLSTM's two bias vectors; add the halves)" if bias.shape == (8 * n,) else ""
            raise WeightFileError(f"{where}: bias has shape {list(bias.shape)}, expected [{4 * n}]{hint}.")
    else:
        bias = np.zeros(4 * n, np.float32)  # use_bias=False: the fused op needs the bias slots, as zeros
        local.append("no bias (use_bias=False): gate biases are zero")
    # Keras computes x @ kernel + h @ recurrent_kernel; TFLite wants W [N, I] per gate: transposed views.
    tensors = gate_tensors("keras", kernel.T, recurrent.T, bias)
    local.append(NO_CLIP_NOTE)
    return CellWeights(
        tensors,
        "keras",
        where,
        forget_bias_default=0.0,  # Keras adds nothing at run time; unit_forget_bias only initialises
        notes=(*notes, *local),
        hyperparameters=hyper,
        layer=cell.name or None,
        direction=_direction(cell),
        origin=SourceArrays(
            "keras", raw, {"config": cell.config, "half": cell.direction, "merge_mode": cell.merge_mode}
        ),
    )
