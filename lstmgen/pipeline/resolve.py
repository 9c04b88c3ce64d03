"""Settle the build's configuration: explicit options plus what the weights imply (conflicts are errors)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, cast

from lstmgen.config import CellConfig, check_fields
from lstmgen.errors import ConfigError, WeightFileError
from lstmgen.numerics.tables import INTEGER_MODES
from lstmgen.pipeline.initializers import init_weights
from lstmgen.pipeline.layout import CellShape, shapes_from_config
from lstmgen.weights import CellWeights, WeightSource

CONFIG_FIELDS = tuple(f.name for f in fields(CellConfig))
# Options that only a weight file can settle per layer, and what a conflict means in words.
_CONFLICT_HINTS = {
    "cifg": "--cifg means no input gate, but the weights have input-gate arrays (input_to_input_weights, ...)",
    "layer_norm": "layer normalisation needs the four *_layer_norm_coefficients arrays",
}


def _layout_note(time_major: bool, source: str) -> str:
    chosen, other = ("time-major [T,B,I]", "batch-major [B,T,I]")[:: 1 if time_major else -1]
    return (
        f"input layout {chosen} as requested, although {source} was {other}; the weights are the same "
        "either way (only the order of the input and output axes differs)"
    )


# Settings that describe how the source model was fed, not its weights: an explicit option wins over
# what the file implies (with a note), since the user decides the layout of the model they build.
def _shape_note(key: str) -> Callable[[object, str], str]:
    return lambda value, source: f"{key} {value} as requested, although {source} records another"


USER_CHOICES: dict[str, Callable[[Any, str], str]] = {"time_major": _layout_note}
USER_CHOICES |= {key: _shape_note(key) for key in ("batch_size", "time_steps", "dynamic_batch")}


def _implied_flags(cell: CellWeights) -> dict[str, object]:
    implied = cell.implied()
    implied["cifg"] = "input_to_input_weights" not in cell.tensors
    implied["layer_norm"] = "forget_layer_norm_coefficients" in cell.tensors
    implied["diagonal_recurrent"] = len(cell.tensors["recurrent_to_forget_weights"].shape) == 1
    return implied


def _check_conflict(key: str, wanted: object, implied: object, source: str) -> None:
    if key == "use_peepholes" and wanted and implied:
        return
    if wanted != implied:
        shown = "not set" if implied is None else implied
        hint = f" ({_CONFLICT_HINTS[key]})" if key in _CONFLICT_HINTS else ""
        raise ConfigError(
            f"--{key.replace('_', '-')} {wanted!r} disagrees with {source}, which implies {key} = {shown}{hint}. "
            "Drop the option (it is inferred) or use matching weights."
        )


def _topology(opts: dict[str, Any], layers: list[list[CellWeights]]) -> None:
    """Settle num_layers/bidirectional/go_backwards from the cells' count and directions."""
    source = layers[0][0].source
    dirs = {len(cells) for cells in layers}
    if dirs == {2} and opts.get("bidirectional") is False:  # stated false; unstated: the file's word
        raise ConfigError(
            f"{source} holds a backward direction for every layer (bidirectional weights) but bidirectional = false "
            "was given. Drop it to build both directions, or pick one cell with --layer."
        )
    if opts.get("bidirectional") and dirs != {2}:
        raise ConfigError(
            f"--bidirectional needs a backward cell for every layer, but {source} has only forward cells. "
            "Drop --bidirectional or use bidirectional weights."
        )
    single = layers[0][0]
    if len(layers) == 1 and dirs == {1} and single.direction == "backward":
        if "go_backwards" not in single.hyperparameters:
            # PyTorch _reverse, ONNX reverse, TF1 'bw', a Keras Bidirectional's backward half: the framework
            # re-aligns the outputs to input positions (y[t] follows x[t..T-1]); --go-backwards keeps
            # processing order (Keras go_backwards), so building it alone would shift every output in time.
            raise ConfigError(
                f"{source}: the selected cell ({single.layer or 'the only cell'}) is the backward direction of a "
                "bidirectional layer: its framework runs it over the reversed sequence and returns the outputs "
                "aligned to the input positions (y[t] depends on x[t..T-1]). lstmgen builds such a cell only inside "
                "its bidirectional layer; alone, --go-backwards would return the outputs in processing order "
                "(Keras go_backwards), shifted in time against the framework's. Build the whole layer with "
                "--bidirectional (drop --layer, or name the layer), or pick the forward cell."
            )
        opts.setdefault("go_backwards", True)
    if "num_layers" in opts and opts["num_layers"] != len(layers):
        raise ConfigError(f"--num-layers {opts['num_layers']} but {source} provides {len(layers)} layer(s).")
    opts["num_layers"] = len(layers)
    opts["bidirectional"] = dirs == {2}


