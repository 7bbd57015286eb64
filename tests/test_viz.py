"""Tests for keras_pose.viz (heatmap figures, saliency / Grad-CAM, PCK curves, paper table) and `keras-pose visualize`.

Fast: tiny registry models (random weights, fixed seed), synthetic images, no dataset.
"""

from __future__ import annotations

import functools

import cv2
import keras
import numpy as np
import pytest

from keras_pose.models import build_model, get_config
from keras_pose.skeletons import LSP14
from keras_pose.viz import (PAPER_LSP_PCK, crop_for_model, default_gradcam_layer, figure_to_array, joint_index,
                            paper_comparison_table, pck_curves_figure, saliency_figure, saliency_map, save_figure,
                            stage_heatmaps_figure)
from keras_pose.viz.heatmaps import model_outputs, predict_crop
from keras_pose.viz.saliency import joint_score_target

HEATMAP_PRESETS = ["cpm_tiny", "part_heatmap_tiny", "part_heatmap_vgg_tiny", "softargmax_tiny"]
ALL_PRESETS = [*HEATMAP_PRESETS, "deeppose_tiny"]


@functools.lru_cache(maxsize=None)
def _model(name):
    """One build per preset, with fixed weights (tests must not change them)."""
    keras.utils.set_random_seed(0)
    return build_model(name)


