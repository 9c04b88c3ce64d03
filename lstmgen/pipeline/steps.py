"""`build`: resolve config + weights, lay out the model, write it atomically, verify it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from lstmgen import guard
from lstmgen.arrays import overflow_risk
from lstmgen.config import CellConfig
from lstmgen.errors import ConfigError, WeightFileError
from lstmgen.numerics.tables import INTEGER_MODES
from lstmgen.output import write_atomic
from lstmgen.pipeline.graph_form import layout_graph
from lstmgen.pipeline.layout import CellShape, layout
from lstmgen.pipeline.layout_graph import packed_copies_note
from lstmgen.pipeline.resolve import CONFIG_FIELDS, check_options, load_stack, resolve, stated_sizes
from lstmgen.pipeline.verify_gate import compile_for_npu, source_reference, verify_written, write_firmware
from lstmgen.samples import read_samples
from lstmgen.tflite.records import ModelRecord, materialize
from lstmgen.tflite.writer import check_size, estimate_size, plan_file
from lstmgen.weights import CellWeights, WeightSource
from lstmgen.weights import open as open_weights

if TYPE_CHECKING:
    from lstmgen.check.verify import VerifyReport
    from lstmgen.quant.calibrate import CalibrationStats
# Quantization, calibration, TFLM and target rules are imported where used: a float build never loads them.


def _calibrate(
    record: ModelRecord, config: CellConfig, data: str | Path | None, calibration: str
) -> tuple[CalibrationStats, np.ndarray | None]:
    """Integer-mode ranges from --calibration-data (representative inputs) or, labelled, from random inputs."""
    from lstmgen.quant.calibrate import calibrate, random_calibration

    if data is None:  # --calibration random (check_options refused the other combinations)
        return random_calibration(record, 16, config.seed), None
    x = record.tensors[record.inputs[0]]
    samples, reading = read_samples(data, x.shape, x.shape_signature, config.time_major, "calibration data")
    return calibrate(record, samples, source=f"{data} ({reading})"), samples


@dataclass
class BuildResult:
    """Summary of one build (printed by the CLI, --json gives this as a dict)."""

    output: str
    config: CellConfig
    weights_format: str
    weights_source: str
    weights_layer: str | None
    file_size: int
    notes: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    verification: VerifyReport | None = None
    layers: list[LayerSummary] = field(default_factory=list)  # every op, in op order
    output_width: int | None = None  # features of the model's output (both directions of the last layer)
    vela: dict[str, Any] | None = None  # --target ethos-u with vela installed: its NPU/CPU counts, SRAM, cycles
    embed: dict[str, Any] | None = None  # --embed: the firmware sources written (embed.EmbedResult)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "hyperparameters": self.config.to_dict()
            | {"output_size": self.config.output_size, "state_size": self.config.state_size},
            "weights_format": self.weights_format,
            "weights_source": self.weights_source,
            "weights_layer": self.weights_layer,
            "file_size": self.file_size,
            "notes": self.notes,
            "seconds": self.seconds,
            "verification": self.verification.to_dict() if self.verification else None,
            "layers": [ls.to_dict() for ls in self.layers],
            "output_width": self.output_width,
            "vela": self.vela,
            "embed": self.embed,
            "against_source": src.to_dict()
            if self.verification and (src := self.verification.against_source)
            else None,
        }


def _cell_notes(cells: list[CellWeights]) -> list[str]:
    """The readers' notes, each said once: "<cell>: text" repeated for several cells becomes "text (cells a, b)"."""
    by_text: dict[str, list[str]] = {}
    for c in cells:
        for n in c.notes:
            named = bool(c.layer) and n.startswith(f"{c.layer}: ")
            text = n[len(f"{c.layer}: ") :] if named else n
            by_text.setdefault(text, []).extend([str(c.layer)] if named else [])
    out = []
    for text, who in by_text.items():
        if len(who) == 1:
            out.append(f"{who[0]}: {text}")
        elif who:
            out.append(f"{text} (cells {', '.join(who)})" if len(who) < len(cells) else f"{text} (every cell)")
        else:
            out.append(text)
    return out


_DIRECTION = ("forward", "backward")  # index 1: the backward op of a bidirectional layer, or go_backwards