def resolve(
    options: Mapping[str, Any], layers: list[list[CellWeights]] | None
) -> tuple[CellConfig, list[list[CellWeights]], list[list[CellShape]], list[str]]:
    """Merge explicit options with what the weights imply; conflicts are errors, not guesses."""
    opts = {k: v for k, v in options.items() if v is not None}
    notes: list[str] = []
    if layers:
        _topology(opts, layers)
        first = layers[0][0]
        implied = _implied_flags(first)
        # Stated hyperparameters (activation, time_major, ...) may come from any cell; the last
        # layer decides return_sequences (Keras return_sequences=False on the top layer).
        for cells in layers:
            for cell in cells:
                for key, value in cell.hyperparameters.items():
                    if key in CONFIG_FIELDS and key not in ("num_units", "input_size", "num_proj"):
                        implied.setdefault(key, value)
        last_rs = [c.hyperparameters.get("return_sequences") for c in layers[-1]]
        if None not in last_rs:
            implied["return_sequences"] = last_rs[0]
        for key, value in implied.items():
            if key not in CONFIG_FIELDS:
                continue
            if key in USER_CHOICES and key in opts:
                if opts[key] != value:
                    notes.append(USER_CHOICES[key](opts[key] if key != "time_major" else bool(opts[key]), first.source))
                continue
            if key in opts:
                _check_conflict(key, opts[key], value, first.source)
            opts[key] = value
    for key in ("num_units", "input_size"):
        if key not in opts:
            raise ConfigError(f"{key} is required when no --weights are given (e.g. --num-units 64 --input-size 32).")
    config = CellConfig(**opts)
    if layers:
        shapes = _shapes_from_weights(config, layers, own_activation="activation" not in options)
    else:
        shapes = shapes_from_config(config)
        layers = [
            [init_weights(config, shape, (k, d)) for d, shape in enumerate(cells)] for k, cells in enumerate(shapes)
        ]
    fb_defaults = {c.forget_bias_default for cells in layers for c in cells}
    fb = opts.get("forget_bias", max(fb_defaults))
    config = CellConfig(**(opts | {"forget_bias": float(fb)}))
    notes.extend(_forget_bias_notes(float(fb), options.get("forget_bias") is not None, layers))
    said = any("time_major" in c.hyperparameters for cells in layers for c in cells)
    if layers[0][0].format in _UNRECORDED_LAYOUT and "time_major" not in opts and not said:
        notes.append(_UNRECORDED_LAYOUT[layers[0][0].format])
    return config, layers, shapes, notes


# Weight formats that do not record the input layout while their framework defaults to time-major: the
# build says what it assumed (batch-major), and how to get the framework's default.
_UNRECORDED_LAYOUT = {
    "torch": "a PyTorch state_dict does not record batch_first: built batch-major [B,T,I]; nn.LSTM's default is "
    "time-major (batch_first=False): pass --time-major for [T,B,I] input",
}


def _forget_bias_notes(fb: float, explicit: bool, layers: list[list[CellWeights]]) -> list[str]:
    """What was folded and why: the cell class the file names sets the default; an explicit value wins."""
    first = layers[0][0]
    fmt, classed = first.format, first.forget_bias_why
    if explicit:
        why = "given explicitly"
    elif classed:
        why = classed
    elif fmt.startswith("init"):
        why = "TFLiteLSTMCell's default, used with --init"
    else:
        why = f"default for {fmt}: that framework adds it at run time"
    if fb:
        notes = [f"forget_bias {fb:g} folded into forget_gate_bias ({why})"]
    elif classed and not explicit:
        notes = [f"forget_bias 0 ({classed})"]
    else:
        notes = [f"forget_bias 0 (biases taken as complete: {fmt})"]
    clashes = {(c.cell_class, c.forget_bias_default) for row in layers for c in row if c.cell_class}
    for cls, default in sorted(clashes, key=str) if explicit else ():
        if default != fb:
            notes.append(
                f"--forget-bias {fb:g} contradicts the file's cell class {cls}, which adds {default:g} at run time: "
                "the model will not compute the checkpoint's LSTM (verify without --forget-bias fails it)"
            )
    return notes


