"""Pieces shared by the four model families.

- :class:`ModelConfig`: the base of every family's frozen config dataclass
  (``to_dict`` / ``from_dict`` for a JSON round trip, channel scaling by the
  ``width`` multiplier).
- :class:`InputNormalization`: the in-model input normalisation. Every model
  takes float32 RGB images in [0, 255] on an input named ``"images"``; each
  family's own normalisation (CPM's BGR/256 − 0.5, ImageNet mean subtraction,
  ...) is this layer with different constants.
- :class:`NormalizedToPixels`: maps normalised coordinates (corner convention,
  or box-centred) to input-image pixels for the shared ``"keypoints"`` output.
- :class:`ChannelSlice`: ``x[..., start:stop]`` as a serialisable layer.
- :func:`conv_block`: conv (+ BN) + activation, used by CPM, DeepPose and the
  part heatmap regression network.
- :func:`name_outputs`: makes each output come from a layer named like its
  dict key, so ``model.output_names`` equals the output dict's keys.
- :func:`attach_config` / :func:`model_config`: the builders store their config
  on the model, so that the zoo can save ``config.to_dict()`` next to the
  weights and rebuild the model later.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

PACKAGE = "keras_pose"


# ---------------------------------------------------------------------------
# Config base
# ---------------------------------------------------------------------------


def _to_tuple(value):
    """Lists (from JSON) to tuples, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_to_tuple(v) for v in value)
    return value


