"""The papers' losses as pure functions of (target, prediction, mask).

All take a per-joint ``mask`` (B, K) (1 = the joint counts) so that joints a
dataset does not annotate never contribute, and return a scalar averaged
over the batch. Only ``keras.ops`` is used, so they run in the custom loop,
in ``model.fit`` and on any backend.
"""

from __future__ import annotations

from keras import ops


def _f32(x):
    return ops.cast(x, "float32")


def masked_mean(values, mask):
    """Mean of ``values`` over the entries where ``mask`` is 1 (0 if none)."""
    values, mask = _f32(values), _f32(mask)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def _map_mask(target, mask, extra_channels=0):
    """(B, K) joint mask -> (B, 1, 1, C) map-channel mask (extra channels, e.g. background, always count)."""
    mask = _f32(mask)
    if extra_channels:
        mask = ops.concatenate([mask, ops.ones((ops.shape(mask)[0], extra_channels), "float32")], axis=-1)
    return mask[:, None, None, :]


def heatmap_squared_error(target, pred, mask, extra_channels=0):
    """Sum of squared errors over pixels and channels / (2 * batch) — CPM's and Caffe's EuclideanLoss scale.

    Args:
        target, pred: (B, H, W, C) maps.
        mask: (B, K) joint mask for the first K channels; ``extra_channels``
            trailing channels (CPM's background) always count.

    Returns:
        Scalar: ``sum(mask * (pred - target)^2) / (2 B)``.
    """
    pred = _f32(pred)
    err = ops.square(pred - _f32(target)) * _map_mask(target, mask, extra_channels)
    return ops.sum(err) / (2.0 * ops.cast(ops.shape(pred)[0], "float32"))


def heatmap_mse(target, pred, mask, extra_channels=0):
    """Mean squared error per map pixel, averaged over the counted maps."""
    pred = _f32(pred)
    m = _map_mask(target, mask, extra_channels)
    per_map = ops.mean(ops.square(pred - _f32(target)), axis=(1, 2))
    return masked_mean(per_map, m[:, 0, 0, :])


def sigmoid_cross_entropy_maps(target, logits, mask):
    """Part-detection loss (Bulat Eq. 1 with its missing minus sign): pixel-wise sigmoid cross-entropy.

    Averaged over pixels, summed over the counted joints and averaged over
    the batch ((1/N) sum_n sum_ij in the paper, with the pixel sum
    normalised so the scale does not depend on the map size).
    """
    logits, target = _f32(logits), _f32(target)
    ce = ops.maximum(logits, 0.0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
    per_map = ops.mean(ce, axis=(1, 2))
    return ops.sum(per_map * _f32(mask)) / ops.cast(ops.shape(logits)[0], "float32")


def elastic_net(target, pred, mask):
    """Soft-argmax pose loss (Luvizon Eq. 7): L1 + squared L2 per joint, mean over valid joints.

    Args:
        target, pred: (B, K, 2) normalised coordinates.
        mask: (B, K), 1 where the joint is annotated and inside the crop.
    """
    d = _f32(pred) - _f32(target)
    per_joint = ops.sum(ops.abs(d), axis=-1) + ops.sum(ops.square(d), axis=-1)
    return masked_mean(per_joint, mask)


def binary_cross_entropy(target, prob, mask=None, epsilon=1e-6):
    """Joint-probability loss (Luvizon Eq. 8) on probabilities (B, K[, 1])."""
    prob = ops.clip(_f32(prob), epsilon, 1.0 - epsilon)
    target = _f32(target)
    if len(prob.shape) == 3:
        prob = prob[..., 0]
    if len(target.shape) == 3:
        target = target[..., 0]
    ce = -(target * ops.log(prob) + (1.0 - target) * ops.log(1.0 - prob))
    return ops.mean(ce) if mask is None else masked_mean(ce, mask)


def coordinate_l2(target, pred, mask):
    """DeepPose loss: squared L2 per joint on box-normalised coordinates, summed over joints, mean over batch."""
    per_joint = ops.sum(ops.square(_f32(pred) - _f32(target)), axis=-1) * _f32(mask)
    return ops.sum(per_joint) / ops.cast(ops.shape(pred)[0], "float32")

