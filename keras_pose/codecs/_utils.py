"""Small tensor helpers shared by the codecs (keras.ops only)."""

from __future__ import annotations

from keras import ops


def cell_centers(size, stride, dtype="float32"):
    """Input-image coordinates of the centres of ``size`` heatmap cells.

    Cell ``g`` at stride ``s`` covers input pixels ``[s*g, s*g + s - 1]``, so its
    centre is ``s*g + (s - 1) / 2`` (CPM's ``8g + 3.5``). ``size`` may be a
    Python int or a scalar tensor.
    """
    g = ops.cast(ops.arange(size), dtype)
    stride = float(stride)
    return g * stride + (stride - 1.0) / 2.0


def add_batch(x, unbatched_rank):
    """Adds a leading batch axis when ``x`` has rank ``unbatched_rank``.

    Returns ``(x, was_unbatched)``.
    """
    if len(x.shape) == unbatched_rank:
        return ops.expand_dims(x, 0), True
    return x, False


def per_sample(value, batched_rank, dtype="float32"):
    """Scalar or (B,) ``value`` reshaped to broadcast against a rank-``batched_rank`` tensor.

    Returns a tensor of shape () or (B, 1, ..., 1).
    """
    value = ops.cast(ops.convert_to_tensor(value), dtype)
    if len(value.shape) == 0:
        return value
    if len(value.shape) != 1:
        raise ValueError(f"expected a scalar or a per-sample (B,) tensor, received shape {tuple(value.shape)}")
    return ops.reshape(value, (-1,) + (1,) * (batched_rank - 1))


def as_mask(visible, dtype="float32"):
    """(B, K) booleans or 0/1 numbers -> (B, K) boolean tensor."""
    visible = ops.convert_to_tensor(visible)
    if visible.dtype == "bool":
        return visible
    return ops.greater(ops.cast(visible, dtype), 0.5)


def check_size(size, what):
    size = tuple(size)
    if len(size) != 2:
        raise ValueError(f"`{what}` must be (height, width), received {size!r}")
    return size
