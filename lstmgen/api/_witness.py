"""The framework itself as a third witness: a live torch/Keras object run on the input the model gets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.weights.live import kind

# float32 framework vs float32 interpreter: both round, so the bound is the sum of two float32 paths
# (the interpreter-vs-float64 check uses 1e-5 + 1e-5|ref|); a wrong gate order or bias gives >= 1e-2.
ATOL = 5e-5
RTOL = 5e-5
TIME_STEPS = 20  # for a model with a dynamic time axis
# Options that change the math away from what the framework object computes (it has no such setting).
_NOT_FRAMEWORK = {"cell_clip": 0.0, "proj_clip": 0.0}
# Keras layers that leave a value unchanged at inference: a model of these and LSTMs is its LSTM stack.
_KERAS_TRANSPARENT = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout")


@dataclass
class FrameworkReport:
    """The model against the live framework object itself (beside the source reference and the interpreter)."""

    framework: str
    passed: bool | None  # None: not run (`reason` says why)
    max_abs_error: float | None = None
    input_shape: list[int] = field(default_factory=list)
    tolerance: str = f"{ATOL:g} + {RTOL:g}·|framework|"
    reason: str = ""

    def summary(self) -> str:
        if self.passed is None:
            return f"  against {self.framework} itself: not run ({self.reason})"
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"  against {self.framework} itself on input {self.input_shape}: max abs error "
            f"{self.max_abs_error:.3g} (tolerance {self.tolerance}): {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def framework_report(obj: object, model: Path, options: dict[str, Any], layer: str | None) -> FrameworkReport | None:
    """Run the model and the live object on one seeded input; None when `obj` is no torch/Keras object."""
    from lstmgen.modelinfo import read_lstm_model
    from lstmgen.run import run_model

    family = kind(obj)
    if family not in ("torch", "keras"):
        return None
    name = _framework_name(obj, family)
    changed = [f"{k}={options[k]}" for k, off in _NOT_FRAMEWORK.items() if options.get(k) not in (None, off)]
    if options.get("quantize", "none") != "none":
        changed.append(f"quantize={options['quantize']} (the source check judges it)")
    if family == "torch" and options.get("forget_bias"):
        changed.append(f"forget_bias={options['forget_bias']}")
    if changed:
        return FrameworkReport(name, None, reason=f"the build's {', '.join(changed)} is no setting of the object")
    runner = _torch_runner(obj, layer, options) if family == "torch" else _keras_runner(obj)
    if isinstance(runner, str):
        return FrameworkReport(name, None, reason=runner)
    lm = read_lstm_model(model)
    shape = list(lm.input.shape)
    axis = 0 if lm.time_major else 1
    if list(lm.input.shape_signature or shape)[axis] == -1:  # a dynamic time axis: the object's own, or some
        shape[axis] = (_keras_time_steps(obj) if family == "keras" else None) or TIME_STEPS
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y_model = run_model(model, x)[0]
    x_bt = np.swapaxes(x, 0, 1) if lm.time_major else x
    try:
        y_fw = runner(x_bt)
    except Exception as exc:  # the object refused the input (a fixed shape, a device): no verdict, say why
        why = " ".join(str(exc).split())[:200]
        return FrameworkReport(
            name, None, input_shape=shape, reason=f"it refused the input: {type(exc).__name__}: {why}"
        )
    got = np.swapaxes(y_model, 0, 1) if lm.time_major and y_model.ndim == 3 else y_model
    if got.ndim == 2 and y_fw.ndim == 3:  # the model returns the last step: as the framework's sequence gives it
        y_fw = _last_step(y_fw, options)
    if got.shape != y_fw.shape:
        return FrameworkReport(name, None, reason=f"its output {list(y_fw.shape)} is not the model's {list(got.shape)}")
    err = np.abs(got.astype(np.float64) - y_fw)
    passed = bool(np.all(err <= ATOL + RTOL * np.abs(y_fw)))
    return FrameworkReport(name, passed, float(err.max(initial=0.0)), shape)


def _keras_time_steps(obj: Any) -> int | None:
    """The time steps a Keras model's input declares (Input((7, 5)) -> 7), or None (dynamic, or a bare layer)."""
    try:
        inputs = getattr(obj, "inputs", None)
        shape = tuple(inputs[0].shape) if inputs else tuple(getattr(obj, "input_shape", ()) or ())
    except Exception:  # a layer never called, several inputs, ...: nothing declared
        return None
    steps = shape[1] if len(shape) == 3 else None
    return int(steps) if isinstance(steps, int) and steps > 0 else None


def _last_step(y: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    if not options.get("bidirectional"):
        return y[:, -1]
    half = y.shape[-1] // 2  # the backward direction's last processed step is the first input position
    return np.concatenate([y[:, -1, :half], y[:, 0, half:]], axis=-1)


def _framework_name(obj: object, family: str) -> str:
    import sys

    package = type(obj).__module__.partition(".")[0]  # torch, keras, tf_keras (Keras 2), or a test's module
    module = sys.modules.get(package if package in ("torch", "keras", "tf_keras") else family)
    version = getattr(module, "__version__", None)
    return f"{family} {version}" if version else family


def _torch_runner(obj: Any, layer: str | None, options: dict[str, Any]) -> Any:
    """A function x [B,T,I] -> the nn.LSTM's output [B,T,F], or why the object cannot be run alone."""
    import torch

    lstms = {n: m for n, m in obj.named_modules() if isinstance(m, torch.nn.LSTM)}
    want = (layer or "").strip(".")
    picked = lstms.get(want) if layer else (next(iter(lstms.values())) if len(lstms) == 1 else None)
    if picked is None:
        return f"layer {layer!r} is not one nn.LSTM of the module" if layer else "the module holds several nn.LSTMs"
    if options.get("num_layers", 1) != picked.num_layers:
        return f"the model has {options.get('num_layers', 1)} of the nn.LSTM's {picked.num_layers} layers"

    def run(x: np.ndarray) -> np.ndarray:
        weight = next(picked.parameters())  # the module's device and dtype (a GPU or float64 module too)
        t = torch.from_numpy(x if picked.batch_first else np.swapaxes(x, 0, 1).copy()).to(weight.device, weight.dtype)
        training = picked.training
        picked.eval()  # inference: no dropout between layers (the model has none)
        try:
            with torch.no_grad():
                y = picked(t)[0].detach().cpu().double().numpy()
        finally:
            picked.train(training)
        return y if picked.batch_first else np.swapaxes(y, 0, 1)

    return run


def _keras_runner(obj: Any) -> Any:
    """A function x [B,T,I] -> the layer's (or LSTM-only model's) output, or why it cannot be compared."""
    layers = getattr(obj, "layers", None)
    if layers is not None and type(obj).__name__ not in ("Bidirectional", "LSTM", "RNN"):
        others = [type(la).__name__ for la in layers if type(la).__name__ not in (*_KERAS_TRANSPARENT, "LSTM")]
        if [o for o in others if o != "Bidirectional"]:
            return f"the model holds other layers ({', '.join(sorted(set(others)))}) besides its LSTMs"
    config: dict[str, Any] = obj.get_config()
    if config.get("return_state"):
        return "the layer returns its states (return_state=True)"

    def run(x: np.ndarray) -> np.ndarray:
        y = obj(x)
        y = y.numpy() if hasattr(y, "numpy") else y
        return np.asarray(y, np.float64)

    return run
