"""Training: objectives, the custom loop (overfit, resume, MirroredStrategy) and the model.fit path."""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pose.data import PipelineConfig, PoseDataset, PoseRecord
from keras_pose.data.pipeline import AugmentConfig
from keras_pose.models import model_config
from keras_pose.models.registry import build_model, get_config
from keras_pose.skeletons import LSP14
from keras_pose.training import LossTerm, Objective, TrainConfig, Trainer, learning_rate_at, make_objective
from keras_pose.training.fit import PoseTrainingModel, fit_dataset, with_num_joints

TINY = ["cpm_tiny", "part_heatmap_tiny", "softargmax_tiny", "deeppose_tiny"]


def _stick_figures(tmp_path, n=8, size=96, seed=0, noise=0.0):
    """Images of coloured stick figures whose joints are the annotations (learnable from pixels), with
    Gaussian pixel noise of std ``noise`` (a flat background has almost no variance)."""
    rng = np.random.default_rng(seed)
    records = []
    colours = np.array(LSP14.joint_colors, np.uint8)
    for i in range(n):
        base = np.array([[40, 85], [42, 68], [44, 52], [54, 52], [56, 68], [58, 85], [30, 50], [34, 38],
                         [40, 28], [58, 28], [64, 38], [68, 50], [49, 22], [49, 10]], np.float32)
        joints = base + rng.normal(0, 3, base.shape).astype(np.float32)
        img = np.full((size, size, 3), 30, np.uint8)
        for a, b in LSP14.limb_indices:
            cv2.line(img, tuple(int(v) for v in joints[a]), tuple(int(v) for v in joints[b]), (200, 200, 200), 2)
        for j, (x, y) in enumerate(joints):
            cv2.circle(img, (int(x), int(y)), 3, tuple(int(c) for c in colours[j] // (1 + j % 3)), -1)
        if noise:
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        path = tmp_path / f"fig{i}.png"
        cv2.imwrite(str(path), img[..., ::-1])
        records.append(PoseRecord(str(path), joints, np.ones(14, bool), np.ones(14, bool),
                                  np.array([49.0, 48.0], np.float32), 0.42, image_id=f"lsp/{i:04d}"))
    return PoseDataset("sticks", LSP14, records)


def _config(model, **kw):
    base = dict(model=model, batch_size=4, epochs=1, val_every=0, log_every=1000, checkpoint_every=1000,
                pipeline={"augment": None}, optimizer={"name": "adam", "learning_rate": 3e-3})
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------- objectives


def test_objective_rejects_losses_for_missing_outputs():
    model = build_model("cpm_tiny")
    obj = make_objective(model)
    assert set(obj.terms) == {"stage_1", "stage_2"}
    with pytest.raises(ValueError, match="no such outputs"):
        Objective("cpm", dict(obj.terms, stage_9=obj.terms["stage_1"]), obj.encoders, model.output_names)
    with pytest.raises(ValueError, match="have no loss"):
        Objective("cpm", {"stage_1": obj.terms["stage_1"]}, obj.encoders, model.output_names)
    with pytest.raises(ValueError, match="matches no supervised output"):
        obj.with_weights({"stage_7": 1.0})
    assert obj.with_weights({"stage_.*": 0.5}).terms["stage_2"].weight == 0.5
    with pytest.raises(ValueError, match="not encoded"):
        Objective("cpm", {n: LossTerm(t.loss, "nope", t.mask) for n, t in obj.terms.items()}, obj.encoders,
                  model.output_names)


@pytest.mark.parametrize("name", TINY)
def test_objective_targets_match_outputs(name):
    model = build_model(name)
    obj = make_objective(model)
    s = model.input_shape[1]
    joints = np.random.default_rng(0).uniform(5, s - 5, (2, 14, 2)).astype(np.float32)
    flags = np.ones((2, 14), bool)
    flags[1, 3] = False
    batch = {"joints": joints, "visible": flags, "annotated": flags, "in_crop": flags}
    targets = obj.encode(batch)
    outputs = model(np.zeros((2, s, s, 3), np.float32))
    for out_name, term in obj.terms.items():
        assert targets[term.target].shape[1:] == outputs[out_name].shape[1:], out_name
    total, per = obj(outputs, targets)
    assert np.isfinite(float(total)) and set(per) == set(obj.terms)



def test_deeppose_coordinate_loss_choice():
    from keras_pose import losses as L

    model = build_model("deeppose_tiny")
    assert make_objective(model).terms["coords"].loss is L.coordinate_l2  # the paper's
    assert make_objective(model, coordinate_loss="elastic_net").terms["coords"].loss is L.elastic_net
    with pytest.raises(ValueError, match="coordinate_loss: one of \\['elastic_net', 'l2'\\], got 'l1'"):
        make_objective(model, coordinate_loss="l1")
    # the same batch: the elastic net averages L1 + L2 over annotated joints, the paper's loss sums L2
    s = model.input_shape[1]
    joints = np.random.default_rng(0).uniform(5, s - 5, (2, 14, 2)).astype(np.float32)
    flags = np.ones((2, 14), bool)
    batch = {"joints": joints, "visible": flags, "annotated": flags, "in_crop": flags}
    outputs = {"coords": np.zeros((2, 14, 2), np.float32)}
    t = make_objective(model).encode(batch)["coords"]
    _, l2 = make_objective(model)(outputs, {"coords": t, "mask_annotated": flags.astype(np.float32)})
    _, en = make_objective(model, coordinate_loss="elastic_net")(outputs, {"coords": t, "mask_annotated": flags.astype(np.float32)})
    d = np.asarray(t)
    np.testing.assert_allclose(float(l2["coords"]), (d ** 2).sum() / 2, rtol=1e-5)
    np.testing.assert_allclose(float(en["coords"]), (np.abs(d).sum(-1) + (d ** 2).sum(-1)).mean(), rtol=1e-5)

def test_learning_rate_schedules():
    assert learning_rate_at({"name": "step", "boundaries": [2, 4], "gamma": 0.1}, 1.0, 3.0, 10) == pytest.approx(0.1)
    assert learning_rate_at({"name": "cosine", "final": 0.0}, 1.0, 5.0, 10) == pytest.approx(0.5)
    assert learning_rate_at({"name": "constant", "warmup_epochs": 2}, 1.0, 1.0, 10) == pytest.approx(0.5)
    assert learning_rate_at({"name": "plateau"}, 1.0, 1.0, 10, plateau_factor=0.4) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate_at({"name": "exotic"}, 1.0, 0.0, 1)


def test_train_config_roundtrip_and_errors(tmp_path):
    cfg = _config("cpm_tiny", phases=[{"name": "a", "epochs": 2}, {"name": "b", "epochs": 3, "train": "reg_"}])
    cfg.save(tmp_path / "t.json")
    again = TrainConfig.load(tmp_path / "t.json")
    assert again == cfg and again.total_epochs == 5 and again.phase_at(3)["name"] == "b"
    (tmp_path / "bad.json").write_text(json.dumps({"modle": "x"}))
    with pytest.raises(ValueError, match="bad.json.*unknown training config keys"):
        TrainConfig.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        TrainConfig.load(tmp_path / "missing.json")


# ---------------------------------------------------------------- the loop


OVERFIT = {  # steps, learning rate
    "cpm_tiny": (150, 3e-3),
    "part_heatmap_tiny": (150, 3e-3),
    "softargmax_tiny": (150, 3e-3),
    "deeppose_tiny": (150, 1e-3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY)
def test_tiny_model_overfits_eight_images(name, tmp_path):
    ds = _stick_figures(tmp_path)
    steps, lr = OVERFIT[name]
    cfg = _config(name, batch_size=8, epochs=steps, optimizer={"name": "adam", "learning_rate": lr})
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds, val_set=None)
    from keras_pose.evaluation import evaluate_model

    def batch_stats_predict(images):
        # The 8 images in one batch with the batch statistics the model trained with: 150 steps are
        # too few for BatchNorm's moving averages (momentum 0.99) to settle, which is not under test.
        out = trainer.model(images, training=True)
        return np.asarray(out["keypoints"], np.float32), np.asarray(out["scores"], np.float32)

    size = trainer.input_size
    before = evaluate_model(batch_stats_predict, ds, input_size=size)["pck"]
    trainer.run(verbose=0)
    after = evaluate_model(batch_stats_predict, ds, input_size=size)["pck"]
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    first, last = (float(r.split(",")[rows[0].split(",").index("loss_total")]) for r in (rows[1], rows[-1]))
    assert last < 0.5 * first, (first, last)
    assert after >= before + 40.0 and after >= 50.0, (before, after)


def test_resume_continues_at_same_step_with_same_optimizer_state(tmp_path, monkeypatch):
    import keras_pose.training.loop as loop

    monkeypatch.setattr(loop, "SHARD_BYTES", 4096)  # the optimizer state in several files, read back in order
    ds = _stick_figures(tmp_path, n=8)
    cfg = _config("cpm_tiny", epochs=3, pipeline={})  # with augmentation: resume must replay it exactly
    straight = Trainer(cfg, tmp_path / "a", train_set=ds)
    straight.run(verbose=0)
    first = Trainer(cfg, tmp_path / "b", train_set=ds)
    first.run(verbose=0, max_steps=3)  # stops mid-epoch 2 (2 steps per epoch)
    assert first.state["step"] == 3
    shards = sorted(p.name for p in (tmp_path / "b" / "checkpoint").glob("optimizer*.npz"))
    assert len(shards) > 2 and shards[0] == "optimizer-00.npz", shards
    resumed = Trainer(cfg, tmp_path / "b", train_set=ds)
    assert resumed.restore_checkpoint() and resumed.state["step"] == 3
    for v, w in zip(resumed.optimizer.variables, first.optimizer.variables):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    resumed.run(resume=True, verbose=0)
    assert resumed.state["step"] == straight.state["step"] == 6
    for v, w in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_optimizer_shards_keep_order_and_size():
    from keras_pose.training.loop import _shards

    arrays = [np.zeros(n, np.float32) for n in (10, 300, 5, 5, 1000, 1)]
    groups = list(_shards(arrays, 1250))  # bytes: 40, 1200, 20, 20, 4000 (over the limit: alone), 4
    assert [[a.size for a in g] for g in groups] == [[10, 300], [5, 5], [1000], [1]]
    assert [a is b for a, b in zip([a for g in groups for a in g], arrays)] == [True] * len(arrays)


def test_init_weights_start_from_a_run(tmp_path):
    """init_weights: a run folder's best weights (or a .weights.h5 file) replace the random initialisation."""
    ds = _stick_figures(tmp_path, n=4)
    source = Trainer(_config("cpm_tiny", val_every=0), tmp_path / "source", train_set=ds)
    source.run(verbose=0)
    source.model.save_weights(tmp_path / "source" / "best.weights.h5")
    for spec in (tmp_path / "source", tmp_path / "source" / "best.weights.h5"):
        trainer = Trainer(_config("cpm_tiny", seed=5, init_weights=str(spec)), tmp_path / "run", train_set=ds)
        for v, w in zip(trainer.model.weights, source.model.weights):
            np.testing.assert_array_equal(v.numpy(), w.numpy())
    with pytest.raises(FileNotFoundError, match="not a weights file, a run folder or a zoo preset"):
        Trainer(_config("cpm_tiny", init_weights=str(tmp_path / "missing")), tmp_path / "run2", train_set=ds)
    with pytest.raises(ValueError, match="do not fit model"):
        Trainer(_config("deeppose_tiny", init_weights=str(tmp_path / "source")), tmp_path / "run3", train_set=ds)


def test_phases_update_only_their_variables(tmp_path):
    ds = _stick_figures(tmp_path, n=4)
    cfg = _config("part_heatmap_tiny", phases=[{"name": "regressor", "epochs": 1, "train": "reg|hg|final",
                                                 "loss_weights": {"detection": 0.0}}])
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds)
    before = {v.path: v.numpy().copy() for v in trainer.model.trainable_variables}
    trainer.run(verbose=0)
    changed = {v.path for v in trainer.model.trainable_variables if not np.array_equal(before[v.path], v.numpy())}
    assert changed and all(not p.startswith("det_") for p in changed), sorted(changed)[:5]


def test_mirrored_strategy_matches_single_device(tmp_path):
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in conftest before TF initialises)")
    ds = _stick_figures(tmp_path, n=8)
    cfg = _config("deeppose_tiny", batch_size=8, epochs=1, optimizer={"name": "sgd", "learning_rate": 0.01})
    model_cfg = get_config("deeppose_tiny").replace(batch_norm=False, dropout=0.0)

    def one_step(strategy, out):
        keras.utils.set_random_seed(1)
        with (strategy or tf.distribute.get_strategy()).scope():
            model = build_model(model_cfg)
        trainer = Trainer(cfg, out, train_set=ds, strategy=strategy, model=model)
        batch = next(iter(trainer._batches(0, 0)))
        step = trainer._train_step({})
        dist = trainer.strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: v[ctx.replica_id_in_sync_group * 8 // ctx.num_replicas_in_sync:
                               (ctx.replica_id_in_sync_group + 1) * 8 // ctx.num_replicas_in_sync]
                         if k != "targets" else {t: x[ctx.replica_id_in_sync_group * 4:
                                                      (ctx.replica_id_in_sync_group + 1) * 4]
                                                 for t, x in v.items()}
                         for k, v in batch.items() if k != "step"}) if strategy else batch
        return float(step(dist)["total"]), [w.numpy() for w in trainer.model.trainable_weights]

    single, w1 = one_step(None, tmp_path / "single")
    # ReductionToOneDevice: several MirroredStrategy objects in one test process would otherwise reuse
    # collective instance keys (a process trains under one strategy in real use).
    strategy = tf.distribute.MirroredStrategy(cpus[:2], cross_device_ops=tf.distribute.ReductionToOneDevice())
    mirrored, w2 = one_step(strategy, tmp_path / "mirrored")
    assert mirrored == pytest.approx(single, rel=1e-4)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- model.fit