@dataclass(frozen=True)
class LayerSummary:
    """One LSTM op of a build: which layer and direction, its sizes and the cell it was read from."""

    layer: int
    direction: str
    num_units: int
    input_size: int
    output_size: int
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build(
    output: str | Path,
    options: Mapping[str, Any] | CellConfig,
    weights: str | Path | WeightSource | CellWeights | list[list[CellWeights]] | None = None,
    *,
    weights_format: str = "auto",
    layer: str | None = None,
    calibration_data: str | Path | None = None,
    calibration: str = "data",
    verify: bool = True,
    runtime: str = "auto",
    progress: Callable[[str], None] | None = None,
    accelerator: str | None = None,
    embed: str | Path | None = None,
    max_error: float | None = None,
) -> BuildResult:
    """Build, write and (by default) verify one model; raises LstmgenError subclasses on bad input.

    Example:
        >>> build("model.tflite", {"num_units": 64, "input_size": 32})      # doctest: +SKIP
    """
    say = progress or (lambda _msg: None)
    opts = _preflight(options, weights, weights_format, calibration_data, calibration, embed, verify)
    _check_run_options(runtime, accelerator, max_error)
    t0 = time.perf_counter()
    layers, source = _read(weights, weights_format, layer, opts, say)
    config, layers, shapes, notes = resolve(opts, layers)
    cell_weights = layers[0][0]
    notes = _cell_notes([c for cells in layers for c in cells]) + notes
    t1 = time.perf_counter()
    provenance = _provenance(layers)
    tensors = [[c.tensors for c in cells] for cells in layers]
    write_layout = layout_graph if config.form == "graph" else layout
    record = write_layout(config, tensors, shapes, provenance, source=cell_weights.source)
    _check_overflow(layers)  # after layout, whose checks have refused malformed arrays
    if config.form == "graph" and (copies := packed_copies_note(record)) is not None:
        notes.append(copies)
    _check_size(record, config)  # before the reference or quantization allocate anything of the model's size
    # After layout: its checks have refused malformed arrays.
    reference, no_reference = source_reference(config, layers, opts.get("forget_bias")) if verify else (None, None)
    if no_reference:
        notes.append(no_reference)
    record, samples = _quantize(record, config, calibration_data, calibration, notes, say)
    _check_target(record, config)
    if config.target == "micro" and config.quantize in ("int8", "int16x8"):
        from lstmgen.embed import CMSIS_NN_NOTE

        notes.append(CMSIS_NN_NOTE)  # the kernel a Cortex-M build of TFLM picks for this op
    say("writing model")
    planned = plan_file(record)  # the tables; each weight is copied once, as the file is written
    result = _result(output, config, layers, shapes, planned.size, notes)
    written: list[float] = []

    def write(fh: BinaryIO) -> None:
        planned.write_to(fh)
        if source is not None:
            # The mapped weight pages stay resident from the readers' checks through the write (dropping
            # them between would only fault them in again); verification needs the memory, so drop them now.
            source.release()
        written.append(time.perf_counter())

    def finish(tmp: Path) -> None:
        """On the complete temp file: verify, compile for the NPU, write firmware sources (any failure: no file)."""
        if verify:
            result.verification = verify_written(
                tmp, output, config, runtime=runtime, reference=reference, max_error=max_error, samples=samples, say=say
            )
        if config.target == "ethos-u":
            result.vela = compile_for_npu(tmp, accelerator, notes, say)
        if embed is not None:  # from the verified bytes, before the model itself is renamed into place
            result.embed = write_firmware(tmp, embed, output, say)

    write_atomic(Path(output), write, finish, inputs=_inputs(weights, calibration_data))
    t3 = time.perf_counter()
    result.seconds = {
        "read": round(t1 - t0, 4),
        "layout_and_write": round(written[0] - t1, 4),
        "verify_and_save": round(t3 - written[0], 4),
    }
    return result


def _provenance(layers: list[list[CellWeights]]) -> dict[str, Any]:
    """What the model file records of where its weights came from (its metadata)."""
    # What the weights are, not where or how they were kept: the file's name and the build's notes (which differ
    # between a .keras and a .weights.h5 of one model) go to the build report. So a live module and its saved
    # state_dict, one state_dict as .pt, .safetensors or .npz, or a renamed file give the same bytes, and a rebuild
    # compares exactly (the pre-commit hook). The hyperparameters, forget_bias folded included, are recorded.
    return {"weights_format": layers[0][0].format, "layers": [[c.layer for c in cells] for cells in layers]}


