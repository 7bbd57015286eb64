"""The ``model.fit`` path: train any keras_pose model (fresh or from the zoo) with Keras' own loop.

Example:
    >>> import keras_pose
    >>> from keras_pose.training.fit import PoseTrainingModel, fit_dataset
    >>> model = keras_pose.zoo.load("cpm_scratch_lsp")                  # doctest: +SKIP
    >>> trainable = PoseTrainingModel(model)                           # per-stage losses from the paper
    >>> trainable.compile(optimizer=keras.optimizers.Adam(1e-4))
    >>> ds, steps = fit_dataset(train_records, trainable.objective, 128, batch_size=16)
    >>> trainable.fit(ds, steps_per_epoch=steps, epochs=5)
    >>> model.save_weights("finetuned.weights.h5")                     # the wrapped model is trained in place
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_pose.data import PipelineConfig, TrainPipeline
from keras_pose.data.records import PoseDataset
from keras_pose.models.common import model_config
from keras_pose.models.registry import build_model, config_from_dict
from keras_pose.training.objectives import Objective, make_objective


class PoseTrainingModel(keras.Model):
    """Wraps a pose model so that ``fit`` / ``evaluate`` use its per-output losses.

    ``fit`` takes batches as produced by :func:`fit_dataset` (dicts with
    ``images`` and ``targets``). The wrapped model's weights are the ones
    trained; save ``trainable.pose_model``.

    Args:
        pose_model: a model built by a keras_pose builder or loaded from the zoo.
        objective: an :class:`Objective` (default: the paper objective of the
            model's family, from :func:`make_objective`).
    """

    def __init__(self, pose_model: keras.Model, objective: Objective | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{pose_model.name}_training"), **kwargs)
        self.pose_model = pose_model
        self.objective = objective or make_objective(pose_model)
        self._trackers = {n: keras.metrics.Mean(name=f"loss_{n}") for n in self.objective.terms}
        self._total = keras.metrics.Mean(name="loss")

    def call(self, images, training=False):
        return self.pose_model(images, training=training)

    def compile(self, optimizer="adam", jit_compile=False, **kwargs):
        """Like ``keras.Model.compile``; losses come from the objective. XLA is off by
        default: on CPU, Keras' ``jit_compile="auto"`` spends minutes compiling for no gain."""
        if "loss" in kwargs:
            raise ValueError("PoseTrainingModel takes its losses from its objective; do not pass loss=")
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    @property
    def metrics(self):
        return [self._total, *self._trackers.values()]

    def _update(self, total, per):
        self._total.update_state(total)
        for n, v in per.items():
            self._trackers[n].update_state(v)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            outputs = self(data["images"], training=True)
            total, per = self.objective(outputs, data["targets"])
            loss = total + (tf.add_n([tf.cast(x, tf.float32) for x in self.losses]) if self.losses else 0.0)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply(grads, variables)
        return self._update(total, per)

    def test_step(self, data):
        outputs = self(data["images"], training=False)
        return self._update(*self.objective(outputs, data["targets"]))


def fit_dataset(dataset: PoseDataset, objective: Objective, input_size: int, batch_size: int = 16, seed: int = 0,
                pipeline: PipelineConfig | None = None) -> tuple[tf.data.Dataset, int]:
    """An endless augmented dataset with targets for ``fit``, and the steps per epoch.
    """
    cfg = pipeline or PipelineConfig(input_size=input_size)
    if cfg.augment_in != "data":
        raise ValueError("fit_dataset needs augment_in='data' (model.fit's step does not augment)")
    tp = TrainPipeline(dataset, cfg, batch_size, seed, encode=objective.encode)
    return tp.stream().map(lambda b: {"images": b["images"], "targets": b["targets"]}), tp.steps_per_epoch


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy weights layer by layer (same name, same shapes); returns the layers left as initialised."""
    skipped = []
    src = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        other = src.get(layer.name)
        weights = layer.get_weights()
        if not weights:
            continue
        theirs = other.get_weights() if other is not None else None
        if theirs is not None and len(theirs) == len(weights) and all(
                a.shape == b.shape for a, b in zip(theirs, weights)):
            layer.set_weights(theirs)
        else:
            skipped.append(layer.name)
    return skipped


def with_num_joints(model: keras.Model, num_joints: int) -> tuple[keras.Model, list[str]]:
    """The same architecture for another skeleton, e.g. 16 MPII joints from an LSP model.

    Every layer whose weights keep their shape (the trunk) is copied; the
    joint-dependent heads are freshly initialised and returned by name, so
    they can be trained first (e.g. with a ``phases`` entry or a higher LR).
    """
    cfg = model_config(model)
    cfg["num_joints"] = int(num_joints)
    new = build_model(config_from_dict(cfg), pretrained=False)
    skipped = transfer_weights(model, new)
    return new, skipped


__all__ = ["PoseTrainingModel", "fit_dataset", "transfer_weights", "with_num_joints"]
