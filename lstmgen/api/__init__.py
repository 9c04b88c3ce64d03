"""The stable Python API: build, verify, run, inspect and export, on files or live framework objects.

Everything here is reached as `lstmgen.<name>` (the package's lazy facade); other modules are private
and may move. Sources may be a weight file's path, a live torch.nn.LSTM (or a module holding one,
with `layer=`), a Keras LSTM/Bidirectional layer or model, an onnx.ModelProto, or a dict of arrays in
any supported layout: live objects are read by the same readers as their saved files, so a module
and its saved state_dict give byte-identical models.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.errors import VerificationError
from lstmgen.weights import load_weights

if TYPE_CHECKING:
    from lstmgen.api._witness import FrameworkReport
    from lstmgen.build import BuildResult as BuildDetails
    from lstmgen.check.verify import VerifyReport
    from lstmgen.export import ExportResult

# Documented here (make docs) under the names the package gives them: lstmgen.CellConfig, lstmgen.load_weights.
__all__ = ["BuildResult", "CellConfig", "build", "export", "inspect", "load_weights", "run", "verify"]

# Keys of a config file (or **options) that choose the inputs rather than describe the cell.
_INPUT_KEYS = ("weights", "weights_format", "layer", "calibration_data", "calibration")


@dataclass
class BuildResult:
    """One build: the model's bytes, where they were saved, the verification reports and the summary."""

    data: bytes  # the .tflite file's bytes
    path: Path | None  # where build() saved it (None: in memory only; see save())
    details: BuildDetails  # everything the build found (config, notes, per-layer shapes, timings)

    @property
    def report(self) -> VerifyReport | None:
        """Interpreter vs NumPy reference, and `.against_source` (None: built with verify=False)."""
        return self.details.verification

    @property
    def framework(self) -> FrameworkReport | None:
        """A live torch/Keras source run itself on the model's input (the third witness), or None."""
        return self.report.framework if self.report is not None else None

    @property
    def summary(self) -> str:
        """The text `lstmgen build` prints."""
        from lstmgen.cli.cmd_build import _build_text

        text = _build_text(self.details)
        return text + ("\n" + self.framework.summary() if self.framework is not None else "")

    def save(self, path: str | Path) -> Path:
        """Write the model to `path` atomically (never partial; an existing file is replaced whole)."""
        from lstmgen.output import write_atomic

        source = self.details.weights_source  # a weight file the model was built from may not be overwritten
        write_atomic(Path(path), self.data, inputs={"weights": source if Path(source).is_file() else None})
        return Path(path)

    def to_dict(self) -> dict[str, Any]:
        """What `lstmgen build --json` prints (with verification.framework for a live torch/Keras source)."""
        return self.details.to_dict()

    def _repr_markdown_(self) -> str:
        from lstmgen.cli.summary_md import build_markdown

        return build_markdown(self.to_dict())


def build(
    source: object = None,
    out: str | Path | None = None,
    *,
    config: str | Path | None = None,
    layer: str | None = None,
    weights_format: str = "auto",
    verify: bool = True,
    runtime: str = "auto",
    calibration_data: str | Path | None = None,
    calibration: str = "data",
    max_error: float | None = None,
    progress: Callable[[str], None] | None = None,
    **cell_options: Any,
) -> BuildResult:
    """Build (and by default verify) a model; save it to `out` when given.

    `source`: a weight file's path, a live object (see the module docstring), a config file (.toml/.json),
    or None for random weights (`--init`). `config`: a TOML/JSON config file (its `weights` is the source
    when none is given).
    `cell_options`: the CLI's cell options by their config names (num_units=64, cell_clip=3.0,
    quantize="int8", ...), overriding the config file. Raises lstmgen.errors.LstmgenError subclasses on
    bad input and VerificationError when a check fails (then nothing is saved).

    Example:
        >>> result = lstmgen.build("examples/weights_tf1.npz", "lstm.tflite", cell_clip=3.0)   # doctest: +SKIP
        >>> print(result.summary)                                                               # doctest: +SKIP
    """
    from lstmgen.build import build as run_build
    from lstmgen.output import check_target

    if config is None and isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".toml", ".json"):
        config, source = source, None  # a config file given as the source (no weight format is TOML or JSON)
    options, inputs = _options(config, cell_options)
    source = source if source is not None else inputs.get("weights")
    layer = layer or inputs.get("layer")
    weights_format = weights_format if weights_format != "auto" else inputs.get("weights_format", "auto")
    if out is not None:
        check_target(Path(out), {"source": source if isinstance(source, (str, Path)) else None})
    with _weights(source, weights_format) as weights, tempfile.TemporaryDirectory(prefix="lstmgen-") as tmp:
        target = Path(tmp) / (Path(out).name if out is not None else "model.tflite")
        details = run_build(
            target,
            options,
            weights,
            weights_format=weights_format if isinstance(weights, (str, Path)) else "auto",
            layer=layer,
            calibration_data=calibration_data or inputs.get("calibration_data"),
            calibration=inputs.get("calibration", calibration),
            verify=verify,
            runtime=runtime,
            progress=progress,
            max_error=max_error,
        )
        if details.verification is not None:
            details.verification.framework = _framework_witness(source, target, details, layer)
        result = BuildResult(target.read_bytes(), None, details)
    details.output = str(out) if out is not None else "(in memory)"
    if details.verification is not None:
        details.verification.model = details.output
    if out is not None:
        result.path = result.save(out)
    return result


