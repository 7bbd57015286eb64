"""Photos cut by their frame: the portrait protocol (evaluation) and the predictor's zoom-out search."""

import json

import cv2
import numpy as np
import pytest

from keras_pose.data.records import PoseDataset, PoseRecord
from keras_pose.evaluation import in_window, portrait_report, portrait_window, presence_report, report_markdown
from keras_pose.inference import SEARCH_ZOOMS, PosePredictor, predict_records, predictor_report
from keras_pose.skeletons import LSP14

# an upright LSP person (x, y): head top, neck, shoulders at y 35, hips at y 85 (torso 50), arms hanging down
UPRIGHT = {"head_top": (50, 10), "neck": (50, 30), "r_shoulder": (40, 35), "l_shoulder": (60, 35),
           "r_elbow": (35, 60), "l_elbow": (65, 60), "r_wrist": (33, 80), "l_wrist": (67, 80),
           "r_hip": (42, 85), "l_hip": (58, 85), "r_knee": (42, 120), "l_knee": (58, 120),
           "r_ankle": (42, 150), "l_ankle": (58, 150)}


def _record(path="img.png", joints=UPRIGHT, annotated=None):
    xy = np.array([joints[n] for n in LSP14.joint_names], np.float32)
    ann = np.ones(14, bool) if annotated is None else annotated
    return PoseRecord(str(path), xy, ann.copy(), ann, xy.mean(0), 0.8)


def test_the_portrait_window_is_the_head_and_shoulders():
    # the picture ends 0.4 torso below the shoulders (y 55) and leaves 0.3 torso (15 px) above and beside
    assert portrait_window(_record(), (160, 100), LSP14) == (25, 0, 75, 55)
    assert portrait_window(_record(), (160, 70), LSP14, cut=0.5, margin=0.1) == (35, 5, 65, 60)
    inside = in_window(_record().joints, (25, 0, 75, 55))
    names = {n for n, i in zip(LSP14.joint_names, inside) if i}
    assert names == {"head_top", "neck", "r_shoulder", "l_shoulder"}
    # pixel edges: rows [0:55] end at y 54.5
    assert in_window(np.array([[30.0, 54.4], [30.0, 54.5], [24.5, 10.0], [24.4, 10.0]]), (25, 0, 75, 55)).tolist() == [
        True, False, True, False]


def test_a_person_not_upright_or_not_annotated_is_not_framed():
    upside_down = {n: (x, 160 - y) for n, (x, y) in UPRIGHT.items()}
    assert portrait_window(_record(joints=upside_down), (160, 100), LSP14) is None
    no_hip = np.ones(14, bool)
    no_hip[LSP14.index("l_hip")] = False
    assert portrait_window(_record(annotated=no_hip), (160, 100), LSP14) is None
    no_ankle = np.ones(14, bool)
    no_ankle[LSP14.index("l_ankle")] = False  # not needed to frame the portrait
    assert portrait_window(_record(annotated=no_ankle), (160, 100), LSP14) is not None
    assert portrait_window(_record(), (4, 100), LSP14) is None  # under 8 px tall


def test_presence_counts_joints_in_and_out_of_the_picture():
    inside = np.array([[True, True, False, False]])
    annotated = np.array([[True, True, True, False]])  # the last one is not annotated: counts nowhere
    r = presence_report([[0.9, 0.4, 0.2, 0.99]], inside, annotated, threshold=0.5)
    assert r["joints_in"] == 2 and r["joints_out"] == 1
    assert r["shown_in"] == pytest.approx(0.5) and r["shown_out"] == 0.0 and r["auroc"] == pytest.approx(1.0)
    assert np.isnan(presence_report([[0.9, 0.4, 0.2, 0.99]], annotated, annotated, 0.5)["shown_out"])


def test_the_portrait_report_scores_the_joints_in_the_picture(tmp_path):
    ds = PoseDataset("people", LSP14, [_record(tmp_path / "a.png"), _record(tmp_path / "b.png")])
    window = np.array([25, 0, 75, 55], np.float64)
    inside = in_window(ds[0].joints, window)
    pred = ds[0].joints.copy()
    pred[~inside] += 500.0  # wrong wherever the joint is not in the picture: it does not count
    oracle = inside.astype(np.float32)  # scores 1 in the picture, 0 outside
    nan = np.full((14, 2), np.nan)
    report = portrait_report({"keypoints": np.stack([pred, nan]), "scores": np.stack([oracle, np.full(14, np.nan)]),
                              "windows": np.stack([window, np.full(4, np.nan)])}, ds, threshold=0.5)
    assert report["count"] == 1 and report["count_skipped"] == 1 and report["crop"] == "portrait"
    assert report["pck"] == pytest.approx(100.0) and report["groups"]["Hip"] != report["groups"]["Hip"]  # NaN: none
    p = report["presence"]
    assert (p["joints_in"], p["joints_out"], p["shown_in"], p["shown_out"], p["auroc"]) == (4, 10, 1.0, 0.0, 1.0)
    md = report_markdown(report)
    assert "head and shoulders" in md and "1 persons not upright enough" in md and "100% of those in it" in md
    with pytest.raises(ValueError, match="no person of people is framed as a portrait"):
        portrait_report({"keypoints": np.stack([nan, nan]), "scores": np.full((2, 14), np.nan),
                         "windows": np.full((2, 4), np.nan)}, ds, threshold=0.5)


