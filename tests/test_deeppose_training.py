"""DeepPose refinement stages: displacement statistics, in-step samples, Trainer runs, cascade presets."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_training import _config, _stick_figures

from keras_pose import zoo
from keras_pose.data.transforms import affine_matrix, transform_points
from keras_pose.evaluation import evaluate_model
from keras_pose.models.deeppose import DeepPoseCascade
from keras_pose.models.registry import build_model, get_config
from keras_pose.skeletons import LSP14
from keras_pose.training import TrainConfig, Trainer
from keras_pose.training.deeppose import (covariance_factor, displacement_moments, displacement_statistics,
                                          own_joint_l2, refinement_objective, simulate_refinement_batch)
from keras_pose.zoo.cascades import cascade_predictor, load_cascade, load_stage_models, save_cascade_preset

K = 14
BASE_POSE = np.array([[40, 85], [42, 68], [44, 52], [54, 52], [56, 68], [58, 85], [30, 50], [34, 38],
                      [40, 28], [58, 28], [64, 38], [68, 50], [49, 22], [49, 10]], np.float32)


def _diam(joints):
    a, b = LSP14.torso_indices
    return np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)


def _known_gaussian(rng):
    mean = rng.uniform(-0.2, 0.2, (K, 2))
    a = rng.uniform(-0.15, 0.15, (K, 2, 2))
    return mean, a @ np.swapaxes(a, -1, -2) + 0.01 * np.eye(2)


def _save_run(model, folder, refine=None):
    """A minimal training-run folder (what Trainer.run writes): model.json, weights, train.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(model.pose_config.to_dict()))
    model.save_weights(folder / "best.weights.h5")
    _config("deeppose_tiny", refine=refine).save(folder / "train.json")
    return folder


def _tiny(seed):
    keras.utils.set_random_seed(seed)
    return build_model(get_config("deeppose_tiny").replace(dropout=0.0))


# ---------------------------------------------------------------- statistics


def test_displacement_moments_recover_a_known_gaussian():
    rng = np.random.default_rng(0)
    mean, cov = _known_gaussian(rng)
    n = 6000
    joints = BASE_POSE * rng.uniform(0.5, 3.0, (n, 1, 1)) + rng.normal(0, 2, (n, K, 2))
    z = rng.normal(size=(n, K, 2))
    delta = (mean + np.einsum("kij,nkj->nki", covariance_factor(cov), z)) * _diam(joints)[:, None, None]
    annotated = rng.uniform(size=(n, K)) > 0.1
    pred = np.where(annotated[..., None], joints + delta, 1e6)  # unannotated joints must not count
    stats = displacement_moments(pred, joints, annotated, LSP14)
    np.testing.assert_allclose(stats["mean"], mean, atol=0.012)
    np.testing.assert_allclose(stats["cov"], cov, atol=0.004, rtol=0.1)
    a, b = LSP14.torso_indices
    np.testing.assert_array_equal(stats["count"], (annotated & annotated[:, [a]] & annotated[:, [b]]).sum(0))


def test_displacement_statistics_of_a_fake_predictor(tmp_path):
    """A stage 1 that always answers the same input-pixel pose: its source-pixel errors are known exactly."""
    ds = _stick_figures(tmp_path, n=6)
    rng = np.random.default_rng(1)
    ds = dataclasses.replace(ds, records=[dataclasses.replace(r, center=r.center + rng.uniform(-5, 5, 2),
                                                              scale=float(rng.uniform(0.35, 0.5)))
                                          for r in ds.records])
    size, padding = 64, 1.25
    coords = rng.uniform(-0.3, 0.3, (K, 2)).astype(np.float32)
    images = keras.Input((size, size, 3), name="images")
    x = keras.layers.Dense(2 * K, kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant(coords.reshape(-1)))(
        keras.layers.GlobalAveragePooling2D()(images))
    fake = keras.Model(images, {"coords": keras.layers.Reshape((K, 2))(x)})

    stats = displacement_statistics(fake, ds, size, padding, batch_size=4)

    a = ds.arrays()
    m = affine_matrix(a["center"], 200.0 * a["scale"] * padding, size).numpy()
    answer = np.broadcast_to((size - 1) / 2 + coords * size, (len(ds), K, 2))
    source = transform_points(answer, np.linalg.inv(m)).numpy()
    d = (source - a["joints"]) / _diam(a["joints"])[:, None, None]
    np.testing.assert_allclose(stats["mean"], d.mean(0), atol=2e-3)
    np.testing.assert_allclose(stats["cov"], [np.cov(d[:, i], rowvar=False) for i in range(K)], atol=2e-3)
    assert (stats["count"] == len(ds)).all()