def _options(config: str | Path | None, cell_options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cell options (config file, then keyword arguments) and the input keys the config file names."""
    from lstmgen.config import check_keys, load_config_file

    options: dict[str, Any] = dict(load_config_file(Path(config))) if config is not None else {}
    check_keys(options, str(config))
    inputs = {k: options.pop(k) for k in _INPUT_KEYS if k in options}
    options.update({k: v for k, v in cell_options.items() if v is not None})
    return options, inputs


@contextlib.contextmanager
def _weights(source: object, weights_format: str) -> Iterator[Any]:
    """A path as given (build opens it), a live object opened by its saved form's reader, or None."""
    if source is None or isinstance(source, (str, Path)):
        yield source
        return
    from lstmgen.weights.live import open_live

    with open_live(source, weights_format) as opened:
        yield opened


def _framework_witness(source: object, model: Path, details: BuildDetails, layer: str | None) -> FrameworkReport | None:
    """The live object run on the model's input; VerificationError when it disagrees (nothing is saved)."""
    if source is None or isinstance(source, (str, Path)):
        return None
    from lstmgen.api._witness import framework_report

    options = details.config.to_dict()
    report = framework_report(source, model, options, layer)
    if report is not None and report.passed is False:
        raise VerificationError(
            f"verification failed against {report.framework} itself: the model's output differs from the live "
            f"object's on input {report.input_shape} by up to {report.max_abs_error:.3g} (tolerance "
            f"{report.tolerance}), although it passed against the NumPy reference of the same weights. No model "
            "was written. The object may compute something its weights and config do not say (a subclass, a "
            "hook); please report it to lstmgen with the object's class.",
            payload={"framework": report.to_dict()},
        )
    return report


def verify(
    model: str | Path | bytes | BuildResult,
    source: object = None,
    *,
    layer: str | None = None,
    weights_format: str = "auto",
    runtime: str = "auto",
    seed: int = 0,
    x: np.ndarray | None = None,
    micro: bool = False,
    max_error: float | None = None,
    **cell_options: Any,
) -> VerifyReport:
    """Run `model` in a TFLite interpreter against the NumPy reference; `.passed` is the verdict.

    With `source` (a weight file or a live object, plus the cell options the source does not state),
    the model is also judged against the source's own equations (`report.against_source`), and a live
    torch/Keras object is run itself (`report.framework`, also counted in `.passed`).

    Example:
        >>> lstmgen.verify("lstm.tflite", "examples/weights_tf1.npz", cell_clip=3.0).passed   # doctest: +SKIP
        True
    """
    from lstmgen.check.verify import verify_model

    with _model_file(model) as path:
        reference = None
        if source is not None:
            with _weights(source, weights_format) as weights:
                reference = _reference(weights, weights_format, layer, cell_options)
        elif cell_options or max_error is not None:
            from lstmgen.errors import ConfigError

            raise ConfigError("max_error and the cell options describe the source LSTM: pass the source too.")
        report = verify_model(path, runtime=runtime, seed=seed, x=x, micro=micro, source=reference, max_error=max_error)
        report.model = str(model) if isinstance(model, (str, Path)) else "(in memory)"
        if source is not None and not isinstance(source, (str, Path)):
            from lstmgen.api._witness import framework_report

            options = {**cell_options, "num_layers": cell_options.get("num_layers", 1)}
            report.framework = framework_report(source, path, options, layer)
    return report


def _reference(weights: Any, weights_format: str, layer: str | None, options: Mapping[str, Any]) -> Any:
    """The source reference of a path or an opened live source, with the build's rules for what it implies."""
    from lstmgen.errors import ConfigError
    from lstmgen.pipeline.resolve import load_stack, resolve
    from lstmgen.pipeline.verify_gate import source_reference
    from lstmgen.weights import open as open_weights

    if isinstance(weights, (str, Path)):
        with open_weights(weights, weights_format) as opened:
            layers = load_stack(opened, layer, options.get("num_layers"))
    else:
        layers = load_stack(weights, layer, options.get("num_layers"))
    config, layers, _, _ = resolve(dict(options), layers)
    reference, why = source_reference(config, layers, options.get("forget_bias"))
    if reference is None:
        raise ConfigError(f"{weights}: {why}; the model cannot be checked against it.")
    return reference


@contextlib.contextmanager
def _model_file(model: str | Path | bytes | BuildResult) -> Iterator[Path]:
    """A model given as a path, as bytes or as a BuildResult, as a file the interpreter can open."""
    if isinstance(model, BuildResult):
        model = model.path if model.path is not None else model.data
    if isinstance(model, (str, Path)):
        yield Path(model)
        return
    with tempfile.TemporaryDirectory(prefix="lstmgen-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(bytes(model))
        yield path


def run(
    model: str | Path | bytes | BuildResult,
    x: np.ndarray,
    *,
    initial: list[tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    chunk: int | None = None,
    runtime: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feed `x` through the model: (output, final h, final c of the last LSTM op).

    `initial` gives (h0, c0) per LSTM op (None: zeros); `chunk=N` feeds N steps per invoke, carrying
    the states (bitwise equal to one invoke).
    """
    from lstmgen.run import run_model

    with _model_file(model) as path:
        return run_model(path, x, initial=initial, chunk=chunk, runtime=runtime)


def inspect(model: str | Path | bytes | BuildResult) -> dict[str, Any]:
    """What `lstmgen inspect --json` prints: layers, hyperparameters, slots, types/scales, versions."""
    from lstmgen.describe import describe

    with _model_file(model) as path:
        info = describe(path)
    if not isinstance(model, (str, Path)):
        info["path"] = "(in memory)"
    return info


def export(
    model: str | Path | bytes | BuildResult,
    out: str | Path,
    format: str,
    *,
    layer: str | None = None,
    forget_bias: float | None = None,
) -> ExportResult:
    """Write the model's LSTM weights to an .npz in `format`'s layout (tflite, tf1, keras, torch, onnx)."""
    from lstmgen.export import export_weights

    with _model_file(model) as path:
        return export_weights(path, out, format, layer, forget_bias)
