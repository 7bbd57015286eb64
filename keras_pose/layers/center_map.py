"""The centre-map input of Convolutional Pose Machines (Wei et al., CVPR 2016).

Reference:
    S.-E. Wei, V. Ramakrishna, T. Kanade, Y. Sheikh. "Convolutional pose
    machines." CVPR 2016. Official code:
    https://github.com/shihenw/convolutional-pose-machines-release
"""

from __future__ import annotations

import keras
from keras import ops

from keras_pose.layers.softargmax import _check_rank4


def center_gaussian(height, width, sigma=21.0, dtype="float32"):
    """(height, width) Gaussian of std ``sigma`` px centred at the image centre.

    The centre is ``((width - 1) / 2, (height - 1) / 2)`` in pixel coordinates
    (pixel centres at integers), the geometric centre of the image; the map is
    therefore symmetric under horizontal flips. ``height`` and ``width`` may be
    Python ints or scalar tensors.
    """
    ys = ops.cast(ops.arange(height), dtype) - (ops.cast(height, dtype) - 1.0) / 2.0
    xs = ops.cast(ops.arange(width), dtype) - (ops.cast(width, dtype) - 1.0) / 2.0
    d2 = ops.square(ys)[:, None] + ops.square(xs)[None, :]
    return ops.exp(-d2 / (2.0 * float(sigma) ** 2))


@keras.saving.register_keras_serializable(package="keras_pose")
class CenterMap(keras.layers.Layer):
    """CPM centre map: a Gaussian at the image centre, shaped like the input.

    CPM feeds a Gaussian of std 21 px at the person centre as an extra input;
    at test time the person is centred in the crop, so the map sits at the
    crop centre. This layer builds it from the input's SHAPE only (the input
    values are ignored and no gradient flows to them), which lets a model take
    just ``"images"`` as input.

    The centre is ``((W - 1) / 2, (H - 1) / 2)`` in pixel coordinates, the
    geometric image centre (183.5 for CPM's 368 px crop; the Matlab code uses
    1-based 184, i.e. 183 0-based, a 0.5 px difference against sigma = 21).

    Args:
        sigma: standard deviation of the Gaussian in pixels (CPM: 21).
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Returns:
        (B, H, W, 1) map with peak value 1 for (B, H, W, C) images.

    Example:
        >>> tuple(CenterMap()(np.zeros((2, 368, 368, 3), "float32")).shape)
        (2, 368, 368, 1)

    Reference:
        Wei et al., "Convolutional pose machines", CVPR 2016, Sec. 3 and the
        official ``pose_deploy_centerMap`` prototxt.
    """

    def __init__(self, sigma=21.0, **kwargs):
        super().__init__(**kwargs)
        if float(sigma) <= 0:
            raise ValueError(f"`sigma` must be > 0, received {sigma!r}")
        self.sigma = float(sigma)

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        self.built = True

    def call(self, inputs):
        shape = ops.shape(inputs)
        gaussian = center_gaussian(shape[1], shape[2], self.sigma, self.compute_dtype)
        return ops.broadcast_to(gaussian[None, :, :, None], (shape[0], shape[1], shape[2], 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2], 1)

    def get_config(self):
        config = super().get_config()
        config.update({"sigma": self.sigma})
        return config