# ---------------------------------------------------------------- in-step samples


def test_refinement_crops_put_the_true_joint_at_the_target():
    """Paint joint b of image b; crop (b, b) must show the dot where its target says, within 1 px."""
    size, crop = 96, (48, 48)
    rng = np.random.default_rng(2)
    joints = BASE_POSE[None] + rng.uniform(-3, 3, (K, K, 2)).astype(np.float32)  # one image per joint
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.zeros((K, size, size, 3), np.float32)
    for b in range(K):
        x, y = joints[b, b]
        images[b] = 255.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.2 ** 2))[..., None]
    annotated = np.ones((K, K), bool)
    annotated[3, 5] = False
    mean, cov = _known_gaussian(rng)
    batch = {"images": images, "joints": joints, "annotated": annotated}

    out = tf.function(lambda b, s: simulate_refinement_batch(b, s, mean * 0.3, covariance_factor(cov) * 0.5, crop,
                                                             sigma=2.0))(batch, tf.constant([3, 4], tf.int64))
    crops, targets = out["images"].numpy(), out["targets"]["coords"].numpy()
    assert crops.shape == (K * K, 48, 48, 3) and targets.shape == (K * K, 2)
    mask = out["targets"]["mask"].numpy().reshape(K, K)
    assert mask[3, 5] == 0 and mask.sum() == K * K - 1
    assert not np.allclose(out["prev"].numpy(), joints)  # displaced
    checked = 0
    for b in range(K):
        i = b * K + b
        t = targets[i]
        if np.abs(t).max() > 0.4:  # the dot would be cut by the crop border
            continue
        w = crops[i, ..., 0]
        w = np.where(w > 0.2 * w.max(), w, 0.0)
        centroid = np.array([(w * np.arange(48)[None]).sum(), (w * np.arange(48)[:, None]).sum()]) / w.sum()
        expected = (t + 0.5) * 48 - 0.5  # box-normalised -> crop pixels
        assert np.abs(centroid - expected).max() < 1.0, (b, centroid, expected)
        checked += 1
    assert checked >= 10
    # stateless: the same seed gives the same samples, another seed others
    again = simulate_refinement_batch(batch, tf.constant([3, 4], tf.int64), mean * 0.3, covariance_factor(cov) * 0.5,
                                      crop)
    other = simulate_refinement_batch(batch, tf.constant([3, 5], tf.int64), mean * 0.3, covariance_factor(cov) * 0.5,
                                      crop)
    np.testing.assert_allclose(again["prev"], out["prev"], atol=1e-5)
    assert not np.allclose(other["prev"], out["prev"])


def test_refinement_loss_uses_only_the_crops_own_joint():
    model = _tiny(0)
    obj = refinement_objective(model)
    assert set(obj.terms) == {"coords"}
    rng = np.random.default_rng(3)
    target = rng.uniform(-0.5, 0.5, (2 * K, 2)).astype(np.float32)
    pred = rng.uniform(-9, 9, (2 * K, K, 2)).astype(np.float32)  # other pairs: anything
    pred[np.arange(2 * K), np.tile(np.arange(K), 2)] = target
    mask = np.ones(2 * K, np.float32)
    assert float(own_joint_l2(target, pred, mask)) == pytest.approx(0.0, abs=1e-7)
    pred[K + 4, 4] += [0.3, 0.4]  # crop 4 of image 2 is off by 0.5
    assert float(own_joint_l2(target, pred, mask)) == pytest.approx(0.25 / (2 * K), rel=1e-5)
    mask[K + 4] = 0.0
    assert float(own_joint_l2(target, pred, mask)) == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- Trainer


def _refine_config(stage1, **kw):
    base = dict(model=get_config("deeppose_tiny").replace(dropout=0.0).to_dict(), batch_size=4,
                optimizer={"name": "adam", "learning_rate": 1e-3}, refine={"stages": [str(stage1)], "sigma": 2.0})
    base.update(kw)
    return _config(**base)


def test_refine_config_is_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown refine keys \\['stage'\\]"):
        TrainConfig(refine={"stage": ["a"]})
    with pytest.raises(ValueError, match="non-empty list"):
        TrainConfig(refine={"stages": "runs/a"})
    cfg = _refine_config(tmp_path / "s1")
    cfg.save(tmp_path / "t.json")
    assert TrainConfig.load(tmp_path / "t.json") == cfg


