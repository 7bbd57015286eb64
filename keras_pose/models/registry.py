"""The architecture presets: one table, one builder entry point.

Every preset is data: a family config plus a one-line description (and, for
the paper presets, the parameter count the spec reports). Names are
``<family>_<variant>``:

- ``*_paper``: the paper's own network, matching ``docs/paper_specs.md``.
- ``*_small``: CPU-trainable variants the zoo ships (LSP, 14 joints,
  ~0.5-2 GFLOPs, < 6 M parameters, BN where the family allows).
- ``*_tiny``: ~0.02-0.1 GFLOPs at 64x64, for tests and overfit checks.
- ``*_lite0``: the family's structure on an ImageNet-pretrained
  EfficientNet-Lite0 trunk (``backbone``), LSP, 14 joints, 160x160.

Example:
    >>> from keras_pose.models import build_model, list_architectures
    >>> model = build_model("cpm_tiny")
    >>> cfg = get_config("cpm_small").replace(num_stages=4)
    >>> model = build_model(cfg)
"""

from __future__ import annotations

import dataclasses
import gc
from typing import Any, Callable, Mapping

import keras

from keras_pose.models.common import ModelConfig
from keras_pose.models.cpm import CPMConfig, build_cpm
from keras_pose.models.deeppose import DeepPoseConfig, build_deeppose
from keras_pose.models.part_heatmap import PartHeatmapConfig, build_part_heatmap
from keras_pose.models.softargmax import SoftArgmaxConfig, build_softargmax

