"""Tests for keras_pose.codecs: hand-checked values and encode -> decode round trips."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pose import codecs

np_ = keras.ops.convert_to_numpy


def _random_joints(batch, joints, stride, size, margin_cells=3, seed=0):
    """Random sub-pixel joints at least ``margin_cells`` cells from the map border (argmax never on the border)."""
    rng = np.random.default_rng(seed)
    lo, hi = margin_cells * stride, (size - margin_cells) * stride
    return rng.uniform(lo, hi, (batch, joints, 2)).astype("float32")


def _errors_in_cells(decoded, keypoints, stride):
    return np.abs(np_(decoded) - keypoints) / stride  # per coordinate


# --------------------------------------------------------------------------- encode_heatmaps


def test_encode_heatmaps_values_at_cell_centres():
    stride, sigma = 4, 6.0
    # Joint exactly on the centre of cell (gx=5, gy=2): input coordinate 4*g + 1.5.
    kp = np.array([[[4 * 5 + 1.5, 4 * 2 + 1.5]]], "float32")
    maps = np_(codecs.encode_heatmaps(kp, [[True]], (8, 10), stride, sigma))
    assert maps.shape == (1, 8, 10, 1)
    assert maps[0, 2, 5, 0] == pytest.approx(1.0)
    assert maps[0].max() == pytest.approx(1.0)
    assert maps[0, 2, 6, 0] == pytest.approx(math.exp(-(stride**2) / (2 * sigma**2)), rel=1e-6)
    assert maps[0, 3, 6, 0] == pytest.approx(math.exp(-2 * stride**2 / (2 * sigma**2)), rel=1e-6)
    np.testing.assert_allclose(np_(codecs.cell_centers(3, 8)), [3.5, 11.5, 19.5])  # CPM's 8g + 3.5


def test_encode_heatmaps_matches_cpm_put_gaussian_maps():
    # Reference: CPM's data_transformer.cpp putGaussianMaps (start = stride/2 - 0.5, truncation at ln 100),
    # one joint per map, plus the background map max(1 - max_p, 0).
    stride, sigma, size = 8, 7.0, 46
    kp = _random_joints(2, 14, stride, size, margin_cells=0, seed=1)
    vis = np.random.default_rng(2).uniform(size=(2, 14)) > 0.3
    maps = np_(codecs.encode_heatmaps(kp, vis, (size, size), stride, sigma, background=True, cpm_truncate=True))
    start = stride / 2.0 - 0.5
    g = start + stride * np.arange(size)
    ref = np.zeros((2, size, size, 15), np.float64)
    for b in range(2):
        for k in range(14):
            if not vis[b, k]:
                continue
            d2 = (g[None, :] - kp[b, k, 0]) ** 2 + (g[:, None] - kp[b, k, 1]) ** 2
            e = d2 / (2 * sigma**2)
            ref[b, :, :, k] = np.where(e > math.log(100), 0.0, np.exp(-e))
        ref[b, :, :, 14] = np.maximum(1 - ref[b, :, :, :14].max(-1), 0)
    np.testing.assert_allclose(maps, ref, atol=1e-6)
    assert np.all(maps[..., :14][~vis[:, None, None, :].repeat(size, 1).repeat(size, 2)] == 0)


def test_encode_heatmaps_invisible_joints_with_nan_coordinates_are_zero():
    kp = np.array([[[10.0, 12.0], [np.nan, np.nan], [-1e9, -1e9]]], "float32")
    maps = np_(codecs.encode_heatmaps(kp, np.array([[1, 0, 0]], "float32"), (8, 8), 4, 4.0, background=True))
    assert np.all(np.isfinite(maps))
    assert maps[..., 0].max() > 0.5 and np.all(maps[..., 1:3] == 0)
    np.testing.assert_allclose(maps[..., 3], 1 - maps[..., 0], atol=1e-6)


def test_encode_heatmaps_per_sample_sigma_and_unbatched():
    kp = _random_joints(3, 4, 4, 16, seed=3)
    vis = np.ones((3, 4), bool)
    sigmas = np.array([2.0, 4.0, 8.0], "float32")
    batched = np_(codecs.encode_heatmaps(kp, vis, (16, 16), 4, sigmas))
    for b in range(3):
        single = np_(codecs.encode_heatmaps(kp[b], vis[b], (16, 16), 4, float(sigmas[b])))
        assert single.shape == (16, 16, 4)
        np.testing.assert_allclose(batched[b], single, atol=1e-6)


def test_encode_heatmaps_rejects_bad_shapes():
    with pytest.raises(ValueError, match="heatmap_size"):
        codecs.encode_heatmaps(np.zeros((1, 2, 2)), np.ones((1, 2)), (8,), 4, 2.0)
    with pytest.raises(ValueError, match="keypoints"):
        codecs.encode_heatmaps(np.zeros((1, 2, 3)), np.ones((1, 2)), (8, 8), 4, 2.0)


# --------------------------------------------------------------------------- decode_heatmaps round trips

STRIDE, SIZE, SIGMA_CELLS = 4, 32, 2.0


@pytest.fixture(scope="module")
def gaussian_round_trip():
    """Decoded joints (per refine mode) of sigma = 2 cell Gaussian maps of 64 x 16 random sub-pixel joints."""
    kp = _random_joints(64, 16, STRIDE, SIZE, seed=4)
    maps = codecs.encode_heatmaps(kp, np.ones(kp.shape[:2], bool), (SIZE, SIZE), STRIDE, SIGMA_CELLS * STRIDE)
    return kp, maps, {r: codecs.decode_heatmaps(maps, STRIDE, refine=r) for r in codecs.REFINE_MODES}


def test_round_trip_none_is_within_half_a_cell(gaussian_round_trip):
    kp, _, decoded = gaussian_round_trip
    err = _errors_in_cells(decoded["none"][0], kp, STRIDE)
    assert err.max() <= 0.5 + 1e-4  # the nearest cell centre


def test_round_trip_quarter_is_within_a_quarter_cell(gaussian_round_trip):
    kp, _, decoded = gaussian_round_trip
    err = _errors_in_cells(decoded["quarter"][0], kp, STRIDE)
    assert err.max() <= 0.25 + 1e-4  # per coordinate, so <= 0.354 cell in distance
    assert np.linalg.norm(err, axis=-1).max() <= 0.35 + 5e-3


@pytest.mark.parametrize("refine", ["parabola", "taylor"])
def test_round_trip_second_order_is_within_0_05_cell(gaussian_round_trip, refine):
    kp, _, decoded = gaussian_round_trip
    err = _errors_in_cells(decoded[refine][0], kp, STRIDE)
    assert err.max() <= 0.05  # in fact ~1e-6: the log of a Gaussian is exactly quadratic


def test_sub_pixel_decoding_beats_argmax(gaussian_round_trip):
    kp, _, decoded = gaussian_round_trip
    mean = {r: np.linalg.norm(_errors_in_cells(decoded[r][0], kp, STRIDE), axis=-1).mean() for r in decoded}
    # Uniform sub-cell offsets: E|argmax error| ~ 0.38 cell, quarter ~ 0.19, second-order ~ 0.
    assert mean["quarter"] < 0.6 * mean["none"]
    assert mean["taylor"] < 0.1 * mean["quarter"]
    assert mean["parabola"] < 0.1 * mean["quarter"]


def test_sub_pixel_decoding_beats_argmax_on_noisy_maps(gaussian_round_trip):
    kp, maps, _ = gaussian_round_trip
    noisy = np_(maps) + np.random.default_rng(5).normal(0, 0.02, maps.shape).astype("float32")
    mean = {
        r: np.linalg.norm(_errors_in_cells(codecs.decode_heatmaps(noisy, STRIDE, r)[0], kp, STRIDE), axis=-1).mean()
        for r in codecs.REFINE_MODES
    }
    # Measured (seeded): none 0.40, quarter 0.22, parabola 0.10, taylor 0.10 cell.
    assert mean["quarter"] < 0.7 * mean["none"]
    assert mean["taylor"] < 0.7 * mean["quarter"]
    assert mean["parabola"] < 0.7 * mean["quarter"]


def test_decode_scores_are_map_maxima(gaussian_round_trip):
    _, maps, decoded = gaussian_round_trip
    for r in codecs.REFINE_MODES:
        np.testing.assert_allclose(np_(decoded[r][1]), np_(maps).max(axis=(1, 2)))


def test_round_trip_cpm_targets():
    # CPM: stride 8, sigma 7 px (0.875 cell), truncated, background channel last.
    kp = _random_joints(8, 14, 8, 46, seed=6)
    maps = codecs.encode_heatmaps(kp, np.ones((8, 14), bool), (46, 46), 8, 7.0, background=True, cpm_truncate=True)
    err = _errors_in_cells(codecs.decode_heatmaps(maps[..., :14], 8, "taylor")[0], kp, 8)
    assert err.max() <= 0.05


def test_decode_border_and_degenerate_maps_are_finite():
    maps = np.zeros((1, 6, 6, 4), "float32")
    maps[0, 0, 0, 0] = 1.0  # corner peak: no neighbours on one side
    maps[0, 5, 3, 1] = 1.0
    maps[0, 2, 2, 2] = -1.0  # all <= 0
    maps[..., 3] = np.nan
    for r in codecs.REFINE_MODES:
        kp, scores = codecs.decode_heatmaps(maps, 4, r)
        kp = np_(kp)
        assert np.all(np.isfinite(kp))
        np.testing.assert_allclose(kp[0, 0], [1.5, 1.5])  # offset 0 along both border axes
        assert kp[0, 1, 1] == pytest.approx(4 * 5 + 1.5)
        assert np.all(kp[0, :3] >= 0)


def test_smooth_heatmaps_keeps_constants_and_symmetric_peaks():
    const = np.full((1, 9, 7, 2), 0.3, "float32")
    np.testing.assert_allclose(np_(codecs.smooth_heatmaps(const, 5)), const, atol=1e-6)  # edges not darkened
    kp = np.array([[[16.0, 20.0]]], "float32")
    maps = codecs.encode_heatmaps(kp, np.ones((1, 1), bool), (40, 36), 1, 4.0)
    blurred = np_(codecs.smooth_heatmaps(maps, 7))
    assert np.unravel_index(blurred[0, ..., 0].argmax(), blurred.shape[1:3]) == (20, 16)
    assert blurred.max() < np_(maps).max()  # it does blur
    np.testing.assert_allclose(np_(codecs.smooth_heatmaps(maps, 1)), np_(maps))
    noise = np.random.default_rng(5).normal(size=(2, 20, 18, 3)).astype("float32")
    ref = noise
    for _ in range(codecs.heatmap.SMOOTH_PASSES):  # separable passes == square "same" box filters
        ref = tf.nn.avg_pool2d(ref, 5, 1, "SAME").numpy()
    np.testing.assert_allclose(np_(codecs.smooth_heatmaps(noise, 5)), ref, atol=1e-5)
    for bad in (0, 2, -3, 2.5):
        with pytest.raises(ValueError, match="smooth"):
            codecs.smooth_heatmaps(maps, bad)


def test_decode_smooth_steadies_the_argmax_of_noisy_broad_peaks():
    """Wide Gaussians plus noise (as int8 maps of part_heatmap_scratch_lsp): smoothing cuts the argmax error."""
    kp = _random_joints(16, 4, 1, 96, seed=11, margin_cells=20)
    maps = np_(codecs.encode_heatmaps(kp, np.ones((16, 4), bool), (96, 96), 1, 8.0))
    noisy = maps + np.random.default_rng(12).normal(0, 0.05, maps.shape).astype("float32")
    err = {w: np.linalg.norm(np_(codecs.decode_heatmaps(noisy, 1, smooth=w)[0]) - kp, axis=-1) for w in (0, 9)}
    assert np.median(err[9]) < 0.5 * np.median(err[0])
    assert np.median(err[9]) < 2.0
    clean = np_(codecs.decode_heatmaps(maps, 1, "parabola", smooth=9)[0])  # a blurred Gaussian peaks in place
    np.testing.assert_allclose(clean, kp, atol=0.5)


def test_decode_unbatched_and_errors():
    kp = _random_joints(1, 3, 4, 16, seed=7)[0]
    maps = codecs.encode_heatmaps(kp, np.ones(3, bool), (16, 16), 4, 8.0)
    decoded, scores = codecs.decode_heatmaps(maps, 4, "taylor")
    assert tuple(decoded.shape) == (3, 2) and tuple(scores.shape) == (3,)
    np.testing.assert_allclose(np_(decoded), kp, atol=0.05 * 4)
    with pytest.raises(ValueError, match="refine"):
        codecs.decode_heatmaps(maps, 4, "dark")


def test_codecs_run_in_tf_function_and_tf_data():
    kp = _random_joints(6, 5, 4, 16, seed=8)
    vis = np.ones((6, 5), bool)
    radius = np.linspace(4, 9, 6).astype("float32")

    def encode(k, v, r):
        return (
            codecs.encode_heatmaps(k, v, (16, 16), 4, 6.0, background=True),
            codecs.encode_discs(k, v, (16, 16), 4, r),
            codecs.encode_normalized(k, (64, 64)),
        )

    # Per-example map (unbatched) and batched use.
    ds = tf.data.Dataset.from_tensor_slices((kp, vis, radius)).map(encode).batch(6)
    hm, discs, norm = next(iter(ds))
    eager = encode(kp, vis, radius)
    np.testing.assert_allclose(hm.numpy(), np_(eager[0]), atol=1e-6)
    np.testing.assert_allclose(discs.numpy(), np_(eager[1]))
    np.testing.assert_allclose(norm.numpy(), np_(eager[2]), atol=1e-6)

    decode = tf.function(lambda m: codecs.decode_heatmaps(m, 4, "taylor"))
    graph_kp, _ = decode(hm[..., :5])
    np.testing.assert_allclose(graph_kp.numpy(), kp, atol=0.05 * 4)
    dynamic = tf.function(lambda m: codecs.decode_heatmaps(m, 4, "quarter"),
                          input_signature=[tf.TensorSpec((None, None, None, 5), tf.float32)])
    np.testing.assert_allclose(dynamic(hm[..., :5])[0].numpy(), np_(codecs.decode_heatmaps(hm[..., :5], 4)[0]))


# --------------------------------------------------------------------------- encode_discs


def test_encode_discs_cells_within_radius():
    stride, radius = 4, 9.0
    kp = np.array([[[30.2, 21.7], [5.0, 5.0]]], "float32")
    maps = np_(codecs.encode_discs(kp, [[True, False]], (16, 16), stride, radius))
    c = codecs.cell_centers(16, stride).numpy()
    inside = (c[None, :] - 30.2) ** 2 + (c[:, None] - 21.7) ** 2 <= radius**2
    np.testing.assert_array_equal(maps[0, :, :, 0], inside.astype("float32"))
    assert set(np.unique(maps)) <= {0.0, 1.0}
    assert np.all(maps[0, :, :, 1] == 0)  # invisible joints are not drawn
    # About pi r^2 / s^2 cells.
    assert abs(maps[0, :, :, 0].sum() - math.pi * radius**2 / stride**2) < 4


def test_encode_discs_per_sample_radius_and_round_trip():
    kp = _random_joints(4, 6, 1, 64, margin_cells=12, seed=9)
    radius = np.array([3.0, 5.0, 8.0, 10.0], "float32")
    maps = np_(codecs.encode_discs(kp, np.ones((4, 6), bool), (64, 64), 1, radius))
    for b in range(4):
        single = np_(codecs.encode_discs(kp[b], np.ones(6, bool), (64, 64), 1, float(radius[b])))
        np.testing.assert_array_equal(maps[b], single)
    # Decoding a disc gives a point of the disc (its first cell in raster order): within the radius.
    decoded = np_(codecs.decode_heatmaps(maps, 1, "none")[0])
    assert np.all(np.linalg.norm(decoded - kp, axis=-1) <= radius[:, None] + 1e-4)


# --------------------------------------------------------------------------- normalised and box coordinates


def test_normalized_corner_convention():
    h, w = 40, 60
    corners = np.array([[-0.5, -0.5], [w - 0.5, h - 0.5], [(w - 1) / 2, (h - 1) / 2]], "float32")
    np.testing.assert_allclose(np_(codecs.encode_normalized(corners, (h, w))), [[0, 0], [1, 1], [0.5, 0.5]], atol=1e-7)


def test_normalized_round_trip():
    kp = np.random.default_rng(10).uniform(-10, 300, (5, 16, 2)).astype("float32")
    sizes = np.array([[256, 256], [200, 300], [100, 50], [368, 368], [220, 220]], "float32")
    for size in [(256, 192), sizes]:
        back = np_(codecs.decode_normalized(codecs.encode_normalized(kp, size), size))
        np.testing.assert_allclose(back, kp, atol=1e-4)
    per_sample = np_(codecs.encode_normalized(kp, sizes))
    np.testing.assert_allclose(per_sample[1], np_(codecs.encode_normalized(kp[1], (200, 300))), atol=1e-7)


def test_box_normalize_full_image_is_normalized_minus_half():
    kp = np.random.default_rng(11).uniform(0, 219, (3, 14, 2)).astype("float32")
    center, size = codecs.image_box((220, 220))
    np.testing.assert_allclose(np_(center), [110, 110])
    boxed = np_(codecs.box_normalize(kp, center, size))
    np.testing.assert_allclose(boxed, np_(codecs.encode_normalized(kp, (220, 220))) - 0.5, atol=1e-6)
    assert np.all(np.abs(boxed) <= 0.5)


def test_box_normalize_round_trip_and_per_sample_boxes():
    rng = np.random.default_rng(12)
    kp = rng.uniform(0, 500, (4, 14, 2)).astype("float32")
    center = rng.uniform(100, 400, (4, 2)).astype("float32")
    size = rng.uniform(50, 300, (4, 2)).astype("float32")
    boxed = np_(codecs.box_normalize(kp, center, size))
    np.testing.assert_allclose((kp + 0.5 - center[:, None]) / size[:, None], boxed, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np_(codecs.box_denormalize(boxed, center, size)), kp, atol=1e-4)
    # A box centred on joint p (corner coordinates p + 0.5) maps p to 0.
    p = kp[:, 3]
    np.testing.assert_allclose(np_(codecs.box_normalize(p, p + 0.5, size)), 0.0, atol=1e-6)


def test_coordinate_codecs_reject_bad_shapes():
    with pytest.raises(ValueError, match="image_size"):
        codecs.encode_normalized(np.zeros((2, 2)), (10, 10, 3))
    with pytest.raises(ValueError, match="box_center"):
        codecs.box_normalize(np.zeros((2, 2)), np.zeros(3), np.ones(2))
