"""The zoo registry and loader, model cards, and the CI guard on shipped presets."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from keras_pose import zoo
from keras_pose.models.registry import build_model


@pytest.fixture
def tmp_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    (tmp_path / "zoo").mkdir()
    return tmp_path / "zoo"


def test_save_list_load_roundtrip(tmp_zoo):
    model = build_model("softargmax_tiny")
    zoo.save_preset(model, tmp_zoo / "sa_test", "sa_test", "a tiny test preset", architecture="softargmax_tiny")
    rows = zoo.list()
    assert [r["name"] for r in rows] == ["sa_test"] and rows[0]["family"] == "softargmax"
    assert rows[0]["pck@0.2"] is None
    (tmp_zoo / "sa_test" / "metrics.json").write_text(json.dumps({"pck": 12.5, "pck_flip": 13.0}))
    assert zoo.list()[0]["pck@0.2"] == 12.5
    loaded = zoo.load("sa_test")
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x)["keypoints"], model(x)["keypoints"], atol=1e-5)
    # a preset folder path works too, from any working directory
    np.testing.assert_allclose(zoo.load(tmp_zoo / "sa_test")(x)["scores"], model(x)["scores"], atol=1e-6)


def test_unknown_name_lists_valid_ones(tmp_zoo):
    zoo.save_preset(build_model("cpm_tiny"), tmp_zoo / "a_model", "a_model", "x")
    with pytest.raises(KeyError, match="unknown zoo model 'cpm_lsq'.*valid names: a_model"):
        zoo.load("cpm_lsq")


def test_corrupt_weights_give_clear_error(tmp_zoo):
    zoo.save_preset(build_model("cpm_tiny"), tmp_zoo / "m", "m", "x")
    path = tmp_zoo / "m" / "model.weights.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt or was changed"):
        zoo.load("m")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="weights file .* is missing"):
        zoo.load("m")


def test_run_directory_loads(tmp_path):
    model = build_model("deeppose_tiny")
    (tmp_path / "model.json").write_text(json.dumps(model.pose_config.to_dict()))
    model.save_weights(tmp_path / "best.weights.h5")
    x = np.zeros((1, 64, 64, 3), np.float32)
    np.testing.assert_allclose(zoo.load(tmp_path)(x)["keypoints"], model(x)["keypoints"], atol=1e-5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a zoo preset"):
        zoo.load(tmp_path / "empty")


def test_preset_from_a_run_whose_resumable_state_was_removed(tmp_zoo, tmp_path):
    """A finished run kept as its record (no checkpoint/): zoo-add reads the steps, hours and best validation
    from log.csv / val.csv, as checkpoint/state.json would give them."""
    model = build_model("cpm_tiny")
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text(json.dumps(model.pose_config.to_dict()))
    (run / "train.json").write_text(json.dumps({"model": "cpm_tiny", "batch_size": 8}))
    model.save_weights(run / "best.weights.h5")
    (run / "log.csv").write_text("step,epoch,phase,train_hours\n10,1,all,0.1\n20,2,all,0.25\n")
    (run / "val.csv").write_text("step,epoch,train_hours,val_pck\n5,0.5,0.05,30.0\n10,1.0,0.1,41.5\n"
                                 "15,1.5,0.2,41.5\n20,2.0,0.25,40.0\n")
    preset = zoo.add_from_run(run, "cpm_x", "tiny CPM")
    summary = json.loads((tmp_zoo / "cpm_x" / "training.json").read_text())
    assert summary == {"steps": 20, "train_hours": 0.25, "best_pck": 41.5, "best_step": 10, "epochs": 2.0,
                       "batch_size": 8, "run": str(run)}  # the first of equal bests, as the trainer keeps it
    assert preset.architecture == "cpm_tiny"
    assert (tmp_zoo / "cpm_x" / "learning_curve.csv").read_text() == (run / "val.csv").read_text()
    (run / "log.csv").unlink()
    with pytest.raises(FileNotFoundError, match="neither checkpoint/state.json nor a record of its steps"):
        zoo.add_from_run(run, "cpm_y", "no record")


def test_preset_from_a_continued_run_joins_its_legs(tmp_zoo, tmp_path):
    """zoo-add --after: training.json adds up the legs and lists them; the learning curve runs through both."""
    model = build_model("cpm_tiny")
    legs = []
    for i, (log, val) in enumerate([("10,1,all,0.1\n20,2,all,0.25\n", "10,1.0,0.1,30.0\n20,2.0,0.25,41.5\n"),
                                    ("5,0.5,all,0.05\n10,1.0,all,0.125\n", "5,0.5,0.05,44.0\n10,1.0,0.125,43.0\n")]):
        run = tmp_path / f"leg{i}"
        run.mkdir()
        (run / "model.json").write_text(json.dumps(model.pose_config.to_dict()))
        (run / "train.json").write_text(json.dumps({"model": "cpm_tiny", "batch_size": 8}))
        (run / "log.csv").write_text("step,epoch,phase,train_hours\n" + log)
        (run / "val.csv").write_text("step,epoch,train_hours,val_pck\n" + val)
        legs.append(run)
    model.save_weights(legs[1] / "best.weights.h5")
    zoo.add_from_run(legs[1], "cpm_x", "tiny CPM", after=[legs[0]])
    summary = json.loads((tmp_zoo / "cpm_x" / "training.json").read_text())
    assert {k: summary[k] for k in ("steps", "train_hours", "best_pck", "best_step", "epochs", "run")} == {
        "steps": 30, "train_hours": 0.375, "best_pck": 44.0, "best_step": 25, "epochs": 3.0, "run": str(legs[1])}
    assert [leg["run"] for leg in summary["legs"]] == [str(legs[0]), str(legs[1])]
    assert summary["legs"][0]["best_pck"] == 41.5 and summary["legs"][1]["steps"] == 10
    rows = (tmp_zoo / "cpm_x" / "learning_curve.csv").read_text().splitlines()
    assert rows == ["step,epoch,train_hours,val_pck", "10,1.0,0.1,30.0", "20,2.0,0.25,41.5",
                    "25,2.5,0.3,44.0", "30,3.0,0.375,43.0"]


def test_model_card_is_generated_from_files(tmp_zoo):
    from keras_pose.zoo.cards import render_card, zoo_table

    p = zoo.save_preset(build_model("cpm_tiny"), tmp_zoo / "cpm_x", "cpm_x", "tiny CPM", architecture="cpm_tiny")
    groups = {g: 50.0 for g in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total")}
    (tmp_zoo / "cpm_x" / "metrics.json").write_text(json.dumps(
        {"pck": 50.0, "pck_flip": 51.0, "groups": groups, "groups_flip": groups, "count": 1000,
         "command": "keras-pose evaluate --model cpm_x", "latency_batch1": {"median_ms": 3.0, "p90_ms": 4.0}}))
    (tmp_zoo / "cpm_x" / "learning_curve.csv").write_text("step,epoch,train_hours,val_pck\n100,1,0.1,10\n200,2,0.2,20\n")
    card = render_card(zoo.get_preset("cpm_x"))
    assert "| single crop | 50.0 |" in card and "keras-pose evaluate --model cpm_x" in card
    assert f"`{p.sha256[:16]}" in card and "learning_curve.png" in card
    table = zoo_table()
    assert "`cpm_x`" in table and "| 50.0 | 51.0 |" in table and "| 80 (-30.0) |" in table
    # a portrait report adds its row and what the preset draws in and outside the picture
    (tmp_zoo / "cpm_x" / "metrics_portrait_search_refine1.json").write_text(json.dumps(
        {"pck": 40.0, "groups": groups, "count": 950, "command": "keras-pose evaluate --model cpm_x --crop portrait",
         "confidence": {"auroc": 0.7, "score_min": 0.0, "score_max": 1.0},
         "presence": {"auroc": 0.9, "threshold": 0.5, "joints_in": 5000, "joints_out": 8000, "shown_in": 0.66,
                      "shown_out": 0.11}}))
    card = render_card(zoo.get_preset("cpm_x"))
    assert "| portrait, zoom-outs searched, re-cropped once (`--crop portrait --search --refine 1`) | single crop |" in card
    assert "| 40.0 | 0.900 | 0.5 | 66% of 5000 | 11% of 8000 |" in card


def test_zoo_folder_is_the_package_by_default(monkeypatch):
    """Issue #17: the presets are package data, found from the package itself (editable or wheel install)."""
    monkeypatch.delenv(zoo.ENV_VAR, raising=False)
    assert zoo.zoo_dir() == Path(zoo.__file__).resolve().parent / "presets" == zoo.PACKAGE_ZOO
    # exactly the shipped presets: the from-scratch CPM, part heatmap, soft-argmax and DeepPose networks as
    # *_scratch_lsp, their families on the ImageNet trunk as cpm_lsp, deeppose_lsp, part_heatmap_lsp and
    # softargmax_lsp
    assert set(zoo.presets()) == {"cpm_lsp", "cpm_scratch_lsp", "deeppose_lsp", "deeppose_scratch_lsp",
                                  "part_heatmap_lsp", "part_heatmap_scratch_lsp", "softargmax_lsp",
                                  "softargmax_scratch_lsp"}
    for name in ("cpm_lsp", "deeppose_lsp", "part_heatmap_lsp", "softargmax_lsp"):
        assert zoo.get_preset(name).model["backbone"] == "efficientnet_lite0", name
    assert (zoo.weights_file(zoo.get_preset("cpm_scratch_lsp"))
            == zoo.PACKAGE_ZOO / "cpm_scratch_lsp" / "model.weights.h5")