def test_refinement_stage_steps_in_the_trainer(tmp_path):
    ds = _stick_figures(tmp_path, n=4)
    stage1 = _save_run(_tiny(0), tmp_path / "stage1")
    trainer = Trainer(_refine_config(stage1), tmp_path / "run", train_set=ds, val_set=ds[:2])
    stats = json.loads((tmp_path / "run" / "displacements.json").read_text())
    assert np.asarray(stats["cov"]).shape == (K, 2, 2) and stats["stages"] == [str(stage1)]
    assert trainer.input_size == 64 and trainer.refinement.crop_size == (64, 64)
    before = [w.numpy().copy() for w in trainer.model.trainable_weights]
    state = trainer.run(verbose=0)
    assert state["step"] == 1 and 0.0 <= state["best_pck"] <= 100.0  # validated: PCK of the 2-stage cascade
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, trainer.model.trainable_weights))


def test_cascade_preset_from_a_refinement_run_keeps_every_stage(tmp_path, monkeypatch):
    from keras_pose import zoo
    from keras_pose.zoo.cards import render_card

    ds = _stick_figures(tmp_path, n=4)
    stage1 = _save_run(_tiny(0), tmp_path / "stage1")
    Trainer(_refine_config(stage1), tmp_path / "run", train_set=ds, val_set=ds[:2]).run(verbose=0)
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    folder = tmp_path / "zoo" / "dp_x"
    folder.mkdir(parents=True)
    (folder / "train.json").write_text((stage1 / "train.json").read_text())  # the preset's stage-1 config
    (folder / "refine.json").write_text((tmp_path / "run" / "train.json").read_text())
    preset = zoo.add_from_run(tmp_path / "run", "dp_x", "tiny cascade")
    assert (folder / "train.json").read_text() == (stage1 / "train.json").read_text()  # not overwritten
    assert len(preset.cascade["stages"]) == 2 and zoo.is_cascade("dp_x")
    summary = json.loads((folder / "training.json").read_text())
    assert summary["steps"] == 1 and [s["run"] for s in summary["stages"]] == [str(tmp_path / "run")]
    card = render_card(zoo.get_preset("dp_x"))
    assert "- stage 1: `keras-pose train --config $KERAS_POSE_ZOO/dp_x/train.json" in card
    assert ("- stage 2: `keras-pose train --config $KERAS_POSE_ZOO/dp_x/refine.json --data ../shared/data "
            "--out runs/dp_x_stage2`") in card


def test_refinement_stage_under_mirrored_strategy_with_in_step_augmentation(tmp_path):
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in conftest before TF initialises)")
    ds = _stick_figures(tmp_path, n=4)
    stage1 = _save_run(_tiny(0), tmp_path / "stage1")
    cfg = _refine_config(stage1, pipeline={"augment_in": "step"})
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds, strategy=tf.distribute.MirroredStrategy(
        cpus[:2], cross_device_ops=tf.distribute.ReductionToOneDevice()))  # no collective keys shared across tests
    state = trainer.run(verbose=0)
    assert state["step"] == 1
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert np.isfinite(float(rows[1].split(",")[rows[0].split(",").index("loss_total")]))


@pytest.mark.slow
def test_refinement_stage_resumes_exactly(tmp_path):
    ds = _stick_figures(tmp_path, n=8)
    stage1 = _save_run(_tiny(0), tmp_path / "stage1")
    cfg = _refine_config(stage1, epochs=1, pipeline={})  # with augmentation: resume must replay it and the deltas
    straight = Trainer(cfg, tmp_path / "a", train_set=ds)
    straight.run(verbose=0)
    first = Trainer(cfg, tmp_path / "b", train_set=ds)
    first.run(verbose=0, max_steps=1)
    cached = (tmp_path / "b" / "displacements.json").stat().st_mtime_ns
    resumed = Trainer(cfg, tmp_path / "b", train_set=ds)
    assert (tmp_path / "b" / "displacements.json").stat().st_mtime_ns == cached  # reused, not recomputed
    assert resumed.restore_checkpoint() and resumed.state["step"] == 1
    resumed.run(resume=True, verbose=0)
    assert resumed.state["step"] == straight.state["step"] == 2
    for v, w in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)
    cascade = load_cascade(tmp_path / "b")  # the run folder records the stages it refines
    assert len(cascade.stage_models) == 2 and cascade.sigma == 2.0


