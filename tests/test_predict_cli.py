"""``keras-pose predict``: outputs per image, clear per-file errors, the default photo, unknown models."""

import json

import cv2
import numpy as np
import pytest

from keras_pose import cli, zoo
from keras_pose.models.registry import build_model
from keras_pose.zoo.cards import FLAGSHIP

PRESET = "tiny_lsp"


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    """A zoo folder with one tiny (untrained) preset."""
    root = tmp_path_factory.mktemp("zoo")
    zoo.save_preset(build_model("cpm_tiny"), root / PRESET, PRESET, "tiny untrained CPM (tests)")
    return root


@pytest.fixture
def tiny_zoo(zoo_root, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(zoo_root))
    return zoo_root


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    good = [folder / "person.jpg", folder / "other.png"]
    cv2.imwrite(str(good[0]), rng.integers(0, 255, (90, 70, 3), dtype=np.uint8))
    cv2.imwrite(str(good[1]), rng.integers(0, 255, (50, 120), dtype=np.uint8))  # grey, landscape
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    text = folder / "notes.txt"
    text.write_text("not an image")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    return {"good": good, "bad": [corrupt, text, empty, folder / "missing.jpg"]}


def _run(args, capsys):
    code = cli.main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_good_and_bad_inputs(tiny_zoo, inputs, tmp_path, capsys):
    out_dir = tmp_path / "out"
    args = [inputs["good"][0], *inputs["bad"], inputs["good"][1], "--model", PRESET, "--out", out_dir]
    code, out, err = _run(args, capsys)
    assert code == 1
    for bad in inputs["bad"]:
        assert str(bad) in err, err
        assert not (out_dir / f"{bad.stem}.json").exists()
    assert "4 of 6 inputs failed" in err
    for good in inputs["good"]:
        png, js = out_dir / f"{good.stem}.png", out_dir / f"{good.stem}.json"
        assert png.is_file() and js.is_file()
        record = json.loads(js.read_text())
        assert record["model"] == PRESET and record["image"] == str(good) and record["skeleton"] == "lsp14"
        assert len(record["keypoints"]) == 14 and {"joint", "x", "y", "score"} <= set(record["keypoints"][0])
        h, w = cv2.imread(str(good), cv2.IMREAD_UNCHANGED).shape[:2]
        assert record["image_size"] == [h, w]
        assert cv2.imread(str(png)).shape == (h, w, 3)
        assert str(png) in out