def test_zoo_card_outside_a_source_checkout_needs_table(tmp_zoo, tmp_path, monkeypatch, capsys):
    from keras_pose import cli
    from keras_pose.zoo import cards

    zoo.save_preset(build_model("cpm_tiny"), tmp_zoo / "cpm_x", "cpm_x", "tiny CPM", architecture="cpm_tiny")
    monkeypatch.setattr(cards, "PROJECT_ROOT", None)  # as in a wheel install: no docs/zoo.md to default to
    assert cli.main(["zoo-card", "cpm_x"]) == 2
    assert "--table" in capsys.readouterr().err
    assert not (tmp_zoo / "cpm_x" / "README.md").exists()  # nothing written before the error
    table = tmp_path / "tables" / "zoo.md"
    table.parent.mkdir()
    assert cli.main(["zoo-card", "cpm_x", "--table", str(table)]) == 0
    card = (tmp_zoo / "cpm_x" / "README.md").read_text()
    assert "keras-pose train --config $KERAS_POSE_ZOO/cpm_x/train.json" in card
    link = re.search(r"\[card\]\(([^)]+)\)", table.read_text()).group(1)  # relative to the table's folder
    assert not Path(link).is_absolute() and (table.parent / link).resolve() == (tmp_zoo / "cpm_x" / "README.md")


