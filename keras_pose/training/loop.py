"""The custom training loop: compiled GradientTape step, per-output losses, schedules,
validation PCK, checkpoints and exact resume, under any ``tf.distribute`` strategy.

Run it with ``keras-pose train --config C --data D --out RUN`` or
:func:`train`. A run directory holds:

- ``train.json`` (the config), ``model.json`` (the model config);
- ``checkpoint/`` (latest resumable state: weights, optimizer slots, step);
- ``best.weights.h5`` (best validation PCK) and ``final.weights.h5``;
- ``log.csv`` (one row per epoch), ``steps.csv`` (every ``log_every`` steps),
  ``tensorboard/`` (scalars).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
import threading
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_pose.data import TrainPipeline, read_lsp, read_lspet
from keras_pose.data.records import PoseDataset
from keras_pose.evaluation import evaluate_model
from keras_pose.machine import native_bfloat16
from keras_pose.models.registry import build_model, config_from_dict, get_config
from keras_pose.training.config import TrainConfig, phase_freeze
from keras_pose.training.fused_bn import fused_batchnorm
from keras_pose.training.objectives import make_objective

log = logging.getLogger(__name__)

#: Set by :func:`request_stop` (``keras-pose train``'s SIGTERM / SIGINT handler): the running
#: :meth:`Trainer.run` finishes its current step, writes a checkpoint and raises KeyboardInterrupt.
#: A flag, not an exception raised from the signal handler, so that the stop never lands inside a
#: TensorFlow call (an asynchronous KeyboardInterrupt there could leave the run hanging).
STOP_REQUESTED = threading.Event()


def request_stop() -> None:
    """Ask the running training loop to stop after its current step (with a checkpoint)."""
    STOP_REQUESTED.set()


OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
              "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad}


def make_optimizer(spec: dict) -> keras.optimizers.Optimizer:
    """An optimizer from ``{"name": ..., "learning_rate": ..., **kwargs}``."""
    spec = dict(spec)
    name = spec.pop("name", "adam").lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](**spec)


def learning_rate_at(schedule: dict, base_lr: float, epoch_float: float, total_epochs: int, plateau_factor=1.0):
    """The scheduled learning rate at a (fractional) epoch."""
    name = schedule.get("name", "constant")
    warm = float(schedule.get("warmup_epochs", 0))
    if warm and epoch_float < warm:
        return base_lr * max(epoch_float / warm, 0.01)
    if name == "constant":
        return base_lr
    if name == "plateau":
        return base_lr * plateau_factor
    if name == "step":
        gamma = float(schedule.get("gamma", 0.1))
        return base_lr * gamma ** sum(epoch_float >= b for b in schedule.get("boundaries", []))
    if name == "cosine":
        final = float(schedule.get("final", 0.01))
        t = min(max((epoch_float - warm) / max(total_epochs - warm, 1e-9), 0.0), 1.0)
        return base_lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t)))
    raise ValueError(f"unknown schedule {name!r}; known: constant, step, cosine, plateau")


def restart_ramp(restart: dict | None, lr: float, step: int, steps_per_epoch: int) -> float:
    """The learning rate at ``step`` after a horizon change (:meth:`Trainer._note_horizon`).

    ``restart`` is ``{"step", "from_lr", "epochs"}``: from that step the rate moves linearly from
    ``from_lr`` (where the old schedule had it) to the new schedule's ``lr`` over ``epochs`` epochs,
    instead of jumping (a cosine schedule stretched from 12 to 24 epochs jumped from 4e-5 to 1.1e-3
    and threw a trained part-heatmap network back to 5 PCK).
    """
    if not restart:
        return lr
    span = float(restart["epochs"]) * steps_per_epoch
    done = step - int(restart["step"])
    if span <= 0 or done >= span or done < 0:
        return lr
    return float(restart["from_lr"]) + (lr - float(restart["from_lr"])) * done / span


def load_datasets(names, root=None) -> PoseDataset:
    """Concatenate training datasets by name."""
    readers = {"lsp_train": lambda: read_lsp(root, "train"), "lspet": lambda: read_lspet(root)}
    try:
        from keras_pose.data import read_mpii

        readers["mpii_train"] = lambda: read_mpii(root, "train")
    except ImportError:  # pragma: no cover
        pass
    out = None
    for n in names:
        if n not in readers:
            raise ValueError(f"unknown training dataset {n!r}; known: {sorted(readers)}")
        ds = readers[n]()
        out = ds if out is None else out + ds
    return out


def split_holdout(dataset: PoseDataset, every: int, prefix: str = "lsp/"):
    """Hold out every ``every``-th record whose id starts with ``prefix`` (LSP *train* images)."""
    if every <= 0:
        return dataset, None
    own = [i for i, r in enumerate(dataset.records) if r.image_id.startswith(prefix)]
    val = set(own[::every])
    train = [i for i in range(len(dataset)) if i not in val]
    return dataset.subset(train, dataset.name + "-holdout"), dataset.subset(sorted(val), "validation")



SHARD_BYTES = 20 * 2**20


def _shards(arrays, limit: int):
    """Split ``arrays`` (in order) into groups of at most ``limit`` bytes each (an array larger than
    ``limit`` is a group of its own), so that every checkpoint file of a run stays small enough to
    commit (the optimizer state of a 3 M-parameter model under Adam is 26 MB before compression)."""
    group, size = [], 0
    for a in arrays:
        if group and size + a.nbytes > limit:
            yield group
            group, size = [], 0
        group.append(a)
        size += a.nbytes
    if group:
        yield group

class Trainer:
    """Train one model with one config; resumable.

    Args:
        config: a :class:`TrainConfig`.
        out_dir: the run directory.
        train_set, val_set: datasets (default: read from ``config.train_data``
            under ``data_root`` with the LSP-train holdout).
        strategy: a ``tf.distribute`` strategy (default: the default one).
        model: an already built model to train (e.g. from the zoo); default:
            built from ``config.model``.
    """

    def __init__(self, config: TrainConfig, out_dir, data_root=None, train_set=None, val_set=None,
                 strategy: tf.distribute.Strategy | None = None, model: keras.Model | None = None):
        self.config = config
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy or tf.distribute.get_strategy()
        if config.mixed_precision:
            if "bfloat16" in config.mixed_precision and native_bfloat16() is False:
                log.warning("mixed_precision %r on a CPU without native bfloat16 (no avx512_bf16 / amx_bf16 "
                            "flag): TensorFlow emulates it and training is many times slower than float32; "
                            "use `keras-pose train --precision float32`", config.mixed_precision)
            keras.mixed_precision.set_global_policy(config.mixed_precision)
        keras.utils.set_random_seed(config.seed)
        if train_set is None:
            full = load_datasets(config.train_data, data_root)
            train_set, val_set = split_holdout(full, config.val_every)
        self.train_set, self.val_set = train_set, val_set
        with self.strategy.scope():
            if model is None:
                mc = config.model
                model_cfg = get_config(mc) if isinstance(mc, str) else config_from_dict(mc)
                model = build_model(model_cfg)
            if config.init_weights:
                load_init_weights(model, config.init_weights)
            if config.init_backbone:
                load_init_backbone(model, config.init_backbone)
            self.model = model
            self.optimizer = make_optimizer(config.optimizer)
            self.optimizer.build(self.model.trainable_variables)
        self.base_lr = float(config.optimizer.get("learning_rate", 1e-3))
        # --- DeepPose refinement stage (config.refine; keras_pose.training.deeppose): the previous stages,
        # displacement statistics, in-step refinement samples, own-joint objective, cascade validation.
        self.refinement = None
        if config.refine:
            from keras_pose.training.deeppose import RefinementStage

            self.refinement = RefinementStage(config.refine, self.model, self.train_set.skeleton, config.seed)
        self.input_size = self.refinement.image_size if self.refinement else int(self.model.input_shape[1])
        self.pipe_cfg = config.pipeline_config(self.input_size)
        if self.refinement:
            self.refinement.prepare(self.train_set, self.pipe_cfg.padding, self.out)
            self.objective = self.refinement.objective
        else:
            self.objective = make_objective(self.model, **{k: v for k, v in config.loss.items() if k != "weights"},
                                            weights=config.loss.get("weights"))
        # --- end DeepPose refinement
        encode = self.objective.encode if self.pipe_cfg.augment_in == "data" and not self.refinement else None
        self.pipeline = TrainPipeline(self.train_set, self.pipe_cfg, config.batch_size, config.seed, encode=encode)
        self.state = {"step": 0, "best_pck": -1.0, "plateau_factor": 1.0, "bad_validations": 0, "history": []}
        self._steps = {}
        self._frozen = {}  # layer name -> the trainable flags its sublayers had before a phase froze it
        self._tb = None

    # ------------------------------------------------------------------ steps
    def _set_frozen(self, phase: dict) -> None:
        """Freeze the layers the phase names in ``freeze`` and give the others back their own flags.

        A frozen layer's variables leave ``trainable_variables`` and its BN layers run in inference
        mode. Unfreezing restores every sublayer's flag as it was (so a trunk built with frozen BN,
        ``freeze_backbone_bn``, keeps it), not simply ``trainable = True``.
        """
        names = phase_freeze(phase)
        for name in [n for n in self._frozen if n not in names]:
            for layer, flag in self._frozen.pop(name):  # parents first, so each child's own flag wins
                layer.trainable = flag
        for name in names:
            if name in self._frozen:
                continue
            try:
                layer = self.model.get_layer(name)
            except ValueError:
                raise ValueError(f"phase {phase.get('name')!r}: 'freeze' names layer {name!r}, which model "
                                 f"{self.model.name!r} does not have; its layers: "
                                 f"{[l.name for l in self.model.layers]}") from None
            self._frozen[name] = [(l, l.trainable) for l in layer._flatten_layers(include_self=True)]
            layer.trainable = False

    def _variables(self, phase: dict):
        pattern = phase.get("train")
        if not pattern:
            return list(self.model.trainable_variables)
        chosen = [v for v in self.model.trainable_variables if re.search(pattern, v.path)]
        if not chosen:
            raise ValueError(f"phase {phase.get('name')!r}: 'train' pattern {pattern!r} matches no variable")
        return chosen

    def _train_step(self, phase: dict):
        key = json.dumps(phase, sort_keys=True)
        if key in self._steps:
            return self._steps[key]
        objective = self.objective.with_weights(phase["loss_weights"]) if phase.get("loss_weights") else self.objective
        variables = self._variables(phase)
        n_rep = self.strategy.num_replicas_in_sync
        clip = self.config.clip_norm

        def replica_step(batch):
            if self.pipe_cfg.augment_in == "step" or self.refinement:
                ctx = tf.distribute.get_replica_context()
                rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64) if ctx else tf.constant(0, tf.int64)
                seed = batch["step"][0] * 64 + rid
                if self.pipe_cfg.augment_in == "step":
                    batch = self.pipeline.augment(batch, seed)
                if self.refinement:  # DeepPose stage s >= 2: crops around simulated stage s-1 poses
                    batch = self.refinement.transform(batch, seed)
                else:
                    batch["targets"] = objective.encode(batch)
            with tf.GradientTape() as tape:
                outputs = self.model(batch["images"], training=True)
                total, per = objective(outputs, batch["targets"])
                reg = tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses]) if self.model.losses else 0.0
                loss = (total + reg) / n_rep
            grads = tape.gradient(loss, variables)
            if clip:
                grads, _ = tf.clip_by_global_norm(grads, clip)
            self.optimizer.apply(grads, variables)
            return dict(per, total=total)

        @tf.function
        def step(dist_batch):
            per = self.strategy.run(replica_step, args=(dist_batch,))
            return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per.items()}

        self._steps[key] = step
        return step

    # ------------------------------------------------------------------ state
    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoint"

    def save_checkpoint(self):
        """Write the resumable state atomically (weights, optimizer variables, counters)."""
        tmp = self.out / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.model.save_weights(tmp / "model.weights.h5")
        for i, shard in enumerate(_shards([np.asarray(v.numpy()) for v in self.optimizer.variables], SHARD_BYTES)):
            np.savez_compressed(tmp / f"optimizer-{i:02d}.npz", *shard)  # a frozen trunk's moments are all zeros
        (tmp / "state.json").write_text(json.dumps(self.state, indent=1))
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        tmp.rename(self.ckpt_dir)

    def restore_checkpoint(self) -> bool:
        """Load the latest checkpoint if there is one; returns whether it did."""
        if not (self.ckpt_dir / "state.json").is_file():
            return False
        self.model.load_weights(self.ckpt_dir / "model.weights.h5")
        values = []
        for path in sorted(self.ckpt_dir.glob("optimizer*.npz")):  # optimizer-NN.npz (or an older optimizer.npz)
            saved = np.load(path)
            values += [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(self.optimizer.variables):
            raise ValueError(f"checkpoint {self.ckpt_dir}: {len(values)} optimizer variables, the optimizer has "
                             f"{len(self.optimizer.variables)} (a different model or optimizer?)")
        for v, val in zip(self.optimizer.variables, values):
            v.assign(val)
        self.state = json.loads((self.ckpt_dir / "state.json").read_text())
        self._truncate_logs(int(self.state["step"]))
        return True

    def _truncate_logs(self, step: int) -> None:
        """Drop CSV log rows after ``step``: progress made after the checkpoint was lost (a crash or a
        kill), and the resumed run logs those steps again; without this the learning curve repeats them."""
        for name in ("steps.csv", "log.csv", "val.csv"):
            path = self.out / name
            if not path.is_file():
                continue
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            if len(rows) < 2 or "step" not in rows[0]:
                continue
            col = rows[0].index("step")
            kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[col])) <= step]
            if len(kept) < len(rows):
                with path.open("w", newline="") as f:
                    csv.writer(f).writerows(kept)

    # ------------------------------------------------------------------ logging
    def _log_row(self, name, row):
        path = self.out / name
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self._tb is None:
            self._tb = tf.summary.create_file_writer(str(self.out / "tensorboard"))
        with self._tb.as_default(step=int(row["step"])):
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)) and np.isfinite(v):
                    tf.summary.scalar(f"{name.split('.')[0]}/{k}", v)

    def validate(self) -> float | None:
        if not self.val_set:
            return None
        if self.refinement:  # DeepPose refinement: PCK of the whole cascade (previous stages + this one)
            res = evaluate_model(self.refinement.predictor(self.model), self.val_set, padding=self.pipe_cfg.padding,
                                 flip=self.config.flip_test, input_size=self.input_size)
            return res["pck"]
        res = evaluate_model(self.model, self.val_set, padding=self.pipe_cfg.padding, flip=self.config.flip_test)
        return res["pck"]

    # ------------------------------------------------------------------ main
    def run(self, resume: bool = False, epochs: int | None = None, max_steps: int | None = None,
            verbose: int = 1, max_hours: float | None = None) -> dict:
        """Train (optionally resuming) until ``epochs`` total epochs (default: the config's).

        ``max_steps`` stops early after that many steps in this call, and
        ``max_hours`` once the run's total training time reaches it (for tests,
        recipe searches and time-boxed sessions); a checkpoint is written when stopping.
        """
        cfg = self.config
        cfg.save(self.out / "train.json")
        (self.out / "model.json").write_text(json.dumps(self.model.pose_config.to_dict(), indent=1))
        if resume and self.restore_checkpoint():
            log.info("resumed from %s at step %d", self.ckpt_dir, self.state["step"])
        try:
            with fused_batchnorm(self.model, cfg.fused_batchnorm):  # the steps are traced inside
                return self._run(epochs, max_steps, verbose, max_hours)
        except KeyboardInterrupt as e:  # Ctrl-C raised anywhere in the step: keep the progress, then stop
            if str(e) != "stop requested":
                self.save_checkpoint()
                log.info("interrupted: checkpoint written at step %d in %s", self.state["step"], self.ckpt_dir)
            raise
        finally:  # a stop requested before the loop started (e.g. while the data loaded) still stops it
            STOP_REQUESTED.clear()

    def _run(self, epochs, max_steps, verbose, max_hours) -> dict:
        cfg = self.config
        total_epochs = epochs if epochs is not None else cfg.total_epochs
        spe = self.pipeline.steps_per_epoch
        self._note_horizon(total_epochs, spe)
        done_in_call = 0
        while self.state["step"] < total_epochs * spe:
            epoch, skip = divmod(self.state["step"], spe)
            phase = cfg.phase_at(epoch)
            self._set_frozen(phase)  # before the step is traced: BN's mode is fixed when it is
            step_fn = self._train_step(phase)
            dataset = self.strategy.experimental_distribute_dataset(self._batches(epoch, skip))
            bar = keras.utils.Progbar(spe, verbose=verbose, stateful_metrics=["lr", "img/s"]) if verbose else None
            sums, n, t0 = {}, 0, time.time()
            mark = t0
            stopped = False
            for batch in dataset:
                s = self.state["step"]
                lr = learning_rate_at(cfg.schedule, self.base_lr, s / spe, total_epochs, self.state["plateau_factor"])
                lr = restart_ramp(self.state.get("lr_restart"), lr, s, spe)
                self.optimizer.learning_rate = lr
                per = {k: float(v) for k, v in step_fn(batch).items()}
                if not np.isfinite(per["total"]):
                    raise FloatingPointError(f"loss became {per['total']} at step {s}; losses: {per}")
                for k, v in per.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                now = time.time()
                self.state["hours"] = self.state.get("hours", 0.0) + (now - mark) / 3600.0
                mark = now
                self.state["step"] = s + 1
                done_in_call += 1
                ips = n * cfg.batch_size / (time.time() - t0)
                if bar:
                    bar.update(self.state["step"] - epoch * spe, [("loss", per["total"]), ("lr", lr), ("img/s", ips)])
                if self.state["step"] % cfg.log_every == 0:
                    self._log_row("steps.csv", {"step": self.state["step"], "epoch": epoch, "lr": lr,
                                                "images_per_s": ips,
                                                "train_hours": self.state["hours"],
                                                **per})
                if cfg.val_every_steps and self.state["step"] % cfg.val_every_steps == 0:
                    t_val = time.time()
                    self._track_validation(self.state["step"] / spe, self.state["hours"])
                    t0 += time.time() - t_val  # validation time is neither training time nor throughput
                    mark = time.time()
                if self.state["step"] % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if (max_steps is not None and done_in_call >= max_steps) or (
                        max_hours is not None and self.state["hours"] >= max_hours):
                    stopped = True
                    break
                if STOP_REQUESTED.is_set():  # SIGTERM / Ctrl-C (keras-pose train): stop at this clean point
                    self.save_checkpoint()
                    log.info("stop requested: checkpoint written at step %d in %s", self.state["step"],
                             self.ckpt_dir)
                    raise KeyboardInterrupt("stop requested")
            if stopped:
                self.save_checkpoint()
                break
            self._end_epoch(epoch, sums, n, t0, phase)
        self._set_frozen({})  # the trained model goes back with its own trainable flags
        self.model.save_weights(self.out / "final.weights.h5")
        self.save_checkpoint()
        return dict(self.state)

    def _note_horizon(self, total_epochs: int, spe: int) -> None:
        """Keep the schedule's horizon in the state; when a resumed run changes it (``--epochs``), ramp
        the learning rate from where the old horizon had it (``schedule.restart_warmup_epochs``, default
        the schedule's warm-up, at least 1 epoch) instead of jumping to the new horizon's value."""
        step = int(self.state["step"])
        old = int(self.state.get("schedule_epochs", self.config.total_epochs))
        if step > 0 and old != total_epochs and step < total_epochs * spe:
            sch = self.config.schedule
            warm = float(sch.get("restart_warmup_epochs", max(float(sch.get("warmup_epochs", 0)), 1.0)))
            from_lr = restart_ramp(self.state.get("lr_restart"), learning_rate_at(
                sch, self.base_lr, step / spe, old, self.state["plateau_factor"]), step, spe)
            self.state["lr_restart"] = {"step": step, "from_lr": from_lr, "epochs": warm,
                                        "old_epochs": old, "new_epochs": total_epochs}
            log.info("schedule horizon %d -> %d epochs at step %d: learning rate ramps from %.3g over %g epochs",
                     old, total_epochs, step, from_lr, warm)
        self.state["schedule_epochs"] = total_epochs

    def _batches(self, epoch, skip):
        ds = self.pipeline.epoch(epoch, skip)
        if self.pipe_cfg.augment_in == "step" or self.refinement:  # the step seeds in-step randomness
            bs = self.config.batch_size
            ds = ds.map(lambda b: dict(b, step=tf.fill([bs], b["step"])))
        return ds

    def _track_validation(self, epoch_float: float, hours: float) -> float | None:
        """Validate, keep the best weights, step the plateau schedule, log to val.csv."""
        pck = self.validate()
        if pck is None:
            return None
        if pck > self.state["best_pck"]:
            self.state.update(best_pck=pck, best_step=self.state["step"], bad_validations=0)
            self.model.save_weights(self.out / "best.weights.h5")
        else:
            self.state["bad_validations"] += 1
            sch = self.config.schedule
            if sch.get("name") == "plateau" and self.state["bad_validations"] >= int(sch.get("patience", 3)):
                self.state["plateau_factor"] *= float(sch.get("factor", 0.4))
                self.state["bad_validations"] = 0
        row = {"step": self.state["step"], "epoch": round(epoch_float, 3), "train_hours": hours, "val_pck": pck}
        self.state["history"].append(row)
        self._log_row("val.csv", row)
        return pck

    def _end_epoch(self, epoch, sums, n, t0, phase):
        seconds = time.time() - t0
        row = {"step": self.state["step"], "epoch": epoch + 1, "phase": phase.get("name", ""),
               "lr": float(self.optimizer.learning_rate.numpy()),
               "images_per_s": n * self.config.batch_size / max(seconds, 1e-9), "train_hours": self.state["hours"],
               **{f"loss_{k}": v / max(n, 1) for k, v in sums.items()}}
        if not self.config.val_every_steps:
            pck = self._track_validation(epoch + 1, self.state["hours"])
            if pck is not None:
                row["val_pck"] = pck
        self._log_row("log.csv", row)
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        self.save_checkpoint()


def init_weights_path(spec: str) -> Path:
    """The weights file of ``TrainConfig.init_weights``: a .weights.h5 file, or a run / preset (:func:`zoo.resolve`)."""
    if Path(spec).is_file():
        return Path(spec)
    from keras_pose import zoo

    try:
        return zoo.resolve(spec)[1]
    except KeyError as e:
        raise FileNotFoundError(f"init_weights {spec!r} is not a weights file, a run folder or a zoo preset "
                                f"({e.args[0]})") from None


def load_init_weights(model: keras.Model, spec: str) -> Path:
    """Load ``TrainConfig.init_weights`` into ``model``; a different architecture is a clear error."""
    path = init_weights_path(spec)
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(f"init_weights {str(path)!r} do not fit model {model.name!r}: {e}") from e
    return path


def load_init_backbone(model: keras.Model, spec: str, layer: str = "backbone") -> keras.Model:
    """Copy the trunk (nested layer ``layer``) of the zoo preset / run ``spec`` into ``model``'s.

    Returns the source model. A model without that layer, or trunks of different types, are clear errors.
    """
    from keras_pose import zoo

    source = zoo.load(spec)
    trunks = []
    for who, m in (("init_backbone " + repr(spec), source), ("the model " + repr(model.name), model)):
        try:
            trunks.append(m.get_layer(layer))
        except ValueError:
            raise ValueError(f"init_backbone: {who} has no pretrained trunk (no layer {layer!r})") from None
    src, dst = trunks
    shapes = [tuple(w.shape) for w in src.weights], [tuple(w.shape) for w in dst.weights]
    if shapes[0] != shapes[1]:
        raise ValueError(f"init_backbone {spec!r}: its trunk ({len(shapes[0])} arrays, "
                         f"{src.count_params():,} parameters) does not fit model {model.name!r}'s "
                         f"({len(shapes[1])} arrays, {dst.count_params():,} parameters)")
    dst.set_weights(src.get_weights())
    return source


def train(config: TrainConfig, out_dir, data_root=None, resume=False, epochs=None, strategy=None,
          max_hours=None, **kwargs) -> Trainer:
    """Build a :class:`Trainer` and run it; returns the trainer (its model is trained)."""
    trainer = Trainer(config, out_dir, data_root=data_root, strategy=strategy, **kwargs)
    trainer.run(resume=resume, epochs=epochs, max_hours=max_hours)
    return trainer
