"""Tests for keras_pose.models and keras_pose.flops.

Parametrised over the registry: a new preset is tested without new code.
Small/tiny presets are built, run forward and saved/loaded; paper presets
are only built and counted (the big ones carry ``@pytest.mark.slow``).
"""

from __future__ import annotations

import functools
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import run_layer_test, run_tflite_test

from keras_pose.flops import count_flops, count_macs
from keras_pose.models import (ARCHITECTURES, FAMILIES, DeepPoseCascade, build_deeppose_cascade, build_model,
                               config_from_dict, get_config, list_architectures, model_config, refinement_crops)
from keras_pose.models.common import ChannelSlice, InputNormalization, NormalizedToPixels, scale_channels
from keras_pose.models.deeppose import LocalResponseNormalization, UnitScores, crop_boxes, pose_diameter
from keras_pose.models.part_heatmap import PartHeatmapConfig
from keras_pose.models.registry import architectures_markdown, output_strides
from keras_pose.skeletons import LSP14

TRAINABLE = [n for n in list_architectures() if not n.endswith("_paper")]
PAPER = list_architectures(variant="paper")


@functools.lru_cache(maxsize=None)
def _preset_model(name):
    """One build per preset for the whole module (tests must not change its weights)."""
    return build_model(name)


def _param(name):
    return pytest.param(name, marks=pytest.mark.slow) if ARCHITECTURES[name].slow else name


def _images(config, batch=2, seed=0):
    h, w = config.input_size
    return np.random.default_rng(seed).uniform(0, 255, (batch, h, w, 3)).astype("float32")


def expected_shapes(config) -> dict[str, tuple]:
    """The documented output shapes (without batch) of a config."""
    h, w = config.input_size
    k = config.num_joints
    shapes = {"keypoints": (k, 2), "scores": (k,)}
    if config.family == "deeppose":
        shapes["coords"] = (k, 2)
    elif config.family == "cpm":
        for t in range(1, config.num_stages + 1):
            shapes[f"stage_{t}"] = (math.ceil(h / 8), math.ceil(w / 8), k + 1)
    elif config.family == "part_heatmap":
        ds = config.detection_stride
        shapes["detection"] = (h // ds, w // ds, k)
        shapes["regression"] = (h, w, k)
    elif config.family == "softargmax":
        for b in range(1, config.num_blocks + 1):
            shapes[f"pose_{b}"] = (k, 2)
            shapes[f"visibility_{b}"] = (k, 1)
        shapes["heatmaps"] = (h // 8, w // 8, k * (1 + config.num_context))
    else:  # pragma: no cover
        raise AssertionError(config.family)
    return shapes


# ---------------------------------------------------------------------------
# Registry and configs
# ---------------------------------------------------------------------------


def test_registry_has_every_variant_for_every_family():
    for family in FAMILIES:
        names = list_architectures(family)
        assert f"{family}_small" in names and f"{family}_tiny" in names, family
        assert any(n.endswith("_paper") for n in names), family
    for name, arch in ARCHITECTURES.items():
        assert name.startswith(arch.family + "_")


@pytest.mark.parametrize("name", list_architectures())
def test_config_round_trip(name):
    config = get_config(name)
    d = json.loads(json.dumps(config.to_dict()))
    assert d["family"] == config.family
    assert config_from_dict(d) == config
    assert type(config).from_dict(d) == config


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown keys"):
        config_from_dict({"family": "cpm", "num_joints": 14, "stages": 3})
    with pytest.raises(ValueError, match="family"):
        config_from_dict({"num_joints": 14})
    with pytest.raises(ValueError, match="multiples of 32"):
        PartHeatmapConfig(instance="vgg", input_size=(380, 380))
    with pytest.raises(ValueError, match="instance"):
        PartHeatmapConfig(instance="resnet")
    with pytest.raises(ValueError, match="decode_smooth"):
        PartHeatmapConfig(decode_smooth=4)
    with pytest.raises(ValueError, match="decode_border"):
        PartHeatmapConfig(decode_border=-1)
    with pytest.raises(ValueError, match="too small"):
        get_config("deeppose_tiny").replace(input_size=(48, 48))
    with pytest.raises(KeyError, match="unknown architecture"):
        get_config("cpm_huge")


def test_scale_channels():
    assert scale_channels(576, 1.0) == 576
    assert scale_channels(128, 0.5) == 64
    assert scale_channels(32, 0.125) == 4
    assert scale_channels(3, 0.1) == 4


# ---------------------------------------------------------------------------
# Small and tiny presets: forward, budgets, save/load, gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRAINABLE)
def test_trainable_preset_forward_and_save_load(name, tmp_path):
    config = get_config(name)
    model = _preset_model(name)
    assert model.name == name
    assert [t.name for t in model.inputs] == ["images"]
    assert model_config(model) == config.to_dict()

    # Budgets of the CPU presets.
    params, gflops = model.count_params(), count_flops(model) / 1e9
    if name.endswith("_small"):
        assert params < 6e6, params
        assert 0.5 <= gflops <= 2.0, gflops
        assert config.num_joints == 14
    if name.endswith("_tiny"):
        assert 0.02 <= gflops <= 0.1, gflops

    x = _images(config)
    out = model(x, training=False)
    shapes = expected_shapes(config)
    assert set(out) == set(shapes)
    assert sorted(model.output_names) == sorted(shapes)
    for key, shape in shapes.items():
        value = np.asarray(out[key])
        assert value.shape == (2,) + shape, (key, value.shape)
        assert np.isfinite(value).all(), key

    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded(x, training=False)
    for key in shapes:
        np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(again[key]), err_msg=key)


@pytest.mark.parametrize("name", list_architectures(variant="tiny"))
def test_tiny_preset_every_weight_gets_a_gradient(name):
    model = _preset_model(name)
    x = tf.constant(_images(model.pose_config, batch=2))
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.add_n([tf.reduce_mean(tf.square(v)) for k, v in out.items() if k not in ("keypoints", "scores")])
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not missing, missing
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_architectures(variant="tiny"))
def test_tiny_preset_converts_to_tflite(name):
    model = _preset_model(name)
    # untrained regressors output coordinates of hundreds of pixels: compare relative to their size too
    run_tflite_test(model, _images(model.pose_config, batch=1), atol=1e-3, rtol=1e-5)