SHIPPED = sorted(zoo.presets())


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name", SHIPPED or [pytest.param("none", marks=pytest.mark.skip(reason="no zoo presets"))])
def test_shipped_preset_matches_its_model_card(name, lsp_test):
    """CI guard: PCK@0.2 on the first 100 LSP test images is within 3 points of the committed figure."""
    from keras_pose.evaluation import evaluate_model

    preset = zoo.get_preset(name)
    first100 = preset.folder / "metrics_lsp_test_100.json"
    assert first100.is_file(), f"{name}: run `keras-pose evaluate --model {name} --limit 100` and commit the result"
    expected = json.loads(first100.read_text())["pck"]
    got = evaluate_model(zoo.load(name, cascade=True), lsp_test, limit=100)["pck"]  # a cascade is scored whole
    assert abs(got - expected) <= 3.0, (name, got, expected)
    full = preset.metrics
    assert full and full["count"] == 1000, f"{name}: model card metrics must come from the full LSP test split"


def test_floors_are_the_families_and_the_flagships():
    """Issue #16's floors: 80 for heatmap / soft-argmax families, 70 for DeepPose, 85 for the flagship."""
    from keras_pose.zoo.cards import FLAGSHIP, FLAGSHIP_FLOOR, preset_floor

    floors = {p.name: preset_floor(p) for p in map(zoo.get_preset, zoo.presets())}
    assert floors[FLAGSHIP] == FLAGSHIP_FLOOR == 85.0
    assert floors["softargmax_scratch_lsp"] == 80.0  # the from-scratch soft-argmax preset is not the flagship
    assert floors["cpm_scratch_lsp"] == 80.0  # the from-scratch CPM has the CPM family's floor
    assert floors["deeppose_scratch_lsp"] == floors["deeppose_lsp"] == 70.0  # the DeepPose family's floor
    for name, floor in floors.items():
        family = zoo.get_preset(name).family
        if name != FLAGSHIP:
            assert floor == (70.0 if family == "deeppose" else 80.0), (name, floor)


def test_extrapolate_to_floor():
    """The log-linear fit recovers a curve's gain per doubling and solves for the floor."""
    from keras_pose.zoo.cards import extrapolate_to_floor

    # val PCK = 40 + 10 log2(h); the first half of the run (before 1 h) is off the line and ignored.
    rows = [{"train_hours": h, "val_pck": 40 + 10 * np.log2(h) if h >= 1 else 0.0} for h in (0.25, 0.5, 1, 1.25, 1.5, 2)]
    ex = extrapolate_to_floor(rows, 60.0)
    assert ex["per_doubling"] == pytest.approx(10.0) and ex["target"] == 60.0
    assert ex["hours"] == pytest.approx(4.0)  # 40 + 10 log2(4) = 60
    # a test score 2 points under the best validation score moves the target on the validation curve up by 2
    shifted = extrapolate_to_floor(rows, 60.0, test_pck=48.0)
    assert shifted["target"] == pytest.approx(62.0) and shifted["hours"] == pytest.approx(2 ** 2.2)
    flat = [{"train_hours": h, "val_pck": 30.0 - h} for h in (1, 2, 3, 4)]
    assert extrapolate_to_floor(flat, 75.0)["hours"] is None
    assert extrapolate_to_floor(rows[:2], 60.0) is None
