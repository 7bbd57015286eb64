"""DeepPose cascades in the zoo: loading the stages of a cascade preset or refinement run, and publishing one.

A cascade is published as one zoo preset (:func:`save_cascade_preset`) whose
``preset.json`` describes stage 1 as the preset model (so
:func:`keras_pose.zoo.load` still returns a plain Keras model) plus a
``"cascade"`` entry listing every stage; :func:`load_cascade` rebuilds the
:class:`~keras_pose.models.deeppose.DeepPoseCascade` from such a preset or
from a refinement run folder (:mod:`keras_pose.training.deeppose` trains
those), and :func:`cascade_predictor` makes it usable with
:func:`keras_pose.evaluation.evaluate_model`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import tensorflow as tf

from keras_pose.files import sha256
from keras_pose.models.common import model_config
from keras_pose.models.deeppose import DeepPoseCascade


def read_json(path: Path) -> dict:
    """A JSON file's contents; invalid JSON is an error naming the file."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def _resolve(entry, base: Path | None = None) -> Path:
    """A stage entry (folder path or zoo preset name) -> its folder."""
    from keras_pose import zoo  # the parent package (imported here: it imports this module lazily)

    path = Path(entry)
    candidates = [path]
    if base is not None and not path.is_absolute():  # e.g. "runs/stage1" recorded in runs/stage2/train.json
        base = Path(base).resolve()
        candidates += [folder / path for folder in (base, *base.parents)]
    for c in candidates:
        if c.is_dir():
            return c
    if len(path.parts) == 1:
        return zoo.get_preset(str(entry)).folder  # KeyError listing the valid names
    raise FileNotFoundError(f"stage {str(entry)!r}: no such run or preset folder "
                            f"(looked in {[str(c) for c in candidates]})")


def _cascade_spec(folder: Path) -> dict | None:
    """The ``cascade`` entry of a cascade preset folder, else None."""
    path = folder / "preset.json"
    return read_json(path).get("cascade") if path.is_file() else None


def _refine_spec(folder: Path) -> dict | None:
    """The ``refine`` entry of a refinement run's ``train.json``, else None."""
    path = folder / "train.json"
    if (folder / "preset.json").is_file() or not path.is_file():
        return None
    return read_json(path).get("refine")


def cascade_folders(run) -> list[Path]:
    """The folders of a refinement run's cascade in order: the stages it refines (its ``refine["stages"]``,
    one folder per entry), then the run itself."""
    run = _resolve(run)
    refine = _refine_spec(run)
    return [_resolve(e, run) for e in (refine["stages"] if refine else [])] + [run]


def load_stage_models(entries: Sequence, base: Path | None = None) -> list:
    """Stage models from run / preset folders or zoo names, in order.

    Each entry is one stage, loaded with :func:`keras_pose.zoo.load`, except
    a cascade preset, which expands to all of its stages. Relative paths are
    tried from the working directory, then from ``base`` and its ancestors;
    a bare name that is not a folder is a zoo preset name.
    """
    from keras_pose import zoo  # the parent package (imported here: it imports this module lazily)

    if isinstance(entries, (str, os.PathLike)):
        entries = [entries]
    models = []
    for entry in entries:
        folder = _resolve(entry, base)
        if _cascade_spec(folder) is not None:
            models.extend(load_cascade(folder).stage_models)
        else:
            models.append(zoo.load(folder))
    if not models:
        raise ValueError("a DeepPose cascade needs at least one stage; 'stages' is empty")
    return models


def sigma_of(model, default=2.0) -> float:
    """The DeepPose crop factor sigma of a model's stored config (``default`` if it has none)."""
    try:
        return float(model_config(model).get("sigma", default))
    except ValueError:
        return default


def skeleton_of(model, default="lsp14") -> str:
    """The skeleton name of a model's stored config (``default`` if it has none)."""
    try:
        return str(model_config(model).get("skeleton", default))
    except ValueError:
        return default


def load_cascade(name_or_folder) -> DeepPoseCascade:
    """A whole :class:`DeepPoseCascade` from a cascade preset, a refinement run, or a one-stage model.

    - a cascade preset (name or folder whose ``preset.json`` has ``"cascade"``):
      every stage's weights are checked against their SHA-256 first;
    - a refinement run folder (``train.json`` with ``refine``): the stages it
      refines (``refine["stages"]``) followed by its own psi_s;
    - any other preset or run: a one-stage cascade.
    """
    from keras_pose import zoo  # the parent package (imported here: it imports this module lazily)

    folder = _resolve(name_or_folder)
    spec = _cascade_spec(folder)
    if spec is not None:
        return _load_cascade_preset(folder, spec)
    refine = _refine_spec(folder)
    model = zoo.load(folder)
    if refine is None:
        return DeepPoseCascade([model], sigma=sigma_of(model), skeleton=skeleton_of(model))
    previous = load_stage_models(refine["stages"], base=folder)
    sigma = float(refine.get("sigma") or sigma_of(model))
    return DeepPoseCascade(previous + [model], sigma=sigma, skeleton=skeleton_of(previous[0]))


