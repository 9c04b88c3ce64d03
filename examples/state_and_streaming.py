"""Runnable example: reset, set and stream the LSTM state from Python with the TFLite interpreter.

lstmgen build --num-units 32 --input-size 16 --num-proj 24 -o lstm.tflite
python examples/state_and_streaming.py lstm.tflite
"""

from __future__ import annotations

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(path: str) -> None:
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    names = {d["name"]: d["index"] for d in it.get_tensor_details()}
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    batch, _, features = it.get_input_details()[0]["shape"]
    x = np.random.default_rng(0).standard_normal((batch, 20, features)).astype(np.float32)
    it.resize_tensor_input(inp, list(x.shape))  # a dynamic time axis: resize, then allocate
    it.allocate_tensors()

    it.reset_all_variables()  # the state persists across invoke(): zero it for a new sequence
    it.set_tensor(inp, x)
    it.invoke()
    whole = it.get_tensor(out)

    # Streaming: two invokes of 10 steps continue from the stored state and give the same output.
    it.resize_tensor_input(inp, [batch, 10, features])
    it.allocate_tensors()  # re-allocating after a resize zeroes the state too
    it.reset_all_variables()
    parts = []
    for chunk in (x[:, :10], x[:, 10:]):
        it.set_tensor(inp, np.ascontiguousarray(chunk))
        it.invoke()
        parts.append(it.get_tensor(out))
    streamed = np.concatenate(parts, axis=1)
    print(f"streamed == one-shot: {np.array_equal(streamed, whole)}")

    # Start from a given state: write h [B, P] and c [B, N] after the reset.
    h_index, c_index = names["lstm/output_state"], names["lstm/cell_state"]
    h_shape = it.get_tensor(h_index).shape
    it.reset_all_variables()
    it.set_tensor(h_index, np.full(h_shape, 0.1, np.float32))
    it.set_tensor(c_index, np.zeros(it.get_tensor(c_index).shape, np.float32))
    it.set_tensor(inp, np.ascontiguousarray(x[:, :10]))
    it.invoke()
    print(f"final h after a warm start: shape {it.get_tensor(h_index).shape}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lstm.tflite")
