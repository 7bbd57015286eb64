"""Fused batch normalisation for training steps on the TensorFlow backend (a speed option, same maths).

Keras 3's ``BatchNormalization`` computes its training-mode moments and normalisation with separate
ops (``moments`` then ``batch_normalization``), and their gradients again separately. TensorFlow's
``FusedBatchNormV3`` does the forward pass and its gradient in one kernel each: on the 2-core CPU the
EfficientNet-Lite trunk's training step runs about 1.4x faster with it (``tools/benchmark_training.py
--fused-batchnorm``, docs/benchmarks.md). Models stay stock Keras: :func:`fused_batchnorm` swaps the
training-mode call of a model's BN layers for the fused kernel while a trainer traces its step, and
puts their own call back afterwards. The layers' variables, momentum update, outputs and gradients are
those of Keras' own layer to float32 round-off (tests/test_training.py), so a model trained with it
saves, loads and exports exactly as one trained without. It is what tf.keras 2 did by default
(``BatchNormalization(fused=None)``). Two caveats, both of round-off size per layer: the kernel's
single-pass statistics lose digits on channels whose mean dwarfs their spread (a flat image
background); and a network with max or ReLU kinks turns such differences into larger ones in its
gradient (the soft-argmax trunk's gradient on one batch moved by 0.5% when only
``TF_ENABLE_ONEDNN_OPTS`` was toggled, by 8% with every BN fused), which is noise of the kind SGD
already has, not a bias.

Only the common case is fused: 4-D channels-last inputs, no mask, no renorm, not synchronised. Every
other call (inference, frozen layers, dense BN, masks) runs Keras' own code.
"""

from __future__ import annotations

import contextlib
import types

import keras
import tensorflow as tf


def _fusable(layer, inputs, training, mask) -> bool:
    return (bool(training) and layer.trainable and mask is None and not layer.renorm
            and not getattr(layer, "synchronized", False) and len(inputs.shape) == 4
            and layer.axis in (-1, 3))  # the swap itself happens only on the TensorFlow backend


def _fused_call(self, inputs, training=None, mask=None):
    """``BatchNormalization.call`` with the training branch on ``FusedBatchNormV3`` (see module doc)."""
    if not _fusable(self, inputs, training, mask):
        return type(self).call(self, inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)  # Keras' layer also normalises in float32 whatever the policy
    channels = x.shape[-1]
    scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones((channels,), tf.float32)
    offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros((channels,), tf.float32)
    empty = tf.constant([], tf.float32)
    y, mean, var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=self.epsilon,
        exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
    # the kernel returns the batch variance with Bessel's correction; Keras' moving variance uses the
    # population variance (ops.moments), so undo it for the same running statistics
    n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
    var = var * (n - 1.0) / tf.maximum(n, 2.0)
    m = self.momentum
    self.moving_mean.assign(tf.cast(self.moving_mean, tf.float32) * m + mean * (1.0 - m))
    self.moving_variance.assign(tf.cast(self.moving_variance, tf.float32) * m + var * (1.0 - m))
    return tf.cast(y, self.compute_dtype)


def batchnorm_layers(model: keras.Model) -> list:
    """Every ``keras.layers.BatchNormalization`` of ``model``, nested models included."""
    return [l for l in model._flatten_layers(include_self=False)
            if isinstance(l, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def fused_batchnorm(model: keras.Model, enabled: bool = True):
    """Within the block, ``model``'s BN layers run their training mode on the fused kernel.

    The swap is per layer instance (no other model is touched) and is undone on exit; a step traced
    inside the block keeps the fused ops in its graph. Yields the number of layers swapped (0 when
    ``enabled`` is False or the backend is not TensorFlow).
    """
    layers = batchnorm_layers(model) if enabled and keras.backend.backend() == "tensorflow" else []
    for layer in layers:
        layer.call = types.MethodType(_fused_call, layer)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)


__all__ = ["batchnorm_layers", "fused_batchnorm"]