def _biased_stage1(shift_px):
    """A deeppose_tiny psi_1 that always answers the stick figures' mean pose moved by ``shift_px`` (64 px crops)."""
    model = _tiny(0)
    center, side, size = np.array([49.0, 48.0]), 200 * 0.42 * 1.25, 64  # _stick_figures' eval crop geometry
    pose = (BASE_POSE - center) * size / side + (size - 1) / 2 + np.asarray(shift_px, np.float32)
    layer = model.get_layer("fc_coords")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), ((pose + 0.5) / size - 0.5).reshape(-1)])
    return model


@pytest.mark.slow
def test_refinement_stage_trains_and_validates_the_cascade(tmp_path):
    ds = _stick_figures(tmp_path, n=8)
    stage1 = _save_run(_biased_stage1((4.0, -3.0)), tmp_path / "stage1")
    # no BatchNorm in psi_2: 80 steps are too few for BN moving statistics to settle
    cfg = _refine_config(stage1, epochs=40, val_every_steps=40,
                         model=get_config("deeppose_tiny").replace(dropout=0.0, batch_norm=False).to_dict())
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds, val_set=ds)
    before = evaluate_model(trainer.refinement.predictor(trainer.model), ds, input_size=64)["pck"]
    trainer.run(verbose=0)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    col = rows[0].split(",").index("loss_total")
    first, last = float(rows[1].split(",")[col]), float(rows[-1].split(",")[col])
    assert last < 0.5 * first, (first, last)
    val = (tmp_path / "run" / "val.csv").read_text().splitlines()
    assert len(val) == 3  # header + steps 40 and 80: PCK of the two-stage cascade
    after = evaluate_model(cascade_predictor(load_cascade(tmp_path / "run"), 64), ds, input_size=64)["pck"]
    assert before < 20.0 and after >= before + 30.0, (before, after)  # stage 2 corrects stage 1's bias


# ---------------------------------------------------------------- cascade presets


@pytest.fixture
def tmp_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    (tmp_path / "zoo").mkdir()
    return tmp_path / "zoo"


def test_cascade_preset_roundtrip_and_checksums(tmp_zoo, tmp_path):
    psi1, psi2, psi3 = _tiny(0), _tiny(1), _tiny(2)
    s1 = _save_run(psi1, tmp_path / "s1")
    s2 = _save_run(psi2, tmp_path / "s2", refine={"stages": [str(s1)], "sigma": 1.5})
    s3 = _save_run(psi3, tmp_path / "s3", refine={"stages": ["s1", "s2"], "sigma": 1.5})  # relative to the runs
    reference = DeepPoseCascade([psi1, psi2, psi3], sigma=1.5)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    expected = reference(x)["keypoints"].numpy()

    from_run = load_cascade(s3)
    assert len(from_run.stage_models) == 3 and from_run.sigma == 1.5
    np.testing.assert_allclose(from_run(x)["keypoints"], expected, atol=1e-3)

    save_cascade_preset(s3, tmp_zoo / "deeppose_test", "deeppose_test", "3-stage test cascade")
    meta = json.loads((tmp_zoo / "deeppose_test" / "preset.json").read_text())
    assert meta["cascade"]["sigma"] == 1.5 and len(meta["cascade"]["stages"]) == 3
    assert (tmp_zoo / "deeppose_test" / "stage3_train.json").is_file()
    plain = zoo.load("deeppose_test")  # the zoo still gives a plain Keras model: stage 1
    assert isinstance(plain, keras.Model)
    np.testing.assert_allclose(plain(x)["keypoints"], psi1(x)["keypoints"], atol=1e-4)
    cascade = load_cascade("deeppose_test")
    predict = cascade_predictor(cascade, 64)
    np.testing.assert_allclose(predict(x)[0], expected, atol=1e-3)
    # an explicit list of stage folders gives the same preset; a cascade preset expands to its stages
    save_cascade_preset([s1, s2, s3], tmp_path / "listed", "listed", "x")
    np.testing.assert_allclose(load_cascade(tmp_path / "listed")(x)["keypoints"], expected, atol=1e-3)
    save_cascade_preset(["deeppose_test"], tmp_path / "again", "again", "x")
    assert len(load_cascade(tmp_path / "again").stage_models) == 3

    path = tmp_zoo / "deeppose_test" / "stage2.weights.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cascade 'deeppose_test': stage 2 weights file .* corrupt or was changed"):
        load_cascade("deeppose_test")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="stage 2 weights file .* is missing"):
        load_cascade("deeppose_test")