def _blank_counter(size):
    """A model whose confident joints grow with the blank (zero) part of its crop: a stand-in for one that finds
    a cut-off person only at a smaller scale. Answers the crop centre for every joint."""

    def predict(images):
        blank = np.mean(np.all(images == 0, axis=-1), axis=(1, 2))
        n = np.round(14 * blank).astype(int)
        scores = np.where(np.arange(14)[None] < n[:, None], 0.9, 0.1).astype(np.float32)
        pts = np.full((len(images), 14, 2), (size - 1) / 2.0, np.float32)
        pts[:, 0], pts[:, 1] = (size * 0.25, size * 0.25), (size * 0.75, size * 0.75)
        return pts, scores

    return predict


def test_the_search_keeps_the_zoom_out_with_the_most_confident_joints():
    image = np.full((120, 100, 3), 200, np.uint8)
    pose = PosePredictor(_blank_counter(64), 64, LSP14, padding=1.25, threshold=0.5)
    assert pose.search == () and pose(image).box == pytest.approx((-10.5, -0.5, 109.5, 119.5), abs=1e-3)
    found = pose(image, search=SEARCH_ZOOMS)
    side = max(SEARCH_ZOOMS) * 120  # the most zoomed out leaves the most blank here
    top = -0.5 - 0.1 * side  # padding 1.25: the image's top where a training crop has the person's top
    assert found.box == pytest.approx((49.5 - side / 2, top, 49.5 + side / 2, top + side), abs=1e-3)
    assert found.rank() > pose(image).rank()
    # the re-crop around the confident joints shows less blank, fewer confident joints: the zoom-out stays ...
    kept = pose(image, search=SEARCH_ZOOMS, refine=1)
    assert kept.refinements == 0 and kept.box == pytest.approx(found.box)
    # ... while without the search a re-crop is always taken
    assert pose(image, refine=1).refinements == 1
    # the predictor's own default, and a box, which is never searched
    searching = PosePredictor(_blank_counter(64), 64, LSP14, threshold=0.5, search=(2.0,))
    assert searching(image).box[2] - searching(image).box[0] == pytest.approx(240.0)
    assert searching(image, box=(10, 10, 60, 90)).box == pytest.approx(pose(image, box=(10, 10, 60, 90)).box)
    for bad in [(1.0,), (0.5, 2.0), (float("nan"),), "2"]:
        with pytest.raises(ValueError, match="search"):
            pose(image, search=bad)


def test_rank_counts_confident_joints_then_sums_scores():
    pose = PosePredictor(_blank_counter(64), 64, LSP14, threshold=0.5)
    r = pose(np.full((64, 64, 3), 200, np.uint8))
    assert r.rank() == (0, pytest.approx(1.4)) and r.rank(0.05) == (14, pytest.approx(1.4))
    r.keypoints[0] = np.nan  # a keypoint that is not finite neither counts nor adds
    assert r.rank(0.05) == (13, pytest.approx(1.3))


def test_predict_records_cuts_the_portrait_and_maps_back(tmp_path):
    image = np.full((160, 100, 3), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    ds = PoseDataset("people", LSP14, [_record(tmp_path / "a.png"),
                                       _record(tmp_path / "a.png", {n: (x, 160 - y) for n, (x, y) in UPRIGHT.items()})])
    seen = []

    def predict(images):
        seen.append(images.shape)
        return np.zeros((len(images), 14, 2), np.float32), np.ones((len(images), 14), np.float32)

    pose = PosePredictor(predict, 50, LSP14, padding=1.0)
    pred = predict_records(pose, ds, crop="portrait", flip=True)
    np.testing.assert_array_equal(pred["windows"][0], [25, 0, 75, 55])
    assert np.isnan(pred["windows"][1]).all() and np.isnan(pred["keypoints_flip"][1]).all()
    # the picture (55 rows, 50 columns) is the crop: side 55 around its centre (24.5, 27); input pixel 0 lies half
    # an input pixel (55 / 50 picture pixels) inside the crop's corner; the picture starts at image (25, 0)
    corner = np.array([24.5, 27.0]) - 55 / 2 + 0.5 * 55 / 50
    np.testing.assert_allclose(pred["keypoints"][0], np.broadcast_to(corner + [25, 0], (14, 2)), atol=1e-3)
    report = predictor_report(pose, ds, crop="portrait", flip=False, latency=False, search=(2.0,))
    assert report["search"] == [2.0] and report["count"] == 1 and report["count_skipped"] == 1
    json.dumps(report)  # the report is JSON as written by keras-pose evaluate
