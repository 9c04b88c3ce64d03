"""`build`: resolve config + weights, lay out the model, write it atomically, verify it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import CellConfig
from .errors import ConfigError, VerificationError
from .flatbuf import serialize
from .init import init_weights
from .lstm import layout
from .output import write_atomic
from .verify import VerifyReport, verify_model
from .weights import CellWeights, load_weights


def resolve(options: Mapping[str, Any], weights: CellWeights | None) -> tuple[CellConfig, CellWeights, list[str]]:
    """Merge explicit options with what the weights imply; conflicts are errors, not guesses."""
    opts = {k: v for k, v in options.items() if v is not None}
    notes: list[str] = []
    if weights is not None:
        for key, value in weights.implied().items():
            if key in opts and opts[key] != value and not (key == "use_peepholes" and opts[key] and value):
                shown = "not set" if value is None else value
                raise ConfigError(
                    f"--{key.replace('_', '-')} {opts[key]!r} disagrees with {weights.source}, which implies "
                    f"{key} = {shown}. Drop the option (it is inferred) or use matching weights."
                )
            opts[key] = value
    for key in ("num_units", "input_size"):
        if key not in opts:
            raise ConfigError(f"{key} is required when no --weights are given (e.g. --num-units 64 --input-size 32).")
    if weights is None:
        config = CellConfig(**opts)
        weights = init_weights(config)
    fb_default = weights.forget_bias_default
    fb = opts.get("forget_bias", fb_default)
    opts["forget_bias"] = float(fb)
    config = CellConfig(**opts)
    if fb:
        if options.get("forget_bias") is not None:
            why = "given explicitly"
        elif weights.format.startswith("init"):
            why = "TFLiteLSTMCell's default, used with --init"
        else:
            why = f"default for {weights.format}: that framework adds it at run time"
        notes.append(f"forget_bias {fb:g} folded into forget_gate_bias ({why})")
    else:
        notes.append(f"forget_bias 0 (biases taken as complete: {weights.format})")
    return config, weights, notes


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
        }


CONFIG_FIELDS = tuple(f.name for f in fields(CellConfig))


def build(
    output: str | Path,
    options: Mapping[str, Any] | CellConfig,
    weights: str | Path | CellWeights | None = None,
    *,
    weights_format: str = "auto",
    layer: str | None = None,
    verify: bool = True,
    runtime: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build, write and (by default) verify one model; raises LstmgenError subclasses on bad input.

    Example:
        >>> build("model.tflite", {"num_units": 64, "input_size": 32})      # doctest: +SKIP
    """
    say = progress or (lambda _msg: None)
    opts = options.to_dict() if isinstance(options, CellConfig) else dict(options)
    unknown = sorted(set(opts) - set(CONFIG_FIELDS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(CONFIG_FIELDS)}.")
    t0 = time.perf_counter()
    if weights is None and weights_format != "auto":
        raise ConfigError(
            f"--weights-format {weights_format} was given without --weights; pass the weight file "
            "(or drop --weights-format to use --init)."
        )
    if isinstance(weights, (str, Path)):
        say(f"reading weights {weights}")
        weights = load_weights(weights, weights_format, layer)
    config, cell_weights, notes = resolve(opts, weights)
    notes = [*cell_weights.notes, *notes]
    t1 = time.perf_counter()
    provenance = {
        "weights_format": cell_weights.format,
        "weights_file": Path(cell_weights.source).name if weights is not None else cell_weights.source,
        "notes": notes,
    }
    record = layout(config, cell_weights.tensors, cell_weights.source, provenance)
    say("writing model")
    data = serialize(record)
    t2 = time.perf_counter()
    result = BuildResult(
        str(output), config, cell_weights.format, cell_weights.source, cell_weights.layer, len(data), notes
    )

    def check(tmp: Path) -> None:
        if not verify:
            return
        say("verifying against the NumPy reference")
        report = verify_model(tmp, runtime=runtime, seed=config.seed)
        report.model = str(output)
        result.verification = report
        if not report.passed:
            raise VerificationError(
                f"verification failed: max abs error {report.max_abs_error:.3g} exceeds the tolerance "
                f"(atol {report.atol:g} + rtol {report.rtol:g}·|ref|) on {report.runtime} {report.runtime_version}; "
                f"no model was written. Please report this with the command line used.",
                payload={"verification": report.to_dict()},
            )

    write_atomic(Path(output), data, check)
    t3 = time.perf_counter()
    result.seconds = {
        "read": round(t1 - t0, 4),
        "layout_and_write": round(t2 - t1, 4),
        "verify_and_save": round(t3 - t2, 4),
    }
    return result