def test_model_fit_two_steps_fresh_and_reloaded(tmp_path):
    ds = _stick_figures(tmp_path, n=8)
    model = build_model("deeppose_tiny")  # the family with the smallest graph: tracing is the cost here
    trainable = PoseTrainingModel(model)
    trainable.compile(optimizer=keras.optimizers.Adam(1e-3))
    data, steps = fit_dataset(ds, trainable.objective, 64, batch_size=4)
    assert steps == 2
    before = [w.numpy().copy() for w in model.trainable_weights]
    hist = trainable.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    assert set(hist.history) >= {"loss", "loss_coords"}
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    # a model restored from saved weights (as the zoo does) trains the same way
    model.save_weights(tmp_path / "w.weights.h5")
    again = build_model("deeppose_tiny")
    again.load_weights(tmp_path / "w.weights.h5")
    t2 = PoseTrainingModel(again)
    t2.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert np.isfinite(t2.fit(data, steps_per_epoch=2, epochs=1, verbose=0).history["loss"][-1])


def test_finetune_to_mpii_skeleton_keeps_trunk():
    model = build_model("cpm_tiny")
    new, fresh = with_num_joints(model, 16)
    shapes = {n: o.shape for n, o in zip(new.output_names, new.outputs)}
    assert shapes["stage_1"][-1] == 17 and shapes["keypoints"][1] == 16
    assert fresh and len(fresh) < len([l for l in new.layers if l.weights])
    kept = [l for l in new.layers if l.weights and l.name not in fresh]
    for layer in kept:
        for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


