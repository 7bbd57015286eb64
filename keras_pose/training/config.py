"""Training configuration: a frozen dataclass read from / written to JSON.

Every zoo preset keeps its ``train.json`` next to its model card; ``keras-pose
train --config keras_pose/zoo/presets/cpm_scratch_lsp/train.json`` reproduces it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from keras_pose.data.pipeline import PipelineConfig


def phase_freeze(phase: dict) -> list[str]:
    """The layer names a phase's ``"freeze"`` names (one name or a list; none when absent)."""
    freeze = phase.get("freeze") or []
    if isinstance(freeze, str):
        return [freeze]
    if isinstance(freeze, (list, tuple)) and all(isinstance(n, str) for n in freeze):
        return list(freeze)
    raise ValueError(f"phase {phase.get('name')!r}: 'freeze' must be a layer name or a list of layer names, "
                     f"got {freeze!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    Args:
        model: an architecture preset name (``"cpm_small"``) or a model
            config dict (with its ``"family"``).
        train_data: dataset names: ``"lsp_train"``, ``"lspet"``, ``"mpii_train"``.
        val_every: hold out every ``val_every``-th LSP *train* image (never
            the test split) for validation, checkpoint selection and
            plateau schedules; 0 disables validation.
        pipeline: :class:`PipelineConfig` fields (``input_size`` defaults to
            the model's).
        batch_size: global batch size (split across replicas).
        epochs: total epochs (ignored when ``phases`` is given).
        seed: makes runs repeatable (data order, augmentation, init).
        optimizer: ``{"name": "adam"|"sgd"|"rmsprop"|"adagrad"|"adamw", "learning_rate": ..., **kwargs}``.
        schedule: ``{"name": "constant"|"step"|"cosine"|"plateau", ...}``;
            step: ``boundaries`` (epochs) and ``gamma``; cosine: ``final``
            (fraction); plateau: ``factor`` and ``patience`` (validations);
            all: ``warmup_epochs``, ``restart_warmup_epochs`` (the ramp
            when a resumed run changes the horizon, ``--epochs``).
        loss: keyword arguments of :func:`make_objective` (``weights``,
            ``sigma``, ``prob_weight``...).
        phases: optional list of ``{"name", "epochs", "train": regex of
            variable paths to update (default all), "freeze": a layer name or
            a list of them, "loss_weights": {...}}`` (part heatmap
            regression's detector / regressor / joint phases). ``"freeze":
            "backbone"`` trains the head on a frozen pretrained trunk: the
            named layers are set non-trainable for the phase, so their BN
            layers run in inference mode (Keras' transfer-learning
            convention), and get their own trainable flags back afterwards.
        mixed_precision: Keras dtype policy, e.g. ``"mixed_bfloat16"``, or None.
        clip_norm: global gradient-norm clipping, or None.
        fused_batchnorm: run the training-mode BN layers on TensorFlow's
            fused kernel (:mod:`keras_pose.training.fused_bn`; same maths,
            about 1.4x faster for the EfficientNet-Lite trunks on a 2-core CPU).
        checkpoint_every: steps between resumable checkpoints.
        log_every: steps between log lines.
        val_every_steps: validate every this many steps (0: after every
            epoch); each validation is a row of ``val.csv`` (the learning
            curve: validation PCK against training hours).
        flip_test: use flip test in validation.
        refine: train a DeepPose refinement stage s >= 2 instead of a plain
            model: ``{"stages": [previous stage run / preset folders or zoo
            names], "sigma": crop factor, "image_size": training image side,
            "statistics": optional precomputed displacement JSON}``; see
            :mod:`keras_pose.training.deeppose`. None for ordinary training.
        init_weights: start from these weights instead of a random
            initialisation (same architecture): a ``.weights.h5`` file, a run
            folder (its ``best.weights.h5``) or a zoo preset name / folder.
            ``--resume`` still restores the run's own checkpoint.
        init_backbone: start the model's pretrained trunk (its nested
            ``backbone`` layer) from the trunk of another model of any family
            on the same trunk type: a zoo preset name / folder or a run folder
            (e.g. the flagship's pose-trained trunk for a DeepPose head); the
            rest of the model starts as built. Not together with
            ``init_weights``.
    """

    model: Any = "cpm_small"
    train_data: tuple = ("lsp_train", "lspet")
    val_every: int = 10
    pipeline: dict = dataclasses.field(default_factory=dict)
    batch_size: int = 16
    epochs: int = 10
    seed: int = 0
    optimizer: dict = dataclasses.field(default_factory=lambda: {"name": "adam", "learning_rate": 1e-3})
    schedule: dict = dataclasses.field(default_factory=lambda: {"name": "constant"})
    loss: dict = dataclasses.field(default_factory=dict)
    phases: tuple = ()
    mixed_precision: str | None = None
    clip_norm: float | None = None
    fused_batchnorm: bool = True
    checkpoint_every: int = 500
    log_every: int = 50
    val_every_steps: int = 0
    flip_test: bool = False
    refine: dict | None = None  # DeepPose refinement stage (keras_pose.training.deeppose)
    init_weights: str | None = None
    init_backbone: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "train_data", tuple(self.train_data))
        object.__setattr__(self, "phases", tuple(dict(p) for p in self.phases))
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {self.batch_size}, {self.epochs}")
        if self.init_weights and self.init_backbone:
            raise ValueError(f"init_weights ({self.init_weights!r}) and init_backbone ({self.init_backbone!r}) "
                             "both set: init_weights already gives the trunk its weights; keep one")
        for p in self.phases:
            if "epochs" not in p:
                raise ValueError(f"every phase needs 'epochs', got {p}")
            phase_freeze(p)  # a clear error for a bad 'freeze' before any training starts
        if self.refine is not None:  # DeepPose refinement stage
            from keras_pose.training.deeppose import check_refine_spec

            object.__setattr__(self, "refine", check_refine_spec(self.refine))

    @property
    def total_epochs(self) -> int:
        return sum(int(p["epochs"]) for p in self.phases) if self.phases else self.epochs

    def phase_at(self, epoch: int) -> dict:
        """The phase that epoch ``epoch`` (0-based) belongs to ({} without phases)."""
        start = 0
        for p in self.phases:
            if epoch < start + int(p["epochs"]):
                return p
            start += int(p["epochs"])
        return self.phases[-1] if self.phases else {}

    def pipeline_config(self, input_size: int) -> PipelineConfig:
        d = dict(self.pipeline)
        d.setdefault("input_size", input_size)
        if d["input_size"] != input_size:
            raise ValueError(f"pipeline.input_size {d['input_size']} differs from the model's input size {input_size}")
        return PipelineConfig.from_dict(d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train_data"] = list(self.train_data)
        d["phases"] = [dict(p) for p in self.phases]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    @classmethod
    def load(cls, path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"training config {path} is not valid JSON: {e}") from e
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"training config {path}: {e}") from e

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
