"""The image-level inference API and evaluation helpers."""

import cv2
import numpy as np
import pytest

from keras_pose.evaluation import evaluate_model, flip_average
from keras_pose.inference import DEFAULT_REFINE, PosePredictor, keras_predictor
from keras_pose.skeletons import skeleton_for
from keras_pose.models.registry import build_model
from keras_pose.skeletons import LSP14


def _synthetic_dataset(tmp_path, n):
    """test_data's synthetic LSP-like dataset (images on disk, annotations)."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_data import _synthetic_dataset as make

    return make(tmp_path, n=n)


def _fake_predict(points):
    """A predictor that always answers ``points`` (input-crop pixels) with score 1."""

    def predict(images):
        b = len(images)
        return np.repeat(points[None], b, 0).astype(np.float32), np.ones((b, len(points)), np.float32)

    return predict


def test_keypoints_map_back_to_image_pixels():
    # the crop centre maps back to the box centre; the crop corner maps to the box corner
    pts = np.full((14, 2), 31.5, np.float32)
    pts[0] = [-0.5, -0.5]
    pose = PosePredictor(_fake_predict(pts), 64, LSP14, padding=1.0)
    res = pose(np.zeros((100, 200, 3), np.uint8), box=(50, 20, 130, 80))
    np.testing.assert_allclose(res.keypoints[1], [90.0, 50.0], atol=1e-3)
    np.testing.assert_allclose(res.keypoints[0], [50.0, 10.0], atol=1e-3)  # side 80 around (90, 50)
    assert res.to_dict()["keypoints"][0]["joint"] == "r_ankle"
    whole = pose(np.zeros((100, 200, 3), np.uint8), refine=0)  # no box: the whole image, centred
    np.testing.assert_allclose(whole.keypoints[1], [99.5, 49.5], atol=1e-3)


def test_flip_test_is_exact_for_a_symmetric_answer():
    pts = np.random.default_rng(0).uniform(10, 50, (14, 2)).astype(np.float32)
    images = np.zeros((2, 64, 64, 3), np.float32)

    def mirror_consistent(imgs):  # answers as a perfect model would on a mirrored image
        return _fake_predict(pts)(imgs)

    kp, _ = flip_average(mirror_consistent, images, LSP14.flip_permutation)
    expected = pts.copy()
    mirrored = pts[list(LSP14.flip_permutation)].copy()
    mirrored[:, 0] = 63 - mirrored[:, 0]
    np.testing.assert_allclose(kp[0], (expected + mirrored) / 2, atol=1e-5)


@pytest.mark.parametrize("kind", ["path", "gray", "rgba", "bgr", "float"])
def test_accepts_paths_and_every_array_layout(kind, tmp_path):
    pose = keras_predictor(build_model("cpm_tiny"))
    rgb = np.random.default_rng(1).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    if kind == "path":
        p = tmp_path / "img.png"
        cv2.imwrite(str(p), rgb[..., ::-1])
        image, kw = str(p), {}
    elif kind == "gray":
        image, kw = rgb[..., 0], {}
    elif kind == "rgba":
        image, kw = np.dstack([rgb, np.full((90, 70), 255, np.uint8)]), {}
    elif kind == "bgr":
        image, kw = rgb[..., ::-1], {"color": "bgr"}
    else:
        image, kw = rgb.astype(np.float32), {}
    res = pose(image, **kw)
    assert res.keypoints.shape == (14, 2) and np.all(np.isfinite(res.keypoints))
    if kind in ("path", "bgr", "float", "rgba"):
        np.testing.assert_allclose(res.keypoints, pose(rgb).keypoints, atol=1e-3)


def test_bad_inputs_have_clear_errors(tmp_path):
    pose = keras_predictor(build_model("cpm_tiny"))
    with pytest.raises(ValueError, match="box must be"):
        pose(np.zeros((10, 10, 3), np.uint8), box=(5, 5, 2, 9))
    with pytest.raises(ValueError, match="shape"):
        pose(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        pose(str(tmp_path / "nope.jpg"))
    with pytest.raises(ValueError, match="3 boxes for 1 images"):
        pose.predict_many([np.zeros((8, 8, 3), np.uint8)], boxes=[None] * 3)
    with pytest.raises(ValueError, match="no skeleton with 5 joints"):
        skeleton_for(5)


def test_multiscale_and_evaluate_model_with_a_predictor(tmp_path):
    pts = np.full((14, 2), 31.5, np.float32)
    pose = PosePredictor(_fake_predict(pts), 64, LSP14)
    res = pose(np.zeros((64, 64, 3), np.uint8), scales=(0.8, 1.0, 1.25))
    np.testing.assert_allclose(res.keypoints[0], [31.5, 31.5], atol=1e-3)  # the centre is scale-invariant
    ds = _synthetic_dataset(tmp_path, n=3)
    out = evaluate_model(pose.predict, ds, input_size=64)
    assert out["keypoints"].shape == (3, 14, 2) and 0.0 <= out["pck"] <= 100.0


def test_evaluation_report_scores_both_crops_in_one_pass(tmp_path):
    """evaluation_report predicts each crop and its mirror once and scores single crop and flip test from
    them; the figures equal two separate evaluate_model runs."""
    from keras_pose.evaluation import evaluation_report

    ds = _synthetic_dataset(tmp_path, n=5)
    rng = np.random.default_rng(3)
    calls = {"images": 0}

    def predict(images):  # depends on the pixels, so the mirror gives a different answer
        calls["images"] += len(images)
        mean = images.mean(axis=(1, 2, 3))[:, None, None]
        kp = rng_pts[None] + mean / 255.0 * 8.0
        return kp.astype(np.float32), np.ones((len(images), 14), np.float32)

    rng_pts = rng.uniform(10, 50, (14, 2)).astype(np.float32)
    report = evaluation_report(predict, ds, input_size=64, latency=False)
    assert calls["images"] == 2 * len(ds)  # each crop once, its mirror once
    plain = evaluate_model(predict, ds, input_size=64)
    flipped = evaluate_model(predict, ds, input_size=64, flip=True)
    assert report["count"] == 5
    assert report["pck"] == pytest.approx(plain["pck"]) and report["pck_flip"] == pytest.approx(flipped["pck"])
    with pytest.raises(ValueError, match="flip must be"):
        from keras_pose.evaluation import predict_dataset

        predict_dataset(predict, ds, 64, flip="sometimes")


@pytest.mark.parametrize("name", ["cpm_tiny", "part_heatmap_tiny"])
def test_heatmap_flip_test_averages_the_maps_before_decoding(name):
    """The map-space flip test equals decoding (maps(image) + mirror(maps(mirror image)), joints swapped)/2."""
    import keras
    import tensorflow as tf

    from keras_pose.evaluation import heatmap_flip_predictor

    model = build_model(name)
    s = model.input_shape[1]
    images = np.random.default_rng(4).uniform(0, 255, (2, s, s, 3)).astype(np.float32)
    flip_predict = heatmap_flip_predictor(model, LSP14.flip_permutation)
    kp, sc = flip_predict(images)
    decoder = model.get_layer("decode")
    maps = keras.Model(model.inputs[0], decoder.input)
    plain = maps(images).numpy()
    mirrored = maps(images[:, :, ::-1].copy()).numpy()[:, :, ::-1]
    perm = list(LSP14.flip_permutation) + list(range(14, plain.shape[-1]))
    expected_kp, expected_sc = decoder(tf.constant((plain + mirrored[..., perm]) / 2))
    np.testing.assert_allclose(sc, expected_sc.numpy(), atol=1e-4)
    # argmax ties aside (random weights), the keypoints are the decoded average's
    assert np.mean(np.abs(kp - expected_kp.numpy()) < 1e-2) > 0.9
    predictor = keras_predictor(model)
    assert predictor.flip_predict is not None
    assert heatmap_flip_predictor(build_model("softargmax_tiny"), LSP14.flip_permutation) is None
    assert keras_predictor(build_model("deeppose_tiny")).flip_predict is None


def test_evaluate_model_uses_the_heatmap_flip_test_of_a_keras_model(tmp_path):
    from keras_pose.evaluation import evaluation_report, heatmap_flip_predictor, predict_dataset

    ds = _synthetic_dataset(tmp_path, n=3)
    model = build_model("cpm_tiny")
    s = model.input_shape[1]
    via_model = evaluate_model(model, ds, flip=True)
    direct = predict_dataset(heatmap_flip_predictor(model, LSP14.flip_permutation), ds, s)
    np.testing.assert_allclose(via_model["keypoints"], direct["keypoints"], atol=1e-3)
    report = evaluation_report(model, ds, latency=False)
    assert report["flip_test"] == "heatmaps" and report["pck_flip"] == pytest.approx(via_model["pck"])


def test_latency_names_the_machine_it_was_measured_on():
    from keras_pose.evaluation import machine_description, measure_latency, report_markdown

    lat = measure_latency(_fake_predict(np.zeros((14, 2), np.float32)), 32, runs=3, warmup=1)
    assert lat["machine"] == machine_description() and "CPU cores" in lat["machine"]
    report = {"alpha": 0.2, "dataset": "d", "count": 1, "groups": {g: 0.0 for g in list(LSP14.joint_groups) + ["Total"]},
              "latency_batch1": lat}
    assert f"CPU latency, batch 1 ({lat['machine']})" in report_markdown(report)


def _answer(points, scores):
    """A predictor answering ``points`` (input-crop pixels) with ``scores``, whatever the crop."""

    def predict(images):
        b = len(images)
        return (np.repeat(points[None], b, 0).astype(np.float32),
                np.repeat(np.asarray(scores, np.float32)[None], b, 0))

    return predict


def test_refine_recrops_around_the_confident_keypoints():
    pts = np.full((14, 2), 32.0, np.float32)
    pts[0], pts[1] = (16.0, 8.0), (48.0, 40.0)  # with 5 more at the centre: a 32 x 32 input-pixel box
    pts[2] = (0.0, 63.0)  # low score: left out of the box
    scores = np.full(14, 0.1, np.float32)
    scores[[0, 1, 3, 4, 5, 6, 7]] = 0.9  # 7 of 14 confident: half the joints, no top-up
    pose = PosePredictor(_answer(pts, scores), 64, LSP14, padding=1.5, refine=DEFAULT_REFINE)
    image = np.zeros((200, 400, 3), np.uint8)
    first = pose(image, refine=0)
    assert PosePredictor(_answer(pts, scores), 64, LSP14).refine == 0  # a bare predictor does not re-crop
    assert pose(image).refinements == DEFAULT_REFINE and pose(image, box=(10, 10, 50, 50)).refinements == 0
    assert first.refinements == 0 and first.box == pytest.approx((-0.5, -100.5, 399.5, 299.5), abs=1e-3)
    once = pose(image, refine=1)
    # first pass: crop side 400 around (199.5, 99.5), 6.25 image px per input px -> confident box
    lo, hi = first.keypoints[0], first.keypoints[1]
    side = 1.5 * max(hi - lo)
    centre = (lo + hi) / 2
    expected = (centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2)
    assert once.refinements == 1 and once.box == pytest.approx(expected, abs=1e-3)
    assert pose(image, refine=3).refinements == 3
    # fewer joints reach the re-crop threshold: the best-scoring ones top the box up to half the joints
    topped = pose(image, refine=1, refine_threshold=0.95)
    assert topped.refinements == 1 and topped.box == pytest.approx(expected, abs=1e-3)
    few = scores.copy()
    few[[3, 4, 5, 6, 7]] = 0.3  # only 2 confident: the top-up takes 5 more, among them the far joint 2
    few[2] = 0.35
    wide = PosePredictor(_answer(pts, few), 64, LSP14, padding=1.5)(image, refine=1)
    assert wide.box[2] - wide.box[0] > once.box[2] - once.box[0]
    # two confident joints on one row: a square crop around them, as for a person box
    flat = pts.copy()
    flat[1] = (48.0, 8.0)
    row = PosePredictor(_answer(flat, scores), 64, LSP14, padding=1.5)(image, refine=1)
    assert row.refinements == 1 and row.box[2] - row.box[0] == pytest.approx(row.box[3] - row.box[1])
    # keypoints that span no area give no box: the whole-image crop stays
    stays = PosePredictor(_answer(np.full((14, 2), 32.0), scores), 64, LSP14)(image, refine=2)
    assert stays.refinements == 0 and stays.box == pytest.approx(first.box)
    with pytest.raises(ValueError, match="refine must be None or a non-negative integer"):
        pose(image, refine=-1)


def test_result_json_keeps_every_joint_and_marks_the_confident_ones():
    scores = np.linspace(0.0, 1.0, 14).astype(np.float32)
    res = PosePredictor(_answer(np.full((14, 2), 10.0), scores), 64, LSP14)(np.zeros((64, 64, 3), np.uint8))
    d = res.to_dict(threshold=0.5)
    assert len(d["keypoints"]) == 14 and d["threshold"] == 0.5
    assert [j["confident"] for j in d["keypoints"]] == [bool(s >= 0.5) for s in scores]
    assert res.confident(0.5).sum() == 7


def test_predict_records_person_crop_matches_the_batched_evaluation(tmp_path):
    """The predictor's own crops (predict_records) and eval_dataset's crops are the same crops."""
    from keras_pose.inference import person_box, predict_records, predictor_report

    ds = _synthetic_dataset(tmp_path, n=3)
    model = build_model("cpm_tiny")
    pose = keras_predictor(model, padding=1.25)
    by_predictor = predict_records(pose, ds, crop="person")
    batched = evaluate_model(model, ds, padding=1.25)
    np.testing.assert_allclose(by_predictor["keypoints"], batched["keypoints"], atol=0.05)
    whole = predict_records(pose, ds, crop="image", flip=True)
    assert whole["keypoints"].shape == whole["keypoints_flip"].shape == (3, 14, 2)
    rec = ds[0]
    assert person_box(rec)[2] - person_box(rec)[0] == pytest.approx(200.0 * rec.scale)
    report = predictor_report(pose, ds, crop="image", refine=1, latency=False)
    assert report["crop"] == "image" and report["refine"] == 1 and 0.0 <= report["pck"] <= 100.0
    assert "pck_flip" in report and "auroc" in report["confidence"]
    with pytest.raises(ValueError, match="crop must be one of"):
        predict_records(pose, ds, crop="box")


def test_report_scores_the_scores(tmp_path):
    """The confidence part of a report: an oracle score (1 where the joint is right) has AUROC 1."""
    from keras_pose.evaluation import report_from_predictions, report_markdown

    ds = _synthetic_dataset(tmp_path, n=4)
    joints = ds.arrays()["joints"].astype(np.float32)
    pred = joints.copy()
    pred[:, :7] += 1000.0  # half the joints far off
    oracle = np.ones(pred.shape[:2], np.float32)
    oracle[:, :7] = 0.0
    report = report_from_predictions({"keypoints": pred, "scores": oracle}, ds, crop="image")
    assert report["pck"] == pytest.approx(50.0)
    assert report["confidence"]["auroc"] == pytest.approx(1.0) and report["confidence"]["ece"] == pytest.approx(0.0)
    constant = report_from_predictions({"keypoints": pred, "scores": np.ones_like(oracle)}, ds)
    assert constant["confidence"]["auroc"] == pytest.approx(0.5)
    assert constant["confidence"]["ece"] == pytest.approx(0.5)  # scores 1.00, half right
    md = report_markdown(report)
    assert "the whole image as the crop" in md and "ROC AUC 1.000" in md


def test_flip_agreement_scores_a_joint_by_how_little_it_moves_in_the_mirror():
    from keras_pose.evaluation import FLIP_AGREEMENT_SIGMA, flip_agreement

    perm = list(LSP14.flip_permutation)
    pts = np.full((14, 2), 31.5, np.float32)  # at the centre of a 64 px input: the mirror agrees
    pts[0] = (31.5 - 6.4, 20.0)  # the right ankle 6.4 px (0.1 of the side) off centre; its mirror partner is not
    answer = _answer(pts, np.ones(14))
    kp, scores = flip_agreement(answer, perm)(np.zeros((2, 64, 64, 3), np.float32))
    np.testing.assert_allclose(kp, np.repeat(pts[None], 2, 0))  # the keypoints are the plain prediction's
    left_ankle = LSP14.index("l_ankle")
    # the mirror puts the right ankle where the left one was predicted (the centre): 6.4 px and 11.5 px apart
    d = np.hypot(6.4, 11.5) / 64
    expected = np.ones(14)
    expected[[0, left_ankle]] = np.exp(-0.5 * (d / FLIP_AGREEMENT_SIGMA) ** 2)
    np.testing.assert_allclose(scores, np.repeat(expected[None], 2, 0), rtol=1e-5)


def test_a_deeppose_model_scores_its_joints_by_flip_agreement():
    """DeepPose regresses coordinates only (its ``scores`` output is all ones); the predictor gives it a
    score that can be low."""
    from keras_pose.inference import has_unit_scores

    deeppose, cpm = build_model("deeppose_tiny"), build_model("cpm_tiny")
    assert has_unit_scores(deeppose) and not has_unit_scores(cpm)
    image = np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).astype(np.float32)
    scores = keras_predictor(deeppose)(image).scores
    assert np.all((scores >= 0) & (scores <= 1)) and scores.min() < 0.99  # not the constant ones
