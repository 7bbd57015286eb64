"""Joint probability and context aggregation (Luvizon, Tabia & Picard, C&G 2019, Sec. 3.2).

Reference:
    D. C. Luvizon, H. Tabia, D. Picard. "Human pose regression by combining
    indirect part detection and contextual information." Computers & Graphics
    85 (2019). Official code: https://github.com/dluvizon/pose-regression
"""

from __future__ import annotations

import keras
from keras import ops

from keras_pose.layers.softargmax import _check_ramp, _check_rank4, expected_position, soft_argmax, spatial_softmax

# Below this logit, log(sigmoid(m)) == m to float32 precision (error < 3e-9).
_LOG_SIGMOID_LINEAR_BELOW = -20.0


def joint_probability(logits):
    """``sigmoid(max over H, W)`` of each channel: (B, H, W, N) -> (B, N, 1)."""
    peak = ops.max(ops.convert_to_tensor(logits), axis=(1, 2))
    return ops.expand_dims(ops.sigmoid(peak), -1)


def _log_sigmoid(x):
    """log(sigmoid(x)), finite with finite gradients for any finite x; TFLite builtins only."""
    safe = ops.maximum(x, _LOG_SIGMOID_LINEAR_BELOW)
    value = -ops.log(1.0 + ops.exp(-safe))
    return ops.where(x < _LOG_SIGMOID_LINEAR_BELOW, x, value)


@keras.saving.register_keras_serializable(package="keras_pose")
class JointProbability(keras.layers.Layer):
    """Joint probability: the sigmoid of the global spatial max of each channel.

    ``p_n = sigmoid(max_{r,c} h_{r,c,n})`` on the raw (pre-softmax) logits,
    i.e. global max pooling followed by a sigmoid. Used as the visibility
    output of the soft-argmax network (on the part maps only).

    Args:
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Returns:
        (B, N, 1) probabilities for (B, H, W, N) logits.

    Example:
        >>> tuple(JointProbability()(np.zeros((2, 32, 32, 16), "float32")).shape)
        (2, 16, 1)

    Reference:
        Luvizon, Tabia & Picard, C&G 2019, Sec. 3.2.2.
    """

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        self.built = True

    def call(self, inputs):
        return joint_probability(inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 1)


def localized_probability(logits, radius=2.0):
    """Joint probability times the spatial-softmax mass near the expected location: (B, H, W, N) -> (B, N, 1).

    ``sigmoid(max h_n) * sum_{|(c, r) - E[(c, r)]| <= radius} softmax(h_n)_{r, c}``: the joint is present
    (Luvizon's joint probability) and its distribution is concentrated where the soft-argmax puts it (a
    distribution spread over two places averages to a point between them, where the mass is low). The
    distance is in map cells; the mask is not differentiated (the score is not trained through).
    """
    logits = ops.convert_to_tensor(logits)
    prob = spatial_softmax(logits)
    shape = ops.shape(prob)
    rows = ops.cast(ops.arange(shape[1]), prob.dtype)
    cols = ops.cast(ops.arange(shape[2]), prob.dtype)
    mean_c, mean_r = expected_position(prob, cols, rows)  # (B, N) each, in cells
    d2 = ((rows[None, :, None, None] - mean_r[:, None, None, :]) ** 2
          + (cols[None, None, :, None] - mean_c[:, None, None, :]) ** 2)  # (B, H, W, N)
    near = ops.cast(ops.less_equal(ops.stop_gradient(d2), float(radius) ** 2), prob.dtype)
    mass = ops.sum(prob * near, axis=(1, 2))
    return joint_probability(logits) * ops.expand_dims(mass, -1)