#: family name -> (config class, builder)
FAMILIES: dict[str, tuple[type[ModelConfig], Callable[..., keras.Model]]] = {
    "deeppose": (DeepPoseConfig, build_deeppose),
    "cpm": (CPMConfig, build_cpm),
    "part_heatmap": (PartHeatmapConfig, build_part_heatmap),
    "softargmax": (SoftArgmaxConfig, build_softargmax),
}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registered preset.

    Args:
        name: ``<family>_<variant>``.
        config: the family config.
        description: one line for tables and model cards.
        paper_params: the spec's parameter count (paper presets only).
        paper_gflops: the spec's GFLOPs at the native input (paper presets only).
        slow: building it takes long (tests build it only with ``-m slow``).
    """

    name: str
    config: ModelConfig
    description: str
    paper_params: int | None = None
    paper_gflops: float | None = None
    slow: bool = False

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def variant(self) -> str:
        return self.name[len(self.family) + 1:]


_ARCHITECTURES = (
    # ---- DeepPose -----------------------------------------------------------------
    Architecture(
        "deeppose_paper", DeepPoseConfig(),
        "DeepPose psi, AlexNet-style, 220x220, LRN, dropout 0.6 (one cascade stage; S = 3)",
        paper_params=58_400_000, paper_gflops=2.26),
    Architecture(
        "deeppose_small",
        DeepPoseConfig(input_size=(128, 128), dense_units=(512, 512), dropout=0.3, lrn=False, batch_norm=True),
        "DeepPose psi at 128x128 with BN instead of LRN and 512-unit dense layers"),
    Architecture(
        "deeppose_lite0",
        DeepPoseConfig(input_size=(160, 160), dense_units=(512, 512), dropout=0.3, lrn=False, batch_norm=True,
                       backbone="efficientnet_lite0", backbone_weights="imagenet", reduce_filters=64),
        "DeepPose psi on an ImageNet EfficientNet-Lite0 trunk: its stride-32 features (5x5x320) reduced to 64 "
        "channels by a 1x1 convolution and flattened into 512-unit dense layers with BN, 160x160"),
    Architecture(
        "deeppose_tiny",
        DeepPoseConfig(input_size=(64, 64), width=0.5, dense_units=(256, 256), dropout=0.0, lrn=False,
                       batch_norm=True),
        "DeepPose psi at 64x64, half width, BN (tests)"),
    # ---- CPM -----------------------------------------------------------------------
    Architecture(
        "cpm_paper", CPMConfig(),
        "Convolutional Pose Machine, 6 stages, 368x368 (LSP centre-map prototxt)",
        paper_params=31_220_000, paper_gflops=350.9),
    Architecture(
        "cpm_small",
        CPMConfig(input_size=(128, 128), num_stages=3, width=0.5, batch_norm=True, trunk_kernel=3,
                  stage1_kernel=7, mconv_kernel=7, dropout=0.1, center_sigma=7.0),
        "CPM, 3 stages at 128x128, half width, BN; kernels scaled with the input (trunk 3x3, stage 7x7)"),
    Architecture(
        "cpm_lite0",
        CPMConfig(input_size=(160, 160), num_stages=3, width=0.5, batch_norm=True, stage1_kernel=5,
                  mconv_kernel=5, dropout=0.1, center_sigma=9.0, backbone="efficientnet_lite0",
                  backbone_weights="imagenet"),
        "CPM, 3 stages on an ImageNet EfficientNet-Lite0 trunk (strides 8-32 merged to stride 8, 64 channels, "
        "the image features of every stage), half width, BN, 5x5 kernels, 160x160"),
    Architecture(
        "cpm_tiny",
        CPMConfig(input_size=(64, 64), num_stages=2, width=0.1875, batch_norm=True, trunk_kernel=3,
                  stage1_kernel=5, mconv_kernel=5, dropout=0.0, center_sigma=4.0),
        "CPM, 2 stages at 64x64, 3/16 width, BN (tests)"),
    # ---- Bulat & Tzimiropoulos ------------------------------------------------------
    Architecture(
        "part_heatmap_vgg_paper", PartHeatmapConfig(input_size=(384, 384), instance="vgg"),
        "Part heatmap regression, VGG-16 FCN-8s detector + large-kernel regressor, 384x384",
        paper_params=144_400_000, paper_gflops=374.0, slow=True),
    Architecture(
        "part_heatmap_residual_paper", PartHeatmapConfig(input_size=(256, 256), instance="residual"),
        "Part heatmap regression, ResNet-152 detector + one hourglass, 256x256",
        paper_params=65_610_000, paper_gflops=49.9, slow=True),
    Architecture(
        "part_heatmap_small",
        PartHeatmapConfig(num_joints=14, input_size=(128, 128), instance="residual", width=0.5,
                          resnet_blocks=(1, 2, 2, 1), hourglass_depth=3, hourglass_blocks=1, decode_border=2,
                          decode_smooth=9),
        "Part heatmap regression, residual instance: small ResNet (1-2-2-1) + one depth-3 hourglass, 128x128 "
        "(decoding skips the 2 edge pixels the final 8x8/4 transposed convolution only half covers and blurs "
        "the maps, box 9 x 3 passes, before the argmax)"),
    Architecture(
        "part_heatmap_lite0",
        PartHeatmapConfig(num_joints=14, input_size=(160, 160), instance="residual", width=0.25,
                          hourglass_depth=3, hourglass_blocks=1, neck_filters=64, decode_border=2,
                          backbone="efficientnet_lite0", backbone_weights="imagenet"),
        "Part heatmap regression, residual instance on an ImageNet EfficientNet-Lite0 trunk: detector = trunk "
        "merged to stride 4 (64 channels) + 1x1 scoring, one depth-3 hourglass (64 channels) on the sigmoid "
        "maps stacked with those features, 160x160 (decoding skips the 2 edge pixels, as part_heatmap_small)"),
    Architecture(
        "part_heatmap_tiny",
        PartHeatmapConfig(num_joints=14, input_size=(64, 64), instance="residual", width=0.125,
                          resnet_blocks=(1, 1, 1, 1), hourglass_depth=2, hourglass_blocks=1),
        "Part heatmap regression, residual instance, 1/8 width, 64x64 (tests)"),
    Architecture(
        "part_heatmap_vgg_tiny",
        PartHeatmapConfig(num_joints=14, input_size=(64, 64), instance="vgg", width=0.0625, batch_norm=True,
                          dropout=0.0),
        "Part heatmap regression, VGG instance, 1/16 width with BN, 64x64 (tests)"),
    # ---- Luvizon et al. -------------------------------------------------------------
    Architecture(
        "softargmax_paper", SoftArgmaxConfig(),
        "Soft-argmax regression with context aggregation, K = 8 blocks, 256x256",
        paper_params=14_750_000, paper_gflops=19.7),
    Architecture(
        "softargmax_small",
        SoftArgmaxConfig(num_joints=14, input_size=(128, 128), num_blocks=3, width=0.5),
        "Soft-argmax regression with context, 3 blocks at 128x128, half width"),
    Architecture(
        "softargmax_lite0",
        SoftArgmaxConfig(num_joints=14, input_size=(160, 160), num_blocks=2, block_filters=128,
                         backbone="efficientnet_lite0", backbone_weights="imagenet"),
        "Soft-argmax regression with context on an ImageNet EfficientNet-Lite0 trunk (strides 8-32 merged "
        "to stride 8, 128 channels), 2 blocks at 160x160"),
    Architecture(
        "softargmax_tiny",
        SoftArgmaxConfig(num_joints=14, input_size=(64, 64), num_blocks=2, width=0.25, block_kernel=3),
        "Soft-argmax regression with context, 2 blocks at 64x64, 1/4 width, 3x3 kernels (tests)"),
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in _ARCHITECTURES}


def _check_table():
    for a in _ARCHITECTURES:
        if not a.name.startswith(a.family + "_"):
            raise ValueError(f"architecture {a.name!r}: name must start with its family {a.family!r}")
    if len(ARCHITECTURES) != len(_ARCHITECTURES):
        raise ValueError("duplicate architecture names in keras_pose.models.registry")


_check_table()


def list_architectures(family: str | None = None, variant: str | None = None) -> list[str]:
    """Preset names, optionally only those of one family and/or whose name ends with ``_<variant>``."""
    if family is not None and family not in FAMILIES:
        raise KeyError(f"unknown family {family!r}; families: {sorted(FAMILIES)}")
    return [a.name for a in _ARCHITECTURES
            if (family is None or a.family == family) and (variant is None or a.name.endswith("_" + variant))]


def get_architecture(name: str) -> Architecture:
    """The registered :class:`Architecture` called ``name``."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {list(ARCHITECTURES)}") from None