def _hook_step(trainer, monkeypatch, hook):
    """Wrap the trainer's compiled step so that ``hook(n)`` runs before the n-th call (n from 1)."""
    original, calls = trainer._train_step, {"n": 0}

    def hooked(phase):
        step = original(phase)

        def wrapped(batch):
            calls["n"] += 1
            hook(calls["n"])
            return step(batch)

        return wrapped

    monkeypatch.setattr(trainer, "_train_step", hooked)
    return calls


def test_resume_after_a_crash_drops_the_lost_log_rows(tmp_path, monkeypatch):
    ds = _stick_figures(tmp_path, n=8)
    cfg = _config("cpm_tiny", epochs=2, log_every=1, checkpoint_every=2)
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds)

    def crash_at_fourth(n):
        if n == 4:
            raise RuntimeError("machine went away")

    _hook_step(trainer, monkeypatch, crash_at_fourth)
    with pytest.raises(RuntimeError):
        trainer.run(verbose=0)
    steps = lambda: [int(r.split(",")[0]) for r in (tmp_path / "run" / "steps.csv").read_text().splitlines()[1:]]
    assert steps() == [1, 2, 3]  # step 3 was logged, but the last checkpoint is at step 2
    monkeypatch.undo()
    Trainer(cfg, tmp_path / "run", train_set=ds).run(resume=True, verbose=0)
    assert steps() == [1, 2, 3, 4]