@keras.saving.register_keras_serializable(package="keras_pose")
class LocalizedJointProbability(keras.layers.Layer):
    """Per-joint score: joint probability x the softmax mass within ``radius`` cells of the soft-argmax.

    Luvizon's joint probability (:class:`JointProbability`) says whether a joint is present but not
    whether the soft-argmax found it: a distribution split between two candidates still has a high
    peak logit. Multiplying by the mass near the expected location makes the score low in both cases.
    On the flagship's LSP-train holdout the area under the ROC curve of "correct at PCK@0.2" rose from
    0.70 to 0.81 (person crops) and from 0.66 to 0.78 (whole image as the crop); docs/recipes.md.

    Args:
        radius: in map cells (default 2).
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Returns:
        (B, N, 1) scores in [0, 1] for (B, H, W, N) logits.

    Example:
        >>> tuple(LocalizedJointProbability()(np.zeros((2, 20, 20, 14), "float32")).shape)
        (2, 14, 1)
    """

    def __init__(self, radius=2.0, **kwargs):
        super().__init__(**kwargs)
        if not float(radius) > 0:
            raise ValueError(f"`radius` must be > 0 map cells, received {radius!r}")
        self.radius = float(radius)

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        self.built = True

    def call(self, inputs):
        return localized_probability(inputs, self.radius)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 1)

    def get_config(self):
        return {**super().get_config(), "radius": self.radius}


@keras.saving.register_keras_serializable(package="keras_pose")
class ContextAggregation(keras.layers.Layer):
    """Pose from part maps and context maps (Eq. 6).

    ``y_n = alpha * y^d_n + (1 - alpha) * sum_i p^c_{i,n} y^c_{i,n} / sum_i p^c_{i,n}``
    where ``y^d_n`` is the soft-argmax of part map n, ``y^c_{i,n}`` the
    soft-argmax of context map i of joint n and ``p^c_{i,n}`` its joint
    probability (sigmoid of its spatial max).

    Channel layout of the input (official code): ``h[..., 0:N]`` are the part
    maps and ``h[..., N + n * Nc + i]`` is context map i of joint n.

    The context weights ``p_i / sum_j p_j`` are computed as a softmax of
    ``log sigmoid(max)``, which is the same quantity but finite (with finite
    gradients) even when every sigmoid underflows (logits of -1e4). With
    ``num_context=0`` the output is the part-map soft-argmax alone.

    Args:
        num_joints: N, the number of joints.
        num_context: Nc, context maps per joint (paper: 2).
        alpha: weight of the part-map estimate (paper: 0.8; not trained).
        ramp: soft-argmax ramp, see ``SpatialSoftArgmax`` (default
            ``"linspace"``, the official code's).
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Returns:
        (B, N, 2) normalised (x, y) for (B, H, W, N * (1 + Nc)) logits.

    Example:
        >>> layer = ContextAggregation(num_joints=16, num_context=2)
        >>> tuple(layer(np.zeros((1, 32, 32, 48), "float32")).shape)
        (1, 16, 2)

    Reference:
        Luvizon, Tabia & Picard, C&G 2019, Sec. 3.2.3, Eq. 6.
    """

    def __init__(self, num_joints, num_context=2, alpha=0.8, ramp="linspace", **kwargs):
        super().__init__(**kwargs)
        _check_ramp(ramp)
        if int(num_joints) < 1 or int(num_context) < 0:
            raise ValueError(
                f"`num_joints` must be >= 1 and `num_context` >= 0, received {num_joints!r} and {num_context!r}"
            )
        self.num_joints = int(num_joints)
        self.num_context = int(num_context)
        self.alpha = float(alpha)
        self.ramp = ramp

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        expected = self.num_joints * (1 + self.num_context)
        if input_shape[-1] != expected:
            raise ValueError(
                f"ContextAggregation '{self.name}': expected num_joints * (1 + num_context) = "
                f"{self.num_joints} * (1 + {self.num_context}) = {expected} input channels, "
                f"received {input_shape[-1]} (input shape {tuple(input_shape)})"
            )
        self.built = True

    def call(self, inputs):
        n, nc = self.num_joints, self.num_context
        part = soft_argmax(inputs[..., :n], self.ramp)
        if nc == 0:
            return part
        context_maps = inputs[..., n:]
        context = ops.reshape(soft_argmax(context_maps, self.ramp), (-1, n, nc, 2))
        peak = ops.reshape(ops.max(context_maps, axis=(1, 2)), (-1, n, nc))
        weights = ops.softmax(_log_sigmoid(peak), axis=-1)  # == p_i / sum_j p_j (a safe int8 kernel in TFLite)
        context = ops.sum(weights[..., None] * context, axis=2)
        return self.alpha * part + (1.0 - self.alpha) * context

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_joints, 2)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_joints": self.num_joints, "num_context": self.num_context, "alpha": self.alpha, "ramp": self.ramp}
        )
        return config