def get_config(name: str) -> ModelConfig:
    """The config of preset ``name`` (frozen; use ``.replace(...)`` to change it)."""
    return get_architecture(name).config


def config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """Rebuild a config from ``config.to_dict()`` output, dispatching on its ``"family"`` key."""
    family = d.get("family")
    if family not in FAMILIES:
        raise ValueError(f"config_from_dict: expected a 'family' key in {sorted(FAMILIES)}, got {family!r}")
    return FAMILIES[family][0].from_dict(d)


def build_model(name_or_config: str | ModelConfig | Mapping[str, Any], name: str | None = None,
                pretrained: bool = True) -> keras.Model:
    """Build a model from a preset name, a config, or a config dict.

    The model's name is the preset name (or the family); its config is
    attached as ``model.pose_config``. ``pretrained=False`` builds a trunk
    config's trunk without its ImageNet weights (for models whose own weights
    are loaded next, such as zoo presets: they never need the ImageNet
    package); the attached config still names ``backbone_weights``.
    """
    if isinstance(name_or_config, str):
        config = get_config(name_or_config)
        name = name or name_or_config
    elif isinstance(name_or_config, ModelConfig):
        config = name_or_config
    elif isinstance(name_or_config, Mapping):
        config = config_from_dict(name_or_config)
    else:
        raise TypeError(f"build_model: expected a preset name, a ModelConfig or a dict, got {type(name_or_config).__name__}")
    builder = FAMILIES[config.family][1]
    return builder(config, name=name or config.family, pretrained=pretrained)


# ---------------------------------------------------------------------------
# Summary table (docs/models.md)
# ---------------------------------------------------------------------------


