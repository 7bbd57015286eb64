"""Heatmap decoding as a layer, for models that output keypoints directly."""

from __future__ import annotations

import keras

from keras_pose.codecs.heatmap import REFINE_MODES, check_smooth, decode_heatmaps
from keras_pose.layers.softargmax import _check_rank4


@keras.saving.register_keras_serializable(package="keras_pose")
class HeatmapToKeypoints(keras.layers.Layer):
    """Argmax decoding of heatmaps into input-image keypoints and scores.

    Wraps ``keras_pose.codecs.decode_heatmaps``: per channel, the argmax cell
    ``(gx, gy)`` plus a sub-cell offset, mapped to input pixels with the
    cell-centre convention ``x = stride * (gx + offset) + (stride - 1) / 2``.
    The score is the map's max value. Exports to TFLite (builtin ops only).

    Args:
        stride: input pixels per heatmap cell (CPM: 8).
        refine: ``"none"``, ``"quarter"`` (default), ``"parabola"`` or
            ``"taylor"``; see ``decode_heatmaps``.
        num_joints: if set, decode only the first ``num_joints`` channels
            (CPM's belief maps end with a background channel).
        border: ignore this many cells on every edge of the maps (default
            0). For maps made by a learned strided transposed convolution
            with "same" padding, whose outermost outputs sum fewer kernel
            taps than the interior ones and can carry spikes the loss
            barely sees (``part_heatmap_scratch_lsp``).
        smooth: 0 (default) or an odd box width in cells: blur the maps
            (after dropping the border) before the argmax; see
            ``decode_heatmaps``. Scores are then maxima of the blurred maps.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Returns:
        A tuple ``(keypoints, scores)``: (B, K, 2) (x, y) in input pixels and
        (B, K) scores, for (B, h, w, C) heatmaps (K = num_joints or C).

    Example:
        >>> keypoints, scores = HeatmapToKeypoints(stride=8, num_joints=14)(
        ...     np.zeros((1, 46, 46, 15), "float32"))
        >>> tuple(keypoints.shape), tuple(scores.shape)
        ((1, 14, 2), (1, 14))

    Reference:
        Newell et al., "Stacked hourglass networks", ECCV 2016 (quarter
        offset); Zhang et al., "Distribution-aware coordinate representation
        for human pose estimation" (DARK), CVPR 2020 (Taylor refinement).
    """

    def __init__(self, stride, refine="quarter", num_joints=None, border=0, smooth=0, **kwargs):
        super().__init__(**kwargs)
        if refine not in REFINE_MODES:
            raise ValueError(f"`refine` must be one of {REFINE_MODES}, received {refine!r}")
        if int(stride) != stride or int(stride) < 1:
            raise ValueError(f"`stride` must be a positive integer, received {stride!r}")
        self.stride = int(stride)
        self.refine = refine
        self.num_joints = None if num_joints is None else int(num_joints)
        if int(border) != border or int(border) < 0:
            raise ValueError(f"`border` must be a non-negative integer, received {border!r}")
        self.border = int(border)
        self.smooth = check_smooth(smooth)

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        if self.num_joints is not None and input_shape[-1] is not None and input_shape[-1] < self.num_joints:
            raise ValueError(
                f"HeatmapToKeypoints '{self.name}': num_joints={self.num_joints} but the heatmaps have only "
                f"{input_shape[-1]} channels (input shape {tuple(input_shape)})"
            )
        if self.border and any(d is not None and d <= 2 * self.border for d in input_shape[1:3]):
            raise ValueError(f"HeatmapToKeypoints '{self.name}': border={self.border} leaves no cells of "
                             f"heatmaps of shape {tuple(input_shape)}")
        self.built = True

    def call(self, inputs):
        if self.num_joints is not None:
            inputs = inputs[..., : self.num_joints]
        if not self.border:
            return decode_heatmaps(inputs, self.stride, self.refine, self.smooth)
        b = self.border
        keypoints, scores = decode_heatmaps(inputs[:, b:-b, b:-b, :], self.stride, self.refine, self.smooth)
        return keypoints + float(b * self.stride), scores

    def compute_output_shape(self, input_shape):
        k = self.num_joints if self.num_joints is not None else input_shape[-1]
        return (input_shape[0], k, 2), (input_shape[0], k)

    def get_config(self):
        config = super().get_config()
        config.update({"stride": self.stride, "refine": self.refine, "num_joints": self.num_joints,
                       "border": self.border, "smooth": self.smooth})
        return config