def test_requested_stop_ends_the_step_then_checkpoints(tmp_path, monkeypatch):
    """What SIGTERM / Ctrl-C do in ``keras-pose train``: a flag the loop checks after each step."""
    from keras_pose.training.loop import STOP_REQUESTED, request_stop

    ds = _stick_figures(tmp_path, n=8)
    trainer = Trainer(_config("cpm_tiny", epochs=3), tmp_path / "run", train_set=ds)

    def stop_during_second(n):
        if n == 2:
            request_stop()  # arrives while step 2 runs: step 2 still completes

    calls = _hook_step(trainer, monkeypatch, stop_during_second)
    with pytest.raises(KeyboardInterrupt, match="stop requested"):
        trainer.run(verbose=0)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert calls["n"] == 2 and state["step"] == 2
    monkeypatch.undo()
    resumed = Trainer(_config("cpm_tiny", epochs=3), tmp_path / "run", train_set=ds)
    assert not STOP_REQUESTED.is_set()  # the stopped run cleared the request
    request_stop()  # asked before the loop starts (while the data loads): stops after the first step
    with pytest.raises(KeyboardInterrupt, match="stop requested"):
        resumed.run(resume=True, verbose=0)
    assert resumed.state["step"] == 3 and resumed.run(resume=True, verbose=0)["step"] == 6


