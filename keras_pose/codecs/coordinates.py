"""Coordinate codecs: pixels <-> normalised image coordinates and DeepPose box coordinates.

Two conventions meet here:

- **Pixel coordinates** (the keras_pose convention, ``keras_pose.data.records``):
  0-based, pixel centres at integer coordinates, so an image of width W spans
  x in [-0.5, W - 0.5].
- **Corner coordinates**: the same axes shifted by half a pixel,
  ``u = x_pix + 0.5``, so the image spans [0, W]. Normalised coordinates
  (soft-argmax targets, Luvizon et al.) divide by the image size: the top-left
  image corner is 0 and the bottom-right corner is 1.

DeepPose's box normalisation ``N(y; b) = (y - b_c) / b_wh`` (Toshev & Szegedy,
Sec. 3) takes the box in corner coordinates; for the full image
(``image_box``) it equals the normalised coordinate minus 0.5, so joints
inside the box lie in [-0.5, 0.5].

All functions are elementwise ``keras.ops`` code, so they work batched or
unbatched, eagerly, in ``tf.function`` and in ``tf.data``.
"""

from __future__ import annotations

from keras import ops


def _size_xy(size, what):
    """(H, W) (or (..., 2) tensor of (H, W)) -> tensor ordered (W, H) to match (x, y)."""
    size = ops.cast(ops.convert_to_tensor(size), "float32")
    if len(size.shape) == 0 or size.shape[-1] != 2:
        raise ValueError(f"`{what}` must be (height, width) with a last axis of 2, received shape {tuple(size.shape)}")
    return ops.flip(size, axis=-1)


def _as_points(x, what):
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    if len(x.shape) == 0 or x.shape[-1] != 2:
        raise ValueError(f"`{what}` must have a last axis of 2 (x, y), received shape {tuple(x.shape)}")
    return x


def _per_sample_points(v, points):
    """(B, 2) box parameters broadcast against (B, K, 2) points; (2,) or (K?, 2) as is."""
    if len(v.shape) == 2 and len(points.shape) == 3:
        return v[:, None, :]
    return v


def encode_normalized(keypoints, image_size):
    """Pixel coordinates -> normalised corner coordinates in [0, 1].

    Args:
        keypoints: (..., 2) (x, y) in pixels (pixel centres at integers).
        image_size: (H, W) of the image; a pair, or a (B, 2) tensor of
            per-sample (H, W) for (B, K, 2) keypoints.

    Returns:
        (..., 2) float32 ``((x + 0.5) / W, (y + 0.5) / H)``.
    """
    kp = _as_points(keypoints, "keypoints")
    size = _per_sample_points(_size_xy(image_size, "image_size"), kp)
    return (kp + 0.5) / size


def decode_normalized(coords, image_size):
    """Normalised corner coordinates -> pixel coordinates; inverse of ``encode_normalized``.

    Args:
        coords: (..., 2) normalised (x, y); 0 = top-left corner, 1 = bottom-right.
        image_size: (H, W) of the image, a pair or a (B, 2) tensor.

    Returns:
        (..., 2) float32 ``(x * W - 0.5, y * H - 0.5)``.
    """
    c = _as_points(coords, "coords")
    size = _per_sample_points(_size_xy(image_size, "image_size"), c)
    return c * size - 0.5


def image_box(image_size):
    """The DeepPose box ``b`` of the full image, as ``(box_center, box_size)``.

    Args:
        image_size: (H, W), a pair or a (B, 2) tensor.

    Returns:
        ``box_center = (W / 2, H / 2)`` (corner coordinates) and
        ``box_size = (W, H)``, float32 tensors shaped like ``image_size``.
    """
    size = _size_xy(image_size, "image_size")
    return size / 2.0, size


def box_normalize(keypoints, box_center, box_size):
    """DeepPose ``N(y; b) = (y - b_c) / b_wh``.

    Args:
        keypoints: (..., 2) (x, y) in PIXEL coordinates (the project
            convention); converted to corner coordinates (+0.5) internally.
        box_center: box centre (x, y) in CORNER coordinates (image spans
            [0, W] x [0, H]): (2,), or (B, 2) for (B, K, 2) keypoints. A box
            centred on a joint at pixel coordinate ``p`` has
            ``box_center = p + 0.5``; the full image has ``(W / 2, H / 2)``
            (see ``image_box``).
        box_size: box (width, height) in pixels, same shapes as
            ``box_center``.

    Returns:
        (..., 2) float32; joints inside the box lie in [-0.5, 0.5]. For the
        full-image box this equals ``encode_normalized(keypoints) - 0.5``.
    """
    kp = _as_points(keypoints, "keypoints")
    center = _per_sample_points(_as_points(box_center, "box_center"), kp)
    size = _per_sample_points(_as_points(box_size, "box_size"), kp)
    return (kp + 0.5 - center) / size


def box_denormalize(coords, box_center, box_size):
    """DeepPose ``N^-1``: box-normalised coordinates -> pixel coordinates.

    Inverse of ``box_normalize`` with the same box arguments (centre in corner
    coordinates, size in pixels); returns PIXEL coordinates
    ``coords * box_size + box_center - 0.5``.
    """
    c = _as_points(coords, "coords")
    center = _per_sample_points(_as_points(box_center, "box_center"), c)
    size = _per_sample_points(_as_points(box_size, "box_size"), c)
    return c * size + center - 0.5
