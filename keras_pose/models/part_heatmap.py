"""Human pose estimation via convolutional part heatmap regression.

Reference:
    A. Bulat and G. Tzimiropoulos, "Human pose estimation via Convolutional
    Part Heatmap Regression", ECCV 2016. https://arxiv.org/abs/1609.01743

Spec: ``docs/paper_specs.md`` section 3.

A cascade of two subnetworks. The *detection* subnetwork predicts one binary
part-detection heatmap per joint (trained with a sigmoid cross-entropy, so
the model outputs logits); the *regression* subnetwork takes the image
stacked with the sigmoid detection maps and regresses Gaussian heatmaps.

Two instances (``config.instance``):

``"vgg"`` (spec 3.1): VGG-16 FCN-8s detector (A1-A9) at full resolution +
    the large-kernel regression net (C1-C8), ReLU after C1-C6, 2x2 max-pools
    after C1 and C2 so that C3-C7 run at stride 4 and C8 (deconv x4) returns
    to full resolution. A5 is 3x3 (the paper's "1x1" is a typo). Input must
    be a multiple of 32 (the paper's 380 is built at 384).
``"residual"`` (spec 3.2): ResNet-152 detector (fb.resnet post-activation
    bottlenecks, 3-8-36-3 blocks, last stage stride 1, so stride 16) + 1x1
    scoring + x4 deconv = detection at stride 4; sigmoid(detection) is
    bilinearly resized x4 to the input size and stacked with the image; the
    regression net is one hourglass (D1-D7, depth 4, 3 pre-activation
    bottlenecks per branch, 2x2/2 deconvs instead of nearest upsampling) and
    a final deconv x4 to the input resolution.

On a pretrained trunk (``backbone``, :mod:`keras_pose.models.backbones`;
residual instance only): the detection subnetwork is the trunk (the paper's
detectors are ImageNet-initialised too) with its stride 4-32 features merged
top-down to stride 4 (``det_neck``, the upsampling) and the 1x1 scoring
(``det_score``), so ``detection`` keeps stride 4; the regression hourglass
takes the sigmoid detection maps stacked with those stride-4 trunk features
instead of with the image, so its D1 is a stride-1 3x3 conv (the input is
already at stride 4), and its final deconv x4 still returns to the input
resolution. The input is then normalised for the trunk, not to [0, 1].

Outputs:
    ``detection``  (B, h, w, K) logits (vgg: full res; residual: stride 4).
    ``regression`` (B, H, W, K) linear heatmaps at the input resolution.
    ``keypoints`` (B, K, 2) input pixels and ``scores`` (B, K), decoded from
    ``regression`` by :class:`keras_pose.layers.HeatmapToKeypoints`.

Input normalisation: RGB in [0, 1] (the authors' demo); the regression
network sees this same [0, 1] image stacked with the sigmoid maps.

Resolved ambiguities / deviations:
    - B7 and the final regression deconv are built as 8x8/4 instead of the
      printed 4x4/4: with kernel = stride the FCN bilinear formula is not an
      interpolator (spec 3.4), with kernel 2x stride the bilinear init is an
      exact bilinear upsampling. +12 k parameters each (< 0.02 %).
    - The hourglass deconvs D5 keep the printed 2x2/2 (kernel 2x stride would
      add 4.2 M parameters); their FCN bilinear init is 0.25 x nearest
      neighbour, as the formula gives literally.
    - Convolutions use Keras' default init (Glorot); ``zero_init=True``
      zero-initialises the added layers as the paper does (B6, the regression
      convs; deconvs stay bilinear). The paper reports both behave alike.
    - The paper's own detectors (VGG-16, ResNet-152) come without ImageNet
      weights here (the paper presets train from scratch); the ImageNet
      initialisation is the pretrained trunk above.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras

from keras_pose.codecs.heatmap import check_smooth
from keras_pose.layers import BilinearKernel, HeatmapToKeypoints, bilinear_upsample
from keras_pose.models.backbones import check_backbone, top_down_merge, trunk_features
from keras_pose.models.common import ModelConfig, attach_config, check_choice, conv_block, name_outputs

INSTANCES = ("vgg", "residual")


@dataclasses.dataclass(frozen=True)
class PartHeatmapConfig(ModelConfig):
    """Configuration of the detection + regression cascade.

    Args:
        num_joints: K.
        input_size: (H, W). vgg: multiple of 32; residual: multiple of
            ``4 * 2 ** hourglass_depth`` and of 16.
        instance: ``"vgg"`` or ``"residual"``.
        width: multiplier for every hidden channel count.
        zero_init: zero-initialise the added layers (paper) instead of Glorot.

        vgg instance:
        vgg_blocks: ((filters, convs), ...) of A1-A5.
        fc_filters, fc_kernel: A6 (7x7 4096) and A7 (1x1 4096).
        dropout: after A6 and A7.
        batch_norm: BN after every VGG and regression conv (not in the paper).
        reg_filters, reg_kernels: C1-C6 of the regression net.
        reg_pools: number of leading regression convs followed by a 2x2 pool.

        residual instance:
        resnet_blocks: bottlenecks per stage (ResNet-152: 3, 8, 36, 3).
        resnet_filters: bottleneck width of the first stage (outputs x4).
        hourglass_depth, hourglass_filters, hourglass_blocks: the hourglass.
        head_filters: D6 (conv 1x1 512).

        decode_border: the keypoint decoder ignores this many pixels on each
            edge of the regression maps (not in the paper; 0 = all pixels).
            The final learned x4 transposed convolution can leave spikes on
            the outermost pixels, which win the argmax
            (:class:`keras_pose.layers.HeatmapToKeypoints` ``border``).
        decode_smooth: 0 (off) or an odd box width in pixels: the decoder
            blurs the regression maps before the argmax (not in the paper;
            ``HeatmapToKeypoints`` ``smooth``). Maps trained on wide
            Gaussians have flat tops where small noise, or int8
            quantization, moves the argmax by several pixels.

        backbone: ``"paper"`` (the instance's own detector) or a pretrained
            trunk of :mod:`keras_pose.models.backbones` as the residual
            instance's detector (``resnet_*`` are then unused); the input
            must then be a multiple of 32 and of ``4 * 2 ** hourglass_depth``.
        backbone_weights: None or ``"imagenet"`` (trunks only).
        freeze_backbone_bn: a pretrained trunk's BN layers keep their
            ImageNet statistics and run in inference mode while training (no
            effect without ``backbone_weights``); off by default,
            as for :class:`~keras_pose.models.softargmax.SoftArgmaxConfig`.
        neck_filters: trunks only: channels of the top-down merge of the
            trunk's features to stride 4 (not scaled by ``width``).
    """

    family: ClassVar[str] = "part_heatmap"

    num_joints: int = 16
    input_size: tuple = (256, 256)
    instance: str = "residual"
    width: float = 1.0
    zero_init: bool = False
    # vgg
    vgg_blocks: tuple = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
    fc_filters: int = 4096
    fc_kernel: int = 7
    dropout: float = 0.5
    batch_norm: bool = False
    reg_filters: tuple = (64, 64, 128, 256, 512, 512)
    reg_kernels: tuple = (9, 13, 13, 15, 1, 1)
    reg_pools: int = 2
    # residual
    resnet_blocks: tuple = (3, 8, 36, 3)
    resnet_filters: int = 64
    hourglass_depth: int = 4
    hourglass_filters: int = 256
    hourglass_blocks: int = 3
    head_filters: int = 512
    decode_border: int = 0
    decode_smooth: int = 0
    # pretrained trunk
    backbone: str = "paper"
    backbone_weights: str | None = None
    freeze_backbone_bn: bool = False
    neck_filters: int = 128

    def __post_init__(self):
        super().__post_init__()
        check_choice("PartHeatmapConfig", "instance", self.instance, INSTANCES)
        check_backbone("PartHeatmapConfig", self.backbone, self.backbone_weights)
        if self.backbone != "paper" and self.instance != "residual":
            raise ValueError(f"PartHeatmapConfig.backbone: a pretrained trunk replaces the residual instance's "
                             f"detector; expected instance='residual', got {self.instance!r}")
        if self.decode_border < 0:
            raise ValueError(f"PartHeatmapConfig.decode_border must be >= 0, got {self.decode_border}")
        check_smooth(self.decode_smooth, "PartHeatmapConfig.decode_smooth")
        h, w = self.input_size
        if self.instance == "vgg":
            if h % 32 or w % 32:
                raise ValueError(f"PartHeatmapConfig.input_size: the vgg instance needs multiples of 32, got {self.input_size}")
            if len(self.vgg_blocks) != 5:
                raise ValueError(f"PartHeatmapConfig.vgg_blocks: expected 5 blocks (A1-A5), got {self.vgg_blocks}")
            if len(self.reg_filters) != len(self.reg_kernels) or self.reg_pools > len(self.reg_filters):
                raise ValueError(f"PartHeatmapConfig: reg_filters {self.reg_filters} / reg_kernels {self.reg_kernels} / "
                                 f"reg_pools {self.reg_pools} are inconsistent")
        else:
            m = max(16 if self.backbone == "paper" else 32, 4 * 2 ** self.hourglass_depth)
            trunk = "" if self.backbone == "paper" else f" on the trunk {self.backbone!r}"
            if h % m or w % m:
                raise ValueError(f"PartHeatmapConfig.input_size: the residual instance{trunk} with hourglass_depth="
                                 f"{self.hourglass_depth} needs multiples of {m}, got {self.input_size}")
            if len(self.resnet_blocks) != 4:
                raise ValueError(f"PartHeatmapConfig.resnet_blocks: expected 4 stages, got {self.resnet_blocks}")

    @property
    def detection_stride(self) -> int:
        return 1 if self.instance == "vgg" else 4

    @property
    def regression_stride(self) -> int:
        return 1


# ---------------------------------------------------------------------------
# VGG instance
# ---------------------------------------------------------------------------


def _vgg_detection(x, cfg: PartHeatmapConfig):
    """A1-A9: VGG-16 + FCN-8s fusion, logits at full resolution."""
    k, bn = cfg.num_joints, cfg.batch_norm
    init = "zeros" if cfg.zero_init else "glorot_uniform"
    pools = []
    for b, (filters, convs) in enumerate(cfg.vgg_blocks):
        for i in range(convs):
            x = conv_block(x, cfg.ch(filters), 3, batch_norm=bn, name=f"det_conv{b + 1}_{i + 1}")
        x = keras.layers.MaxPooling2D(2, 2, name=f"det_pool{b + 1}")(x)
        pools.append(x)
    x = conv_block(x, cfg.ch(cfg.fc_filters), cfg.fc_kernel, batch_norm=bn, name="det_fc6")
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name="det_fc6_dropout")(x)
    x = conv_block(x, cfg.ch(cfg.fc_filters), 1, batch_norm=bn, name="det_fc7")
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name="det_fc7_dropout")(x)
    score = conv_block(x, k, 1, activation=None, kernel_initializer=init, name="det_score_fr")
    up = bilinear_upsample(k, 2, name="det_upscore2")(score)
    s4 = conv_block(pools[3], k, 1, activation=None, kernel_initializer=init, name="det_score_pool4")
    up = keras.layers.Add(name="det_fuse_pool4")([up, s4])
    up = bilinear_upsample(k, 2, name="det_upscore_pool4")(up)
    s3 = conv_block(pools[2], k, 1, activation=None, kernel_initializer=init, name="det_score_pool3")
    up = keras.layers.Add(name="det_fuse_pool3")([up, s3])
    return bilinear_upsample(k, 8, name="detection")(up)


def _vgg_regression(x, cfg: PartHeatmapConfig):
    """C1-C8: large-kernel regression net, stride 4 inside, full resolution out."""
    init = "zeros" if cfg.zero_init else "glorot_uniform"
    for i, (filters, kernel) in enumerate(zip(cfg.reg_filters, cfg.reg_kernels)):
        x = conv_block(x, cfg.ch(filters), kernel, batch_norm=cfg.batch_norm, kernel_initializer=init,
                       name=f"reg_conv{i + 1}")
        if i < cfg.reg_pools:
            x = keras.layers.MaxPooling2D(2, 2, name=f"reg_pool{i + 1}")(x)
    n = len(cfg.reg_filters)
    x = conv_block(x, cfg.num_joints, 1, activation=None, kernel_initializer=init, name=f"reg_conv{n + 1}")
    if cfg.reg_pools:
        x = bilinear_upsample(cfg.num_joints, 2 ** cfg.reg_pools, name="regression")(x)
    return x


# ---------------------------------------------------------------------------
# Residual instance
# ---------------------------------------------------------------------------


def _post_bottleneck(x, width, stride, name):
    """fb.resnet post-activation bottleneck: 1x1 -> 3x3 (stride) -> 1x1 x4, BN after each, ReLU after add."""
    out = 4 * width
    shortcut = x
    if x.shape[-1] != out or stride != 1:
        shortcut = conv_block(x, out, 1, strides=stride, batch_norm=True, activation=None, name=f"{name}_proj")
    y = conv_block(x, width, 1, batch_norm=True, name=f"{name}_conv1")
    y = conv_block(y, width, 3, strides=stride, batch_norm=True, name=f"{name}_conv2")
    y = conv_block(y, out, 1, batch_norm=True, activation=None, name=f"{name}_conv3")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def _residual_detection(x, cfg: PartHeatmapConfig):
    """B1-B7: ResNet (last stage stride 1) + 1x1 scoring + x4 deconv: logits at stride 4."""
    init = "zeros" if cfg.zero_init else "glorot_uniform"
    x = conv_block(x, cfg.ch(64), 7, strides=2, batch_norm=True, name="det_conv1")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="det_pool1")(x)
    for s, blocks in enumerate(cfg.resnet_blocks):
        width = cfg.ch(cfg.resnet_filters * 2 ** s)
        for i in range(blocks):
            stride = 2 if (i == 0 and s in (1, 2)) else 1  # B5: stride 2 -> 1
            x = _post_bottleneck(x, width, stride, name=f"det_res{s + 2}_{i + 1}")
    x = conv_block(x, cfg.num_joints, 1, activation=None, kernel_initializer=init, name="det_score")
    return bilinear_upsample(cfg.num_joints, 4, name="detection")(x)


def _trunk_detection(levels, cfg: PartHeatmapConfig):
    """The trunk's levels merged top-down to stride 4 + 1x1 scoring: (stride-4 features, logits at stride 4)."""
    init = "zeros" if cfg.zero_init else "glorot_uniform"
    features = top_down_merge(levels, cfg.neck_filters, level="P2", name="det_neck")
    return features, conv_block(features, cfg.num_joints, 1, activation=None, kernel_initializer=init,
                                name="det_score")


def _pre_bottleneck(x, filters, name, init):
    """Newell pre-activation bottleneck: (BN-ReLU-conv) 1x1 F/2 -> 3x3 F/2 -> 1x1 F, 1x1 projection if needed."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, kernel_initializer=init, name=f"{name}_proj")(x)
    y = x
    for i, (f, k) in enumerate(((filters // 2, 1), (filters // 2, 3), (filters, 1))):
        y = keras.layers.BatchNormalization(name=f"{name}_bn{i + 1}")(y)
        y = keras.layers.Activation("relu", name=f"{name}_relu{i + 1}")(y)
        y = keras.layers.Conv2D(f, k, padding="same", kernel_initializer=init, name=f"{name}_conv{i + 1}")(y)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def _hourglass(x, depth, cfg: PartHeatmapConfig, name, init):
    """D2-D5 recursively: skip branch, pooled branch (recursing), 2x2/2 deconv, add."""
    f = cfg.ch(cfg.hourglass_filters)
    up = x
    for i in range(cfg.hourglass_blocks):
        up = _pre_bottleneck(up, f, f"{name}_skip{i + 1}", init)
    low = keras.layers.MaxPooling2D(2, 2, name=f"{name}_pool")(x)
    for i in range(cfg.hourglass_blocks):
        low = _pre_bottleneck(low, f, f"{name}_down{i + 1}", init)
    if depth > 1:
        low = _hourglass(low, depth - 1, cfg, f"{name}_{depth - 1}", init)
    else:
        for i in range(cfg.hourglass_blocks):
            low = _pre_bottleneck(low, f, f"{name}_low{i + 1}", init)
    low = keras.layers.Conv2DTranspose(f, 2, strides=2, padding="same", kernel_initializer=BilinearKernel(),
                                       name=f"{name}_deconv")(low)
    return keras.layers.Add(name=f"{name}_add")([up, low])


def _hourglass_regression(x, cfg: PartHeatmapConfig, downsample: bool = True):
    """D1-D7 + final x4 deconv: one hourglass, output at 4x the hourglass resolution.

    ``downsample``: D1 as printed (conv 7x7/2 + pool, input at the image resolution); else the input
    is already at stride 4 (trunk features) and D1 is a stride-1 3x3 conv.
    """
    init = "zeros" if cfg.zero_init else "glorot_uniform"
    if downsample:
        x = conv_block(x, cfg.ch(64), 7, strides=2, batch_norm=True, kernel_initializer=init, name="reg_conv1")
        x = keras.layers.MaxPooling2D(2, 2, name="reg_pool1")(x)
    else:
        x = conv_block(x, cfg.ch(64), 3, batch_norm=True, kernel_initializer=init, name="reg_conv1")
    x = _pre_bottleneck(x, cfg.ch(cfg.hourglass_filters), "reg_lift", init)
    x = _hourglass(x, cfg.hourglass_depth, cfg, f"reg_hg{cfg.hourglass_depth}", init)
    x = conv_block(x, cfg.ch(cfg.head_filters), 1, batch_norm=True, kernel_initializer=init, name="reg_head")
    x = conv_block(x, cfg.num_joints, 1, activation=None, kernel_initializer=init, name="reg_score")
    return bilinear_upsample(cfg.num_joints, 4, name="regression")(x)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def build_part_heatmap(config: PartHeatmapConfig | None = None, name: str = "part_heatmap",
                       pretrained: bool = True) -> keras.Model:
    """Build the part heatmap regression cascade (detection -> regression); ``pretrained=False``:
    a trunk without its ImageNet weights, for a model whose own weights are loaded next.

    Returns:
        A functional model: input ``"images"`` (B, H, W, 3) float32 RGB in
        [0, 255]; outputs ``detection`` (logits), ``regression``,
        ``keypoints``, ``scores``.
    """
    cfg = config or PartHeatmapConfig()
    h, w = cfg.input_size
    images = keras.Input((h, w, 3), name="images", dtype="float32")

    if cfg.backbone != "paper":  # residual instance on a pretrained trunk, all at stride 4
        levels = trunk_features(images, cfg.backbone, cfg.backbone_weights, load_weights=pretrained,
                                freeze_bn=cfg.freeze_backbone_bn)
        features, detection = _trunk_detection(levels, cfg)
        maps = keras.layers.Activation("sigmoid", name="detection_sigmoid")(detection)
        stacked = keras.layers.Concatenate(name="stack_features_heatmaps")([features, maps])
        regression = _hourglass_regression(stacked, cfg, downsample=False)
    else:
        x = keras.layers.Rescaling(1.0 / 255.0, name="rgb_unit")(images)
        if cfg.instance == "vgg":
            detection = _vgg_detection(x, cfg)
            maps = keras.layers.Activation("sigmoid", name="detection_sigmoid")(detection)
        else:
            detection = _residual_detection(x, cfg)
            maps = keras.layers.Activation("sigmoid", name="detection_sigmoid")(detection)
            maps = keras.layers.UpSampling2D(cfg.detection_stride, interpolation="bilinear",
                                             name="detection_resize")(maps)
        stacked = keras.layers.Concatenate(name="stack_image_heatmaps")([x, maps])
        regression = _vgg_regression(stacked, cfg) if cfg.instance == "vgg" else _hourglass_regression(stacked, cfg)

    keypoints, scores = HeatmapToKeypoints(stride=cfg.regression_stride, border=cfg.decode_border,
                                           smooth=cfg.decode_smooth, name="decode")(regression)
    outputs = {"detection": detection, "regression": regression, "keypoints": keypoints, "scores": scores}
    model = keras.Model(images, name_outputs(outputs), name=name)
    return attach_config(model, cfg)


__all__ = ["PartHeatmapConfig", "build_part_heatmap", "INSTANCES"]
