"""Gaussian heatmap codec: keypoints <-> (B, h, w, K) heatmaps.

Coordinate convention (see ``keras_pose.data.records``): keypoints are (x, y) in
input-image pixels, 0-based, pixel centres at integer coordinates. Heatmap cell
``g`` at stride ``s`` covers input pixels ``[s*g, s*g + s - 1]``; its centre is
at input coordinate ``s*g + (s - 1) / 2`` (CPM: ``8g + 3.5``). Encoding samples
the Gaussian at the cell centres and decoding maps a (sub-)cell position ``u``
back with ``x = s*u + (s - 1) / 2``, so ``decode(encode(p)) == p`` up to the
refinement error of the decoder.

Both functions are pure ``keras.ops`` code: they run eagerly, inside
``tf.function``, inside a ``tf.data`` map and inside a TFLite graph.
"""

from __future__ import annotations

import math

from keras import ops

from keras_pose.codecs._utils import add_batch, as_mask, cell_centers, check_size, per_sample

REFINE_MODES = ("none", "quarter", "parabola", "taylor")

# Box-filter passes of ``smooth_heatmaps`` (three boxes approximate a Gaussian).
SMOOTH_PASSES = 3

# CPM's putGaussianMaps zeroes values whose exponent exceeds ln(100).
CPM_TRUNCATION_EXPONENT = math.log(100.0)

_LOG_EPS = 1e-10


def _squared_distances(keypoints, heatmap_size, stride):
    """(B, K, 2) keypoints -> dx2 (B, 1, w, K) and dy2 (B, h, 1, K) in input px^2."""
    h, w = heatmap_size
    xs = cell_centers(w, stride)
    ys = cell_centers(h, stride)
    kx = keypoints[:, :, 0][:, None, None, :]  # (B, 1, 1, K)
    ky = keypoints[:, :, 1][:, None, None, :]
    dx = xs[None, None, :, None] - kx  # (B, 1, w, K)
    dy = ys[None, :, None, None] - ky  # (B, h, 1, K)
    return ops.square(dx), ops.square(dy)


def _prepare(keypoints, visible):
    keypoints = ops.cast(ops.convert_to_tensor(keypoints), "float32")
    keypoints, unbatched = add_batch(keypoints, 2)
    if len(keypoints.shape) != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"`keypoints` must have shape (B, K, 2) or (K, 2), received {tuple(keypoints.shape)}")
    mask = as_mask(visible)
    if unbatched:
        mask = ops.expand_dims(mask, 0)
    # Invisible joints may carry NaN or sentinel coordinates: replace them so
    # that nothing non-finite enters the arithmetic.
    keypoints = ops.where(mask[:, :, None], keypoints, ops.zeros_like(keypoints))
    return keypoints, mask, unbatched


def encode_heatmaps(keypoints, visible, heatmap_size, stride, sigma, background=False, cpm_truncate=False):
    """Gaussian target heatmaps, one channel per joint.

    Args:
        keypoints: (B, K, 2) (or unbatched (K, 2)) joint (x, y) in input pixels.
        visible: (B, K) booleans or 0/1 numbers. Joints with ``False`` get an
            all-zero map.
        heatmap_size: (h, w) of the heatmaps.
        stride: input pixels per heatmap cell.
        sigma: Gaussian standard deviation in INPUT pixels (a scalar or a
            per-sample (B,) tensor). CPM: 7 px at stride 8; Bulat regression:
            5 px at stride 1.
        background: if True, append a last channel ``max(1 - max_k map_k, 0)``
            (CPM's background belief map).
        cpm_truncate: if True, values whose exponent d^2 / (2 sigma^2) exceeds
            ln(100) are set to 0 as CPM's ``putGaussianMaps`` does.

    Returns:
        float32 (B, h, w, K) heatmaps (K + 1 channels with ``background``),
        peak value 1 at the joint, evaluated at the cell centres
        ``s*g + (s - 1) / 2``.
    """
    heatmap_size = check_size(heatmap_size, "heatmap_size")
    keypoints, mask, unbatched = _prepare(keypoints, visible)
    dx2, dy2 = _squared_distances(keypoints, heatmap_size, stride)
    sig = per_sample(sigma, 4)
    exponent = (dx2 + dy2) / (2.0 * ops.square(sig))
    maps = ops.exp(-exponent)
    if cpm_truncate:
        maps = ops.where(exponent > CPM_TRUNCATION_EXPONENT, ops.zeros_like(maps), maps)
    maps = ops.where(mask[:, None, None, :], maps, ops.zeros_like(maps))
    if background:
        bg = ops.maximum(1.0 - ops.max(maps, axis=-1, keepdims=True), 0.0)
        maps = ops.concatenate([maps, bg], axis=-1)
    if unbatched:
        maps = maps[0]
    return maps


