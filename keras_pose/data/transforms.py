"""Batched affine transforms for images and keypoints (TensorFlow ops only).

Everything here works on a leading batch dimension, inside ``tf.data`` maps
and inside a compiled training step alike. Warps use
``tf.raw_ops.ImageProjectiveTransformV3`` (no tensorflow-addons).

Convention: pixel centres at integer coordinates (the convention of
``ImageProjectiveTransformV3`` and of our keypoints). A matrix ``M`` (B, 3, 3)
maps *source* pixel coordinates to *output* pixel coordinates.
"""

from __future__ import annotations

import math

import tensorflow as tf


def affine_matrix(center, src_size, out_size, rotation=None, zoom=None, flip=None, shift=None):
    """Source->output matrices for square person crops.

    A square of side ``src_size`` source pixels centred at ``center`` maps
    onto an ``out_size`` x ``out_size`` output (before augmentation), i.e.
    ``x_out = R * (x - center) * out_size / src_size * zoom + (out_size/2 - 0.5) + shift``.

    Args:
        center: (B, 2) source centres (x, y).
        src_size: (B,) side of the source square in source pixels.
        out_size: int, output side in pixels.
        rotation: (B,) degrees, counter-clockwise on screen; default 0.
        zoom: (B,) magnification (>1 zooms in); default 1.
        flip: (B,) bool, mirror horizontally about the output centre.
        shift: (B, 2) output-pixel translation; default 0.

    Returns:
        (B, 3, 3) float32.
    """
    center = tf.convert_to_tensor(center, tf.float32)
    b = tf.shape(center)[0]
    src_size = tf.broadcast_to(tf.cast(src_size, tf.float32), [b])
    k = tf.cast(out_size, tf.float32) / src_size
    if zoom is not None:
        k = k * tf.cast(zoom, tf.float32)
    theta = tf.zeros([b]) if rotation is None else tf.cast(rotation, tf.float32) * (math.pi / 180.0)
    # Image y points down, so a counter-clockwise turn on screen is -theta in the usual maths frame.
    cos, sin = tf.cos(theta) * k, tf.sin(theta) * k
    a00, a01, a10, a11 = cos, sin, -sin, cos
    if flip is not None:
        sign = tf.where(tf.cast(flip, tf.bool), -1.0, 1.0)
        a00, a01 = a00 * sign, a01 * sign
    half = tf.cast(out_size, tf.float32) / 2.0 - 0.5
    tx = tf.fill([b], half) - (a00 * center[:, 0] + a01 * center[:, 1])
    ty = tf.fill([b], half) - (a10 * center[:, 0] + a11 * center[:, 1])
    if shift is not None:
        shift = tf.cast(shift, tf.float32)
        tx, ty = tx + shift[:, 0], ty + shift[:, 1]
    zeros, ones = tf.zeros([b]), tf.ones([b])
    rows = [tf.stack([a00, a01, tx], -1), tf.stack([a10, a11, ty], -1), tf.stack([zeros, zeros, ones], -1)]
    return tf.stack(rows, axis=1)


def invert_affine(matrix):
    """Inverse of (B, 3, 3) affine matrices (closed form)."""
    m = tf.convert_to_tensor(matrix, tf.float32)
    a, b_, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * e - b_ * d
    ia, ib, id_, ie = e / det, -b_ / det, -d / det, a / det
    ic = -(ia * c + ib * f)
    if_ = -(id_ * c + ie * f)
    zeros, ones = tf.zeros_like(a), tf.ones_like(a)
    return tf.stack([tf.stack([ia, ib, ic], -1), tf.stack([id_, ie, if_], -1), tf.stack([zeros, zeros, ones], -1)], 1)


def transform_points(points, matrix):
    """Apply (B, 3, 3) affine matrices to (B, K, 2) points."""
    points = tf.convert_to_tensor(points, tf.float32)
    m = tf.convert_to_tensor(matrix, tf.float32)
    return tf.einsum("bkj,bij->bki", points, m[:, :2, :2]) + m[:, None, :2, 2]


def warp_images(images, matrix, out_size, fill_value=0.0, interpolation="BILINEAR"):
    """Warp a batch of images with source->output matrices.

    Args:
        images: (B, H, W, C) numeric tensor.
        matrix: (B, 3, 3) source->output affine matrices.
        out_size: int or (height, width) of the output.
        fill_value: value outside the source image.

    Returns:
        (B, out_h, out_w, C) float32.
    """
    if isinstance(out_size, int):
        out_size = (out_size, out_size)
    inv = invert_affine(matrix)  # output -> source, as ImageProjectiveTransformV3 expects
    flat = tf.reshape(inv, [-1, 9])[:, :8]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=flat,
        output_shape=tf.constant(out_size, tf.int32), fill_value=tf.constant(fill_value, tf.float32),
        interpolation=interpolation, fill_mode="CONSTANT")


def inside_mask(points, size, margin=0.5):
    """(B, K) True where points lie inside a ``size`` x ``size`` image (pixel centres at integers)."""
    size = tf.cast(size, tf.float32)
    x, y = points[..., 0], points[..., 1]
    return (x >= -margin) & (y >= -margin) & (x <= size - 1 + margin) & (y <= size - 1 + margin)


def flip_joints(values, flip, permutation):
    """Swap left/right joint slots for the samples where ``flip`` is True.

    Args:
        values: (B, K, ...) tensor (coordinates or per-joint flags).
        flip: (B,) bool.
        permutation: length-K sequence, the skeleton's ``flip_permutation``.
    """
    swapped = tf.gather(values, list(permutation), axis=1)
    cond = tf.reshape(tf.cast(flip, tf.bool), [-1] + [1] * (len(values.shape) - 1))
    return tf.where(cond, swapped, values)
