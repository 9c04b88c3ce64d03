"""A Keras model's topology from its config: each cell's layer config, the wiring between layers, model order."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from lstmgen.errors import UnknownOrderError, WeightFileError
from lstmgen.weights.keras_cells import LSTM_CLASSES, _Cell, _layer_path, _slot

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