def _result(
    output: str | Path,
    config: CellConfig,
    layers: list[list[CellWeights]],
    shapes: list[list[CellShape]],
    size: int,
    notes: list[str],
) -> BuildResult:
    """The BuildResult of a planned model, before it is written and verified: its ops, one summary each."""
    first = layers[0][0]
    result = BuildResult(str(output), config, first.format, first.source, first.layer, size, notes)
    result.layers = [
        LayerSummary(k, _DIRECTION[d or config.go_backwards], s.num_units, s.input_size, s.output_size, cells[d].layer)
        for k, (dirs, cells) in enumerate(zip(shapes, layers, strict=True))
        for d, s in enumerate(dirs)
    ]
    result.output_width = sum(s.output_size for s in shapes[-1])
    return result


def _preflight(
    options: Mapping[str, Any] | CellConfig,
    weights: object,
    weights_format: str,
    calibration_data: str | Path | None,
    calibration: str,
    embed: str | Path | None,
    verify: bool,
) -> dict[str, Any]:
    """The options as a dict, every one checked before any weight is read (what, why, how to fix)."""
    opts = options.to_dict() if isinstance(options, CellConfig) else dict(options)
    unknown = sorted(set(opts) - set(CONFIG_FIELDS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(CONFIG_FIELDS)}.")
    check_options(opts, calibration_data, calibration)
    if embed is not None:
        from lstmgen.embed import check_embed_target

        check_embed_target(embed)
    # (the graph form is refused for these targets by the config: say that, not "install tflite-micro")
    if verify and opts.get("target") in ("micro", "ethos-u") and opts.get("form") != "graph":
        from lstmgen.runtimes.micro import import_tflm

        import_tflm()  # the TFLM check needs it: say so before reading, calibrating and writing anything
    if weights is None and weights_format != "auto":
        raise ConfigError(
            f"--weights-format {weights_format} was given without --weights; pass the weight file "
            "(or drop --weights-format to use --init)."
        )
    return opts


def _check_run_options(runtime: str, accelerator: str | None, max_error: float | None) -> None:
    """The API's verification options, checked like the CLI's choices before anything is read."""
    from lstmgen.runtimes import CLI_RUNTIME_CHOICES
    from lstmgen.targets import ACCELERATORS

    if runtime not in CLI_RUNTIME_CHOICES:
        raise ConfigError(f"runtime {runtime!r} is unknown; choose one of {', '.join(CLI_RUNTIME_CHOICES)}.")
    if accelerator is not None and accelerator not in ACCELERATORS:
        raise ConfigError(f"accelerator {accelerator!r} is unknown; choose one of {', '.join(ACCELERATORS)}.")
    if max_error is not None and not (isinstance(max_error, (int, float)) and 0 < max_error < float("inf")):
        raise ConfigError(f"max_error {max_error!r} must be a positive finite number (the largest abs error allowed).")


def _read(
    weights: str | Path | WeightSource | CellWeights | list[list[CellWeights]] | None,
    weights_format: str,
    layer: str | None,
    opts: Mapping[str, Any],
    say: Callable[[str], None],
) -> tuple[list[list[CellWeights]] | None, WeightSource | None]:
    """The cells to build (None: --init), and the open weight file they come from (None: given as arrays)."""
    if isinstance(weights, WeightSource):  # opened by the caller (a live object, lstmgen.weights.live)
        return load_stack(weights, layer, opts.get("num_layers")), weights
    if not isinstance(weights, (str, Path)):
        return ([[weights]] if isinstance(weights, CellWeights) else weights), None
    say(f"reading weights {weights}")
    source = open_weights(weights, weights_format, stated_sizes(opts))
    return load_stack(source, layer, opts.get("num_layers")), source


def _quantize(
    record: ModelRecord,
    config: CellConfig,
    calibration_data: str | Path | None,
    calibration: str,
    notes: list[str],
    say: Callable[[str], None],
) -> tuple[ModelRecord, np.ndarray | None]:
    """The float record quantized as --quantize asks (unchanged for none), and the calibration samples."""
    if config.quantize == "none":
        return record, None
    if config.form == "graph":  # layout_graph wrote the weights in their type already
        notes.append(_GRAPH_NOTES[config.quantize])
        return record, None
    if config.diagonal_recurrent:
        raise ConfigError(
            f"--quantize {config.quantize} with diagonal recurrent weights: the quantized kernels' diagonal path "
            "is untested by lstmgen, so it is refused rather than risk a silently wrong model. Build it in float32."
        )
    if config.target == "micro":
        # What TFLM cannot run at all (a projection, layer norm, dynamic shapes) first, on the float graph: the
        # quantizer's own advice names modes (dynamic-int8, float16) that --target micro refuses.
        _check_target(record, config)
    say(f"quantizing ({config.quantize})")
    record = materialize(record)
    stats, samples = None, None
    if config.quantize in INTEGER_MODES:
        stats, samples = _calibrate(record, config, calibration_data, calibration)
        # stats.source says "SMOKE TEST" itself for random calibration
        count = "" if calibration_data is not None else f", {stats.num_samples} sample(s)"  # the data's note counts
        notes.append(f"{config.quantize} calibration: {stats.source}{count}")
    if config.quantize == "dynamic-int8":
        notes.append(
            "dynamic-int8 with asymmetric input quantization (as TF's converter): op version 3, needs a TFLite "
            "runtime >= 2.3.0; --symmetric-inputs writes version 2 (>= 1.14.0), less accurate"
            if config.asymmetric_inputs
            else "dynamic-int8 with symmetric input quantization: op version 2 (TFLite runtime >= 1.14.0)"
        )
    from lstmgen.quant.quantize import quantize

    quantized = quantize(
        record,
        config.quantize,
        calibration=stats,
        asymmetric_inputs=bool(config.asymmetric_inputs),
        io_type=config.io_type,
    )
    return quantized, samples


_GRAPH_NOTES = {
    "float16": "float16 graph form: FULLY_CONNECTED weights stored in float16, each behind a DEQUANTIZE",
    "dynamic-int8": "dynamic-int8 graph form: FULLY_CONNECTED weights in int8 with one scale per output row "
    "(per channel); the kernels quantize each input row on the fly. FULLY_CONNECTED version 12 needs a TFLite "
    "runtime >= 2.17.0 in TensorFlow's release numbers (ai-edge-litert numbers its own releases: its 2.3.0 "
    "runs it; tflite-runtime 2.14 refuses it); --form fused runs from 2.3.0",
}


def _check_size(record: ModelRecord, config: CellConfig) -> None:
    """The float model within the 2 GiB limit: the file's, or the quantizer's starting point in memory."""
    if config.quantize == "none":
        check_size(record)
        return
    float_size = estimate_size(record)
    if float_size > guard.MODEL_SIZE_LIMIT:
        raise ConfigError(
            f"--quantize {config.quantize} starts from the float32 model in memory, which would be "
            f"{float_size / 2**30:.2f} GiB, over the 2 GiB model-size limit. Reduce num_units/input_size/num_proj."
        )


def _inputs(weights: object, calibration_data: str | Path | None) -> dict[str, str | Path | None]:
    """The files a build reads (weights given as arrays are none): the output may be none of them."""
    return {"--weights": weights if isinstance(weights, (str, Path)) else None, "--calibration-data": calibration_data}


def _check_overflow(layers: list[list[CellWeights]]) -> None:
    """Finite weights so large that the float32 kernel overflows are bad input, not a failed verification."""
    for cells in layers:
        for cell in cells:
            risk = overflow_risk(cell.tensors, f"{cell.source}{f' ({cell.layer})' if cell.layer else ''}")
            if risk:
                raise WeightFileError(risk + ".")


def _check_target(record: ModelRecord, config: CellConfig) -> None:
    """--target micro/ethos-u: refuse what the target cannot run, before anything is written."""
    if config.target == "tflite":
        return
    from lstmgen.targets.rules import TARGET_NAMES, check_target

    problems = check_target(record, config.target)
    if problems:
        raise ConfigError(
            f"--target {config.target}: {TARGET_NAMES[config.target]} cannot run this model: "
            + "; ".join(problems).rstrip(".")
            + ". Nothing was written. Build without those features, or for --target tflite."
        )
