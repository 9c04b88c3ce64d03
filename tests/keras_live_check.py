"""Real Keras (the test venv has none): lstmgen.build(live layer or model) against its saved .keras file.

Run in a throwaway venv (tensorflow-cpu, h5py and lstmgen's dependencies), from the checkout:
    PYTHONPATH=$PWD /path/to/venv/bin/python tests/keras_live_check.py
Exit 0 when every live model and layer builds the bytes of its saved file and the Keras witness passes
(or says why it did not run). tests/test_api.py covers the same paths with duck-typed stand-ins.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import lstmgen

LSTM, Bi = keras.layers.LSTM, keras.layers.Bidirectional


def _cases() -> dict[str, tuple[Any, dict[str, Any]]]:
    def seq(*layers: Any) -> Any:
        return keras.Sequential([keras.Input((7, 5)), *layers])

    x = keras.Input((7, 5))
    head = keras.Model(x, keras.layers.Dense(2)(LSTM(6, return_sequences=True)(x)))
    return {
        "lstm": (seq(LSTM(6, return_sequences=True)), {}),
        "bidir": (seq(Bi(LSTM(4, return_sequences=True))), {"bidirectional": True}),
        "stacked": (seq(LSTM(6, return_sequences=True), LSTM(3, return_sequences=True)), {"num_layers": 2}),
        "last_step_relu": (seq(LSTM(6, activation="relu")), {}),
        "go_backwards": (seq(LSTM(6, go_backwards=True, return_sequences=True)), {}),
        "functional_head": (head, {}),
    }


def main() -> int:
    keras.utils.set_random_seed(0)
    ok = True
    folder = tempfile.mkdtemp()
    for name, (model, opts) in _cases().items():
        for w in model.weights:  # non-zero biases, so a bias mix-up shows
            if "bias" in w.path:
                w.assign(np.random.default_rng(1).standard_normal(w.shape).astype("float32") * 0.3)
        path = f"{folder}/{name}.keras"
        model.save(path)
        saved = lstmgen.build(path, **opts)
        model.save_weights(f"{folder}/{name}.weights.h5")  # weights only: the layers' order and config assumed
        built = {"model": lstmgen.build(model, **opts)}
        # A weights-only file cannot say go_backwards, relu or return_sequences=False: the build assumes the defaults.
        if name not in ("go_backwards", "last_step_relu"):
            built["weights.h5"] = lstmgen.build(f"{folder}/{name}.weights.h5", **opts)
        lstms = [la for la in model.layers if type(la).__name__ in ("LSTM", "Bidirectional")]
        if len(lstms) == 1:
            built["layer"] = lstmgen.build(lstms[0], **opts)
        for what, result in built.items():
            same = result.data == saved.data
            witness = result.framework.summary().strip() if result.framework else "no live object, no witness"
            ok = ok and same and (result.framework is None or result.framework.passed is not False)
            print(f"{name} {what}: same bytes as the .keras file: {same}; {witness}")
    ok = _tf_keras(folder) and ok
    print("keras", keras.__version__, "ALL SAME" if ok else "DIFFERENCES")
    return 0 if ok else 1


def _tf_keras(folder: str) -> bool:
    """Keras 2 (tf_keras, where installed): its .h5 and .keras files and the live model and layer."""
    try:
        import tf_keras
    except ImportError:
        print("tf_keras not installed: Keras 2 not checked")
        return True
    ok = True
    for name, layers, opts in (
        ("k2_lstm", [tf_keras.layers.LSTM(6, return_sequences=True)], {}),
        (
            "k2_bidir",
            [tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(4, return_sequences=True))],
            {"bidirectional": True},
        ),
        ("k2_stacked", [tf_keras.layers.LSTM(6, return_sequences=True), tf_keras.layers.LSTM(3)], {"num_layers": 2}),
    ):
        model = tf_keras.Sequential([tf_keras.Input((7, 5)), *layers])
        model.save(f"{folder}/{name}.h5")
        model.save(f"{folder}/{name}.keras")
        live = lstmgen.build(model, **opts)
        same = all(lstmgen.build(f"{folder}/{name}.{ext}", **opts).data == live.data for ext in ("h5", "keras"))
        fw = live.framework
        ok = ok and same and fw is not None and fw.passed is True
        print(f"{name}: .h5 and .keras give the live model's bytes: {same}; {fw.summary().strip() if fw else ''}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
