"""Tests for keras_pose.layers (and for the generic helpers in tests/layer_testing.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test, run_model_saving_test, run_serialization_test, run_tflite_test

from keras_pose import codecs
from keras_pose import layers as L

RNG = np.random.default_rng(0)


def _logits(shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


def _np_softmax(x):
    e = np.exp(x - x.max(axis=(1, 2), keepdims=True))
    return e / e.sum(axis=(1, 2), keepdims=True)


def _np_ramp(n, ramp):
    c = np.arange(n, dtype=np.float64)
    return {"linspace": c / max(n - 1, 1), "paper": (c + 1) / n, "center": (c + 0.5) / n}[ramp]


def _np_soft_argmax(x, ramp):
    p = _np_softmax(x.astype(np.float64))
    h, w = x.shape[1:3]
    xs = np.einsum("bhwn,w->bn", p, _np_ramp(w, ramp))
    ys = np.einsum("bhwn,h->bn", p, _np_ramp(h, ramp))
    return np.stack([xs, ys], -1)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _check_gradient(fn, x, eps=1e-6, atol=1e-6):
    """tf.GradientTape gradient of sum(w * fn(x)) against central finite differences (float64)."""
    x = tf.constant(x, tf.float64)
    w = tf.constant(np.random.default_rng(1).normal(size=fn(x).shape), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(w * fn(x))
    analytic = tape.gradient(y, x).numpy()
    flat = x.numpy().ravel()
    numeric = np.zeros_like(flat)
    for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += eps
        minus[i] -= eps
        f = lambda v: float(tf.reduce_sum(w * fn(tf.constant(v.reshape(x.shape)))))  # noqa: E731
        numeric[i] = (f(plus) - f(minus)) / (2 * eps)
    np.testing.assert_allclose(analytic.ravel(), numeric, atol=atol)


def _check_finite_with_gradients(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        total = tf.add_n([tf.reduce_sum(o) for o in keras.tree.flatten(out)])
    grad = tape.gradient(total, x)
    for o in keras.tree.flatten(out):
        assert np.all(np.isfinite(o.numpy()))
    assert np.all(np.isfinite(grad.numpy()))


# --------------------------------------------------------------------------- the generic layer test

LAYER_CASES = [
    pytest.param(L.SpatialSoftArgmax, {}, (2, 16, 12, 5), (2, 5, 2), id="softargmax"),
    pytest.param(L.SpatialSoftArgmax, {"ramp": "center", "output_size": (64, 48)}, (2, 16, 12, 5), (2, 5, 2),
                 id="softargmax-center-pixels"),
    pytest.param(L.JointProbability, {}, (2, 16, 12, 5), (2, 5, 1), id="joint-probability"),
    pytest.param(L.LocalizedJointProbability, {"radius": 1.5}, (2, 16, 12, 5), (2, 5, 1), id="localized-probability"),
    pytest.param(L.ContextAggregation, {"num_joints": 4, "num_context": 2}, (2, 16, 12, 12), (2, 4, 2), id="context"),
    pytest.param(L.CenterMap, {"sigma": 5.0}, (2, 24, 20, 3), (2, 24, 20, 1), id="center-map"),
    pytest.param(L.HeatmapToKeypoints, {"stride": 4, "refine": "taylor", "num_joints": 3}, (2, 16, 12, 4),
                 ((2, 3, 2), (2, 3)), id="heatmap-to-keypoints-taylor"),
    pytest.param(L.HeatmapToKeypoints, {"stride": 8, "refine": "quarter"}, (2, 16, 12, 4), ((2, 4, 2), (2, 4)),
                 id="heatmap-to-keypoints-quarter"),
    pytest.param(L.HeatmapToKeypoints, {"stride": 1, "border": 2}, (2, 16, 12, 4), ((2, 4, 2), (2, 4)),
                 id="heatmap-to-keypoints-border"),
    pytest.param(L.HeatmapToKeypoints, {"stride": 1, "border": 1, "smooth": 5}, (2, 16, 12, 4),
                 ((2, 4, 2), (2, 4)), id="heatmap-to-keypoints-smooth"),
    pytest.param(keras.layers.Conv2DTranspose,
                 {"filters": 3, "kernel_size": 4, "strides": 2, "padding": "same",
                  "kernel_initializer": L.BilinearKernel()}, (2, 6, 5, 3), (2, 12, 10, 3), id="bilinear-deconv"),
]


@pytest.mark.parametrize("layer_cls, kwargs, input_shape, output_shape", LAYER_CASES)
def test_run_layer_test(layer_cls, kwargs, input_shape, output_shape):
    x = np.random.default_rng(3).uniform(-1, 1, input_shape).astype("float32")
    run_layer_test(layer_cls, kwargs, x, expected_output_shape=output_shape)


def test_helpers_on_multi_input_dict_output_model():
    images = keras.Input((16, 16, 3), name="images")
    extra = keras.Input((16, 16, 1), name="extra")
    h = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.Concatenate()([images, extra]))
    model = keras.Model(
        {"images": images, "extra": extra},
        {"heatmaps": h, "keypoints": L.SpatialSoftArgmax()(h), "visibility": L.JointProbability()(h)},
    )
    data = {"images": _logits((2, 16, 16, 3)), "extra": _logits((2, 16, 16, 1), seed=1)}
    run_model_saving_test(model, data)
    run_tflite_test(model, data)


# --------------------------------------------------------------------------- soft-argmax


def test_spatial_softmax_sums_to_one_and_matches_numpy():
    x = _logits((2, 7, 9, 3), scale=3.0)
    p = keras.ops.convert_to_numpy(L.spatial_softmax(x))
    np.testing.assert_allclose(p.sum(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(p, _np_softmax(x), atol=1e-6)


@pytest.mark.parametrize("ramp", L.RAMPS)
def test_soft_argmax_matches_reference(ramp):
    x = _logits((2, 7, 9, 3), scale=3.0)
    out = keras.ops.convert_to_numpy(L.soft_argmax(x, ramp=ramp))
    np.testing.assert_allclose(out, _np_soft_argmax(x, ramp), atol=1e-6)


@pytest.mark.parametrize("ramp, expected", [
    ("linspace", lambda c, n: c / (n - 1)),
    ("paper", lambda c, n: (c + 1) / n),
    ("center", lambda c, n: (c + 0.5) / n),
])
def test_soft_argmax_of_a_peak_is_the_ramp_value(ramp, expected):
    h, w, r, c = 6, 8, 2, 5
    x = np.zeros((1, h, w, 1), "float32")
    x[0, r, c, 0] = 1e4  # a one-hot softmax
    out = keras.ops.convert_to_numpy(L.SpatialSoftArgmax(ramp=ramp)(x))
    np.testing.assert_allclose(out[0, 0], [expected(c, w), expected(r, h)], atol=1e-6)


def test_soft_argmax_center_ramp_in_pixels_matches_cell_centre_convention():
    # With the unbiased ramp and output_size, a peak at cell g lands on s*g + (s-1)/2, like decode_heatmaps.
    stride, h, w = 4, 8, 6
    x = np.full((1, h, w, 2), -1e4, "float32")
    x[0, 3, 1, 0] = 0.0
    x[0, 7, 5, 1] = 0.0
    out = keras.ops.convert_to_numpy(L.SpatialSoftArgmax(ramp="center", output_size=(h * stride, w * stride))(x))
    cell = lambda g: stride * g + (stride - 1) / 2  # noqa: E731
    np.testing.assert_allclose(out[0], [[cell(1), cell(3)], [cell(5), cell(7)]], atol=1e-4)
    decoded, _ = codecs.decode_heatmaps(x, stride, refine="none")
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(decoded), atol=1e-4)


def test_soft_argmax_output_size_is_corner_convention():
    x = _logits((2, 5, 7, 3))
    norm = keras.ops.convert_to_numpy(L.SpatialSoftArgmax()(x))
    pix = keras.ops.convert_to_numpy(L.SpatialSoftArgmax(output_size=(40, 56))(x))
    np.testing.assert_allclose(pix, norm * np.array([56, 40]) - 0.5, atol=1e-4)
    np.testing.assert_allclose(pix, keras.ops.convert_to_numpy(codecs.decode_normalized(norm, (40, 56))), atol=1e-4)


@pytest.mark.parametrize("ramp", L.RAMPS)
def test_soft_argmax_gradient_matches_finite_differences(ramp):
    layer = L.SpatialSoftArgmax(ramp=ramp, dtype="float64")
    _check_gradient(layer, _logits((1, 4, 5, 2), scale=2.0).astype("float64"))


def test_soft_argmax_is_stable_for_huge_logits():
    layer = L.SpatialSoftArgmax()
    x = np.where(RNG.uniform(size=(2, 8, 8, 3)) > 0.5, 1e4, -1e4).astype("float32")
    _check_finite_with_gradients(layer, x)
    _check_finite_with_gradients(layer, np.full((1, 4, 4, 2), -1e4, "float32"))


def test_soft_argmax_rejects_bad_arguments():
    with pytest.raises(ValueError, match="ramp"):
        L.SpatialSoftArgmax(ramp="pixels")
    with pytest.raises(ValueError, match="output_size"):
        L.SpatialSoftArgmax(output_size=(1, 2, 3))
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        L.SpatialSoftArgmax()(np.zeros((2, 3, 4), "float32"))


# --------------------------------------------------------------------------- joint probability


def test_joint_probability_is_sigmoid_of_spatial_max():
    x = _logits((2, 6, 5, 4), scale=2.0)
    out = keras.ops.convert_to_numpy(L.JointProbability()(x))
    np.testing.assert_allclose(out[..., 0], _np_sigmoid(x.max(axis=(1, 2))), atol=1e-6)
    _check_finite_with_gradients(L.JointProbability(), np.array(x * 1e4, "float32"))


def _np_localized(x, radius):
    """Reference: sigmoid(max) x the softmax mass within ``radius`` cells of the expected (col, row)."""
    b, h, w, n = x.shape
    p = _np_softmax(x)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.zeros((b, n))
    for i in range(b):
        for j in range(n):
            q = p[i, :, :, j]
            r0, c0 = (q * rows).sum(), (q * cols).sum()
            out[i, j] = _np_sigmoid(x[i, :, :, j].max()) * q[(rows - r0) ** 2 + (cols - c0) ** 2 <= radius ** 2].sum()
    return out


@pytest.mark.parametrize("radius", [1.0, 2.0, 3.5])
def test_localized_probability_matches_reference(radius):
    x = _logits((2, 9, 7, 4), scale=3.0)
    out = keras.ops.convert_to_numpy(L.LocalizedJointProbability(radius)(x))
    np.testing.assert_allclose(out[..., 0], _np_localized(x, radius), atol=1e-5)
    _check_finite_with_gradients(L.LocalizedJointProbability(radius), np.array(x * 1e4, "float32"))


def test_localized_probability_is_low_for_a_split_or_flat_map_and_high_for_a_peak():
    x = np.full((1, 20, 20, 3), -10.0, "float32")
    x[0, 5, 5, 0] = 10.0  # one sharp peak: found
    x[0, 2, 2, 1] = x[0, 17, 17, 1] = 10.0  # two peaks: the soft-argmax lies between them, on neither
    x[..., 2] = 10.0  # flat: present everywhere, found nowhere
    out = keras.ops.convert_to_numpy(L.LocalizedJointProbability(2.0)(x))[0, :, 0]
    assert out[0] > 0.99
    assert out[1] < 0.01
    assert out[2] < 0.05
    plain = keras.ops.convert_to_numpy(L.JointProbability()(x))[0, :, 0]
    assert np.all(plain > 0.99)  # the paper's joint probability cannot tell them apart


def test_localized_probability_rejects_a_bad_radius():
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="radius"):
            L.LocalizedJointProbability(bad)


# --------------------------------------------------------------------------- context aggregation


def _np_context(x, n, nc, alpha, ramp="linspace"):
    yd = _np_soft_argmax(x[..., :n], ramp)
    ctx = x[..., n:]
    yc = _np_soft_argmax(ctx, ramp).reshape(-1, n, nc, 2)
    pc = _np_sigmoid(ctx.max(axis=(1, 2)).astype(np.float64)).reshape(-1, n, nc)
    return alpha * yd + (1 - alpha) * (pc[..., None] * yc).sum(2) / pc.sum(2)[..., None]


@pytest.mark.parametrize("nc", [1, 2, 3])
def test_context_aggregation_matches_eq6(nc):
    n = 3
    x = _logits((2, 6, 7, n * (1 + nc)), scale=2.0)
    out = keras.ops.convert_to_numpy(L.ContextAggregation(n, num_context=nc, alpha=0.8)(x))
    np.testing.assert_allclose(out, _np_context(x, n, nc, 0.8), atol=1e-6)


def test_context_aggregation_channel_layout():
    # Joint 1's part map peaks at cell (r=1, c=2); its two context maps (channels N + 1*Nc + i) peak at
    # (4, 4) and (0, 0) with logits 3 and 1: y = 0.8 * part + 0.2 * (p3 * ctx0 + p1 * ctx1) / (p3 + p1).
    n, nc, h, w = 2, 2, 5, 5
    x = np.full((1, h, w, n * (1 + nc)), -1e4, "float32")
    x[0, :, :, 0] = 0.0  # joint 0: uniform part map
    x[0, :, :, n:n + nc] = 0.0  # joint 0: uniform context maps
    x[0, 1, 2, 1] = 5.0
    x[0, 4, 4, n + 1 * nc + 0] = 3.0
    x[0, 0, 0, n + 1 * nc + 1] = 1.0
    out = keras.ops.convert_to_numpy(L.ContextAggregation(n, nc, alpha=0.8)(x))
    p3, p1 = _np_sigmoid(3.0), _np_sigmoid(1.0)
    expected = 0.8 * np.array([2 / 4, 1 / 4]) + 0.2 * (p3 * np.array([1.0, 1.0]) + p1 * np.array([0.0, 0.0])) / (p3 + p1)
    np.testing.assert_allclose(out[0, 1], expected, atol=1e-5)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5], atol=1e-5)


def test_context_aggregation_without_context_is_soft_argmax():
    x = _logits((2, 6, 7, 3))
    out = L.ContextAggregation(3, num_context=0)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), _np_soft_argmax(x, "linspace"), atol=1e-6)


def test_context_aggregation_gradient_matches_finite_differences():
    layer = L.ContextAggregation(2, num_context=2, alpha=0.7, dtype="float64")
    _check_gradient(layer, _logits((1, 3, 4, 6), scale=2.0).astype("float64"))


def test_context_aggregation_is_stable_for_huge_logits():
    layer = L.ContextAggregation(3, num_context=2)
    x = np.where(RNG.uniform(size=(2, 6, 6, 9)) > 0.5, 1e4, -1e4).astype("float32")
    _check_finite_with_gradients(layer, x)
    # Every context sigmoid underflows to 0: the naive sum p*y / sum p would be 0/0.
    _check_finite_with_gradients(layer, np.full((1, 4, 4, 9), -1e4, "float32"))


def test_context_aggregation_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"expected num_joints \* \(1 \+ num_context\) = 4 \* \(1 \+ 2\) = 12"):
        L.ContextAggregation(4, num_context=2)(np.zeros((1, 8, 8, 16), "float32"))


# --------------------------------------------------------------------------- bilinear deconvolution


def test_bilinear_filter_matches_fcn_table():
    np.testing.assert_allclose(L.bilinear_filter_1d(4), [0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(L.bilinear_filter_1d(8), [0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125])
    np.testing.assert_allclose(L.bilinear_filter_1d(3), [0.5, 1.0, 0.5])


def test_bilinear_kernel_is_per_channel():
    kernel = keras.ops.convert_to_numpy(L.BilinearKernel()((4, 4, 3, 3), dtype="float32"))
    assert kernel.shape == (4, 4, 3, 3) and kernel.dtype == np.float32
    w = np.outer(L.bilinear_filter_1d(4), L.bilinear_filter_1d(4))
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(kernel[:, :, i, j], w if i == j else 0.0)
    run_serialization_test(L.BilinearKernel())


def test_bilinear_kernel_rejects_channel_mixing():
    with pytest.raises(ValueError, match="C_out\\) = 4 but the input has C_in = 3"):
        L.BilinearKernel()((4, 4, 4, 3))
    with pytest.raises(ValueError, match="kernel shape"):
        L.BilinearKernel()((4, 4, 3))


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_bilinear_deconv_equals_tf_image_resize(stride):
    x = RNG.uniform(size=(2, 7, 6, 3)).astype("float32")
    up = keras.layers.Conv2DTranspose(3, 2 * stride, strides=stride, padding="same", use_bias=False,
                                      kernel_initializer=L.BilinearKernel())
    y = keras.ops.convert_to_numpy(up(x))
    ref = tf.image.resize(x, (7 * stride, 6 * stride), "bilinear").numpy()  # half-pixel centres
    b = stride  # the borders differ (zero padding vs edge clamping)
    np.testing.assert_allclose(y[:, b:-b, b:-b], ref[:, b:-b, b:-b], atol=1e-6)
    assert np.abs(y - ref).max() > 0.1  # ...and they do differ at the border


@pytest.mark.parametrize("stride", [2, 4])
def test_bilinear_kernel_with_k_equal_s_is_not_an_interpolator(stride):
    # The paper's 4x4/4 (B7) and 2x2/2 (D5) deconvolutions with the literal FCN formula: a constant
    # input does not stay constant (k = 2 scales it by 0.25; k = 4 gives a periodic pattern).
    up = keras.layers.Conv2DTranspose(1, stride, strides=stride, padding="same", use_bias=False,
                                      kernel_initializer=L.BilinearKernel())
    y = keras.ops.convert_to_numpy(up(np.ones((1, 5, 5, 1), "float32")))[0, :, :, 0]
    w = L.bilinear_filter_1d(stride)
    np.testing.assert_allclose(y, np.tile(np.outer(w, w), (5, 5)), atol=1e-6)  # each input pixel stamps w w^T
    if stride == 2:
        np.testing.assert_allclose(y, 0.25)
    assert np.abs(y - 1.0).max() > 0.4


def test_bilinear_upsample_factory():
    up = L.bilinear_upsample(3, 4, name="up4", trainable=False)
    assert isinstance(up, keras.layers.Conv2DTranspose)
    assert up.kernel_size == (8, 8) and up.strides == (4, 4) and up.padding == "same" and not up.trainable
    x = RNG.uniform(size=(1, 6, 6, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(up(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(up.bias), 0.0)
    ref = tf.image.resize(x, (24, 24), "bilinear").numpy()
    np.testing.assert_allclose(y[:, 4:-4, 4:-4], ref[:, 4:-4, 4:-4], atol=1e-6)
    with pytest.raises(ValueError, match="BilinearKernel"):
        L.bilinear_upsample(4, 2)(x)


# --------------------------------------------------------------------------- centre map


def test_center_map_values():
    h, w, sigma = 368, 368, 21.0
    out = keras.ops.convert_to_numpy(L.CenterMap(sigma)(np.zeros((2, h, w, 3), "float32")))
    assert out.shape == (2, h, w, 1)
    ys, xs = np.mgrid[0:h, 0:w]
    ref = np.exp(-((xs - (w - 1) / 2) ** 2 + (ys - (h - 1) / 2) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(out[1, :, :, 0], ref, atol=1e-6)
    np.testing.assert_allclose(out[0], out[0, :, ::-1], atol=1e-6)  # flip-symmetric


def test_center_map_uses_shape_only():
    x = np.full((1, 10, 14, 3), np.nan, "float32")
    out = keras.ops.convert_to_numpy(L.CenterMap(3.0)(x))
    assert np.all(np.isfinite(out)) and out.shape == (1, 10, 14, 1)
    np.testing.assert_allclose(out.max(), np.exp(-(0.25 + 0.25) / 18.0), atol=1e-6)  # centre (6.5, 4.5)


# --------------------------------------------------------------------------- heatmap decoding layer


@pytest.mark.parametrize("refine", codecs.REFINE_MODES)
def test_heatmap_to_keypoints_matches_codec(refine):
    kp = RNG.uniform(10, 170, (2, 14, 2)).astype("float32")
    maps = codecs.encode_heatmaps(kp, np.ones((2, 14), bool), (23, 23), 8, 7.0, background=True, cpm_truncate=True)
    keypoints, scores = L.HeatmapToKeypoints(8, refine=refine, num_joints=14)(maps)
    ref_kp, ref_scores = codecs.decode_heatmaps(maps[..., :14], 8, refine=refine)
    assert tuple(keypoints.shape) == (2, 14, 2) and tuple(scores.shape) == (2, 14)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keypoints), keras.ops.convert_to_numpy(ref_kp))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), keras.ops.convert_to_numpy(ref_scores))


def test_heatmap_to_keypoints_border_ignores_edge_spikes():
    """border=1: a spike on the outermost pixels does not win; interior keypoints decode as without it."""
    kp = np.array([[[20.0, 30.0], [45.0, 12.0]]], "float32")
    maps = codecs.encode_heatmaps(kp, np.ones((1, 2), bool), (64, 64), 1, 3.0)
    ref, ref_scores = L.HeatmapToKeypoints(1)(maps)
    got, scores = L.HeatmapToKeypoints(1, border=1)(maps)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(ref), atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), keras.ops.convert_to_numpy(ref_scores))
    spiked = np.array(maps)
    spiked[0, 0, 5, 0] = spiked[0, 63, 63, 1] = 2.0
    plain, _ = L.HeatmapToKeypoints(1)(spiked)
    assert np.abs(keras.ops.convert_to_numpy(plain) - kp).max() > 10  # the spikes win without a border
    got, _ = L.HeatmapToKeypoints(1, border=1)(spiked)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(ref), atol=1e-5)
    with pytest.raises(ValueError, match="border"):
        L.HeatmapToKeypoints(1, border=-1)
    with pytest.raises(ValueError, match="leaves no cells"):
        L.HeatmapToKeypoints(1, border=4)(np.zeros((1, 8, 8, 2), "float32"))


def test_heatmap_to_keypoints_smooth_blurs_after_the_border():
    """smooth: decodes as the codec on the border-cropped maps; bad widths are rejected."""
    kp = np.array([[[20.0, 30.0], [45.0, 12.0]]], "float32")
    maps = np.array(codecs.encode_heatmaps(kp, np.ones((1, 2), bool), (64, 64), 1, 8.0))
    maps[0, 0, 5, 0] = 2.0  # an edge spike: dropped by the border before the blur could spread it
    got, scores = L.HeatmapToKeypoints(1, border=1, smooth=7)(maps)
    ref, ref_scores = codecs.decode_heatmaps(maps[:, 1:-1, 1:-1], 1, smooth=7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(ref) + 1.0, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), keras.ops.convert_to_numpy(ref_scores))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), kp, atol=0.5)
    for bad in (-1, 2, 4, 1.5):
        with pytest.raises(ValueError, match="smooth"):
            L.HeatmapToKeypoints(1, smooth=bad)


def test_heatmap_to_keypoints_rejects_bad_arguments():
    with pytest.raises(ValueError, match="refine"):
        L.HeatmapToKeypoints(4, refine="dark")
    with pytest.raises(ValueError, match="num_joints=5 but the heatmaps have only 4"):
        L.HeatmapToKeypoints(4, num_joints=5)(np.zeros((1, 8, 8, 4), "float32"))