def _gather(flat, index):
    """flat (B, h*w, K), index (B, K) -> flat[b, index[b, k], k] as (B, K)."""
    return ops.squeeze(ops.take_along_axis(flat, ops.expand_dims(index, 1), axis=1), 1)


def _argmax(flat, size):
    """First index of the max along axis 1 of (B, size, K), and the max.

    ``keras.ops.argmax`` on floats adds a bitcast / BitwiseAnd (negative-zero
    fix) that TFLite builtins cannot run, so the index is computed as the
    smallest position where the value reaches the max. Non-finite maps give
    the last cell instead of an out-of-range index.
    """
    peak = ops.max(flat, axis=1)
    positions = ops.arange(size, dtype="int32")[None, :, None]
    candidates = ops.where(flat >= peak[:, None, :], positions, size)
    index = ops.minimum(ops.min(candidates, axis=1), size - 1)
    return index, peak


def _safe_div(num, den, valid):
    den = ops.where(valid, den, ops.ones_like(den))
    return ops.where(valid, num / den, ops.zeros_like(num))


def check_smooth(value, name="smooth") -> int:
    """``value`` as an int if it is 0 (no smoothing) or an odd box width >= 1; else a ValueError naming ``name``."""
    if int(value) != value or (value != 0 and (value < 1 or int(value) % 2 == 0)):
        raise ValueError(f"`{name}` must be 0 (off) or an odd box width >= 1, received {value!r}")
    return int(value)


def smooth_heatmaps(heatmaps, width):
    """Three stride-1 ``width`` x ``width`` box filters: about a Gaussian blur.

    Three passes of a box of odd width ``n`` approximate a Gaussian of
    standard deviation ``sqrt((n**2 - 1) / 4)`` cells (9: 4.5 cells). Each
    pass is an average pooling with "same" padding that averages only the
    cells inside the map, so a constant map stays constant and edges are not
    darkened. Builtin TFLite ops only (``AVERAGE_POOL_2D``, no weights).

    Args:
        heatmaps: (B, h, w, K) maps.
        width: odd box width in cells (>= 1; 1 returns the maps unchanged).

    Returns:
        The smoothed (B, h, w, K) maps.
    """
    if check_smooth(width) == 0:
        raise ValueError("`smooth` must be an odd box width >= 1 here, received 0")
    for _ in range(SMOOTH_PASSES):  # separable: a 1 x n then an n x 1 average (the counts factor per axis)
        heatmaps = ops.average_pool(heatmaps, (1, int(width)), strides=1, padding="same")
        heatmaps = ops.average_pool(heatmaps, (int(width), 1), strides=1, padding="same")
    return heatmaps