def test_cascade_predictor_evaluates_with_evaluate_model(tmp_path):
    ds = _stick_figures(tmp_path, n=4)
    cascade = DeepPoseCascade([_tiny(0), _tiny(1)], sigma=2.0)
    res = evaluate_model(cascade_predictor(cascade, 64), ds, input_size=64, batch_size=2)
    assert res["keypoints"].shape == (4, K, 2) and 0.0 <= res["pck"] <= 100.0


def test_unknown_stage_is_a_clear_error(tmp_zoo, tmp_path):
    with pytest.raises(KeyError, match="unknown zoo model 'no_such_stage'"):
        load_cascade("no_such_stage")
    with pytest.raises(FileNotFoundError, match="stage 'runs/missing': no such run or preset folder"):
        load_stage_models(["runs/missing"])


def test_cascade_preset_through_zoo_and_predictor(tmp_path, monkeypatch):
    """A cascade preset is listed with its stage count and predicted with every stage."""
    from keras_pose import zoo
    from keras_pose.inference import load_predictor
    from keras_pose.models.registry import build_model
    from keras_pose.zoo.cascades import save_cascade_preset

    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    stages = []
    for s in range(2):
        run = tmp_path / f"s{s}"
        run.mkdir()
        m = build_model("deeppose_tiny")
        (run / "model.json").write_text(__import__("json").dumps(m.pose_config.to_dict()))
        m.save_weights(run / "best.weights.h5")
        stages.append(run)
    save_cascade_preset(stages, tmp_path / "zoo" / "dp_test", "dp_test", "two-stage test cascade")
    assert zoo.is_cascade("dp_test") and [r["stages"] for r in zoo.list()] == [2]
    pose = load_predictor("dp_test")
    res = pose(np.zeros((80, 60, 3), np.uint8))
    assert res.keypoints.shape == (14, 2) and np.all(np.isfinite(res.keypoints))


def test_crop_by_gather_matches_crop_and_resize():
    from keras_pose.models.deeppose import crop_boxes

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 40, 50, 3)).astype(np.float32)
    centers = rng.uniform(-5, 55, (2, 5, 2)).astype(np.float32)  # some boxes leave the image
    sizes = rng.uniform(3, 60, (2, 5, 2)).astype(np.float32)
    for crop in [(16, 16), (1, 7), (9, 1)]:
        ref = crop_boxes(images, centers, sizes, crop, extrapolation_value=7.0).numpy()
        got = crop_boxes(images, centers, sizes, crop, extrapolation_value=7.0, method="gather").numpy()
        np.testing.assert_allclose(got, ref, atol=2e-3)
    with pytest.raises(ValueError, match="method must be"):
        crop_boxes(images, centers, sizes, (4, 4), method="nearest")


def test_whole_cascade_is_one_keras_model_that_exports_with_builtin_ops(tmp_zoo, tmp_path):
    from keras_pose import export

    s1 = _save_run(_tiny(0), tmp_path / "s1")
    s2 = _save_run(_tiny(1), tmp_path / "s2", refine={"stages": [str(s1)], "sigma": 2.0})
    save_cascade_preset(s2, tmp_zoo / "dp", "dp", "2-stage test cascade")
    whole = zoo.load("dp", cascade=True)
    assert whole.output_names == ["keypoints", "scores"] and whole.input_shape == (None, 64, 64, 3)
    assert zoo.load("dp").count_params() * 2 == whole.count_params()  # psi_1 alone, or every stage
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    ref = load_cascade("dp")(x)["keypoints"].numpy()
    # the crops differ by gather vs crop_and_resize (within 2e-3 grey levels); untrained stages answer
    # keypoints of 1e4 px, so the tolerance is relative too (2 of 56 were 0.13 px apart on an AVX2 CPU)
    np.testing.assert_allclose(whole(x)["keypoints"], ref, rtol=1e-4, atol=0.1)
    tflite = export.convert_tflite(whole)
    assert export.non_builtin_ops(export.tflite_ops(tflite)) == []
    kp, _ = export.TFLiteRunner.from_bytes(tflite)(x.astype(np.uint8))
    np.testing.assert_allclose(kp, whole(x)["keypoints"], rtol=1e-3, atol=0.5)  # untrained: keypoints of 1e4 px
    assert zoo.load(s1, cascade=True).name == zoo.load(s1).name  # not a cascade: unchanged