def _shapes_from_weights(
    config: CellConfig, layers: list[list[CellWeights]], own_activation: bool = False
) -> list[list[CellShape]]:
    """Per-cell shapes from the arrays, checked for a consistent chain of layer sizes.

    own_activation: a cell whose file states another activation than the config's (an ONNX bidirectional node
    with activations per direction) keeps its own; each direction is its own op.
    """
    shapes: list[list[CellShape]] = []
    width = config.input_size
    for k, cells in enumerate(layers):
        row = []
        for d, cell in enumerate(cells):
            imp = _implied_flags(cell)
            for key in ("use_peepholes", "cifg", "layer_norm", "diagonal_recurrent"):
                if imp[key] != getattr(config, key) and not (key == "use_peepholes" and config.use_peepholes):
                    raise ConfigError(
                        f"{cell.source}: layer {k}{' backward' if d else ''} has {key} = {imp[key]} but layer 0 has "
                        f"{getattr(config, key)}; lstmgen builds every layer with the same cell variant."
                    )
            shape = CellShape(
                int(cast(int, imp["num_units"])),
                int(cast(int, imp["input_size"])),
                imp["num_proj"],  # type: ignore[arg-type]
                config.use_peepholes,
                config.cifg,
                config.layer_norm,
                config.diagonal_recurrent,
            )
            act = cell.hyperparameters.get("activation")
            if own_activation and isinstance(act, str) and act.lower() != config.activation:
                shape = replace(shape, activation=act.lower())
            if shape.input_size != width:
                raise ConfigError(
                    f"{cell.source}: inconsistent per-layer sizes: layer {k}{' backward' if d else ''} takes inputs of "
                    f"size {shape.input_size}, but {'the model input' if k == 0 else f'layer {k - 1} outputs'} "
                    f"{width} features{' (both directions concatenated)' if k and config.bidirectional else ''}."
                )
            row.append(shape)
        if len({(s.num_units, s.num_proj) for s in row}) > 1:
            raise ConfigError(f"{cells[0].source}: layer {k}'s forward and backward cells differ in size.")
        shapes.append(row)
        width = row[0].output_size * len(row)
    return shapes


def check_options(opts: Mapping[str, Any], calibration_data: str | Path | None, calibration: str) -> None:
    """Refuse bad options before any weight is read: each field alone, then the calibration options.

    (Rules between fields that a weight file can settle, e.g. proj_clip needing a projection, wait for it.)
    """
    check_fields({k: v for k, v in opts.items() if v is not None})  # None: not given
    if calibration not in ("data", "random"):
        raise ConfigError(
            f"--calibration {calibration!r} is unknown; choose 'data' (with --calibration-data) or "
            "'random' (a smoke test)."
        )
    mode = opts.get("quantize", "none")
    if mode not in INTEGER_MODES:
        if calibration_data is not None or calibration != "data":
            raise ConfigError(
                "--calibration-data / --calibration apply to --quantize int8 / int16x8 only; drop them or add one."
            )
    elif calibration == "random" and calibration_data is not None:
        raise ConfigError("--calibration random and --calibration-data exclude each other; pick one.")
    elif calibration == "data" and calibration_data is None:
        raise ConfigError(
            f"--quantize {mode} needs activation ranges: pass --calibration-data X.npy with "
            "representative inputs of shape [n, *input shape] (tens to hundreds of samples), or --calibration "
            "random for a smoke test (the model is then labelled as calibrated on random data)."
        )


def stated_sizes(options: Mapping[str, Any]) -> dict[str, object]:
    """The sizes the user stated, for weight files that record none (a CudnnLSTM opaque buffer)."""
    return {k: options.get(k) for k in ("num_units", "input_size", "num_layers", "bidirectional")}


def load_stack(source: WeightSource, layer: str | None, num_layers: int | None) -> list[list[CellWeights]]:
    """The cells to build, as layers x directions, chosen by --layer / --num-layers."""
    path = source.path
    listed = source.cells(layer)
    names = "; ".join(" + ".join(c or "(unnamed)" for c in cells) for cells in listed)
    want = num_layers or len(listed)  # the file records its stack: all of it unless --num-layers says fewer
    if want > len(listed):
        raise WeightFileError(f"--num-layers {want}: {path} holds only {len(listed)} LSTM layer(s) ({names}).")
    if len(listed) == 1 and len(listed[0]) == 1:  # a single cell: read just it (also a selected one)
        cell = source.load(listed[0][0] if layer is not None else None)
        chosen = listed[0][0]
        asked = (layer or "").strip("/")
        if layer is not None and chosen and not (chosen == asked or f"/{chosen}/".count(f"/{asked}/")):
            # e.g. a Keras storage name: 'lstm_1' is the file's second LSTM group, here the layer 'lstm_5'
            cell = replace(cell, notes=(*cell.notes, f"--layer {layer} selected the cell {chosen!r}"))
        return [[cell]]
    stack = source.load_layers(layer)[:want]
    if num_layers is None and len(listed) > 1:
        note = (
            f"built all {len(listed)} LSTM layers {path} holds ({names}); --num-layers N builds the first N, "
            "--layer NAME one cell"
        )
        stack[0][0] = replace(stack[0][0], notes=(*stack[0][0].notes, note))
    return stack