def decode_heatmaps(heatmaps, stride, refine="quarter", smooth=0):
    """Keypoints and scores from heatmaps: argmax plus sub-cell refinement.

    Args:
        heatmaps: (B, h, w, K) (or unbatched (h, w, K)) maps, any scale; larger
            is more likely.
        stride: input pixels per heatmap cell.
        refine: sub-cell refinement around the argmax cell ``(gx, gy)``:
            - ``"none"``: the cell centre (CPM's inference).
            - ``"quarter"``: move 0.25 cell towards the higher neighbour along
              each axis (the Hourglass / Bulat demo rule).
            - ``"parabola"``: per axis, the vertex of the parabola through the
              log of the max and its two neighbours.
            - ``"taylor"``: DARK's second-order Taylor step on the log map,
              ``-H^-1 grad`` with the full 2x2 Hessian from the 3x3
              neighbourhood; falls back to ``"parabola"`` where the Hessian is
              not negative definite.
            Offsets are clamped to +-0.5 cell and are 0 along an axis where the
            argmax lies on the map border. ``"parabola"`` and ``"taylor"`` are
            exact for an untruncated Gaussian (its log is quadratic); values are
            clipped at 1e-10 before the log.
        smooth: 0 (default) or an odd box width in cells: first blur the maps
            with :func:`smooth_heatmaps` (DARK's "distribution modulation").
            For broad, noisy peaks, e.g. a regression network trained on wide
            Gaussians, it makes the argmax stable: noise (or int8
            quantization) no longer moves it between the cells of a flat
            top. Scores are then the max of the smoothed map.

    Returns:
        ``(keypoints, scores)``: (B, K, 2) float32 (x, y) in input pixels,
        ``x = stride * (gx + offset) + (stride - 1) / 2``, and (B, K) the max
        value of each map.
    """
    if refine not in REFINE_MODES:
        raise ValueError(f"`refine` must be one of {REFINE_MODES}, received {refine!r}")
    heatmaps = ops.cast(ops.convert_to_tensor(heatmaps), "float32")
    heatmaps, unbatched = add_batch(heatmaps, 3)
    if len(heatmaps.shape) != 4:
        raise ValueError(f"`heatmaps` must have shape (B, h, w, K) or (h, w, K), received {tuple(heatmaps.shape)}")
    if check_smooth(smooth):
        heatmaps = smooth_heatmaps(heatmaps, smooth)
    shape = ops.shape(heatmaps)
    h, w, k = shape[1], shape[2], shape[3]
    flat = ops.reshape(heatmaps, (-1, h * w, k))
    index, scores = _argmax(flat, h * w)  # (B, K) each
    gx = index % w
    gy = index // w
    zeros = ops.zeros_like(scores)
    off_x, off_y = zeros, zeros

    if refine != "none":
        has_l, has_r = gx > 0, gx < w - 1
        has_u, has_d = gy > 0, gy < h - 1
        ok_x = ops.logical_and(has_l, has_r)
        ok_y = ops.logical_and(has_u, has_d)

        def at(dx, dy):
            x = ops.clip(gx + dx, 0, w - 1)
            y = ops.clip(gy + dy, 0, h - 1)
            return _gather(flat, y * w + x)

        left, right, up, down = at(-1, 0), at(1, 0), at(0, -1), at(0, 1)
        if refine == "quarter":
            off_x = ops.where(ok_x, 0.25 * ops.sign(right - left), zeros)
            off_y = ops.where(ok_y, 0.25 * ops.sign(down - up), zeros)
        else:
            log = lambda v: ops.log(ops.maximum(v, _LOG_EPS))  # noqa: E731
            lc, ll, lr, lu, ld = log(scores), log(left), log(right), log(up), log(down)
            gxx = ll + lr - 2.0 * lc  # second derivatives (<= 0 at a maximum)
            gyy = lu + ld - 2.0 * lc
            dx = 0.5 * (lr - ll)
            dy = 0.5 * (ld - lu)
            valid_x = ops.logical_and(ok_x, gxx < 0.0)
            valid_y = ops.logical_and(ok_y, gyy < 0.0)
            off_x = _safe_div(-dx, gxx, valid_x)
            off_y = _safe_div(-dy, gyy, valid_y)
            if refine == "taylor":
                gxy = 0.25 * (log(at(1, 1)) - log(at(1, -1)) - log(at(-1, 1)) + log(at(-1, -1)))
                det = gxx * gyy - gxy * gxy
                valid = ops.logical_and(ops.logical_and(valid_x, valid_y), det > 0.0)
                tx = _safe_div(-(gyy * dx - gxy * dy), det, valid)
                ty = _safe_div(-(gxx * dy - gxy * dx), det, valid)
                off_x = ops.where(valid, tx, off_x)
                off_y = ops.where(valid, ty, off_y)
            off_x = ops.clip(off_x, -0.5, 0.5)
            off_y = ops.clip(off_y, -0.5, 0.5)

    s = float(stride)
    x = (ops.cast(gx, "float32") + off_x) * s + (s - 1.0) / 2.0
    y = (ops.cast(gy, "float32") + off_y) * s + (s - 1.0) / 2.0
    keypoints = ops.stack([x, y], axis=-1)
    if unbatched:
        return keypoints[0], scores[0]
    return keypoints, scores