def _image(h=90, w=70, seed=0) -> np.ndarray:
    """A synthetic RGB uint8 picture: a colour gradient and a stick figure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 90.0)], -1).astype(np.uint8)
    img = np.ascontiguousarray(img)
    cx, top = w // 2, h // 6
    pts = {"head": (cx, top), "hip": (cx, h // 2), "lh": (cx - w // 5, h - 5), "rh": (cx + w // 5, h - 5),
           "la": (cx - w // 3, h // 3), "ra": (cx + w // 3, h // 3 + 5)}
    for a, b in (("head", "hip"), ("hip", "lh"), ("hip", "rh"), ("head", "la"), ("head", "ra")):
        cv2.line(img, pts[a], pts[b], (250, 250, 250), 3)
    cv2.circle(img, pts["head"], max(3, w // 10), (240, 200, 160), -1)
    noise = rng.integers(-10, 10, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def _crop(model):
    return crop_for_model(model, _image())


def _best_joint(model, crop) -> int:
    """The joint whose explained score is largest (for heatmap families: a positive heatmap peak).

    Grad-CAM keeps positive evidence only; with random weights a joint whose heatmap is negative everywhere
    legitimately gives an all-zero CAM, so the tests explain the most confident joint.
    """
    name, _, _ = joint_score_target(model, 0)
    out = predict_crop(model, crop)[name]
    if out.ndim == 3:
        peaks = out[..., :LSP14.num_joints].max(axis=(0, 1))
        assert peaks.max() > 0, "test precondition: some heatmap must have a positive peak"
        return int(np.argmax(peaks))
    return 6


def _expected_axes(name: str) -> int:
    cfg = get_config(name)
    if cfg.family == "cpm":
        return cfg.num_stages
    if cfg.family == "part_heatmap":
        return 2 * 4
    if cfg.family == "softargmax":
        return 1 + cfg.num_context
    raise AssertionError(name)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def test_crop_for_model_shape_and_box():
    model = _model("cpm_tiny")
    crop = crop_for_model(model, _image())
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    boxed = crop_for_model(64, _image(), box=(10, 10, 50, 80))
    assert boxed.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="box"):
        crop_for_model(64, _image(), box=(10, 10, 5, 80))


def test_joint_lookup_errors_clearly():
    assert joint_index(LSP14, "r_wrist") == 6
    assert joint_index(LSP14, 13) == 13
    with pytest.raises(KeyError, match="unknown joint 'elbow'.*valid joints: r_ankle"):
        joint_index(LSP14, "elbow")
    with pytest.raises(ValueError, match="out of range"):
        joint_index(LSP14, 14)
    model = _model("cpm_tiny")
    with pytest.raises(KeyError, match="unknown joint 'nose'"):
        stage_heatmaps_figure(model, _crop(model), "nose")
    with pytest.raises(KeyError, match="unknown joint 'nose'"):
        saliency_map(model, _crop(model), "nose")


def test_crop_of_wrong_size_is_rejected():
    with pytest.raises(ValueError, match=r"input size \(64, 64, 3\)"):
        stage_heatmaps_figure(_model("cpm_tiny"), np.zeros((32, 32, 3), np.uint8), "r_wrist")


# ---------------------------------------------------------------------------
# Heatmap figures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", HEATMAP_PRESETS)
def test_stage_heatmaps_figure_axes(name):
    model = _model(name)
    fig = stage_heatmaps_figure(model, _crop(model), "r_wrist")
    assert len(fig.axes) == _expected_axes(name)
    assert all(len(ax.images) == 1 for ax in fig.axes)
    rgb = figure_to_array(fig)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.std() > 0


def test_part_heatmap_figure_chosen_joints():
    model = _model("part_heatmap_tiny")
    fig = stage_heatmaps_figure(model, _crop(model), "head_top", joints=["l_ankle", "head_top"])
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert any("detection: head_top" in t for t in titles) and any("regression: l_ankle" in t for t in titles)


def test_stage_heatmaps_figure_deeppose_raises():
    model = _model("deeppose_tiny")
    with pytest.raises(ValueError, match="DeepPose.*no heatmaps"):
        stage_heatmaps_figure(model, _crop(model), "r_wrist")


# ---------------------------------------------------------------------------
# Saliency and Grad-CAM
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
@pytest.mark.parametrize("name", ALL_PRESETS)
def test_saliency_maps_are_finite_crop_sized_and_not_zero(name, method):
    model = _model(name)
    crop = _crop(model)
    m = saliency_map(model, crop, _best_joint(model, crop), method=method)
    assert m.shape == crop.shape[:2]
    assert np.all(np.isfinite(m))
    assert m.min() >= 0 and m.max() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_default_gradcam_layer_is_a_feature_map_before_the_head(name):
    model = _model(name)
    layer = model.get_layer(default_gradcam_layer(model))
    shape = layer.output.shape
    assert len(shape) == 4 and shape[1] > 1 and shape[2] > 1
    target = model_outputs(model)[joint_score_target(model, 0)[0]]
    if len(target.shape) == 4:
        assert shape[-1] != target.shape[-1]


def test_gradcam_layer_override_and_bad_layer():
    model = _model("cpm_tiny")
    crop = _crop(model)
    j = _best_joint(model, crop)
    m = saliency_map(model, crop, j, method="gradcam", layer="stage2_mconv1_relu")
    assert m.shape == (64, 64) and np.all(np.isfinite(m))
    with pytest.raises(ValueError, match="no_such_layer"):
        saliency_map(model, crop, j, method="gradcam", layer="no_such_layer")
    with pytest.raises(ValueError, match="method must be one of"):
        saliency_map(model, crop, j, method="lime")


@pytest.mark.parametrize("name,method", [("softargmax_tiny", "saliency"), ("cpm_tiny", "gradcam++"),
                                         ("deeppose_tiny", "gradcam")])
def test_saliency_figure_axes(name, method):
    model = _model(name)
    crop = _crop(model)
    fig = saliency_figure(model, crop, _best_joint(model, crop), method=method)
    assert len(fig.axes) == 2
    assert all(len(ax.images) == 1 for ax in fig.axes)


# ---------------------------------------------------------------------------
# PCK curves and the comparison with the papers
# ---------------------------------------------------------------------------


def _fake_results():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 200, (40, 14, 2))
    mask = np.ones((40, 14), bool)
    mask[0, 0] = False
    return {"good": (gt + rng.normal(0, 2, gt.shape), gt, mask, None),
            "bad": (gt + rng.normal(0, 30, gt.shape), gt, mask, np.full(40, 100.0))}


def test_pck_curves_figure():
    fig = pck_curves_figure(_fake_results())
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    curves = {line.get_label().split(" (")[0]: line.get_ydata() for line in ax.get_lines()
              if not line.get_label().startswith("_")}
    assert set(curves) == {"good", "bad"}
    assert np.all(np.diff(curves["good"]) >= 0) and curves["good"][-1] >= curves["bad"][-1]
    assert curves["good"].mean() > curves["bad"].mean()
    with pytest.raises(ValueError, match="non-empty mapping"):
        pck_curves_figure({})
    with pytest.raises(ValueError, match=r"results\['x'\] must be \(pred, gt, mask, normalizer\)"):
        pck_curves_figure({"x": np.zeros((2, 14, 2))})


def test_paper_comparison_table():
    from keras_pose.metrics import table_to_markdown

    df = paper_comparison_table({"ours": np.full(14, 0.8)})
    assert list(df.columns) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total",
                                "Training data", "Source"]
    assert df.index[0] == "ours" and df.loc["ours", "Total"] == pytest.approx(80.0)
    totals = {p.name: p.total for p in PAPER_LSP_PCK}
    for name, total in totals.items():
        assert df.loc[name, "Total"] == pytest.approx(total)
    assert df.loc["Soft-argmax (paper)", "Head"] == pytest.approx(97.5)
    assert np.isnan(df.loc["CPM (paper)", "Head"]) and df.loc["CPM (paper)", "Total"] == pytest.approx(84.32)
    only = paper_comparison_table({}, papers=["part_heatmap"])
    assert len(only) == 2 and set(only["Total"]) == {90.7, 83.5}
    md = table_to_markdown(df)
    assert "| ours |" in md and "Table 7" in md


def test_save_figure_and_array(tmp_path):
    fig = pck_curves_figure(_fake_results())
    path = save_figure(fig, tmp_path / "sub" / "pck.png")
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100
    rgb = figure_to_array(fig)
    path2 = save_figure(rgb, tmp_path / "rgb.png")
    assert cv2.imread(str(path2)).shape == rgb.shape


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


@pytest.fixture()
def tiny_zoo(tmp_path, monkeypatch):
    from keras_pose import zoo

    root = tmp_path / "zoo"
    zoo.save_preset(_model("cpm_tiny"), root / "cpm_viz_test", "cpm_viz_test", "tiny CPM for the viz tests",
                    architecture="cpm_tiny")
    monkeypatch.setenv(zoo.ENV_VAR, str(root))
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), cv2.cvtColor(_image(120, 90), cv2.COLOR_RGB2BGR))
    return image


def test_cli_visualize_skeleton_and_stages(tiny_zoo, tmp_path, capsys):
    from keras_pose.cli import main

    out = tmp_path / "figures" / "skeleton.png"
    assert main(["visualize", "--model", "cpm_viz_test", "--image", str(tiny_zoo), "--kind", "skeleton",
                 "--out", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (120, 90, 3)
    out = tmp_path / "figures" / "stages.png"
    assert main(["visualize", "--model", "cpm_viz_test", "--image", str(tiny_zoo), "--joint", "l_knee",
                 "--box", "10", "10", "80", "110", "--kind", "stages", "--out", str(out)]) == 0
    assert cv2.imread(str(out)) is not None
    assert "wrote" in capsys.readouterr().out


def test_cli_visualize_errors(tiny_zoo, tmp_path, capsys, monkeypatch):
    from keras_pose.cli import main

    out = str(tmp_path / "x.png")
    assert main(["visualize", "--kind", "stages", "--image", str(tiny_zoo), "--out", out]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main(["visualize", "--model", "cpm_viz_test", "--image", str(tiny_zoo), "--joint", "nose",
                 "--kind", "stages", "--out", out]) == 2
    assert "unknown joint 'nose'" in capsys.readouterr().err
    monkeypatch.setenv("KERAS_POSE_ZOO", str(tmp_path / "empty_zoo"))  # --models defaults to every preset: none
    assert main(["visualize", "--kind", "pck", "--out", out]) == 2
    assert "no --models given and no zoo presets" in capsys.readouterr().err


def test_draw_skeleton_leaves_out_low_joints_and_their_limbs():
    from keras_pose.skeletons import LSP14
    from keras_pose.viz.skeleton import draw_skeleton

    image = np.zeros((200, 200, 3), np.uint8)
    kp = np.stack([np.linspace(20, 180, 14), np.linspace(30, 170, 14)], 1)
    scores = np.ones(14)
    scores[0] = 0.1  # r_ankle: neither it nor the r_ankle - r_knee limb is drawn
    hidden = draw_skeleton(image, kp, LSP14, scores, threshold=0.5, show_scores=False)
    x, y = (int(round(v)) for v in kp[0])
    assert hidden[y, x].sum() == 0
    mid = ((kp[0] + kp[1]) / 2).round().astype(int)
    assert hidden[mid[1], mid[0]].sum() == 0
    grey = draw_skeleton(image, kp, LSP14, scores, threshold=0.5, show_scores=False, low="grey")
    assert tuple(grey[y, x]) == (128, 128, 128)
    shown = draw_skeleton(image, kp, LSP14, scores, threshold=0.0, show_scores=False)
    assert shown[y, x].sum() > 0
    with pytest.raises(ValueError, match="low must be"):
        draw_skeleton(image, kp, LSP14, scores, low="faint")


def test_reliability_figure_from_evaluation_reports(tmp_path, capsys):
    import json

    from keras_pose import cli
    from keras_pose.evaluation import confidence_report
    from keras_pose.metrics import pck_lsp

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (20, 14, 2))
    pred = gt + rng.normal(0, 8, gt.shape)
    result = pck_lsp(pred, gt)
    good = confidence_report(np.where(result.correct, 0.8, 0.3) + rng.uniform(-0.1, 0.1, result.correct.shape),
                             result)
    assert good["auroc"] == pytest.approx(1.0) and len(good["reliability"]["count"]) == 10
    reports = {}
    for name, conf in {"good": good, "constant": confidence_report(np.ones((20, 14)), result)}.items():
        reports[name] = tmp_path / f"{name}.json"
        reports[name].write_text(json.dumps({"confidence": conf}))
    out = tmp_path / "reliability.png"
    code = cli.main(["visualize", "--kind", "reliability", "--models", *map(str, reports.values()), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert cv2.imread(str(out)).shape[0] > 100
    (tmp_path / "old.json").write_text(json.dumps({"pck": 50.0}))
    assert cli.main(["visualize", "--kind", "reliability", "--models", str(tmp_path / "old.json"), "--out",
                     str(out)]) == 2
    assert "run keras-pose evaluate" in capsys.readouterr().err
