"""DeepPose: direct regression of joint coordinates with a cascade of CNN regressors.

Reference:
    A. Toshev and C. Szegedy, "DeepPose: Human Pose Estimation via Deep Neural
    Networks", CVPR 2014. https://arxiv.org/abs/1312.4659

Spec: ``docs/paper_specs.md`` section 1.

The network psi (spec 1.1) is an AlexNet-style CNN that regresses 2K numbers,
the joints normalised by the crop box (``N(y; b) = (y - b_c) / b_wh``, so
joints inside the box lie in [-0.5, 0.5]). :func:`build_deeppose` builds psi
for one stage; the cascade (spec 1.2) is driven by :class:`DeepPoseCascade`,
whose stages >= 2 run psi on crops of side ``sigma * diam(pose)`` around each
joint and refine joint i with output pair i. :func:`refinement_crops` makes
the same crops (and their targets) for training a refinement stage.

Outputs of the model:
    ``coords``    (B, K, 2) box-normalised (box = the whole input crop).
    ``keypoints`` (B, K, 2) input pixels, ``(coords + 0.5) * (W, H) - 0.5``.
    ``scores``    (B, K) all ones: DeepPose regresses coordinates only and has
                  no confidence output.

Resolved ambiguities (spec section 6, rows 1-2):
    - conv1 uses ``same`` padding (55/27/13 sizes as printed): 58.40 M params
      for K = 14 (the paper's "about 40M" cannot be reproduced).
    - AlexNet LRN(n=5, k=2, alpha=1e-4, beta=0.75), AlexNet-paper formula
      ``x / (k + alpha * sum_window x^2) ** beta`` (alpha is not divided by n as
      in Caffe); order conv-ReLU-LRN-pool.
    - Dropout 0.6 is the drop rate; input = per-channel ImageNet mean
      subtraction; ungrouped convolutions.
    - The cascade update: the paper writes ``y_i^s = y_i^{s-1} + N^-1(psi_i; b_i)``.
      Since b_i is centred on ``y_i^{s-1}``, we read the refinement output as
      the box-normalised *displacement*, ``y_i^s = y_i^{s-1} + b_wh * psi_i``
      (= ``N^-1(psi_i; b_i)`` as an absolute point), which is what the
      stage-s target ``N(y_i; b_i)`` trains.

Small presets may replace LRN with batch normalisation (``batch_norm=True,
lrn=False``); BN trains these nets much faster on CPU.

On a pretrained trunk (``backbone``, :mod:`keras_pose.models.backbones`):
the trunk's stride-32 features (P5, 320 channels for Lite0, no 1280-channel
head conv; or its stride-16 P4, ``feature_level``; optionally reduced by a
1x1 convolution, ``reduce_filters``)
replace C1-C5 and are flattened into the paper's F6, F7 and the
linear 2K output, as C5's 6x6x256 are in the paper; every cascade stage
built from such a config (:func:`build_deeppose_cascade`, or a refinement
stage trained from it) has its own trunk.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Sequence

import keras
from keras import ops

from keras_pose.models.backbones import check_backbone, trunk_features
from keras_pose.models.common import (PACKAGE, InputNormalization, ModelConfig, NormalizedToPixels,
                                      attach_config, conv_block, name_outputs)
from keras_pose.skeletons import LSP14, Skeleton, get_skeleton

#: ImageNet per-channel RGB means in [0, 255].
IMAGENET_MEAN_RGB = (123.68, 116.78, 103.94)


@dataclasses.dataclass(frozen=True)
class DeepPoseConfig(ModelConfig):
    """Configuration of the DeepPose regressor psi (one cascade stage).

    Args:
        num_joints: K; the network regresses 2K numbers.
        input_size: (H, W) of the crop fed to psi.
        num_stages: cascade length S used by :func:`build_deeppose_cascade`
            (each stage is a separate psi with this config).
        width: multiplier for every conv and dense channel count.
        conv_filters, conv_kernels: the five convolutions C1-C5.
        stem_stride: stride of C1.
        dense_units: hidden dense layers F6, F7.
        dropout: drop rate after F6 and F7.
        lrn: AlexNet local response normalisation after C1 and C2.
        batch_norm: BatchNorm after every conv (small variants).
        sigma: cascade crop size factor (box side = sigma * diam(pose)).
        skeleton: skeleton name used by the cascade to find the torso diameter.
        backbone: ``"paper"`` (C1-C5) or a pretrained trunk of
            :mod:`keras_pose.models.backbones` whose stride-32 (or
            ``feature_level``) features feed F6 (``conv_*``, ``stem_stride``
            and ``lrn`` are then unused; ``batch_norm`` applies to F6, F7). ``input_size`` must then be a
            multiple of 32.
        backbone_weights: None or ``"imagenet"`` (trunks only).
        freeze_backbone_bn: a pretrained trunk's BN layers keep their
            ImageNet statistics and run in inference mode while training (no
            effect without ``backbone_weights``); off by default,
            as for :class:`~keras_pose.models.softargmax.SoftArgmaxConfig`.
        reduce_filters: trunks only: a 1x1 convolution (+ BN with
            ``batch_norm``) + ReLU to this many channels between the trunk's
            stride-32 features and the flatten (None: flatten the trunk's
            features as they are). It keeps the spatial layout F6 reads and
            cuts F6's weights by the channel ratio (Lite0: 320 -> 64 channels
            is 4.1 M -> 0.8 M weights at 160x160).
        feature_level: trunks only: the trunk level F6 reads, ``"P5"``
            (stride 32, the default; 5x5 at 160x160) or ``"P4"`` (stride 16,
            10x10: a finer layout for the regression, four times F6's inputs).
    """

    family: ClassVar[str] = "deeppose"

    num_joints: int = 14
    input_size: tuple = (220, 220)
    num_stages: int = 3
    width: float = 1.0
    conv_filters: tuple = (96, 256, 384, 384, 256)
    conv_kernels: tuple = (11, 5, 3, 3, 3)
    stem_stride: int = 4
    dense_units: tuple = (4096, 4096)
    dropout: float = 0.6
    lrn: bool = True
    batch_norm: bool = False
    sigma: float = 2.0
    skeleton: str = "lsp14"
    backbone: str = "paper"
    backbone_weights: str | None = None
    freeze_backbone_bn: bool = False
    reduce_filters: int | None = None
    feature_level: str = "P5"

    def __post_init__(self):
        super().__post_init__()
        check_backbone("DeepPoseConfig", self.backbone, self.backbone_weights)
        if self.reduce_filters is not None:
            if self.backbone == "paper":
                raise ValueError("DeepPoseConfig.reduce_filters: only for a pretrained trunk (backbone != 'paper'), "
                                 "the paper's C5 feeds F6 as it is")
            if isinstance(self.reduce_filters, bool) or not isinstance(self.reduce_filters, int) \
                    or self.reduce_filters < 1:
                raise ValueError(f"DeepPoseConfig.reduce_filters: a positive channel count or None, got "
                                 f"{self.reduce_filters!r}")
        if self.feature_level not in ("P4", "P5"):
            raise ValueError(f"DeepPoseConfig.feature_level: 'P4' (stride 16) or 'P5' (stride 32), got "
                             f"{self.feature_level!r}")
        if self.feature_level != "P5" and self.backbone == "paper":
            raise ValueError("DeepPoseConfig.feature_level: only for a pretrained trunk (backbone != 'paper'), "
                             "the paper's C5 feeds F6")
        if len(self.conv_filters) != 5 or len(self.conv_kernels) != 5:
            raise ValueError(f"DeepPoseConfig: conv_filters and conv_kernels need 5 entries (C1-C5), got "
                             f"{self.conv_filters} and {self.conv_kernels}")
        if self.backbone != "paper":
            if any(side % 32 for side in self.input_size):
                raise ValueError(f"DeepPoseConfig.input_size: a pretrained trunk needs multiples of 32, got "
                                 f"{self.input_size}")
            return
        for side in self.input_size:
            n = -(-side // self.stem_stride)
            for _ in range(3):  # three 3x3/2 valid max-pools
                if n < 3:
                    raise ValueError(f"DeepPoseConfig.input_size {self.input_size} is too small for stem_stride "
                                     f"{self.stem_stride} and three 3x3/2 valid pools (need >= {14 * self.stem_stride + 1} px)")
                n = (n - 3) // 2 + 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """AlexNet cross-channel local response normalisation.

    ``b_c = a_c / (k + alpha * sum_{c' in window(c)} a_c'^2) ** beta``, the
    window being ``depth`` channels centred on c (zero-padded at the ends).

    Args:
        depth: window size n (odd).
        bias: k.
        alpha: alpha (not divided by n; the AlexNet paper formula).
        beta: beta.
    """

    def __init__(self, depth=5, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        if depth % 2 != 1:
            raise ValueError(f"LocalResponseNormalization: depth must be odd, got {depth}")
        self.depth = int(depth)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, x):
        r = self.depth // 2
        c = x.shape[-1]
        sq = ops.pad(ops.square(x), [[0, 0], [0, 0], [0, 0], [r, r]])
        window = sq[..., 0:c]
        for i in range(1, self.depth):
            window = window + sq[..., i:i + c]
        return x / ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth, bias=self.bias, alpha=self.alpha, beta=self.beta)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class UnitScores(keras.layers.Layer):
    """(B, K, 2) coordinates -> (B, K) ones: DeepPose has no confidence output."""

    def call(self, coords):
        return ops.ones_like(coords[..., 0])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


def build_deeppose(config: DeepPoseConfig | None = None, name: str = "deeppose",
                   pretrained: bool = True) -> keras.Model:
    """Build the DeepPose regressor psi (``pretrained=False``: a trunk without its ImageNet
    weights, for a model whose own weights are loaded next).

    Returns:
        A functional model with input ``"images"`` (B, H, W, 3) float32 RGB in
        [0, 255] and outputs ``{"coords", "keypoints", "scores"}`` (see the
        module docstring).
    """
    cfg = config or DeepPoseConfig()
    h, w = cfg.input_size
    k = cfg.num_joints
    images = keras.Input((h, w, 3), name="images", dtype="float32")
    if cfg.backbone == "paper":
        x = InputNormalization(offset=IMAGENET_MEAN_RGB, scale=1.0, name="imagenet_mean")(images)
        f, ks = cfg.conv_filters, cfg.conv_kernels
        for i in range(5):
            x = conv_block(x, cfg.ch(f[i]), ks[i], strides=cfg.stem_stride if i == 0 else 1,
                           batch_norm=cfg.batch_norm, name=f"conv{i + 1}")
            if i < 2 and cfg.lrn:
                x = LocalResponseNormalization(name=f"lrn{i + 1}")(x)
            if i in (0, 1, 4):
                x = keras.layers.MaxPooling2D(3, 2, padding="valid", name=f"pool{i + 1}")(x)
    else:
        x = trunk_features(images, cfg.backbone, cfg.backbone_weights, load_weights=pretrained,
                           freeze_bn=cfg.freeze_backbone_bn)[cfg.feature_level]
        if cfg.reduce_filters:
            x = conv_block(x, cfg.reduce_filters, 1, batch_norm=cfg.batch_norm, name="reduce")
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(cfg.dense_units):
        x = keras.layers.Dense(cfg.ch(units), use_bias=not cfg.batch_norm, name=f"fc{i + 6}")(x)
        if cfg.batch_norm:
            x = keras.layers.BatchNormalization(name=f"fc{i + 6}_bn")(x)
        x = keras.layers.Activation("relu", name=f"fc{i + 6}_relu")(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout, name=f"fc{i + 6}_dropout")(x)
    x = keras.layers.Dense(2 * k, name="fc_coords")(x)
    coords = keras.layers.Reshape((k, 2), name="coords")(x)
    keypoints = NormalizedToPixels((h, w), centered=True, name="keypoints")(coords)
    scores = UnitScores(name="scores")(coords)
    model = keras.Model(images, name_outputs({"coords": coords, "keypoints": keypoints, "scores": scores}), name=name)
    return attach_config(model, cfg)


def build_deeppose_cascade(config: DeepPoseConfig | None = None, name: str = "deeppose",
                           pretrained: bool = True) -> "DeepPoseCascade":
    """``config.num_stages`` independent regressors psi_1..psi_S wrapped in a :class:`DeepPoseCascade`
    (each with its own trunk when ``config`` names one)."""
    cfg = config or DeepPoseConfig()
    models = [build_deeppose(cfg, name=f"{name}_stage{s + 1}", pretrained=pretrained) for s in range(cfg.num_stages)]
    return DeepPoseCascade(models, sigma=cfg.sigma, skeleton=cfg.skeleton)


# ---------------------------------------------------------------------------
# Cascade (TensorFlow ops: tf.image.crop_and_resize)
# ---------------------------------------------------------------------------


def pose_diameter(pose, skeleton: Skeleton | str = LSP14, min_diameter: float = 1.0):
    """diam(y): distance from a shoulder to the opposite hip (the skeleton's ``torso`` pair).

    Args:
        pose: (B, K, 2) pixels.
        skeleton: defines which joints are the torso pair.
        min_diameter: lower bound, so that degenerate poses still give a box.

    Returns:
        (B,) diameters in pixels.
    """
    import tensorflow as tf

    skeleton = get_skeleton(skeleton)
    if skeleton.torso_indices is None:
        raise ValueError(f"skeleton {skeleton.name!r} has no torso pair; DeepPose needs one for diam(y)")
    a, b = skeleton.torso_indices
    pose = tf.convert_to_tensor(pose, tf.float32)
    d = tf.norm(pose[:, a] - pose[:, b], axis=-1)
    return tf.maximum(d, min_diameter)


def crop_boxes(images, centers, sizes, crop_size, extrapolation_value=0.0, method: str = "crop_and_resize"):
    """Crop boxes given by centre and size (pixels) and resize them to ``crop_size``.

    The box ``[c - s/2, c + s/2]`` (continuous pixel coordinates; pixel j
    covers [j - 0.5, j + 0.5]) is resampled bilinearly so that the crop's
    pixel centres sit at ``c - s/2 + (i + 0.5) * s / n``: the crop is exactly
    the box as a model input, so box-normalised coordinates of the crop
    (``(p + 0.5) / n - 0.5``) equal ``N(x; b)``.

    Args:
        images: (B, H, W, C).
        centers: (B, M, 2) box centres (x, y) in pixels.
        sizes: (B, M, 2) box sizes (w, h) in pixels.
        crop_size: (h, w) of the output crops.
        extrapolation_value: fill value outside the image.
        method: ``"crop_and_resize"`` (``tf.image.crop_and_resize``, fastest in
            TensorFlow) or ``"gather"`` (the same bilinear resampling from
            TFLite builtin ops, for exported cascades).

    Returns:
        (B * M, h, w, C) float32 crops, ordered box-major within each image
        (crop ``b * M + m`` is box m of image b).
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    centers = tf.convert_to_tensor(centers, tf.float32)
    sizes = tf.convert_to_tensor(sizes, tf.float32)
    shape = tf.shape(images)
    bsz, m = tf.shape(centers)[0], tf.shape(centers)[1]
    hh, ww = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    ch, cw = int(crop_size[0]), int(crop_size[1])
    first = centers - sizes / 2 + sizes / tf.constant([2.0 * cw, 2.0 * ch])
    last = centers + sizes / 2 - sizes / tf.constant([2.0 * cw, 2.0 * ch])
    # crop_and_resize maps normalised 0 -> pixel 0 and 1 -> pixel H - 1.
    y1 = first[..., 1] / tf.maximum(hh - 1, 1.0)
    x1 = first[..., 0] / tf.maximum(ww - 1, 1.0)
    y2 = last[..., 1] / tf.maximum(hh - 1, 1.0)
    x2 = last[..., 0] / tf.maximum(ww - 1, 1.0)
    box_indices = tf.repeat(tf.range(bsz), m)
    if method == "gather":
        return _crop_by_gather(tf.cast(images, tf.float32), tf.reshape(first, (-1, 2)), tf.reshape(last, (-1, 2)),
                               box_indices, (ch, cw), extrapolation_value)
    if method != "crop_and_resize":
        raise ValueError(f"crop_boxes: method must be 'crop_and_resize' or 'gather', got {method!r}")
    boxes = tf.reshape(tf.stack([y1, x1, y2, x2], axis=-1), (-1, 4))
    return tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, box_indices, (ch, cw),
                                    extrapolation_value=extrapolation_value)


def _crop_by_gather(images, first, last, box_indices, crop_size, extrapolation_value=0.0):
    """``tf.image.crop_and_resize`` (bilinear) from TFLite builtin ops (GATHER and arithmetic).

    Args:
        images: (B, H, W, C) float32.
        first, last: (N, 2) pixel coordinates (x, y) of the first and last
            sample of each crop (``crop_and_resize``'s box corners, in pixels).
        box_indices: (N,) image of each crop.
        crop_size: (h, w).
        extrapolation_value: value of samples outside [0, H - 1] x [0, W - 1].

    Returns:
        (N, h, w, C) crops, equal to ``crop_and_resize``'s up to float rounding.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    ch, cw = crop_size

    def samples(a, b, n):  # (N,) first/last sample -> (N, n) sample coordinates
        if n == 1:
            return ((a + b) / 2)[:, None]
        return a[:, None] + (b - a)[:, None] * tf.constant([i / (n - 1) for i in range(n)], tf.float32)[None]

    ys, xs = samples(first[:, 1], last[:, 1], ch), samples(first[:, 0], last[:, 0], cw)
    hf, wf = tf.cast(h - 1, tf.float32), tf.cast(w - 1, tf.float32)
    inside = (tf.cast((ys >= 0) & (ys <= hf), tf.float32)[:, :, None]
              * tf.cast((xs >= 0) & (xs <= wf), tf.float32)[:, None, :])[..., None]  # (N, h, w, 1)
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = (ys - y0)[:, :, None, None], (xs - x0)[:, None, :, None]

    def index(v, top):
        return tf.clip_by_value(tf.cast(v, tf.int32), 0, top)

    ya, yb = index(y0, h - 1), index(y0 + 1, h - 1)
    xa, xb = index(x0, w - 1), index(x0 + 1, w - 1)
    base = (box_indices * h * w)[:, None, None]
    flat = tf.reshape(images, (-1, shape[3]))

    def corner(yy, xx):
        return tf.gather(flat, base + yy[:, :, None] * w + xx[:, None, :])

    top = corner(ya, xa) + (corner(ya, xb) - corner(ya, xa)) * wx
    bottom = corner(yb, xa) + (corner(yb, xb) - corner(yb, xa)) * wx
    out = top + (bottom - top) * wy
    return out * inside + extrapolation_value * (1.0 - inside)


def joint_boxes(pose, sigma: float = 2.0, skeleton: Skeleton | str = LSP14, min_diameter: float = 1.0):
    """Boxes b_i of stage s >= 2: centred on each joint, side ``sigma * diam(pose)``.

    Returns:
        centers (B, K, 2) and sizes (B, K, 2), both in pixels.
    """
    import tensorflow as tf

    pose = tf.convert_to_tensor(pose, tf.float32)
    side = sigma * pose_diameter(pose, skeleton, min_diameter)  # (B,)
    sizes = tf.broadcast_to(side[:, None, None], tf.shape(pose))
    return pose, sizes


def select_own_joint(coords):
    """From (B, K, K, 2) per-crop outputs take output pair i of crop i -> (B, K, 2)."""
    import tensorflow as tf

    k = coords.shape[1] if coords.shape[1] is not None else tf.shape(coords)[1]
    eye = tf.eye(k, dtype=coords.dtype)
    return tf.einsum("bikc,ik->bic", coords, eye)


def refinement_crops(images, prev_pose, crop_size, joints=None, sigma: float = 2.0,
                     skeleton: Skeleton | str = LSP14, min_diameter: float = 1.0, extrapolation_value=0.0):
    """Training samples of a refinement stage s >= 2 (spec 1.2 and 1.4).

    The training code draws ``prev_pose`` (the simulated stage s-1
    prediction, e.g. ``joints + delta``); this returns one crop per (image,
    joint) around ``prev_pose`` and its target.

    Args:
        images: (B, H, W, 3) full images (pixels).
        prev_pose: (B, K, 2) previous-stage pose, pixels.
        crop_size: (h, w) input size of psi_s.
        joints: optional (B, K, 2) ground truth, pixels.

    Returns:
        dict with ``crops`` (B*K, h, w, 3), ``joint_ids`` (B*K,) the joint i
        each crop refines (only output pair i of psi_s is supervised),
        ``centers`` and ``sizes`` (B, K, 2) of the boxes, and when ``joints``
        is given ``targets`` (B*K, 2) = ``N(y_i; b_i)`` = ``(y_i - prev_i) / size``.
    """
    import tensorflow as tf

    centers, sizes = joint_boxes(prev_pose, sigma, skeleton, min_diameter)
    crops = crop_boxes(images, centers, sizes, crop_size, extrapolation_value)
    k = tf.shape(centers)[1]
    out = {"crops": crops, "joint_ids": tf.tile(tf.range(k), [tf.shape(centers)[0]]),
           "centers": centers, "sizes": sizes}
    if joints is not None:
        t = (tf.convert_to_tensor(joints, tf.float32) - centers) / sizes
        out["targets"] = tf.reshape(t, (-1, 2))
    return out


class DeepPoseCascade:
    """Runs a DeepPose cascade at inference (spec 1.2).

    Stage 1 runs psi_1 on the whole image (resized to its input size); stage
    s >= 2 crops, around every joint of the current pose, a square box of
    side ``sigma * diam(pose)``, runs psi_s on the B*K crops and moves joint
    i by output pair i times the box size.

    Args:
        stage_models: psi_1..psi_S, models built by :func:`build_deeppose`
            (anything returning a dict with ``"coords"`` (B, K, 2)).
        sigma: box size factor (2.0 on LSP, 1.0 on FLIC).
        skeleton: skeleton (or its name) defining the torso diameter.
        min_diameter: lower bound on diam in pixels.

    Example:
        >>> cascade = DeepPoseCascade([psi1, psi2, psi3], sigma=2.0)
        >>> out = cascade(images)          # images (B, H, W, 3) in [0, 255]
        >>> out["keypoints"].shape         # (B, K, 2) pixels of `images`
    """

    def __init__(self, stage_models: Sequence[keras.Model], sigma: float = 2.0,
                 skeleton: Skeleton | str = LSP14, min_diameter: float = 1.0):
        if not stage_models:
            raise ValueError("DeepPoseCascade: need at least one stage model")
        self.stage_models = list(stage_models)
        self.sigma = float(sigma)
        self.skeleton = get_skeleton(skeleton)
        self.min_diameter = float(min_diameter)

    @staticmethod
    def _input_size(model):
        shape = model.inputs[0].shape
        return int(shape[1]), int(shape[2])

    def __call__(self, images, num_stages: int | None = None, training: bool = False,
                 crop_method: str = "crop_and_resize") -> dict:
        """Run the cascade (``crop_method``: see :func:`crop_boxes`).

        Returns:
            dict with ``keypoints`` (B, K, 2) pixels of ``images``, ``scores``
            (B, K) ones, and ``stages``: the pose after every stage.
        """
        import tensorflow as tf

        images = tf.convert_to_tensor(images, tf.float32)
        bsz = tf.shape(images)[0]
        hh, ww = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        stages = self.stage_models[: num_stages or len(self.stage_models)]

        # Stage 1: the box is the whole image.
        psi = stages[0]
        centre = tf.stack([(ww - 1) / 2, (hh - 1) / 2])
        size = tf.stack([ww, hh])
        centers = tf.broadcast_to(centre, (bsz, 1, 2))
        sizes = tf.broadcast_to(size, (bsz, 1, 2))
        x = crop_boxes(images, centers, sizes, self._input_size(psi), method=crop_method)
        coords = tf.cast(psi(x, training=training)["coords"], tf.float32)  # mixed-precision stages give bf16
        pose = centre + coords * size
        history = [pose]

        for psi in stages[1:]:
            centers, sizes = joint_boxes(pose, self.sigma, self.skeleton, self.min_diameter)
            crops = crop_boxes(images, centers, sizes, self._input_size(psi), method=crop_method)
            coords = tf.cast(psi(crops, training=training)["coords"], tf.float32)  # (B*K, K, 2)
            k = pose.shape[1] if pose.shape[1] is not None else tf.shape(pose)[1]
            coords = tf.reshape(coords, (bsz, k, k, 2))
            pose = pose + select_own_joint(coords) * sizes
            history.append(pose)
        return {"keypoints": pose, "scores": tf.ones_like(pose[..., 0]), "stages": history}


class CascadeLayer(keras.layers.Layer):
    """A :class:`DeepPoseCascade` as one Keras layer: images -> ``{"keypoints", "scores"}``.

    Its stage models are tracked sublayers, so a model built around it
    (:func:`cascade_model`) has every stage's weights and exports like any
    other keras_pose model. Not registered for ``.keras`` serialisation: a
    cascade is saved as a zoo preset (one weights file per stage).
    """

    def __init__(self, cascade: DeepPoseCascade, crop_method: str = "gather", **kwargs):
        super().__init__(**kwargs)
        self.cascade = cascade
        self.stage_models = list(cascade.stage_models)
        self.crop_method = crop_method
        first = cascade.stage_models[0]
        self.num_joints = int(first.outputs[list(first.output_names).index("coords")].shape[1])

    def call(self, images):
        out = self.cascade(images, crop_method=self.crop_method)
        return {"keypoints": out["keypoints"], "scores": out["scores"]}

    def compute_output_spec(self, images):
        b, k = images.shape[0], self.num_joints
        return {"keypoints": keras.KerasTensor((b, k, 2), "float32"), "scores": keras.KerasTensor((b, k), "float32")}


def cascade_model(cascade: DeepPoseCascade, crop_method: str = "gather", name: str = "deeppose_cascade") -> keras.Model:
    """A Keras model running the whole cascade on (B, S, S, 3) crops, S = stage 1's input size.

    With ``crop_method="gather"`` (the default) the crops around the joints
    are taken with TFLite builtin ops, so the cascade exports to SavedModel
    and TFLite like a single network (:func:`keras_pose.export.export_all`).
    """
    h, w = DeepPoseCascade._input_size(cascade.stage_models[0])
    images = keras.Input((h, w, 3), name="images")
    return keras.Model(images, name_outputs(CascadeLayer(cascade, crop_method, name="cascade")(images)), name=name)


__all__ = ["DeepPoseConfig", "build_deeppose", "build_deeppose_cascade", "CascadeLayer", "DeepPoseCascade", "cascade_model", "LocalResponseNormalization",
           "UnitScores", "crop_boxes", "joint_boxes", "pose_diameter", "refinement_crops", "select_own_joint",
           "IMAGENET_MEAN_RGB"]