def output_strides(model: keras.Model) -> dict[str, int]:
    """Stride of every spatial (4-D) output relative to the ``"images"`` input."""
    h = model.inputs[0].shape[1]
    out = {}
    for key, tensor in _named_outputs(model).items():
        if len(tensor.shape) == 4 and tensor.shape[1]:
            out[key] = max(1, round(h / tensor.shape[1]))
    return out


def _named_outputs(model):
    outs = model.outputs
    if isinstance(model.output, dict):
        return dict(model.output)
    return dict(zip(model.output_names, outs))


def summarize(name: str) -> dict[str, Any]:
    """Params, GFLOPs at the native input, output strides and output names of preset ``name``."""
    from keras_pose.flops import count_flops

    arch = get_architecture(name)
    model = build_model(name, pretrained=False)
    strides = output_strides(model)
    row = {
        "name": name,
        "family": arch.family,
        "input": "x".join(str(s) for s in arch.config.input_size),
        "params": model.count_params(),
        "paper_params": arch.paper_params,
        "paper_gflops": arch.paper_gflops,
        "gflops": count_flops(model) / 1e9,
        "strides": strides,
        "outputs": list(_named_outputs(model)),
        "description": arch.description,
    }
    del model
    gc.collect()
    return row


def _compress_strides(strides: dict[str, int]) -> str:
    """``{"stage_1": 8, "stage_2": 8, "heatmaps": 8}`` -> ``"stage_1..stage_2: 8, heatmaps: 8"``."""
    parts, groups = [], {}
    for key, s in strides.items():
        base = key.rsplit("_", 1)[0] if key.rsplit("_", 1)[-1].isdigit() else key
        groups.setdefault((base, s), []).append(key)
    for (base, s), keys in groups.items():
        parts.append(f"{keys[0]}..{keys[-1]}: {s}" if len(keys) > 1 else f"{keys[0]}: {s}")
    return ", ".join(parts) if parts else "— (coordinates)"


def _compress_names(names: list[str]) -> str:
    out, seen = [], set()
    for n in names:
        head, _, tail = n.rpartition("_")
        if tail.isdigit() and head:
            if head in seen:
                continue
            seen.add(head)
            same = [m for m in names if m.rpartition("_")[0] == head and m.rpartition("_")[2].isdigit()]
            out.append(f"{head}_1..{len(same)}")
        else:
            out.append(n)
    return ", ".join(out)


def architectures_markdown(names: list[str] | None = None) -> str:
    """The ``docs/models.md`` table for ``names`` (default: every preset)."""
    rows = [summarize(n) for n in (names or list_architectures())]
    lines = [
        "# Model architectures",
        "",
        "Generated by `tools/model_table.py` from `keras_pose.models.registry`; do not edit by hand.",
        "",
        "Params are Keras `count_params()` (trainable + BN statistics). GFLOPs = 2 x MACs at batch 1 and the",
        "native input size, counting Conv2D, SeparableConv2D/DepthwiseConv2D, Conv2DTranspose and Dense",
        "(`keras_pose.flops`). Strides are input pixels per output cell of the spatial outputs; every model",
        "also outputs `keypoints` (B, K, 2) in input pixels and `scores` (B, K).",
        "",
        "| preset | input | params (M) | spec params (M) | GFLOPs | spec GFLOPs | output strides | outputs | description |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spec = f"{r['paper_params'] / 1e6:.2f}" if r["paper_params"] else ""
        spec_gflops = f"{r['paper_gflops']:.2f}" if r["paper_gflops"] else ""
        lines.append(f"| `{r['name']}` | {r['input']} | {r['params'] / 1e6:.3f} | {spec} | {r['gflops']:.3f} | {spec_gflops} | "
                     f"{_compress_strides(r['strides'])} | {_compress_names(r['outputs'])} | {r['description']} |")
    lines.append("")
    return "\n".join(lines)


__all__ = ["Architecture", "ARCHITECTURES", "FAMILIES", "architectures_markdown", "build_model", "config_from_dict",
           "get_architecture", "get_config", "list_architectures", "output_strides", "summarize"]