def test_output_contracts_relate_outputs():
    # DeepPose: keypoints = (coords + 0.5) * size - 0.5, scores = 1.
    m = _preset_model("deeppose_tiny")
    out = m(_images(m.pose_config), training=False)
    h, w = m.pose_config.input_size
    np.testing.assert_allclose(out["keypoints"], (np.asarray(out["coords"]) + 0.5) * [w, h] - 0.5, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(out["scores"], 1.0)
    # Soft-argmax: keypoints from the last pose, scores = last visibility.
    m = _preset_model("softargmax_tiny")
    cfg = m.pose_config
    out = m(_images(cfg), training=False)
    last = cfg.num_blocks
    h, w = cfg.input_size
    np.testing.assert_allclose(out["keypoints"], np.asarray(out[f"pose_{last}"]) * [w, h] - 0.5, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(out["scores"], np.asarray(out[f"visibility_{last}"])[..., 0])
    assert ((np.asarray(out["scores"]) > 0) & (np.asarray(out["scores"]) < 1)).all()


def test_softargmax_localized_score_option(tmp_path):
    """score="localized": same weights, same keypoints; scores = the last block's part maps through
    LocalizedJointProbability (never above the paper's joint probability)."""
    from keras_pose.layers import LocalizedJointProbability

    plain = _preset_model("softargmax_tiny")
    cfg = plain.pose_config.replace(score="localized", score_radius=1.5)
    m = build_model(cfg)
    m.set_weights(plain.get_weights())  # the option adds no weights
    x = _images(cfg)
    out, ref = m(x, training=False), plain(x, training=False)
    np.testing.assert_allclose(out["keypoints"], ref["keypoints"], atol=1e-5)
    parts = np.asarray(out["heatmaps"])[..., :cfg.num_joints]
    np.testing.assert_allclose(out["scores"], np.asarray(LocalizedJointProbability(1.5)(parts))[..., 0], atol=1e-6)
    assert np.all(np.asarray(out["scores"]) <= np.asarray(ref["scores"]) + 1e-6)
    assert m.pose_config == cfg
    path = tmp_path / "localized.keras"
    m.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x, training=False)["scores"], out["scores"], atol=1e-6)
    with pytest.raises(ValueError, match="score"):
        cfg.replace(score="peak")
    with pytest.raises(ValueError, match="score_radius"):
        cfg.replace(score_radius=0)


