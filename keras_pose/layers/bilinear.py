"""Bilinear initialisation of transposed convolutions (FCN; Bulat & Tzimiropoulos, ECCV 2016, Sec. 3.4).

Reference:
    J. Long, E. Shelhamer, T. Darrell. "Fully convolutional networks for
    semantic segmentation." CVPR 2015 (``upsample_filt`` in the FCN code).
"""

from __future__ import annotations

import math

import keras
import numpy as np


def bilinear_filter_1d(size):
    """The 1-D FCN bilinear filter of length ``size``.

    ``f = ceil(size / 2)``, ``c = f - 1`` if size is odd else ``f - 0.5``,
    ``w(u) = 1 - |u - c| / f`` for u = 0..size-1. Size 4 gives
    [.25, .75, .75, .25].
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"bilinear filter size must be >= 1, received {size}")
    f = math.ceil(size / 2)
    c = f - 1 if size % 2 == 1 else f - 0.5
    return 1.0 - np.abs(np.arange(size, dtype=np.float64) - c) / f


@keras.saving.register_keras_serializable(package="keras_pose")
class BilinearKernel(keras.initializers.Initializer):
    """FCN bilinear kernel for a stock ``keras.layers.Conv2DTranspose``.

    The kernel shape is ``(kh, kw, C_out, C_in)`` (Keras' Conv2DTranspose
    layout); ``W[:, :, i, j] = outer(w_h, w_w)`` if ``i == j`` and 0 otherwise,
    with ``w`` from ``bilinear_filter_1d``: per-channel upsampling, no
    cross-channel mixing. Pair it with a zero bias.

    With kernel size ``2 * stride`` and ``padding="same"`` the transposed
    convolution reproduces ``tf.image.resize(..., "bilinear")`` (half-pixel
    centres) exactly away from the borders. With kernel size == stride it is
    NOT an interpolator (k = 2 gives 0.25 everywhere, so a constant input
    comes out at a quarter of its value); that is the literal formula the paper
    cites for its 4x4/4 and 2x2/2 deconvolutions.

    Args:
        None.

    Returns:
        A kernel tensor of the requested shape and dtype.

    Example:
        >>> up = keras.layers.Conv2DTranspose(
        ...     16, 8, strides=4, padding="same",
        ...     kernel_initializer=BilinearKernel(), bias_initializer="zeros")

    Reference:
        Long, Shelhamer & Darrell, "Fully convolutional networks for semantic
        segmentation", CVPR 2015; Bulat & Tzimiropoulos, "Human pose estimation
        via convolutional part heatmap regression", ECCV 2016, Sec. 3.
    """

    def __call__(self, shape, dtype=None):
        shape = tuple(int(v) for v in shape)
        if len(shape) != 4:
            raise ValueError(
                f"BilinearKernel expects a Conv2DTranspose kernel shape (kh, kw, C_out, C_in), received {shape}"
            )
        kh, kw, c_out, c_in = shape
        if c_out != c_in:
            raise ValueError(
                "BilinearKernel upsamples each channel separately, so the Conv2DTranspose must keep the channel "
                f"count: filters (C_out) = {c_out} but the input has C_in = {c_in} channels (kernel shape {shape})"
            )
        kernel2d = np.outer(bilinear_filter_1d(kh), bilinear_filter_1d(kw))
        kernel = kernel2d[:, :, None, None] * np.eye(c_out)[None, None, :, :]
        dtype = keras.backend.standardize_dtype(dtype or keras.backend.floatx())
        return keras.ops.convert_to_tensor(kernel.astype(dtype), dtype=dtype)

    def get_config(self):
        return {}


def bilinear_upsample(filters, stride, name=None, trainable=True):
    """A ``Conv2DTranspose`` that starts as an exact bilinear x``stride`` upsampler.

    Kernel ``2 * stride``, ``strides=stride``, ``padding="same"``,
    ``BilinearKernel`` initialiser and a zero-initialised bias. The input must
    have ``filters`` channels.

    Args:
        filters: number of channels (input and output).
        stride: the upsampling factor.
        name: optional layer name.
        trainable: whether the kernel and bias are trained.

    Returns:
        A ``keras.layers.Conv2DTranspose``.
    """
    stride = int(stride)
    return keras.layers.Conv2DTranspose(
        filters,
        2 * stride,
        strides=stride,
        padding="same",
        use_bias=True,
        kernel_initializer=BilinearKernel(),
        bias_initializer="zeros",
        name=name,
        trainable=trainable,
    )