@pytest.mark.slow
def test_sigterm_stops_keras_pose_train_with_a_checkpoint(tmp_path):
    """The real command in a subprocess: SIGTERM -> checkpoint at the step reached, exit code 130."""
    import signal
    import subprocess
    import sys
    import time

    import scipy.io

    rng = np.random.default_rng(0)
    (tmp_path / "lsp" / "images").mkdir(parents=True)
    joints = np.zeros((3, 14, 2000))
    for i in range(1000):
        img = np.full((96, 96, 3), int(rng.integers(20, 80)), np.uint8)
        joints[:2, :, i] = rng.uniform(20, 76, (2, 14))
        cv2.imwrite(str(tmp_path / "lsp" / "images" / f"im{i + 1:04d}.jpg"), img)
    scipy.io.savemat(tmp_path / "lsp" / "joints.mat", {"joints": joints})
    config = tmp_path / "train.json"
    _config("cpm_tiny", epochs=1000, batch_size=4, log_every=1, checkpoint_every=100000, val_every=0,
            train_data=["lsp_train"]).save(config)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "keras_pose.cli", "train", "--config", str(config), "--data",
                             str(tmp_path), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not ((out / "steps.csv").is_file()
                                               and len((out / "steps.csv").read_text().splitlines()) > 3):
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stdout.read().decode()
    assert code == 130, log[-2000:]
    assert "stop requested: checkpoint written" in log, log[-2000:]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    last_logged = int((out / "steps.csv").read_text().splitlines()[-1].split(",")[0])
    assert state["step"] == last_logged >= 3