def _to_json(value):
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of the family configs.

    Subclasses are frozen dataclasses with a class attribute ``family``. All
    fields are JSON-friendly (numbers, strings, bools, tuples); ``to_dict``
    gives a plain dict with a ``"family"`` key, ``from_dict`` reverses it
    (lists become tuples again) and rejects unknown keys.
    """

    family: ClassVar[str] = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list) or (isinstance(value, tuple) and any(isinstance(v, list) for v in value)):
                object.__setattr__(self, f.name, _to_tuple(value))
        size = getattr(self, "input_size", None)
        if size is not None:
            if isinstance(size, int):
                size = (size, size)
            size = tuple(int(s) for s in size)
            if len(size) != 2 or min(size) <= 0:
                raise ValueError(f"{type(self).__name__}.input_size: expected (height, width) > 0, got {size}")
            object.__setattr__(self, "input_size", size)
        if getattr(self, "num_joints", 1) < 1:
            raise ValueError(f"{type(self).__name__}.num_joints: expected >= 1, got {self.num_joints}")
        if getattr(self, "width", 1.0) <= 0:
            raise ValueError(f"{type(self).__name__}.width: expected > 0, got {self.width}")

    # -- serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {"family": self.family}
        for f in dataclasses.fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        d = dict(d)
        family = d.pop("family", cls.family)
        if family != cls.family:
            raise ValueError(f"{cls.__name__}.from_dict: expected family {cls.family!r}, got {family!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown keys {unknown}; valid keys: {sorted(names)}")
        return cls(**{k: _to_tuple(v) for k, v in d.items()})

    def replace(self, **changes):
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    # -- helpers -----------------------------------------------------------
    def ch(self, channels: int) -> int:
        """``channels`` scaled by ``width`` (unchanged at width 1; else rounded to a multiple of 4, min 4)."""
        return scale_channels(channels, getattr(self, "width", 1.0))


def scale_channels(channels: int, width: float, divisor: int = 4) -> int:
    """Scale a channel count by a width multiplier.

    ``width == 1`` returns ``channels`` exactly (paper presets); otherwise the
    result is rounded to a multiple of ``divisor`` and is at least ``divisor``.
    """
    if width == 1.0:
        return int(channels)
    return max(divisor, int(channels * width / divisor + 0.5) * divisor)


# ---------------------------------------------------------------------------
# Config stored on the model
# ---------------------------------------------------------------------------


def attach_config(model: keras.Model, config: ModelConfig) -> keras.Model:
    """Store ``config`` on ``model`` (as ``model.pose_config``) and return the model."""
    model.pose_config = config
    return model


def model_config(model: keras.Model) -> dict[str, Any]:
    """The ``config.to_dict()`` a builder attached to ``model``.

    Models loaded from a ``.keras`` file do not carry it; the zoo saves it as
    JSON next to the weights.
    """
    cfg = getattr(model, "pose_config", None)
    if cfg is None:
        raise ValueError(f"model {model.name!r} has no keras_pose config attached; it was not built by a "
                         "keras_pose builder (models loaded from .keras files lose it; use the zoo's saved config)")
    return cfg.to_dict()


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def _as_list(v):
    if isinstance(v, (list, tuple)):
        return [float(x) for x in v]
    return float(v)


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputNormalization(keras.layers.Layer):
    """``((x[..., ::-1] if reverse_channels else x) - offset) * scale``.

    The in-model normalisation of the ``"images"`` input (float32 RGB in
    [0, 255]).

    Args:
        offset: scalar or per-channel value subtracted (after the optional
            channel reversal, so per-channel values are in the output order).
        scale: scalar or per-channel multiplier.
        reverse_channels: RGB -> BGR first (Caffe models such as CPM).

    Returns:
        A tensor of the input's shape.

    Example:
        >>> cpm_norm = InputNormalization(offset=128.0, scale=1 / 256, reverse_channels=True)
    """

    def __init__(self, offset=0.0, scale=1.0, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        self.offset = _as_list(offset)
        self.scale = _as_list(scale)
        self.reverse_channels = bool(reverse_channels)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.reverse_channels:
            # A gather, not ops.flip: TFLite's int8 REVERSE_V2 copies the codes but the quantizer gives its
            # output a different scale, which corrupts full-int8 exports (measured: 12 PCK points on
            # cpm_scratch_lsp).
            x = ops.take(x, list(range(x.shape[-1] - 1, -1, -1)), axis=-1)
        offset = ops.convert_to_tensor(self.offset, dtype=x.dtype)
        scale = ops.convert_to_tensor(self.scale, dtype=x.dtype)
        return (x - offset) * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(offset=self.offset, scale=self.scale, reverse_channels=self.reverse_channels)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class NormalizedToPixels(keras.layers.Layer):
    """Normalised (x, y) coordinates to input-image pixels (pixel centres at integers).

    Args:
        image_size: (height, width) of the model input in pixels.
        centered: ``False``: [0, 1] corner convention (0 = left/top image
            edge, 1 = right/bottom edge), ``x_pix = x * W - 0.5``.
            ``True``: box-centred convention of DeepPose (the box is the whole
            input; values ~[-0.5, 0.5]), ``x_pix = (x + 0.5) * W - 0.5``.

    Returns:
        (B, K, 2) pixel coordinates.
    """

    def __init__(self, image_size, centered=False, **kwargs):
        super().__init__(**kwargs)
        self.image_size = tuple(int(s) for s in image_size)
        self.centered = bool(centered)

    def call(self, coords):
        h, w = self.image_size
        size = ops.convert_to_tensor([float(w), float(h)], dtype=coords.dtype)
        shift = 0.5 if self.centered else 0.0
        return (coords + shift) * size - 0.5

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(image_size=list(self.image_size), centered=self.centered)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelSlice(keras.layers.Layer):
    """``x[..., start:stop]`` as a serialisable layer (the functional API has no stock channel slice)."""

    def __init__(self, start=0, stop=None, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)
        self.stop = None if stop is None else int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        n = None if c is None else len(range(c)[self.start:self.stop])
        return tuple(input_shape[:-1]) + (n,)

    def get_config(self):
        config = super().get_config()
        config.update(start=self.start, stop=self.stop)
        return config


# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------


def conv_block(x, filters, kernel_size, *, strides=1, batch_norm=False, activation="relu", name,
               kernel_initializer="glorot_uniform", padding="same"):
    """Conv2D (+ BatchNorm) (+ activation); the conv has no bias when BN follows."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=not batch_norm,
                            kernel_initializer=kernel_initializer, name=name)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def name_outputs(outputs: dict) -> dict:
    """Make every output tensor come from a layer named like its dict key.

    Then ``model.output_names`` and the output dict agree, which keeps
    per-output losses and metrics unambiguous. Tensors whose producing layer
    already has the key as name are kept; others get a stock ``Identity``.
    """
    named = {}
    for key, tensor in outputs.items():
        history = getattr(tensor, "_keras_history", None)
        layer = history[0] if history else None
        if layer is not None and layer.name == key:
            named[key] = tensor
        else:
            named[key] = keras.layers.Identity(name=key)(tensor)
    return named


def check_choice(owner: str, field: str, value, choices):
    """Raise a ValueError naming ``owner.field`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}.{field}: expected one of {list(choices)}, got {value!r}")