def test_part_heatmap_zero_init_option():
    model = build_model(get_config("part_heatmap_tiny").replace(zero_init=True))
    assert not np.any(model.get_layer("det_score").get_weights()[0])
    assert not np.any(model.get_layer("reg_score").get_weights()[0])
    deconv = model.get_layer("regression").get_weights()[0]  # bilinear, not zero
    assert deconv.max() > 0


def test_output_strides():
    assert output_strides(_preset_model("cpm_tiny")) == {"stage_1": 8, "stage_2": 8}
    assert output_strides(_preset_model("part_heatmap_tiny")) == {"detection": 4, "regression": 1}


# ---------------------------------------------------------------------------
# Paper presets: parameter counts (and FLOPs) only, never a forward pass
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [_param(n) for n in PAPER])
def test_paper_preset_matches_spec(name):
    arch = ARCHITECTURES[name]
    model = build_model(name)
    params = model.count_params()
    assert abs(params - arch.paper_params) / arch.paper_params < 0.01, (params, arch.paper_params)
    gflops = count_flops(model) / 1e9
    assert abs(gflops - arch.paper_gflops) / arch.paper_gflops < 0.01, (gflops, arch.paper_gflops)
    assert set(model.output_names) == set(expected_shapes(arch.config))
    keras.backend.clear_session()


def test_paper_cpm_stage_parameter_split():
    # spec 2.2: stage 1 4.386 M, trunk 2.686 M, every later stage 4.830 M.
    total = {t: build_model(get_config("cpm_paper").replace(num_stages=t)).count_params() for t in (1, 2, 3)}
    assert abs(total[1] - 4.386e6) < 1e3
    assert abs(total[3] - total[2] - 4.830e6) < 1e3
    assert abs(total[2] - total[1] - 4.830e6 - 2.686e6) < 2e3


# ---------------------------------------------------------------------------
# FLOPs counter
# ---------------------------------------------------------------------------


def test_count_flops_on_hand_computed_model():
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, padding="same")(x)                    # 64 * 4 * 27        = 6912
    y = keras.layers.SeparableConv2D(6, 3, padding="same")(y)           # 64*4*9 + 64*4*6    = 3840
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)              # 64 * 6 * 9         = 3456
    y = keras.layers.Conv2DTranspose(2, 2, strides=2)(y)                # 64 * 6 * 4 * 2     = 3072
    y = keras.layers.MaxPooling2D(2)(y)                                 # not counted
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=2)(y)  # 16 * 4 * 9 * 2/2  = 576
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(5)(y)                                        # 64 * 5             = 320
    model = keras.Model(x, y)
    macs = 6912 + 3840 + 3456 + 3072 + 576 + 320
    assert count_macs(model) == macs
    assert count_flops(model) == 2 * macs


def test_count_flops_counts_shared_layers_per_call_and_nested_models():
    inner_in = keras.Input((4, 4, 2))
    inner = keras.Model(inner_in, keras.layers.Conv2D(2, 1)(inner_in))  # 16 * 2 * 2 = 64
    x = keras.Input((4, 4, 2))
    dense = keras.layers.Dense(3)                                      # 16 * 2 * 3 = 96 per call
    y = keras.layers.Concatenate()([dense(x), dense(inner(x))])
    assert count_macs(keras.Model(x, y)) == 64 + 2 * 96