def test_interrupt_writes_a_checkpoint_and_resume_continues(tmp_path, monkeypatch):
    ds = _stick_figures(tmp_path, n=8)
    cfg = _config("cpm_tiny", epochs=2)
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds)

    def interrupt_after_two(n):
        if n > 2:
            raise KeyboardInterrupt

    _hook_step(trainer, monkeypatch, interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(verbose=0)
    resumed = Trainer(cfg, tmp_path / "run", train_set=ds)
    assert resumed.restore_checkpoint() and resumed.state["step"] == 2
    assert resumed.run(resume=True, verbose=0)["step"] == 4


# ---------------------------------------------------------------- schedule horizon changes, precision


def test_restart_ramp_moves_linearly_from_the_old_rate():
    from keras_pose.training.loop import restart_ramp

    restart = {"step": 10, "from_lr": 1e-4, "epochs": 2.0}
    assert restart_ramp(None, 1e-3, 12, 5) == 1e-3
    assert restart_ramp(restart, 1e-3, 10, 5) == pytest.approx(1e-4)
    assert restart_ramp(restart, 1e-3, 15, 5) == pytest.approx(5.5e-4)  # half-way through 2 x 5 steps
    assert restart_ramp(restart, 1e-3, 20, 5) == 1e-3  # the ramp is over
    assert restart_ramp(restart, 1e-3, 9, 5) == 1e-3  # before the change


def test_resume_with_a_longer_horizon_ramps_instead_of_jumping(tmp_path):
    """--resume --epochs N with a new N: the rate starts where the old schedule ended, reaches the new one."""
    import csv

    ds = _stick_figures(tmp_path, n=8)  # 2 steps per epoch at batch 4
    schedule = {"name": "cosine", "final": 0.1, "restart_warmup_epochs": 1}
    cfg = _config("cpm_tiny", epochs=2, log_every=1, schedule=schedule)
    Trainer(cfg, tmp_path / "run", train_set=ds).run(verbose=0)
    resumed = Trainer(cfg, tmp_path / "run", train_set=ds)
    state = resumed.run(resume=True, epochs=4, verbose=0)
    old_end = learning_rate_at(schedule, 3e-3, 2.0, 2)
    assert state["lr_restart"] == {"step": 4, "from_lr": pytest.approx(old_end), "epochs": 1.0, "old_epochs": 2,
                                   "new_epochs": 4}
    assert state["schedule_epochs"] == 4
    with (tmp_path / "run" / "steps.csv").open() as f:
        lr = {int(r["step"]) - 1: float(r["lr"]) for r in csv.DictReader(f)}  # the rate used at step s
    assert lr[4] == pytest.approx(old_end)  # no jump to the new horizon's 1.65e-3
    new = {s: learning_rate_at(schedule, 3e-3, s / 2, 4) for s in (5, 6, 7)}
    assert lr[5] == pytest.approx((old_end + new[5]) / 2)
    assert lr[6] == pytest.approx(new[6]) and lr[7] == pytest.approx(new[7])
    # the same horizon again: no new ramp
    again = Trainer(cfg, tmp_path / "run", train_set=ds).run(resume=True, epochs=4, verbose=0)
    assert again["lr_restart"]["step"] == 4


def test_native_bfloat16_reads_the_cpu_flags():
    from keras_pose.training.loop import native_bfloat16

    assert native_bfloat16("processor: 0\nflags\t\t: fpu sse avx2 fma\n") is False
    assert native_bfloat16("flags : fpu avx512f avx512_bf16\nflags : fpu avx512f avx512_bf16\n") is True
    assert native_bfloat16("flags : fpu amx_bf16 amx_tile\n") is True
    assert native_bfloat16("no flags line here\n") is None


def test_train_command_precision_overrides_the_config(tmp_path, monkeypatch):
    import keras_pose.training
    from keras_pose.cli import main

    seen = {}

    class Done:
        state = {"step": 0, "best_pck": -1.0}

    def fake_train(config, out_dir, **kw):
        seen["config"] = config
        return Done()

    monkeypatch.setattr(keras_pose.training, "train", fake_train)
    import signal

    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep pytest's own SIGINT / SIGTERM handlers
    config = tmp_path / "train.json"
    _config("cpm_tiny", mixed_precision="mixed_bfloat16").save(config)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--precision", "float32"]) == 0
    assert seen["config"].mixed_precision is None
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    assert seen["config"].mixed_precision == "mixed_bfloat16"


def test_a_freeze_phase_trains_the_head_on_a_frozen_trunk_then_gives_the_flags_back(tmp_path):
    from keras_pose.models.backbones import freeze_batchnorm
    from keras_pose.models.softargmax import SoftArgmaxConfig

    ds = _stick_figures(tmp_path, n=4)
    model = build_model(SoftArgmaxConfig(num_joints=14, input_size=(64, 64), num_blocks=1, block_filters=16,
                                         block_kernel=3, backbone="efficientnet_lite0", freeze_backbone_bn=True))
    trunk = model.get_layer("backbone")
    freeze_batchnorm(trunk)  # as a trunk with pretrained statistics has it (freeze_bn acts only with weights)
    flags = {l.name: l.trainable for l in trunk.layers}
    cfg = _config(model_config(model), phases=[{"name": "head", "epochs": 1, "freeze": "backbone"},
                                                    {"name": "all", "epochs": 1}])
    trainer = Trainer(cfg, tmp_path / "run", train_set=ds, model=model)
    trunk_vars = {id(v) for v in trunk.weights}
    snapshot = lambda: {v.path: v.numpy().copy() for v in model.weights}
    before = snapshot()
    trainer.run(epochs=1, verbose=0)  # the head phase only
    after_head = snapshot()
    moved = {v.path for v in model.weights if not np.array_equal(before[v.path], after_head[v.path])}
    trunk_paths = {v.path for v in model.weights if id(v) in trunk_vars}
    assert moved and not moved & trunk_paths, sorted(moved & trunk_paths)[:5]  # BN statistics included
    assert {l.name: l.trainable for l in trunk.layers} == flags  # given back after the run
    trainer.run(resume=True, verbose=0)  # on into the "all" phase: the trunk's convolutions train now
    moved = {v.path for v in model.weights if id(v) in trunk_vars
             and not np.array_equal(after_head[v.path], v.numpy())}
    assert "stem_conv/kernel" in moved
    assert not any("gamma" in p or "moving" in p for p in moved)  # its own frozen BN stayed frozen
    assert {l.name: l.trainable for l in trunk.layers} == flags


def test_a_freeze_phase_names_a_layer_the_model_has(tmp_path):
    ds = _stick_figures(tmp_path, n=4)
    with pytest.raises(ValueError, match="'freeze' must be a layer name or a list"):
        _config("softargmax_tiny", phases=[{"name": "head", "epochs": 1, "freeze": 3}])
    cfg = _config("softargmax_tiny", phases=[{"name": "head", "epochs": 1, "freeze": ["trunk"]}])
    with pytest.raises(ValueError, match="phase 'head': 'freeze' names layer 'trunk', which model"):
        Trainer(cfg, tmp_path / "run", train_set=ds).run(verbose=0)


# ---------------------------------------------------------------- fused batch normalisation


def _bn_model():
    inp = keras.Input((12, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn_a")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.BatchNormalization(center=False, scale=False, name="bn_plain")(x)
    frozen = keras.layers.BatchNormalization(name="bn_frozen")
    x = frozen(x)
    frozen.trainable = False  # inference mode: Keras' own code
    v = keras.layers.GlobalAveragePooling2D()(x)
    v = keras.layers.BatchNormalization(name="bn_dense")(keras.layers.Dense(5)(v))  # 2-D: Keras' own code
    return keras.Model(inp, [x, v])


def test_fused_batchnorm_matches_keras_batchnorm():
    from keras_pose.training.fused_bn import batchnorm_layers, fused_batchnorm

    keras.utils.set_random_seed(0)
    model = _bn_model()
    images = np.random.default_rng(0).normal(1.0, 2.0, (4, 12, 10, 3)).astype("float32")
    start = [v.numpy() for v in model.weights]

    def one_step(fused):
        for v, w in zip(model.weights, start):
            v.assign(w)
        with fused_batchnorm(model, fused) as swapped:
            @tf.function
            def step(x):
                with tf.GradientTape() as tape:
                    maps, vec = model(x, training=True)
                    loss = tf.reduce_sum(maps ** 3) + tf.reduce_sum(vec ** 2)
                return tape.gradient(loss, model.trainable_variables)

            grads = step(images)
            ops = {op.type for op in step.get_concrete_function(images).graph.get_operations()}
        return swapped, [g.numpy() for g in grads], [v.numpy() for v in model.non_trainable_variables], ops

    n0, g0, s0, ops0 = one_step(False)
    n1, g1, s1, ops1 = one_step(True)
    assert (n0, n1) == (0, 4) and len(batchnorm_layers(model)) == 4
    assert "FusedBatchNormV3" in ops1 and "FusedBatchNormV3" not in ops0
    scale = max(np.abs(a).max() for a in g0)  # (the conv bias before BN has a zero gradient up to round-off)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale)
    for a, b in zip(s0, s1):  # moving mean / variance (population variance, as Keras), frozen ones unchanged
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert all("call" not in layer.__dict__ for layer in batchnorm_layers(model))  # stock again


def test_the_trainer_runs_fused_batchnorm_and_gives_the_model_back_stock(tmp_path, monkeypatch):
    """With the option every BN layer takes the fused branch when the step is traced (none without it),
    the model is stock again afterwards, and two steps move the weights as Keras' own BN does.

    The images are noisy: the first BN of a flat-background image sees channels whose mean dwarfs their
    spread, where the fused kernel's single-pass statistics lose digits. (A network with max or ReLU
    kinks can also turn 1e-6 differences in activations into percent-level ones in its gradient:
    the soft-argmax trunk's gradient moved 0.5% with TF_ENABLE_ONEDNN_OPTS toggled, stock BN.)
    """
    import keras_pose.training.fused_bn as fused_bn

    fused_calls = []
    fusable = fused_bn._fusable
    monkeypatch.setattr(fused_bn, "_fusable", lambda *a: fused_calls.append(fusable(*a)) or fused_calls[-1])
    ds = _stick_figures(tmp_path, n=8, noise=40.0)
    updates = {}
    for fused in (False, True):
        fused_calls.clear()
        keras.utils.set_random_seed(0)
        cfg = _config("cpm_tiny", fused_batchnorm=fused, optimizer={"name": "sgd", "learning_rate": 0.01})
        trainer = Trainer(cfg, tmp_path / f"fused_{fused}", train_set=ds)
        start = [w.numpy() for w in trainer.model.trainable_weights]
        trainer.run(verbose=0, max_steps=2)
        layers = fused_bn.batchnorm_layers(trainer.model)
        assert sum(fused_calls) == (len(layers) if fused else 0) and len(layers) > 5  # traced once
        assert all("call" not in layer.__dict__ for layer in layers)  # the model is stock again
        updates[fused] = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(trainer.model.trainable_weights, start)])
    assert np.linalg.norm(updates[False]) > 0
    assert np.linalg.norm(updates[True] - updates[False]) < 1e-3 * np.linalg.norm(updates[False])