def test_all_good_exits_zero_with_options(tiny_zoo, inputs, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, _, err = _run([inputs["good"][0], "--model", PRESET, "--out", out_dir, "--box", 10, 20, 50, 80,
                         "--flip", "--scales", 0.9, 1.1], capsys)
    assert code == 0, err
    record = json.loads((out_dir / "person.json").read_text())
    # crop box: centre of the person box, side = 1.25 x its longer side
    assert record["box"] == pytest.approx([30 - 37.5, 50 - 37.5, 30 + 37.5, 50 + 37.5])
    assert record["flip"] is True and record["scales"] == [0.9, 1.1]


def test_same_file_name_twice_is_not_overwritten(tiny_zoo, inputs, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "person.jpg"
    twin.write_bytes(inputs["good"][0].read_bytes())
    code, _, _ = _run([inputs["good"][0], twin, "--model", PRESET, "--out", tmp_path / "out"], capsys)
    assert code == 0
    assert (tmp_path / "out" / "person.json").is_file() and (tmp_path / "out" / "person_2.json").is_file()


def test_default_photo_is_used_without_images(tiny_zoo, tmp_path, capsys):
    code, out, err = _run(["--model", PRESET, "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "grace_hopper.jpg" in out and "sample photo" in out
    record = json.loads((tmp_path / "out" / "grace_hopper.json").read_text())
    assert record["image"].endswith("grace_hopper.jpg") and len(record["keypoints"]) == 14
    assert (tmp_path / "out" / "grace_hopper.png").is_file()


def test_unknown_model_lists_valid_names(tiny_zoo, inputs, tmp_path, capsys):
    code, _, err = _run([inputs["good"][0], "--model", "no_such_model", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert "no_such_model" in err and "valid names" in err and PRESET in err
    assert not (tmp_path / "out").exists()


def test_default_model_is_the_flagship(tiny_zoo, tmp_path, capsys):
    code, _, err = _run(["--out", tmp_path / "out"], capsys)  # the tmp zoo has no softargmax_lsp
    assert code == 2 and f"'{FLAGSHIP}'" in err and PRESET in err


def test_bad_box_is_an_argument_error(tiny_zoo, inputs, tmp_path, capsys):
    code, _, err = _run([inputs["good"][0], "--model", PRESET, "--box", 50, 20, 10, 80, "--out", tmp_path], capsys)
    assert code == 2 and "--box" in err


def test_predict_with_an_exported_tflite_model(inputs, tmp_path, capsys):
    from keras_pose.export import export_tflite

    path = export_tflite(build_model("deeppose_tiny"), tmp_path / "dp" / "model_float32.tflite")
    code, _, err = _run([inputs["good"][0], "--model", path, "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "person.json").read_text())
    assert "tflite float32" in record["model"] and len(record["keypoints"]) == 14


def test_threshold_hides_joints_in_the_drawing_not_in_the_json(tiny_zoo, inputs, tmp_path, capsys):
    good = inputs["good"][0]
    runs = {}
    for t in ("-1000", "2"):  # every score of an untrained CPM is below 2: nothing drawn; above -1000: all
        out_dir = tmp_path / f"t{t}"
        code, out, err = _run([good, "--model", PRESET, "--out", out_dir, "--threshold", t, "--refine", "1",
                               "--refine-threshold", t], capsys)
        assert code == 0, err
        runs[t] = (json.loads((out_dir / "person.json").read_text()), cv2.imread(str(out_dir / "person.png")))
    assert len(runs["2"][0]["keypoints"]) == 14 and not any(j["confident"] for j in runs["2"][0]["keypoints"])
    assert runs["2"][0]["threshold"] == 2.0 and runs["2"][0]["refinements"] == 1  # on the best-scoring half
    original = cv2.imread(str(good))
    assert np.array_equal(runs["2"][1], cv2.rectangle(original.copy(), *_box_corners(runs["2"][0]), (255, 255, 255), 1))
    assert all(j["confident"] for j in runs["-1000"][0]["keypoints"]) and runs["-1000"][0]["refinements"] == 1
    code, _, err = _run([good, "--model", PRESET, "--out", tmp_path / "bad", "--refine", "-1"], capsys)
    assert code == 2 and "--refine must be >= 0" in err


def _box_corners(record):
    x1, y1, x2, y2 = (int(round(v)) for v in record["box"])
    return (x1, y1), (x2, y2)


def test_metrics_file_names():
    assert cli.metrics_stem("lsp_test", None) == "metrics"
    assert cli.metrics_stem("lsp_test", 100) == "metrics_lsp_test_100"
    assert cli.metrics_stem("lsp_test", None, "image") == "metrics_image"
    assert cli.metrics_stem("lsp_test", None, "image", 2) == "metrics_image_refine2"
    assert cli.metrics_stem("lsp_train", None) == "metrics_lsp_train"


@pytest.mark.data
def test_evaluate_whole_image_crop_writes_its_own_metrics(tiny_zoo, data_root, tmp_path, capsys):
    out = tmp_path / "metrics"
    code = cli.main(["evaluate", "--model", PRESET, "--data", str(data_root), "--limit", "3", "--no-flip",
                     "--crop", "image", "--refine", "1", "--out", str(out)])
    text, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads((out / "metrics_lsp_test_3_image_refine1.json").read_text())
    assert report["crop"] == "image" and report["refine"] == 1 and report["count"] == 3
    assert "auroc" in report["confidence"] and "--crop image" in report["command"]
    assert "the whole image as the crop, then 1 re-crop(s)" in text


@pytest.mark.slow
def test_readme_demo_on_the_flagship_draws_the_upper_body_only(tmp_path, capsys, monkeypatch):
    """The README demo (grace_hopper.jpg, a head-and-shoulders portrait): the head, neck and shoulders are
    confident and drawn; the hips, knees and ankles, which are not in the photo, are not. The flagship finds
    her in a zoomed-out crop (its holdout reports turn the search on, docs/getting_started.md)."""
    monkeypatch.delenv(zoo.ENV_VAR, raising=False)
    assert zoo.get_preset(FLAGSHIP).model.get("backbone", "paper") != "paper"  # the flagship is on a pretrained trunk
    code = cli.main(["predict", "--model", FLAGSHIP, "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    joints = {j["joint"]: j for j in json.loads((tmp_path / "grace_hopper.json").read_text())["keypoints"]}
    assert len(joints) == 14
    shown = {name for name, j in joints.items() if j["confident"]}
    assert {"head_top", "neck", "r_shoulder", "l_shoulder"} <= shown, joints
    assert not shown & {"r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"}, joints


def test_a_preset_re_crops_by_default_only_where_its_holdout_reports_say_it_helps(tiny_zoo):
    from keras_pose.inference import DEFAULT_REFINE, REFINE_REPORTS, load_predictor, model_refine

    plain, refined = (tiny_zoo / PRESET / name for name in REFINE_REPORTS)
    assert model_refine(PRESET) == 0  # no evidence
    try:
        plain.write_text(json.dumps({"pck": 40.0}))
        refined.write_text(json.dumps({"pck": 45.0}))
        assert model_refine(PRESET) == DEFAULT_REFINE and load_predictor(PRESET).refine == DEFAULT_REFINE
        refined.write_text(json.dumps({"pck": 25.0}))  # the re-crop hurts (part_heatmap_scratch_lsp on the holdout)
        assert model_refine(PRESET) == 0
    finally:
        plain.unlink(missing_ok=True)
        refined.unlink(missing_ok=True)


def test_a_preset_searches_zoom_outs_by_default_only_where_its_holdout_reports_say_it_helps(tiny_zoo, inputs, tmp_path,
                                                                                           capsys):
    from keras_pose.inference import SEARCH_REPORTS, SEARCH_ZOOMS, load_predictor, model_search

    folder = tiny_zoo / PRESET
    names = [n.format(refine="") for pair in SEARCH_REPORTS for n in pair]  # the tiny preset does not re-crop
    assert model_search(PRESET) == ()  # no evidence
    try:
        for name, pck in zip(names, [60.0, 20.0, 59.0, 40.0]):  # whole image -1, portrait +20
            (folder / name).write_text(json.dumps({"pck": pck}))
        assert model_search(PRESET) == SEARCH_ZOOMS and load_predictor(PRESET).search == SEARCH_ZOOMS
        code, out, err = _run([inputs["good"][0], "--model", PRESET, "--out", tmp_path / "o"], capsys)
        assert code == 0, err
        assert json.loads((tmp_path / "o" / "person.json").read_text())["search"] == list(SEARCH_ZOOMS)
        code, out, err = _run([inputs["good"][0], "--model", PRESET, "--out", tmp_path / "p", "--no-search"], capsys)
        assert code == 0, err
        record = json.loads((tmp_path / "p" / "person.json").read_text())
        assert record["search"] == [] and record["box"] == [-10.5, -0.5, 79.5, 89.5]  # the whole image (70 x 90)
        (folder / names[2]).write_text(json.dumps({"pck": 58.5}))  # whole image -1.5: too dear
        assert model_search(PRESET) == ()
        (folder / names[2]).write_text(json.dumps({"pck": 61.0}))
        (folder / names[3]).write_text(json.dumps({"pck": 20.0}))  # the portrait does not gain
        assert model_search(PRESET) == ()
        (folder / names[2]).unlink()
        assert model_search(PRESET) == ()  # a report missing: no evidence
    finally:
        for name in names:
            (folder / name).unlink(missing_ok=True)


def test_a_preset_brings_its_own_score_threshold(tiny_zoo, inputs, tmp_path, capsys):
    """The threshold chosen on the holdout (metrics_lsp_val.json) is the preset's default for predict."""
    from keras_pose.inference import DEFAULT_SCORE_THRESHOLD, load_predictor, model_threshold

    report = tiny_zoo / PRESET / "metrics_lsp_val.json"
    assert model_threshold(PRESET) == DEFAULT_SCORE_THRESHOLD
    try:
        report.write_text(json.dumps({"confidence": {"auroc": 0.8, "threshold": -1000.0}}))
        assert model_threshold(PRESET) == -1000.0 and load_predictor(PRESET).threshold == -1000.0
        code, out, err = _run([inputs["good"][0], "--model", PRESET, "--out", tmp_path / "o", "--refine", "0"], capsys)
        assert code == 0, err
        record = json.loads((tmp_path / "o" / "person.json").read_text())
        assert record["threshold"] == -1000.0 and all(j["confident"] for j in record["keypoints"])
        assert "14 of 14 joints score >= -1000" in out
    finally:
        report.unlink()
