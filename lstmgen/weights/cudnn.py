"""cuDNN's LSTM weights: Keras 2 CuDNNLSTM arrays into Keras LSTM layout, and TF CudnnLSTM opaque blobs.

Keras 2's CuDNNLSTM stores kernel [I, 4N], recurrent_kernel [N, 4N] and bias [8N] (gates i, f, c, o;
cuDNN's input biases, then its recurrent biases). tf_keras' legacy HDF5 loader converts them for an
LSTM layer in `_convert_rnn_weights` (tf_keras/src/saving/legacy/hdf5_format.py); this does the same:
each gate's input kernel is re-laid from cuDNN's layout (k.T.reshape(k.shape, order="F")), each gate's
recurrent kernel is transposed, and the two bias halves are summed.
"""

from __future__ import annotations

import numpy as np

GATES = 4  # i, f, c, o in both cuDNN and Keras


def is_cudnn_bias(bias_shape: tuple[int, ...], units: int) -> bool:
    """A [8*units] bias: cuDNN's two bias vectors, as CuDNNLSTM stores them (tf_keras tells them so)."""
    return tuple(bias_shape) == (2 * GATES * units,)


def keras_from_cudnn(
    kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CuDNNLSTM (kernel, recurrent_kernel, bias [8N]) -> LSTM (kernel, recurrent_kernel, bias [4N]), as
    tf_keras' _convert_rnn_weights(from_cudnn=True) does it."""
    kernels = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(kernel, GATES)])
    recurrents = np.hstack([k.T for k in np.hsplit(recurrent, GATES)])
    biases = np.sum(np.split(bias, 2, axis=0), axis=0)
    return kernels, recurrents, biases.astype(bias.dtype)