# ---------------------------------------------------------------------------
# Small layers of the model files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("layer_cls, kwargs, shape, out_shape", [
    (InputNormalization, {"offset": (123.68, 116.78, 103.94), "scale": 1.0}, (2, 5, 6, 3), (2, 5, 6, 3)),
    (InputNormalization, {"offset": 128.0, "scale": 1 / 256, "reverse_channels": True}, (2, 5, 6, 3), (2, 5, 6, 3)),
    (NormalizedToPixels, {"image_size": (20, 10)}, (2, 7, 2), (2, 7, 2)),
    (ChannelSlice, {"start": 0, "stop": 3}, (2, 4, 4, 9), (2, 4, 4, 3)),
    (LocalResponseNormalization, {}, (2, 4, 4, 8), (2, 4, 4, 8)),
    (UnitScores, {}, (2, 7, 2), (2, 7)),
])
def test_model_file_layers(layer_cls, kwargs, shape, out_shape):
    x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    run_layer_test(layer_cls, kwargs, x, expected_output_shape=out_shape, run_gradient=layer_cls is not UnitScores)


def test_input_normalization_cpm_bgr():
    layer = InputNormalization(offset=128.0, scale=1 / 256, reverse_channels=True)
    out = np.asarray(layer(np.array([[[[0.0, 128.0, 255.0]]]], "float32")))
    np.testing.assert_allclose(out[0, 0, 0], [255 / 256 - 0.5, 0.0, -0.5])
    assert InputNormalization.from_config(layer.get_config()).get_config() == layer.get_config()


def test_normalized_to_pixels():
    coords = np.array([[[0.0, 0.0], [1.0, 1.0]]], "float32")
    corner = np.asarray(NormalizedToPixels((20, 10))(coords))
    np.testing.assert_allclose(corner, [[[-0.5, -0.5], [9.5, 19.5]]])
    centred = np.asarray(NormalizedToPixels((20, 10), centered=True)(coords - 0.5))
    np.testing.assert_allclose(centred, corner)


def test_local_response_normalization_matches_tf():
    x = np.random.default_rng(0).normal(0, 30, (2, 3, 3, 11)).astype("float32")
    ours = LocalResponseNormalization(depth=5, bias=2.0, alpha=1e-4, beta=0.75)(x)
    ref = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# DeepPose cascade
# ---------------------------------------------------------------------------


def _zero_head(model):
    layer = model.get_layer("fc_coords")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return model


def _random_pose(batch, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(10, w - 10, (batch, 14)), rng.uniform(10, h - 10, (batch, 14))], -1).astype("float32")


def test_crop_boxes_samples_the_box_exactly():
    # A linear ramp image: bilinear sampling is exact, so every crop pixel
    # centre must sit at c - s/2 + (i + 0.5) s / n.
    h, w = 40, 50
    yy, xx = np.meshgrid(np.arange(h, dtype="float32"), np.arange(w, dtype="float32"), indexing="ij")
    image = np.stack([xx, yy, np.zeros_like(xx)], -1)[None]
    centers = np.array([[[20.0, 15.0], [30.5, 22.25]]], "float32")
    sizes = np.array([[[16.0, 16.0], [8.0, 12.0]]], "float32")
    crops = crop_boxes(image, centers, sizes, (4, 4)).numpy()
    assert crops.shape == (2, 4, 4, 3)
    for m in range(2):
        (cx, cy), (sw, sh) = centers[0, m], sizes[0, m]
        expect_x = cx - sw / 2 + (np.arange(4) + 0.5) * sw / 4
        expect_y = cy - sh / 2 + (np.arange(4) + 0.5) * sh / 4
        np.testing.assert_allclose(crops[m, 0, :, 0], expect_x, atol=1e-4)
        np.testing.assert_allclose(crops[m, :, 0, 1], expect_y, atol=1e-4)


