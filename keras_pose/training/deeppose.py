"""Training DeepPose refinement stages s >= 2 (whole cascades are loaded and published by
:mod:`keras_pose.zoo.cascades`).

Reference:
    A. Toshev and C. Szegedy, "DeepPose: Human Pose Estimation via Deep Neural
    Networks", CVPR 2014, section 3.2. Spec: ``docs/paper_specs.md`` 1.2-1.4.

Stage s >= 2 is trained on *simulated* stage s-1 predictions: for every
training image and joint i, ``prev_i = y_i + delta_i`` with ``delta_i`` drawn
from ``N(mean_i, cov_i)``, the statistics of stage s-1's displacements
(prediction - ground truth) on the training images. A crop of side
``sigma * diam(prev)`` is cut around ``prev_i``; psi_s learns the
box-normalised ground truth ``N(y_i; b_i)`` with output pair i only
(``||y_i - psi_i||^2``, one loss term per (image, joint) sample).

Displacements are divided by the ground-truth pose diameter (shoulder to
opposite hip), so the statistics measured on evaluation crops transfer to the
augmented (rotated, zoomed) training crops.

How it plugs into the :class:`~keras_pose.training.Trainer`: when
``TrainConfig.refine`` is set, the Trainer builds a :class:`RefinementStage`,
which loads the previous stages, computes (or reloads) the statistics,
turns every augmented batch into refinement samples inside the compiled
step (:func:`simulate_refinement_batch`), supplies the objective
(:func:`refinement_objective`) and validates the whole cascade.

``TrainConfig.refine`` keys:
    ``stages``      (required) the previous stages, in order: run folders or
                    zoo preset folders / names, each loaded with
                    :func:`keras_pose.zoo.load` (one model = one stage). A
                    *cascade* preset expands to all of its stages.
    ``sigma``       crop side factor (default: the refinement model config's
                    ``sigma``, 2.0 = the paper's LSP value).
    ``image_size``  side of the augmented training images and of the
                    evaluation crops the cascade runs on (default: stage 1's
                    input size).
    ``statistics``  optional JSON file with precomputed ``mean`` / ``cov``;
                    by default they are computed on the training records and
                    cached in the run folder as ``displacements.json``.

Cascades are published as one zoo preset
(:func:`keras_pose.zoo.cascades.save_cascade_preset`) and rebuilt from such a
preset or a refinement run folder by :func:`keras_pose.zoo.cascades.load_cascade`.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_pose.data.records import PoseDataset
from keras_pose.models.deeppose import DeepPoseCascade, pose_diameter, refinement_crops, select_own_joint
from keras_pose.skeletons import Skeleton, get_skeleton
from keras_pose.training.objectives import LossTerm, Objective
from keras_pose.zoo.cascades import cascade_predictor, load_stage_models, read_json, sigma_of

#: keys of ``TrainConfig.refine`` (see the module docstring).
REFINE_KEYS = ("stages", "sigma", "image_size", "statistics")

#: offset that separates the displacement random stream from the augmentation one.
_SEED_OFFSET = 1_000_003


# ---------------------------------------------------------------------------
# Displacement statistics
# ---------------------------------------------------------------------------


def displacement_moments(predictions, joints, annotated, skeleton: Skeleton | str) -> dict:
    """Per-joint mean and covariance of ``(prediction - truth) / diam(truth)``.

    Args:
        predictions, joints: (N, K, 2) pixels (any frame, the same for both).
        annotated: (N, K) bool; only annotated joints of poses whose torso
            pair is annotated count.
        skeleton: defines the torso pair of the diameter.

    Returns:
        dict of NumPy arrays: ``mean`` (K, 2), ``cov`` (K, 2, 2) and
        ``count`` (K,) samples per joint. A joint without samples gets mean 0
        and the average covariance of the others.
    """
    skeleton = get_skeleton(skeleton)
    pred = np.asarray(predictions, np.float64)
    gt = np.asarray(joints, np.float64)
    ann = np.asarray(annotated, bool)
    if pred.shape != gt.shape or ann.shape != gt.shape[:2]:
        raise ValueError(f"displacement_moments: predictions {pred.shape}, joints {gt.shape} and annotated "
                         f"{ann.shape} must be (N, K, 2), (N, K, 2) and (N, K)")
    a, b = skeleton.torso_indices
    diam = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    valid = ann & (ann[:, a] & ann[:, b] & (diam >= 1.0))[:, None]
    d = (pred - gt) / np.maximum(diam, 1.0)[:, None, None]
    k = gt.shape[1]
    mean, cov, count = np.zeros((k, 2)), np.zeros((k, 2, 2)), valid.sum(0)
    for i in range(k):
        x = d[valid[:, i], i]
        if len(x):
            mean[i] = x.mean(0)
        if len(x) > 1:
            cov[i] = np.cov(x, rowvar=False)
    have = count > 1
    if not have.any():
        raise ValueError("displacement_moments: no pose with an annotated torso pair and >= 2 samples per joint; "
                         "cannot estimate the displacement statistics")
    cov[~have] = cov[have].mean(0)
    return {"mean": mean.astype(np.float32), "cov": cov.astype(np.float32), "count": count.astype(np.int64)}


def _as_cascade(cascade_or_model, skeleton, sigma=2.0) -> DeepPoseCascade:
    if isinstance(cascade_or_model, DeepPoseCascade):
        return cascade_or_model
    models = list(cascade_or_model) if isinstance(cascade_or_model, (list, tuple)) else [cascade_or_model]
    return DeepPoseCascade(models, sigma=sigma, skeleton=skeleton)


def displacement_statistics(cascade_or_model, dataset: PoseDataset, input_size: int, padding: float = 1.25,
                            skeleton: Skeleton | str | None = None, batch_size: int = 32) -> dict:
    """Statistics of the previous stages' training errors (spec 1.4).

    Runs the cascade (a :class:`DeepPoseCascade`, one stage-1 model, or a
    list of stage models) on the *training* records' evaluation crops (no
    augmentation, :func:`keras_pose.data.eval_dataset`), maps the predictions
    back to source pixels and returns :func:`displacement_moments` of the
    displacement ``prediction - truth`` divided by the ground-truth pose
    diameter, over annotated joints.

    Args:
        cascade_or_model: the stages 1 .. s-1.
        dataset: the training records.
        input_size: side of the evaluation crops.
        padding: crop side = ``200 * scale * padding`` (the pipeline's).
        skeleton: default: the dataset's.

    Returns:
        dict with ``mean`` (K, 2), ``cov`` (K, 2, 2), ``count`` (K,).
    """
    from keras_pose.evaluation import predict_dataset

    skeleton = get_skeleton(skeleton or dataset.skeleton)
    cascade = _as_cascade(cascade_or_model, skeleton)
    pred = predict_dataset(cascade_predictor(cascade, input_size), dataset, input_size, padding, batch_size)
    arrays = dataset.arrays()
    return displacement_moments(pred["keypoints"], arrays["joints"], arrays["annotated"], skeleton)


def covariance_factor(cov) -> np.ndarray:
    """(K, 2, 2) symmetric square roots A with ``A A^T = cov`` (works for singular covariances)."""
    cov = np.asarray(cov, np.float64)
    cov = (cov + np.swapaxes(cov, -1, -2)) / 2
    w, v = np.linalg.eigh(cov)
    if (w < -1e-6 * np.maximum(np.abs(w).max(-1, keepdims=True), 1e-12)).any():
        raise ValueError(f"displacement covariance is not positive semi-definite (eigenvalues {w.min():.3g})")
    return (v * np.sqrt(np.maximum(w, 0.0))[..., None, :] @ np.swapaxes(v, -1, -2)).astype(np.float32)


# ---------------------------------------------------------------------------
# Refinement samples and objective (tensor ops; inside the compiled step)
# ---------------------------------------------------------------------------


def simulate_refinement_batch(batch, seed, mean, factor, crop_size, sigma: float = 2.0,
                              skeleton: Skeleton | str = "lsp14") -> dict:
    """Turn an augmented batch into refinement samples (spec 1.4).

    For every image b and joint i: ``delta = (mean_i + A_i z) * diam(y_b)``
    with ``z ~ N(0, I)`` (stateless, from ``seed``) and ``A_i A_i^T = cov_i``;
    ``prev = y + delta``; then :func:`refinement_crops` cuts the box of side
    ``sigma * diam(prev)`` around every ``prev_i``.

    Args:
        batch: dict with ``images`` (B, S, S, 3), ``joints`` (B, K, 2) input
            pixels and ``annotated`` (B, K), as :func:`augment_batch` returns.
        seed: int tensor of shape (2,) for ``tf.random.stateless_normal``.
        mean: (K, 2) mean displacement / diameter.
        factor: (K, 2, 2) covariance square roots (:func:`covariance_factor`).
        crop_size: (h, w) input of psi_s.

    Returns:
        dict with ``images`` (B*K, h, w, 3) crops, ``targets`` {``coords``
        (B*K, 2) box-normalised truth of the crop's own joint, ``mask``
        (B*K,) 1 when that joint is annotated and the pose's torso pair is
        annotated}, ``prev`` (B, K, 2) the simulated previous poses and
        ``joint_ids`` (B*K,).
    """
    skeleton = get_skeleton(skeleton)
    joints = tf.cast(batch["joints"], tf.float32)
    annotated = tf.cast(batch["annotated"], tf.bool)
    mean = tf.convert_to_tensor(mean, tf.float32)
    factor = tf.convert_to_tensor(factor, tf.float32)
    diam = pose_diameter(joints, skeleton)  # (B,) ground truth
    z = tf.random.stateless_normal(tf.shape(joints), tf.cast(seed, tf.int64))
    delta = (mean[None] + tf.einsum("kij,bkj->bki", factor, z)) * diam[:, None, None]
    prev = joints + delta
    r = refinement_crops(tf.cast(batch["images"], tf.float32), prev, crop_size, joints, sigma, skeleton)
    a, b = skeleton.torso_indices
    mask = tf.reshape(tf.cast(annotated & (annotated[:, a] & annotated[:, b])[:, None], tf.float32), [-1])
    return {"images": r["crops"], "targets": {"coords": r["targets"], "mask": mask}, "prev": prev,
            "joint_ids": r["joint_ids"]}


def own_joint_l2(target, pred, mask):
    """Refinement loss: ``||y_i - psi_i||^2`` on output pair i of crop i, averaged over the B*K crops.

    Args:
        target: (B*K, 2) box-normalised truth of each crop's joint.
        pred: (B*K, K, 2) psi_s outputs (crop ``b*K + i`` refines joint i).
        mask: (B*K,) sample weights.
    """
    pred = tf.cast(pred, tf.float32)
    k = pred.shape[1]
    own = tf.reshape(select_own_joint(tf.reshape(pred, (-1, k, k, 2))), (-1, 2))
    per = tf.reduce_sum(tf.square(own - tf.cast(target, tf.float32)), axis=-1) * tf.cast(mask, tf.float32)
    return tf.reduce_sum(per) / tf.cast(tf.shape(pred)[0], tf.float32)


def refinement_objective(model: keras.Model) -> Objective:
    """The stage s >= 2 objective for psi_s: ``own_joint_l2`` on ``coords``.

    Its encoders only read the targets that :func:`simulate_refinement_batch`
    already made (the Trainer calls that instead of ``encode``).
    """
    names = list(model.output_names)
    if "coords" not in names:
        raise ValueError(f"a refinement stage needs a model with a 'coords' output (DeepPose psi); "
                         f"{model.name!r} has {names}")
    encoders = {"coords": lambda b: b["targets"]["coords"], "mask": lambda b: b["targets"]["mask"]}
    return Objective("deeppose_refine", {"coords": LossTerm(own_joint_l2, "coords", "mask")}, encoders, names)


# ---------------------------------------------------------------------------
# The Trainer hook
# ---------------------------------------------------------------------------


def check_refine_spec(spec) -> dict:
    """Validate ``TrainConfig.refine``; returns it as a dict."""
    if not isinstance(spec, dict):
        raise ValueError(f"refine must be a dict like {{'stages': ['runs/deeppose_stage1']}}, got {spec!r}")
    unknown = sorted(set(spec) - set(REFINE_KEYS))
    if unknown:
        raise ValueError(f"unknown refine keys {unknown}; valid keys: {list(REFINE_KEYS)}")
    stages = spec.get("stages")
    if not stages or isinstance(stages, str) or not all(isinstance(s, str) for s in stages):
        raise ValueError(f"refine['stages'] must be a non-empty list of run / preset folders or zoo names, "
                         f"got {stages!r}")
    if spec.get("sigma") is not None and float(spec["sigma"]) <= 0:
        raise ValueError(f"refine['sigma'] must be > 0, got {spec['sigma']}")
    return dict(spec)


class RefinementStage:
    """What the Trainer needs to train psi_s of a DeepPose cascade (``TrainConfig.refine``).

    Args:
        spec: ``TrainConfig.refine`` (see the module docstring).
        model: psi_s, the model being trained (input = the crop size).
        skeleton: the training data's skeleton.
        seed: the run's seed (the displacement draws depend on it and the step).

    Attributes:
        stage_models: the loaded previous stages.
        image_size: side of the training images and evaluation crops.
        objective: :func:`refinement_objective` of ``model``.
    """

    def __init__(self, spec: dict, model: keras.Model, skeleton: Skeleton | str, seed: int = 0):
        self.spec = check_refine_spec(spec)
        self.skeleton = get_skeleton(skeleton)
        self.seed = int(seed)
        self.stage_models = load_stage_models(self.spec["stages"])
        k = self.skeleton.num_joints
        for m in self.stage_models + [model]:
            shape = dict(zip(m.output_names, m.outputs))["coords"].shape if "coords" in m.output_names else None
            if shape is None or shape[1] != k:
                raise ValueError(f"DeepPose refinement: model {m.name!r} must have a 'coords' output with {k} "
                                 f"joints ({self.skeleton.name}); it has outputs {list(m.output_names)}"
                                 + (f" with {shape[1]} joints" if shape is not None else ""))
        self.sigma = float(self.spec.get("sigma") or sigma_of(model))
        shape = self.stage_models[0].inputs[0].shape
        self.image_size = int(self.spec.get("image_size") or shape[1])
        self.crop_size = (int(model.inputs[0].shape[1]), int(model.inputs[0].shape[2]))
        self.objective = refinement_objective(model)
        self.statistics = None
        self._predictor = None

    def prepare(self, train_set: PoseDataset, padding: float, out_dir) -> dict:
        """Load or compute the displacement statistics (cached as ``out_dir/displacements.json``)."""
        cache = Path(out_dir) / "displacements.json"
        source = self.spec.get("statistics")
        stats = None
        if source:
            stats = read_json(Path(source))
        elif cache.is_file():
            saved = read_json(cache)
            if saved.get("stages") == list(self.spec["stages"]) and saved.get("image_size") == self.image_size:
                stats = saved
        if stats is None:
            stats = displacement_statistics(DeepPoseCascade(self.stage_models, self.sigma, self.skeleton),
                                            train_set, self.image_size, padding, self.skeleton)
            stats = {"stages": list(self.spec["stages"]), "image_size": self.image_size, "padding": padding,
                     **{key: np.asarray(v).tolist() for key, v in stats.items()}}
            cache.write_text(json.dumps(stats, indent=1) + "\n")
        k = self.skeleton.num_joints
        mean, cov = np.asarray(stats["mean"], np.float32), np.asarray(stats["cov"], np.float32)
        if mean.shape != (k, 2) or cov.shape != (k, 2, 2):
            raise ValueError(f"displacement statistics {source or cache}: need mean (K, 2) and cov (K, 2, 2) with "
                             f"K = {k}, got {mean.shape} and {cov.shape}")
        self.statistics = stats
        self.mean, self.factor = mean, covariance_factor(cov)
        return stats

    def transform(self, batch, seed) -> dict:
        """Augmented batch -> refinement samples (inside the compiled step); ``seed`` is an int64 scalar."""
        if self.statistics is None:
            raise RuntimeError("RefinementStage.prepare() must run before transform()")
        s = tf.stack([tf.constant(self.seed + _SEED_OFFSET, tf.int64), tf.cast(seed, tf.int64)])
        return simulate_refinement_batch(batch, s, self.mean, self.factor, self.crop_size, self.sigma, self.skeleton)

    def cascade(self, model: keras.Model) -> DeepPoseCascade:
        """The whole cascade: the previous stages followed by ``model``."""
        return DeepPoseCascade(self.stage_models + [model], sigma=self.sigma, skeleton=self.skeleton)

    def predictor(self, model: keras.Model):
        """A :func:`cascade_predictor` of :meth:`cascade` (built once; follows ``model``'s weights)."""
        if self._predictor is None:
            self._predictor = cascade_predictor(self.cascade(model), self.image_size)
        return self._predictor


__all__ = ["REFINE_KEYS", "RefinementStage", "check_refine_spec", "covariance_factor", "displacement_moments",
           "displacement_statistics", "own_joint_l2", "refinement_objective", "simulate_refinement_batch"]
