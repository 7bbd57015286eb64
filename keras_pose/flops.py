"""FLOPs of a Keras model, counted the way ``docs/paper_specs.md`` counts them.

FLOPs = 2 x multiply-accumulates, at batch 1, counting only the layers that
dominate the cost:

- ``Conv2D``: ``H_out * W_out * C_out * k_h * k_w * C_in / groups``
- ``DepthwiseConv2D``: ``H_out * W_out * C_in * m * k_h * k_w``
- ``SeparableConv2D``: depthwise part + pointwise ``H_out * W_out * C_in * m * C_out``
- ``Conv2DTranspose``: ``H_in * W_in * C_in * k_h * k_w * C_out`` (every input
  pixel is scattered through the whole kernel)
- ``Dense``: ``prod(leading dims) * units * input_dim``

Biases, normalisation, activations, pooling and the parameter-free pose
layers are not counted. Shared layers are counted once per call; nested
functional models are counted with their own call nodes.

Example:
    >>> from keras_pose.flops import count_flops
    >>> gflops = count_flops(model) / 1e9
"""

from __future__ import annotations

import math

import keras

COUNTED = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv2D,
           keras.layers.SeparableConv2D, keras.layers.Dense)


def _spatial(shape):
    return int(math.prod(int(d) for d in shape[1:-1]))


def layer_macs(layer, input_shape, output_shape) -> int:
    """Multiply-accumulates of one call of ``layer`` (batch dimension ignored)."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return _spatial(input_shape) * int(input_shape[-1]) * kh * kw * layer.filters
    if isinstance(layer, keras.layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin, m = int(input_shape[-1]), layer.depth_multiplier
        hw = _spatial(output_shape)
        return hw * cin * m * kh * kw + hw * cin * m * layer.filters
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _spatial(output_shape) * int(input_shape[-1]) * layer.depth_multiplier * kh * kw
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        groups = getattr(layer, "groups", 1) or 1
        return _spatial(output_shape) * layer.filters * kh * kw * int(input_shape[-1]) // groups
    if isinstance(layer, keras.layers.Dense):
        lead = int(math.prod(int(d) for d in input_shape[1:-1])) if len(input_shape) > 2 else 1
        return lead * int(input_shape[-1]) * layer.units
    return 0


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of a functional model at batch 1."""
    total = 0
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            op = node.operation
            if isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth"):
                total += count_macs(op)
                continue
            if not isinstance(op, COUNTED):
                continue
            inputs = node.arguments.keras_tensors
            if len(inputs) != 1 or len(node.outputs) != 1:
                raise ValueError(f"count_macs: layer {op.name!r} has {len(inputs)} inputs / {len(node.outputs)} outputs; "
                                 "expected 1 / 1")
            total += layer_macs(op, inputs[0].shape, node.outputs[0].shape)
    return int(total)


def count_flops(model: keras.Model) -> int:
    """FLOPs (2 x MACs) of one forward pass at batch 1."""
    return 2 * count_macs(model)


__all__ = ["count_flops", "count_macs", "layer_macs"]
