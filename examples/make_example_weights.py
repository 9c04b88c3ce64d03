"""Regenerate examples/weights_tf1.npz: a seeded TF1-LSTMCell-layout cell used by `make demo`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_UNITS, INPUT_SIZE, NUM_PROJ = 32, 16, 24


def main() -> None:
    rng = np.random.default_rng(2024)
    f32 = np.float32
    arrays = {
        # TF1 LSTMCell layout: kernel acts on concat([x, h]) and packs the gates i, j, f, o.
        "kernel": (rng.standard_normal((INPUT_SIZE + NUM_PROJ, 4 * NUM_UNITS)) * 0.2).astype(f32),
        "bias": (rng.standard_normal(4 * NUM_UNITS) * 0.1).astype(f32),
        "w_i_diag": (rng.standard_normal(NUM_UNITS) * 0.1).astype(f32),
        "w_f_diag": (rng.standard_normal(NUM_UNITS) * 0.1).astype(f32),
        "w_o_diag": (rng.standard_normal(NUM_UNITS) * 0.1).astype(f32),
        "projection/kernel": (rng.standard_normal((NUM_UNITS, NUM_PROJ)) * 0.2).astype(f32),
    }
    out = Path(__file__).with_name("weights_tf1.npz")
    np.savez(out, **arrays)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
