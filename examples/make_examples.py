"""Regenerate every file the README's examples use (run from anywhere: python examples/make_examples.py).

NumPy-made files are always rewritten; encoder.npz needs torch and model.onnx needs onnx (skipped with a
message otherwise). The Keras files and the TF checkpoint are copies of TensorFlow-made test fixtures
(tests/fixtures/tf/, made by tests/fixtures/tf/make_fixtures.py), so no TensorFlow is needed here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TF_FIXTURES = HERE.parent / "tests" / "fixtures" / "tf"
F32 = np.float32

# examples file <- TF-made fixture (Keras 3 files and a TF1 Saver checkpoint)
COPIES = {
    "model.keras": "keras3_lstm.keras",  # one LSTM layer
    "stacked.weights.h5": "keras3_stacked.weights.h5",  # layers lstm, lstm_1
    "classifier.keras": "keras3_last_step.keras",  # return_sequences=False
    "tf1_ckpt/model.ckpt.index": "ckpt_tf1_peephole_proj/model.ckpt.index",  # scope rnn/lstm_cell
    "tf1_ckpt/model.ckpt.data-00000-of-00001": "ckpt_tf1_peephole_proj/model.ckpt.data-00000-of-00001",
    "tf1_ckpt/checkpoint": "ckpt_tf1_peephole_proj/checkpoint",
}


def tf1_cell(seed: int, units: int, inputs: int, proj: int | None, peepholes: bool) -> dict[str, np.ndarray]:
    """A TF1 LSTMCell's variables: kernel acts on concat([x, h]) and packs the gates i, j, f, o."""
    rng = np.random.default_rng(seed)
    out = proj or units
    arrays = {
        "kernel": (rng.standard_normal((inputs + out, 4 * units)) * 0.2).astype(F32),
        "bias": (rng.standard_normal(4 * units) * 0.1).astype(F32),
    }
    if peepholes:
        arrays.update({k: (rng.standard_normal(units) * 0.1).astype(F32) for k in ("w_i_diag", "w_f_diag", "w_o_diag")})
    if proj:
        arrays["projection/kernel"] = (rng.standard_normal((units, proj)) * 0.2).astype(F32)
    return arrays


def torch_encoder(path: Path) -> None:
    """A 2-layer bidirectional nn.LSTM(16, 32, batch_first=True)'s state_dict, saved as .npz."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(16, 32, num_layers=2, batch_first=True, bidirectional=True)

    torch.manual_seed(0)
    np.savez(path, **{k: v.numpy() for k, v in Encoder().state_dict().items()})


def onnx_lstm(path: Path) -> None:
    """An ONNX model with one forward LSTM node (input 16, hidden 32, layout 1 = batch-major)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array((rng.standard_normal((1, 128, 16)) * 0.2).astype(F32), "W"),
        numpy_helper.from_array((rng.standard_normal((1, 128, 32)) * 0.2).astype(F32), "R"),
        numpy_helper.from_array((rng.standard_normal((1, 256)) * 0.1).astype(F32), "B"),
    ]
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], name="lstm", hidden_size=32, layout=1)
    graph = helper.make_graph(
        [node], "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20, 1, 32])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="make_examples")
    onnx.save(model, str(path))


def main() -> None:
    # The `make demo` cell (examples/cell.toml): peepholes and a projection. Keep its seed: the README quotes its size.
    np.savez(HERE / "weights_tf1.npz", **tf1_cell(2024, 32, 16, 24, peepholes=True))
    # A plain cell (no peepholes, no projection) that every mode, int8 and TFLite Micro included, can take.
    np.savez(HERE / "kws_tf1.npz", **tf1_cell(2025, 32, 16, None, peepholes=False))
    rng = np.random.default_rng(11)
    np.save(HERE / "x.npy", rng.standard_normal((1, 20, 16)).astype(F32))  # one input [B, T, I]
    np.save(HERE / "calib.npy", rng.standard_normal((16, 1, 20, 16)).astype(F32))  # [n, B, T, I]
    for name, maker in (("encoder.npz", torch_encoder), ("model.onnx", onnx_lstm)):
        try:
            maker(HERE / name)
        except ImportError as exc:
            print(f"skipped {name}: {exc}")
    for dst, src in COPIES.items():
        (HERE / dst).parent.mkdir(exist_ok=True)
        shutil.copyfile(TF_FIXTURES / src, HERE / dst)
    print(f"wrote the example files in {HERE}")


if __name__ == "__main__":
    main()
