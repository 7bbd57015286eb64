"""Soft-argmax human pose regression with context aggregation.

Reference:
    D. C. Luvizon, H. Tabia and D. Picard, "Human pose regression by combining
    indirect part detection and contextual information", Computers &
    Graphics 85, 2019. https://arxiv.org/abs/1710.02322

Spec: ``docs/paper_specs.md`` section 4; the exact layers follow the authors'
``dluvizon/pose-regression`` (``posereg/network.py``).

Structure: an Inception-v4-like stem (stride 8, 576 channels) followed by K
prediction blocks. Block k is block-A (a residual-separable-conv hourglass
over 32 -> 8 at 256 input) then block-B: ``s = SACB(A)``, ``h = conv1x1(ReLU(s))``
gives N (1 + N_c) linear maps (part maps first, then N_c context maps per
joint), and for k < K the maps are projected back: ``x = A + s + ACB1x1(h)``.
Each block's maps give a pose by soft-argmax with context aggregation
(:class:`keras_pose.layers.ContextAggregation`, spec Eq. 6) and a joint
visibility ``sigmoid(max h)`` on the part maps
(:class:`keras_pose.layers.JointProbability`). Conventions: no conv has a
bias, BN has no scale (beta only), all padding ``same``.

Outputs:
    ``pose_1`` .. ``pose_K``             (B, N, 2) (x, y) in [0, 1], corner convention.
    ``visibility_1`` .. ``visibility_K`` (B, N, 1) probabilities.
    ``heatmaps``  (B, H/8, W/8, N (1 + N_c)) the last block's raw maps
                  (channels [0, N) are the part maps, then N_c context maps
                  per joint: channel N + n N_c + i is context map i of joint n).
    ``keypoints`` (B, N, 2) input pixels (``pose_K * (W, H) - 0.5``) and
    ``scores`` (B, N) = ``visibility_K``.

Input normalisation: x / 255 * 2 - 1, i.e. [-1, 1], as the official code.
The soft-argmax ramp defaults to the official ``linspace(0, 1)`` (spec 4.4).
With ``num_context = 0`` the pose is the plain soft-argmax of the part maps.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras

from keras_pose.layers import ContextAggregation, JointProbability, LocalizedJointProbability, SpatialSoftArgmax
from keras_pose.models.backbones import check_backbone, top_down_merge, trunk_features
from keras_pose.models.common import (ChannelSlice, InputNormalization, ModelConfig, NormalizedToPixels,
                                      attach_config, check_choice, name_outputs)

RAMPS = ("linspace", "paper", "center")
SCORES = ("probability", "localized")


@dataclasses.dataclass(frozen=True)
class SoftArgmaxConfig(ModelConfig):
    """Configuration of the soft-argmax regression network.

    Args:
        num_joints: N.
        input_size: (H, W), multiples of 32 (the block-A hourglass pools
            twice at stride 8).
        num_blocks: K prediction blocks (8 in the paper).
        width: multiplier for every hidden channel count (stem and blocks).
        num_context: N_c context maps per joint (0 disables aggregation).
        alpha: weight of the part-map pose in Eq. 6.
        block_kernel: separable kernel size inside the blocks (5).
        block_filters: block channel count C (576; the hourglass runs at C/2).
        ramp: soft-argmax ramp, ``"linspace"`` | ``"paper"`` | ``"center"``.
        backbone: ``"paper"`` (the Inception-v4-like stem) or a pretrained
            trunk of :mod:`keras_pose.models.backbones`, whose stride 8, 16
            and 32 features are merged top-down to stride 8 with
            ``block_filters`` channels (replacing the stem; the prediction
            blocks stay). ``width`` then scales only the stem, not the blocks.
        backbone_weights: None or ``"imagenet"`` (trunks only).
        freeze_backbone_bn: a pretrained trunk's BN layers keep their
            ImageNet statistics and run in inference mode while training
            (no effect without ``backbone_weights``). It trains 1.8x faster
            on a 2-core CPU, but with Adam at 1e-3 the flagship recipe then
            stalled (validation 7.9 after one epoch instead of 21.6;
            docs/recipes.md), so the default trains them.
        score: the ``scores`` output: ``"probability"`` (the paper's joint
            probability of the last block, sigmoid of the part map's peak)
            or ``"localized"`` (that times the softmax mass within
            ``score_radius`` map cells of the soft-argmax location,
            :class:`~keras_pose.layers.LocalizedJointProbability`, which
            ranks correct joints above wrong ones better). No weights; the
            ``visibility_k`` outputs that training supervises stay.
        score_radius: the radius of ``"localized"``, in map cells.
    """

    family: ClassVar[str] = "softargmax"

    num_joints: int = 16
    input_size: tuple = (256, 256)
    num_blocks: int = 8
    width: float = 1.0
    num_context: int = 2
    alpha: float = 0.8
    block_kernel: int = 5
    block_filters: int = 576
    ramp: str = "linspace"
    backbone: str = "paper"
    backbone_weights: str | None = None
    freeze_backbone_bn: bool = False
    score: str = "probability"
    score_radius: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        check_choice("SoftArgmaxConfig", "ramp", self.ramp, RAMPS)
        check_choice("SoftArgmaxConfig", "score", self.score, SCORES)
        if not self.score_radius > 0:
            raise ValueError(f"SoftArgmaxConfig.score_radius: expected > 0 map cells, got {self.score_radius!r}")
        check_backbone("SoftArgmaxConfig", self.backbone, self.backbone_weights)
        h, w = self.input_size
        if h % 32 or w % 32:
            raise ValueError(f"SoftArgmaxConfig.input_size: expected multiples of 32, got {self.input_size}")
        if self.num_blocks < 1 or self.num_context < 0:
            raise ValueError(f"SoftArgmaxConfig: num_blocks >= 1 and num_context >= 0 expected, got "
                             f"{self.num_blocks}, {self.num_context}")

    @property
    def num_maps(self) -> int:
        return self.num_joints * (1 + self.num_context)

    @property
    def stride(self) -> int:
        return 8


# ---------------------------------------------------------------------------
# Primitives (spec 4.1)
# ---------------------------------------------------------------------------


def _bn(x, name):
    return keras.layers.BatchNormalization(scale=False, name=f"{name}_bn")(x)


def _conv(x, filters, kernel, strides, name):
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)


def cba(x, filters, kernel, name, strides=1):
    """conv -> BN -> ReLU."""
    x = _bn(_conv(x, filters, kernel, strides, name), name)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def cb(x, filters, kernel, name, strides=1):
    """conv -> BN."""
    return _bn(_conv(x, filters, kernel, strides, name), name)


def acb(x, filters, kernel, name, strides=1):
    """ReLU -> conv -> BN."""
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return _bn(_conv(x, filters, kernel, strides, name), name)


def sacb(x, filters, kernel, name):
    """ReLU -> SeparableConv (depth multiplier 1) -> BN."""
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    x = keras.layers.SeparableConv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    return _bn(x, name)


def sep_residual(x, filters, kernel, name):
    """R(x, C, k): residual unit with a separable conv (``sepconv_residual`` in [O])."""
    c_in = x.shape[-1]
    shortcut = x if c_in == filters else acb(x, filters, 1, f"{name}_shortcut")
    if filters < c_in:
        x = acb(x, filters, 1, f"{name}_reduce")
    x = sacb(x, filters, kernel, f"{name}_sep")
    return keras.layers.Add(name=f"{name}_add")([shortcut, x])


# ---------------------------------------------------------------------------
# Stem, block-A, block-B
# ---------------------------------------------------------------------------


def _stem(x, cfg: SoftArgmaxConfig):
    c = cfg.ch
    x = cba(x, c(32), 3, "stem_conv1", strides=2)
    x = cba(x, c(32), 3, "stem_conv2")
    x = cba(x, c(64), 3, "stem_conv3")
    a = cba(x, c(96), 3, "stem_conv4a", strides=2)
    b = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool4b")(x)
    x = keras.layers.Concatenate(name="stem_concat4")([a, b])
    a = cba(x, c(64), 1, "stem_conv5a1")
    a = cb(a, c(96), 3, "stem_conv5a2")
    b = cba(x, c(64), 1, "stem_conv5b1")
    b = cba(b, c(64), (5, 1), "stem_conv5b2")
    b = cba(b, c(64), (1, 5), "stem_conv5b3")
    b = cb(b, c(96), 3, "stem_conv5b4")
    x = keras.layers.Concatenate(name="stem_concat5")([a, b])
    a = acb(x, c(192), 3, "stem_conv6a", strides=2)
    b = keras.layers.MaxPooling2D(2, 2, name="stem_pool6b")(x)
    x = keras.layers.Concatenate(name="stem_concat6")([a, b])
    return sep_residual(x, c(cfg.block_filters), 3, "stem_sepres")


def _block_a(x, cfg: SoftArgmaxConfig, name):
    """Hourglass of residual separable units over three resolutions."""
    size = x.shape[-1]
    half = size // 2
    k = cfg.block_kernel
    a = sep_residual(x, size, k, f"{name}_l1")
    low1 = keras.layers.MaxPooling2D(2, 2, name=f"{name}_pool1")(x)
    low1 = acb(low1, half, 1, f"{name}_l2_reduce")
    low1 = sep_residual(low1, half, k, f"{name}_l2_1")
    b = sep_residual(low1, half, k, f"{name}_l2_2")
    c = keras.layers.MaxPooling2D(2, 2, name=f"{name}_pool2")(low1)
    for i in range(3):
        c = sep_residual(c, half, k, f"{name}_l3_{i + 1}")
    c = keras.layers.UpSampling2D(2, name=f"{name}_up2")(c)
    b = keras.layers.Add(name=f"{name}_add2")([b, c])
    b = sep_residual(b, size, k, f"{name}_l2_3")
    b = keras.layers.UpSampling2D(2, name=f"{name}_up1")(b)
    return keras.layers.Add(name=f"{name}_add1")([a, b])


def build_softargmax(config: SoftArgmaxConfig | None = None, name: str = "softargmax",
                     pretrained: bool = True) -> keras.Model:
    """Build the soft-argmax regression network (``pretrained=False``: a trunk without its
    ImageNet weights, for a model whose own weights are loaded next).

    Returns:
        A functional model: input ``"images"`` (B, H, W, 3) float32 RGB in
        [0, 255]; outputs ``pose_k``, ``visibility_k`` (k = 1..K),
        ``heatmaps``, ``keypoints``, ``scores``.
    """
    cfg = config or SoftArgmaxConfig()
    h, w = cfg.input_size
    n, nc = cfg.num_joints, cfg.num_context
    images = keras.Input((h, w, 3), name="images", dtype="float32")
    if cfg.backbone == "paper":
        x = InputNormalization(offset=127.5, scale=1.0 / 127.5, name="unit_range")(images)
        x = _stem(x, cfg)
    else:
        levels = trunk_features(images, cfg.backbone, cfg.backbone_weights, load_weights=pretrained,
                                freeze_bn=cfg.freeze_backbone_bn)
        x = top_down_merge(levels, cfg.block_filters)

    outputs = {}
    for k in range(1, cfg.num_blocks + 1):
        a = _block_a(x, cfg, f"block{k}_a")
        s = sacb(a, a.shape[-1], cfg.block_kernel, f"block{k}_b_sep")
        hm = keras.layers.Activation("relu", name=f"block{k}_b_maps_relu")(s)
        hm = keras.layers.Conv2D(cfg.num_maps, 1, use_bias=False, name=f"block{k}_maps")(hm)
        if nc > 0:
            pose = ContextAggregation(n, num_context=nc, alpha=cfg.alpha, ramp=cfg.ramp, name=f"pose_{k}")(hm)
            parts = ChannelSlice(0, n, name=f"block{k}_part_maps")(hm)
        else:
            pose = SpatialSoftArgmax(ramp=cfg.ramp, name=f"pose_{k}")(hm)
            parts = hm
        vis = JointProbability(name=f"visibility_{k}")(parts)
        outputs[f"pose_{k}"] = pose
        outputs[f"visibility_{k}"] = vis
        if k < cfg.num_blocks:
            back = acb(hm, a.shape[-1], 1, f"block{k}_remap")
            x = keras.layers.Add(name=f"block{k}_out")([a, s, back])

    outputs["heatmaps"] = hm
    outputs["keypoints"] = NormalizedToPixels((h, w), name="keypoints")(pose)
    if cfg.score == "localized":
        vis = LocalizedJointProbability(cfg.score_radius, name="localized_probability")(parts)
    outputs["scores"] = keras.layers.Reshape((n,), name="scores")(vis)
    model = keras.Model(images, name_outputs(outputs), name=name)
    return attach_config(model, cfg)


__all__ = ["SoftArgmaxConfig", "build_softargmax", "RAMPS", "SCORES"]
