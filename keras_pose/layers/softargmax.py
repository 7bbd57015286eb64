"""Spatial softmax and soft-argmax (Luvizon, Tabia & Picard, C&G 2019, Eq. 1-4).

Reference:
    D. C. Luvizon, H. Tabia, D. Picard. "Human pose regression by combining
    indirect part detection and contextual information." Computers & Graphics
    85 (2019). Official code: https://github.com/dluvizon/pose-regression
"""

from __future__ import annotations

import keras
from keras import ops

RAMPS = ("linspace", "paper", "center")


def _check_ramp(ramp):
    if ramp not in RAMPS:
        raise ValueError(f"`ramp` must be one of {RAMPS}, received {ramp!r}")


def coordinate_ramp(size, ramp="linspace", dtype="float32"):
    """The normalised coordinate X_c of each of ``size`` columns (or rows).

    - ``"linspace"``: ``c / (size - 1)`` for c = 0..size-1, i.e.
      ``np.linspace(0, 1, size)`` (official code; 0 when size == 1).
    - ``"paper"``: ``i / size`` for i = 1..size (Eq. 3 as printed).
    - ``"center"``: ``(c + 0.5) / size``, the cell centres in the corner
      convention (top-left image corner 0, bottom-right corner 1).
    """
    _check_ramp(ramp)
    c = ops.cast(ops.arange(size), dtype)
    n = ops.cast(size, dtype)
    if ramp == "linspace":
        return c / ops.maximum(n - 1.0, 1.0)
    if ramp == "paper":
        return (c + 1.0) / n
    return (c + 0.5) / n


def spatial_softmax(logits):
    """Per-channel softmax over the spatial axes of (B, H, W, N) logits.

    The per-channel spatial max is subtracted first (official code), so the
    result is finite for any finite logits.

    Returns:
        (B, H, W, N) probabilities; each channel sums to 1 over H x W.
    """
    logits = ops.convert_to_tensor(logits)
    peak = ops.stop_gradient(ops.max(logits, axis=(1, 2), keepdims=True))
    e = ops.exp(logits - peak)
    return e / ops.sum(e, axis=(1, 2), keepdims=True)


def soft_argmax(logits, ramp="linspace"):
    """Expected (x, y) under the spatial softmax of each channel.

    Args:
        logits: (B, H, W, N) heatmap logits.
        ramp: one of ``"linspace"``, ``"paper"``, ``"center"``; see
            ``coordinate_ramp``.

    Returns:
        (B, N, 2) normalised coordinates ordered (x, y); x runs along the width.
    """
    _check_ramp(ramp)
    prob = spatial_softmax(logits)
    shape = ops.shape(prob)
    x, y = expected_position(prob, coordinate_ramp(shape[2], ramp, prob.dtype),
                             coordinate_ramp(shape[1], ramp, prob.dtype))
    return ops.stack([x, y], axis=-1)


def expected_position(prob, ramp_x, ramp_y):
    """(x, y), each (B, N): the expectation of column ``ramp_x`` and row ``ramp_y`` values under
    (B, H, W, N) spatial probabilities."""
    x = ops.sum(ops.sum(prob, axis=1) * ramp_x[None, :, None], axis=1)  # marginal over rows: (B, W, N)
    y = ops.sum(ops.sum(prob, axis=2) * ramp_y[None, :, None], axis=1)
    return x, y


def _check_rank4(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer.__class__.__name__} '{layer.name}' expects (B, H, W, C) inputs, received shape {tuple(input_shape)}"
        )


@keras.saving.register_keras_serializable(package="keras_pose")
class SpatialSoftArgmax(keras.layers.Layer):
    """Soft-argmax: per-channel spatial softmax, then the expected (x, y).

    The softmax is taken over H x W for each channel after subtracting the
    channel's max (stable for any finite logits); the expectation uses fixed
    coordinate ramps, so the layer has no weights.

    The default ramp is ``"linspace"`` (X_c = c / (W - 1)), NOT the paper's
    Eq. 3 (i / W, i = 1..W): the official code (``posereg/math.py``, and
    ``deephar``) builds the ramp with ``np.linspace(0, 1, W)`` and the released
    models were trained with it, so that is the ramp that reproduces them.
    ``"center"`` ((c + 0.5) / W) is the unbiased choice for the corner
    convention of the targets (top-left image corner 0, bottom-right 1); the
    ramps differ by at most 1 / W, which end-to-end training absorbs.

    Args:
        ramp: ``"linspace"`` (default, official code), ``"paper"`` or
            ``"center"``.
        output_size: optional (H_img, W_img). If given, the output is in image
            pixel coordinates, ``x_pix = x_norm * W_img - 0.5`` (pixel centres
            at integers); otherwise normalised coordinates.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Returns:
        (B, N, 2) coordinates ordered (x, y) for (B, H, W, N) logits.

    Example:
        >>> layer = SpatialSoftArgmax()
        >>> tuple(layer(np.zeros((1, 32, 32, 16), "float32")).shape)
        (1, 16, 2)

    Reference:
        Luvizon, Tabia & Picard, "Human pose regression by combining indirect
        part detection and contextual information", C&G 2019, Eq. 1-4.
    """

    def __init__(self, ramp="linspace", output_size=None, **kwargs):
        super().__init__(**kwargs)
        _check_ramp(ramp)
        if output_size is not None:
            output_size = tuple(int(v) for v in output_size)
            if len(output_size) != 2:
                raise ValueError(f"`output_size` must be (H_img, W_img), received {output_size!r}")
        self.ramp = ramp
        self.output_size = output_size

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        self.built = True

    def call(self, inputs):
        coords = soft_argmax(inputs, self.ramp)
        if self.output_size is not None:
            height, width = self.output_size
            scale = ops.convert_to_tensor([float(width), float(height)], dtype=coords.dtype)
            coords = coords * scale - 0.5
        return coords

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 2)

    def get_config(self):
        config = super().get_config()
        config.update({"ramp": self.ramp, "output_size": self.output_size})
        return config
