"""Codecs: pure tensor functions that encode keypoints into training targets and decode network outputs.

Every encoder has its decoder and a round-trip test. All functions use
``keras.ops`` only and run eagerly, inside ``tf.function`` and in ``tf.data``
maps. Keypoints are (x, y) in input pixels with pixel centres at integer
coordinates; heatmap cell ``g`` at stride ``s`` is centred at ``s*g + (s-1)/2``.
"""

from keras_pose.codecs._utils import cell_centers
from keras_pose.codecs.coordinates import (
    box_denormalize,
    box_normalize,
    decode_normalized,
    encode_normalized,
    image_box,
)
from keras_pose.codecs.discs import encode_discs
from keras_pose.codecs.heatmap import (
    CPM_TRUNCATION_EXPONENT,
    REFINE_MODES,
    decode_heatmaps,
    encode_heatmaps,
    smooth_heatmaps,
)

__all__ = [
    "CPM_TRUNCATION_EXPONENT",
    "REFINE_MODES",
    "box_denormalize",
    "box_normalize",
    "cell_centers",
    "decode_heatmaps",
    "decode_normalized",
    "encode_discs",
    "encode_heatmaps",
    "encode_normalized",
    "image_box",
    "smooth_heatmaps",
]