def test_refinement_crops_targets_are_box_normalised_displacements():
    images = np.zeros((2, 60, 50, 3), "float32")
    prev = _random_pose(2, 60, 50)
    joints = prev + np.random.default_rng(1).normal(0, 3, prev.shape).astype("float32")
    out = refinement_crops(images, prev, (16, 16), joints=joints, sigma=2.0, skeleton=LSP14)
    assert out["crops"].shape == (28, 16, 16, 3)
    np.testing.assert_array_equal(out["joint_ids"], np.tile(np.arange(14), 2))
    diam = pose_diameter(prev, LSP14).numpy()
    a, b = LSP14.torso_indices
    np.testing.assert_allclose(diam, np.linalg.norm(prev[:, a] - prev[:, b], axis=-1), rtol=1e-6)
    expected = (joints - prev) / (2.0 * diam[:, None, None])
    np.testing.assert_allclose(out["targets"], expected.reshape(-1, 2), rtol=1e-5, atol=1e-6)


def test_cascade_zero_refinement_keeps_pose():
    cfg = get_config("deeppose_tiny")
    stage1 = build_model(cfg)
    stage2 = _zero_head(build_model(cfg.replace(input_size=(72, 72))))
    images = np.random.default_rng(0).uniform(0, 255, (2, 96, 80, 3)).astype("float32")
    cascade = DeepPoseCascade([stage1, stage2], sigma=2.0, skeleton=LSP14)
    out = cascade(images)
    assert out["keypoints"].shape == (2, 14, 2)
    assert out["scores"].shape == (2, 14)
    assert len(out["stages"]) == 2
    np.testing.assert_allclose(out["stages"][1], out["stages"][0], atol=1e-5)
    np.testing.assert_allclose(out["keypoints"], out["stages"][0], atol=1e-5)


def test_build_deeppose_cascade_from_config():
    cascade = build_deeppose_cascade(get_config("deeppose_tiny").replace(num_stages=2, sigma=1.5))
    assert len(cascade.stage_models) == 2 and cascade.sigma == 1.5
    out = cascade(np.zeros((1, 64, 64, 3), "float32"))
    assert [tuple(p.shape) for p in out["stages"]] == [(1, 14, 2), (1, 14, 2)]


def test_cascade_stage1_maps_the_whole_image_box():
    cfg = get_config("deeppose_tiny")
    stage1 = _zero_head(build_model(cfg))  # coords 0 -> the box centre
    images = np.zeros((1, 96, 80, 3), "float32")
    out = DeepPoseCascade([stage1])(images)
    np.testing.assert_allclose(out["keypoints"], np.broadcast_to([(80 - 1) / 2, (96 - 1) / 2], (1, 14, 2)))


def test_cascade_refinement_moves_joint_i_by_output_pair_i():
    cfg = get_config("deeppose_tiny")
    stage1 = build_model(cfg)
    stage2 = _zero_head(build_model(cfg))
    # Bias only: every crop predicts displacement (0.1 * i, -0.05) for joint i.
    bias = np.stack([0.1 * np.arange(14), -0.05 * np.ones(14)], -1).reshape(-1).astype("float32")
    layer = stage2.get_layer("fc_coords")
    kernel, _ = layer.get_weights()
    layer.set_weights([kernel, bias])
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    out = DeepPoseCascade([stage1, stage2], sigma=2.0)(images)
    y1, y2 = out["stages"]
    side = 2.0 * pose_diameter(y1, LSP14).numpy()
    expected = y1 + bias.reshape(14, 2)[None] * side[:, None, None]
    np.testing.assert_allclose(y2, expected, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------
# docs/models.md
# ---------------------------------------------------------------------------


def test_architectures_markdown():
    text = architectures_markdown(["cpm_tiny", "deeppose_tiny"])
    assert "| `cpm_tiny` | 64x64 |" in text and "stage_1..stage_2: 8" in text
    assert "| `deeppose_tiny` | 64x64 |" in text and "— (coordinates)" in text


def test_models_md_lists_every_architecture():
    # docs/models.md is generated (python tools/model_table.py); a new preset must be in it
    path = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "models.md")
    with open(path) as f:
        rows = [line.split("|")[1].strip() for line in f if line.startswith("| `")]
    assert rows == [f"`{name}`" for name in list_architectures()], "regenerate: python tools/model_table.py"
