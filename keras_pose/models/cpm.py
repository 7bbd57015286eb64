"""Convolutional Pose Machines (CPM).

Reference:
    S.-E. Wei, V. Ramakrishna, T. Kanade and Y. Sheikh, "Convolutional Pose
    Machines", CVPR 2016. https://arxiv.org/abs/1602.00134

Spec: ``docs/paper_specs.md`` section 2. The layers follow the authors'
``pose_deploy_centerMap.prototxt`` (LSP/MPI) and ``genProto.py``, not the
later VGG-19 "resize" variant.

Structure (stride 8, every conv ReLU except each stage's last):
    stage 1:  [conv 9x9 128 -> maxpool 3x3/2] x 3 -> conv 5x5 32 -> conv 9x9 512
              (dropout) -> conv 1x1 512 (dropout) -> conv 1x1 P+1 = b_1
    trunk:    [conv 9x9 128 -> maxpool 3x3/2] x 3, computed once, shared by
              every stage t >= 2
    stage t:  conv 5x5 32 on the trunk (own weights) -> concat [features,
              b_{t-1}, pooled centre map] -> Mconv 11x11 128 x 3 -> Mconv 1x1
              128 -> Mconv 1x1 P+1 = b_t
The centre map (a Gaussian of sigma 21 px at the image centre, CPM's test-time
convention) is made inside the model from the image size by
:class:`keras_pose.layers.CenterMap` and average-pooled 9x9/8 to the belief
resolution; the model has a single ``"images"`` input.

Outputs:
    ``stage_1`` .. ``stage_T``  (B, H/8, W/8, P+1) belief maps, background LAST.
    ``keypoints`` (B, P, 2) input pixels and ``scores`` (B, P): the last stage
    decoded by :class:`keras_pose.layers.HeatmapToKeypoints` (background
    channel dropped).

Input normalisation: BGR / 256 - 0.5, as the Caffe data layer.

Options beyond the paper (the paper preset keeps the paper's choice):
``batch_norm`` (BN after every hidden conv; small presets) and per-part
kernel sizes / channel counts, all scaled by ``width``.

On a pretrained trunk (``backbone``, :mod:`keras_pose.models.backbones`):
the trunk's stride 8, 16 and 32 features merged top-down to stride 8
(``trunk_filters`` x ``width`` channels) are the image features of *every*
stage: they replace both the stage-1 trunk and the shared trunk of stages
t >= 2 (the paper trains them from scratch, spec 2.4). Stage 1 keeps its conv 5x5 32 ->
conv 512 -> conv 1x1 512 -> b_1, stages t >= 2 keep their own conv 5x5 32 on
the features, the centre map and the Mconvs; outputs and strides are the
paper's. The input is then normalised for the trunk, not BGR / 256 - 0.5.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras

from keras_pose.layers import CenterMap, HeatmapToKeypoints
from keras_pose.models.backbones import check_backbone, top_down_merge, trunk_features
from keras_pose.models.common import InputNormalization, ModelConfig, attach_config, conv_block, name_outputs


@dataclasses.dataclass(frozen=True)
class CPMConfig(ModelConfig):
    """Configuration of a Convolutional Pose Machine.

    Args:
        num_joints: P (the belief maps have P + 1 channels, background last).
        input_size: (H, W); the belief maps are (ceil(H/8), ceil(W/8)).
        num_stages: T >= 1.
        width: multiplier for every hidden channel count.
        batch_norm: BN after every hidden conv (not in the paper).
        trunk_filters, trunk_kernel: the three conv+pool blocks (128, 9).
        feature_filters, feature_kernel: conv 5x5 32 on the trunk.
        stage1_filters, stage1_kernel: stage-1 conv 9x9 512 and 1x1 512.
        mconv_filters, mconv_kernel, num_mconv: stage t >= 2 Mconvs (128, 11, 3).
        dropout: drop rate after the stage-1 512-channel convs.
        center_sigma: centre-map Gaussian sigma in input pixels (21 at 368).
        backbone: ``"paper"`` (the two 3-block conv+pool trunks) or a
            pretrained trunk of :mod:`keras_pose.models.backbones`, whose
            stride 8, 16 and 32 features are merged top-down to stride 8 with
            ``trunk_filters`` (scaled by ``width``) channels and feed every
            stage (``trunk_kernel`` is then unused). ``input_size`` must then
            be a multiple of 32.
        backbone_weights: None or ``"imagenet"`` (trunks only).
        freeze_backbone_bn: a pretrained trunk's BN layers keep their
            ImageNet statistics and run in inference mode while training (no
            effect without ``backbone_weights``); off by default,
            as for :class:`~keras_pose.models.softargmax.SoftArgmaxConfig`.
    """

    family: ClassVar[str] = "cpm"

    num_joints: int = 14
    input_size: tuple = (368, 368)
    num_stages: int = 6
    width: float = 1.0
    batch_norm: bool = False
    trunk_filters: int = 128
    trunk_kernel: int = 9
    feature_filters: int = 32
    feature_kernel: int = 5
    stage1_filters: int = 512
    stage1_kernel: int = 9
    mconv_filters: int = 128
    mconv_kernel: int = 11
    num_mconv: int = 3
    dropout: float = 0.5
    center_sigma: float = 21.0
    backbone: str = "paper"
    backbone_weights: str | None = None
    freeze_backbone_bn: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_stages < 1:
            raise ValueError(f"CPMConfig.num_stages: expected >= 1, got {self.num_stages}")
        check_backbone("CPMConfig", self.backbone, self.backbone_weights)
        h, w = self.input_size
        if self.backbone != "paper" and (h % 32 or w % 32):
            raise ValueError(f"CPMConfig.input_size: a pretrained trunk needs multiples of 32, got {self.input_size}")

    @property
    def stride(self) -> int:
        return 8


def _trunk(x, cfg: CPMConfig, prefix: str):
    for i in range(3):
        x = conv_block(x, cfg.ch(cfg.trunk_filters), cfg.trunk_kernel, batch_norm=cfg.batch_norm,
                       name=f"{prefix}_conv{i + 1}")
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{prefix}_pool{i + 1}")(x)
    return x


def build_cpm(config: CPMConfig | None = None, name: str = "cpm", pretrained: bool = True) -> keras.Model:
    """Build a Convolutional Pose Machine (``pretrained=False``: a trunk without its ImageNet
    weights, for a model whose own weights are loaded next).

    Returns:
        A functional model: input ``"images"`` (B, H, W, 3) float32 RGB in
        [0, 255]; outputs ``stage_1..stage_T``, ``keypoints``, ``scores``.
    """
    cfg = config or CPMConfig()
    h, w = cfg.input_size
    p1 = cfg.num_joints + 1
    bn = cfg.batch_norm
    images = keras.Input((h, w, 3), name="images", dtype="float32")
    if cfg.backbone == "paper":
        x = InputNormalization(offset=128.0, scale=1.0 / 256.0, reverse_channels=True, name="bgr_normalize")(images)
        features = None
    else:  # one pretrained trunk gives the image features of every stage
        levels = trunk_features(images, cfg.backbone, cfg.backbone_weights, load_weights=pretrained,
                                freeze_bn=cfg.freeze_backbone_bn)
        features = top_down_merge(levels, cfg.ch(cfg.trunk_filters))

    center = CenterMap(sigma=cfg.center_sigma, name="center_map")(images)
    center = keras.layers.AveragePooling2D(9, 8, padding="same", name="center_pool")(center)

    # Stage 1.
    y = _trunk(x, cfg, "stage1") if features is None else features
    y = conv_block(y, cfg.ch(cfg.feature_filters), cfg.feature_kernel, batch_norm=bn, name="stage1_conv4")
    y = conv_block(y, cfg.ch(cfg.stage1_filters), cfg.stage1_kernel, batch_norm=bn, name="stage1_conv5")
    if cfg.dropout > 0:
        y = keras.layers.Dropout(cfg.dropout, name="stage1_conv5_dropout")(y)
    y = conv_block(y, cfg.ch(cfg.stage1_filters), 1, batch_norm=bn, name="stage1_conv6")
    if cfg.dropout > 0:
        y = keras.layers.Dropout(cfg.dropout, name="stage1_conv6_dropout")(y)
    belief = conv_block(y, p1, 1, activation=None, name="stage_1")
    outputs = {"stage_1": belief}

    # Stages t >= 2 share one trunk tensor.
    if cfg.num_stages > 1:
        trunk = _trunk(x, cfg, "trunk") if features is None else features
    for t in range(2, cfg.num_stages + 1):
        f = conv_block(trunk, cfg.ch(cfg.feature_filters), cfg.feature_kernel, batch_norm=bn,
                       name=f"stage{t}_features")
        y = keras.layers.Concatenate(name=f"stage{t}_concat")([f, belief, center])
        for i in range(cfg.num_mconv):
            y = conv_block(y, cfg.ch(cfg.mconv_filters), cfg.mconv_kernel, batch_norm=bn, name=f"stage{t}_mconv{i + 1}")
        y = conv_block(y, cfg.ch(cfg.mconv_filters), 1, batch_norm=bn, name=f"stage{t}_mconv{cfg.num_mconv + 1}")
        belief = conv_block(y, p1, 1, activation=None, name=f"stage_{t}")
        outputs[f"stage_{t}"] = belief

    keypoints, scores = HeatmapToKeypoints(stride=cfg.stride, num_joints=cfg.num_joints, name="decode")(belief)
    outputs["keypoints"] = keypoints
    outputs["scores"] = scores
    model = keras.Model(images, name_outputs(outputs), name=name)
    return attach_config(model, cfg)


__all__ = ["CPMConfig", "build_cpm"]