def _load_cascade_preset(folder: Path, spec: dict) -> DeepPoseCascade:
    from keras_pose import zoo  # the parent package (imported here: it imports this module lazily)

    preset = zoo.read_preset(folder)
    name = preset.name
    stages = spec.get("stages") or []
    if not stages:
        raise ValueError(f"cascade preset {folder / 'preset.json'}: 'cascade.stages' is empty")
    models = []
    for s, st in enumerate(stages, start=1):
        missing = [k for k in ("model", "weights", "sha256") if k not in st]
        if missing:
            raise ValueError(f"cascade preset {folder / 'preset.json'}: stage {s} lacks {missing}")
        path = zoo.weights_file(preset, stage=st)  # checked; looked up (or downloaded) like any preset's weights
        model = zoo.build_from_dict(st["model"])
        try:
            model.load_weights(path)
        except Exception as e:  # h5py / keras raise several types for a bad file
            raise ValueError(f"cascade {name!r}: cannot load stage {s} weights {path}: {e}") from e
        models.append(model)
    return DeepPoseCascade(models, sigma=float(spec.get("sigma", 2.0)), skeleton=spec.get("skeleton", "lsp14"))


def save_cascade_preset(stage_folders, out_folder, name: str, description: str, sigma: float | None = None,
                        architecture: str | None = None) -> Path:
    """Publish a cascade as one zoo preset.

    Args:
        stage_folders: the stages in order (run or preset folders, zoo names;
            see :func:`load_stage_models`), or one refinement run folder,
            which stands for its whole cascade (:func:`load_cascade`).
        out_folder: the preset folder to write.
        name, description: the preset's name and one-line description.
        sigma: crop factor; default: the one the last refinement run trained
            with, else the stage model config's.
        architecture: the architecture preset name of stage 1, if any.

    Writes ``stage<s>.weights.h5`` for every stage, ``stage<s>_train.json``
    (each stage's training config, when the stage came from a folder that
    has one) and ``preset.json``: stage 1 is the preset's ``model`` /
    ``weights`` (so :func:`keras_pose.zoo.load` returns psi_1) and
    ``"cascade": {"sigma", "skeleton", "stages": [{"model", "weights",
    "sha256", "size_bytes"}, ...]}`` describes the whole cascade.

    Returns:
        the preset folder.
    """
    from keras_pose import zoo  # the parent package (imported here: it imports this module lazily)

    if isinstance(stage_folders, (str, os.PathLike)):
        cascade = load_cascade(stage_folders)
        folders = cascade_folders(stage_folders)
    else:
        folders = [_resolve(f) for f in stage_folders]
        models = load_stage_models(folders)
        run_sigmas = [r.get("sigma") for r in map(_refine_spec, folders) if r and r.get("sigma")]
        cascade = DeepPoseCascade(models, sigma=run_sigmas[-1] if run_sigmas else sigma_of(models[-1]),
                                  skeleton=skeleton_of(models[0]))
    sigma = float(sigma if sigma is not None else cascade.sigma)
    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    stages = []
    for s, model in enumerate(cascade.stage_models, start=1):
        path = out / f"stage{s}.weights.h5"
        model.save_weights(path)
        stages.append({"model": model_config(model), "weights": path.name, "sha256": sha256(path),
                       "size_bytes": path.stat().st_size})
    if len(folders) == len(stages):  # one folder per stage: keep each stage's training config
        for s, folder in enumerate(folders, start=1):
            if (folder / "train.json").is_file():
                shutil.copyfile(folder / "train.json", out / f"stage{s}_train.json")
    first = stages[0]
    d = {"name": name, "description": description, "architecture": architecture, "model": first["model"],
         "weights": first["weights"], "sha256": first["sha256"], "size_bytes": first["size_bytes"],
         "cascade": {"sigma": sigma, "skeleton": cascade.skeleton.name, "stages": stages}}
    (out / "preset.json").write_text(json.dumps(d, indent=2) + "\n")
    return out


def cascade_predictor(cascade: DeepPoseCascade, input_size: int, num_stages: int | None = None):
    """A batch predictor ``images (B, S, S, 3) -> (keypoints (B, K, 2) input px, scores (B, K))``.

    Compiled once for ``S = input_size``; use it with
    ``keras_pose.evaluation.evaluate_model(predict, dataset, input_size=S)``.
    """
    spec = tf.TensorSpec((None, int(input_size), int(input_size), 3), tf.float32)

    @tf.function(input_signature=[spec])
    def predict(images):
        out = cascade(images, num_stages=num_stages)
        return tf.cast(out["keypoints"], tf.float32), tf.cast(out["scores"], tf.float32)

    return lambda images: tuple(t.numpy() for t in predict(tf.convert_to_tensor(images, tf.float32)))


__all__ = ["cascade_folders", "cascade_predictor", "load_cascade", "load_stage_models", "read_json",
           "save_cascade_preset", "sigma_of", "skeleton_of"]
