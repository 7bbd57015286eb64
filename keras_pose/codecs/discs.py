"""Binary disc codec: the part-detection targets of Bulat & Tzimiropoulos (ECCV 2016, Sec. 3.3).

Each visible joint gets a map that is 1 on the heatmap cells whose centre lies
within ``radius`` input pixels of the joint and 0 elsewhere. The paper uses a
radius of 10 px for a 200 px upright body, i.e. about 0.05 x body height; the
caller scales it per sample. Decode disc maps with
``keras_pose.codecs.decode_heatmaps`` (the argmax of a disc is its first cell,
so prefer decoding the network's smooth sigmoid output).
"""

from __future__ import annotations

from keras import ops

from keras_pose.codecs._utils import check_size, per_sample
from keras_pose.codecs.heatmap import _prepare, _squared_distances


def encode_discs(keypoints, visible, heatmap_size, stride, radius):
    """Binary disc maps, one channel per joint.

    Args:
        keypoints: (B, K, 2) (or unbatched (K, 2)) joint (x, y) in input pixels.
        visible: (B, K) booleans or 0/1 numbers; only visible joints are drawn
            (the paper's detection targets cover visible parts only).
        heatmap_size: (h, w) of the maps.
        stride: input pixels per map cell.
        radius: disc radius in INPUT pixels, a scalar or a per-sample (B,)
            tensor. A cell is inside when the distance from its centre
            ``s*g + (s - 1) / 2`` to the joint is <= radius.

    Returns:
        float32 (B, h, w, K) maps of 0.0 / 1.0.
    """
    heatmap_size = check_size(heatmap_size, "heatmap_size")
    keypoints, mask, unbatched = _prepare(keypoints, visible)
    dx2, dy2 = _squared_distances(keypoints, heatmap_size, stride)
    r = per_sample(radius, 4)
    inside = ops.logical_and(dx2 + dy2 <= ops.square(r), mask[:, None, None, :])
    maps = ops.cast(inside, "float32")
    if unbatched:
        maps = maps[0]
    return maps
