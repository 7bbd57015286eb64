"""The model zoo: one registry, one loader.

Each preset is a folder ``<zoo folder>/<name>/`` holding ``preset.json``
(description, model config, weights file and its SHA-256, optionally the
weights' ``"url"``), the weights, the training config (``train.json``), the
model card (``README.md``) and the measured metrics (``metrics.json``,
written by ``keras-pose evaluate``).

Example:
    >>> import keras_pose
    >>> keras_pose.zoo.list()                       # doctest: +SKIP
    >>> model = keras_pose.zoo.load("cpm_lsp")      # doctest: +SKIP
    >>> model(images)["keypoints"]                  # (B, 14, 2) in input pixels  # doctest: +SKIP

The zoo folder is ``$KERAS_POSE_ZOO`` if set, else the package's own
``keras_pose/zoo/presets/`` (package data: a wheel or ``pip install .``
ships the presets with their weights; an editable install reads them from
the repository, where ``keras-pose zoo-add`` writes new ones). ``load`` also
takes a path to any preset folder or training run directory.

A preset's weights file (and each stage file of a DeepPose cascade) is
looked up in this order (:func:`weights_file`):

1. the preset's own folder (the folder given to ``load``, or the preset in
   the zoo folder);
2. the installed package's preset folder ``keras_pose/zoo/presets/<name>/``;
3. the user's cache ``$KERAS_HOME/keras_pose/zoo/<name>/`` (``~/.keras`` by
   default);
4. a download from the preset's ``"url"`` (a cascade stage's own ``"url"``)
   into that cache, checked against the SHA-256 before it is kept.

A file found in 1-3 is checked against its SHA-256 before it is used; a
mismatch is an error naming the file, never a fallback to the next place.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import shutil
from pathlib import Path

from keras_pose.files import DownloadError, cache_dir, download, sha256

ENV_VAR = "KERAS_POSE_ZOO"
#: The presets shipped with the package (package data).
PACKAGE_ZOO = Path(__file__).resolve().parent / "presets"
_ROOT = Path(__file__).resolve().parents[2]
#: The repository root when the package runs from a source checkout (an editable install), else None.
PROJECT_ROOT = _ROOT if (_ROOT / "setup.cfg").is_file() and (_ROOT / "docs").is_dir() else None


def zoo_dir() -> Path:
    """The folder holding the presets: ``$KERAS_POSE_ZOO`` if set, else :data:`PACKAGE_ZOO`."""
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else PACKAGE_ZOO


def zoo_cache_dir() -> Path:
    """Where downloaded preset weights are kept: ``$KERAS_HOME/keras_pose/zoo``."""
    return cache_dir() / "zoo"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A zoo entry (the contents of ``preset.json`` plus its folder)."""

    name: str
    description: str
    folder: Path
    model: dict
    weights: str
    sha256: str
    architecture: str | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    cascade: dict | None = None  # DeepPose cascades: {"sigma", "skeleton", "stages": [...]}; the model is stage 1
    url: str | None = None  # where the weights file can be downloaded from, when it is not shipped

    @property
    def weights_path(self) -> Path:
        """The weights file in the preset's own folder (it may live elsewhere: :func:`weights_file`)."""
        return self.folder / self.weights

    @property
    def family(self) -> str:
        return self.model["family"]


def read_preset(folder) -> Preset:
    """The preset stored in ``folder`` (its ``preset.json`` and ``metrics.json``)."""
    folder = Path(folder)
    path = folder / "preset.json"
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a zoo preset: {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"zoo preset file {path} is not valid JSON: {e}") from e
    missing = [k for k in ("name", "description", "model", "weights", "sha256") if k not in d]
    if missing:
        raise ValueError(f"zoo preset file {path} lacks {missing}")
    metrics = {}
    if (folder / "metrics.json").is_file():
        metrics = json.loads((folder / "metrics.json").read_text())
    return Preset(d["name"], d["description"], folder, d["model"], d["weights"], d["sha256"],
                  d.get("architecture"), metrics, d.get("cascade"), d.get("url"))



def presets() -> dict[str, Preset]:
    """Every preset in the zoo folder, by name."""
    root = zoo_dir()
    out = {}
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if (p / "preset.json").is_file()):
            p = read_preset(folder)
            out[p.name] = p
    return out


def get_preset(name: str) -> Preset:
    """A preset by name (an unknown name is an error that lists the valid ones)."""
    all_presets = presets()
    if name not in all_presets:
        valid = ", ".join(sorted(all_presets)) or "(none: the zoo folder has no presets)"
        raise KeyError(f"unknown zoo model {name!r}; valid names: {valid} (zoo folder: {zoo_dir()})")
    return all_presets[name]


def preset_folder(name_or_path) -> Path | None:
    """A preset / run folder as given, or a zoo name's folder (one scan of the zoo); None for anything else."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    preset = presets().get(str(name_or_path))
    return preset.folder if preset is not None else None


def list() -> builtins.list[dict]:  # noqa: A001 - the public API is keras_pose.zoo.list()
    """One row per preset: name, family, description, measured accuracy (PCK@0.2, LSP test)."""
    rows = []
    for p in presets().values():
        m = p.metrics
        rows.append({"name": p.name, "family": p.family, "architecture": p.architecture,
                     "input": p.model.get("input_size"), "stages": len(p.cascade["stages"]) if p.cascade else 1,
                     "pck@0.2": m.get("pck"), "pck@0.2 flip": m.get("pck_flip"),
                     "description": p.description})
    return rows


def _weights_entry(preset: Preset, stage: dict | None) -> tuple[str, str, str | None]:
    """(file name, SHA-256, url) of the preset's weights, or of a cascade ``stage`` entry of its preset.json."""
    if stage is None:
        return preset.weights, preset.sha256, preset.url
    missing = [k for k in ("weights", "sha256") if k not in stage]
    if missing:
        raise ValueError(f"zoo model {preset.name!r}: a cascade stage in {preset.folder / 'preset.json'} "
                         f"lacks {missing}")
    url = stage.get("url") or (preset.url if stage["weights"] == preset.weights else None)
    return stage["weights"], stage["sha256"], url


def _label(preset: Preset, stage: dict | None) -> str:
    """How errors name a preset's weights: "zoo model 'x': weights file" or "cascade 'x': stage 2 weights file"."""
    stages = (preset.cascade or {}).get("stages") or []
    s = next((i for i, st in enumerate(stages, start=1) if st == stage), None) if stage is not None else None
    return f"cascade {preset.name!r}: stage {s} weights file" if s else f"zoo model {preset.name!r}: weights file"


def weights_places(preset: Preset, stage: dict | None = None) -> builtins.list[Path]:
    """Where a preset's weights file (or a cascade stage's) is looked for, in order (the module docstring)."""
    filename = _weights_entry(preset, stage)[0]
    places = [preset.folder / filename, PACKAGE_ZOO / preset.name / filename,
              zoo_cache_dir() / preset.name / filename]
    out = []
    for p in places:
        if p.resolve() not in {q.resolve() for q in out}:
            out.append(p)
    return out


def _in_cache(path: Path) -> bool:
    return path.resolve().is_relative_to(zoo_cache_dir().resolve())


def verify(preset: Preset, path=None, stage: dict | None = None) -> None:
    """Check a weights file of ``preset`` against its recorded SHA-256; raise a clear error naming it if it differs.

    Args:
        preset: the preset.
        path: the file to check (default: the weights in the preset's own folder).
        stage: a cascade stage entry of the preset (its ``"weights"`` and ``"sha256"``); default: the
            preset's own weights.
    """
    filename, expected, url = _weights_entry(preset, stage)
    path = Path(path) if path is not None else preset.folder / filename
    if not path.is_file():
        raise FileNotFoundError(f"{_label(preset, stage)} {path} is missing")
    digest = sha256(path)
    if digest != expected:
        if _in_cache(path):
            fix = (f"delete {path} so that it is downloaded again from {url}" if url else
                   f"delete {path} and put a good copy there")
        else:
            fix = "restore it from the repository or reinstall keras_pose"
        raise ValueError(f"{_label(preset, stage)} {path} is corrupt or was changed "
                         f"(SHA-256 {digest[:12]}..., expected {expected[:12]}...); {fix}")


def weights_file(preset: Preset, stage: dict | None = None) -> Path:
    """The checked local weights file of a preset (or of a cascade ``stage`` entry), downloaded if need be.

    Looks in :func:`weights_places` in order; the first file found is checked
    with :func:`verify` (a mismatch is an error, not a reason to look further).
    Found nowhere, the file is downloaded from the preset's ``"url"`` into the
    cache (:func:`keras_pose.files.download`: SHA-256 checked before it is
    kept). Without a url, or when the download fails, one error lists every
    place looked in and how to get the file.
    """
    filename, expected, url = _weights_entry(preset, stage)
    places = weights_places(preset, stage)
    for path in places:
        if path.is_file():
            verify(preset, path, stage)
            return path
    label, cached = _label(preset, stage), zoo_cache_dir() / preset.name / filename
    looked = "; ".join(str(p) for p in places)
    shipped = (PACKAGE_ZOO / preset.name).is_dir()
    how = [f"reinstall keras_pose (it ships {preset.name} with its weights)"] if shipped else []
    how += [f"set ${ENV_VAR} to a zoo folder that has {preset.name}/{filename}", f"put the file at {cached}"]
    how = ", ".join(how[:-1]) + " or " + how[-1]
    if not url:
        raise FileNotFoundError(f"{label} {filename} is missing (looked in: {looked}; its preset.json has no "
                                f"url to download it from); to get it, {how}")
    try:
        return download(url, cached, expected)
    except DownloadError as e:
        raise FileNotFoundError(f"{label} {filename} is missing (looked in: {looked}) and {e}; check the "
                                f"connection and retry, or {how}") from e
    except ValueError as e:  # a wrong checksum: nothing was kept
        raise ValueError(f"{label} {filename}: {e}") from e


def build_from_dict(model_config: dict):
    """Build an (untrained) model from a stored model config dict (trunks without their ImageNet weights:
    the stored weights loaded next hold them)."""
    from keras_pose.models.registry import build_model, config_from_dict

    return build_model(config_from_dict(model_config), pretrained=False)


def load(name_or_path: str | os.PathLike, cascade: bool = False):
    """A trained model from the zoo (by name) or from a preset / run folder.

    A run folder (``keras-pose train --out``) is loaded from its
    ``model.json`` and ``best.weights.h5`` (else ``final.weights.h5``).

    A DeepPose cascade preset (or refinement run) gives its stage-1 network
    psi_1, the one to fine-tune; with ``cascade=True`` it gives one Keras
    model that runs every stage (crops (B, S, S, 3) -> ``keypoints``,
    ``scores``; :func:`keras_pose.models.deeppose.cascade_model`), the one to
    predict with and export. ``cascade=True`` changes nothing for other models.
    """
    if cascade and is_cascade(name_or_path):
        from keras_pose.models.deeppose import cascade_model

        name = Path(name_or_path).name if Path(name_or_path).is_dir() else str(name_or_path)
        return cascade_model(load_cascade(name_or_path), name=f"{name}_cascade")
    path = Path(name_or_path)
    if path.is_dir() and not (path / "preset.json").is_file():
        return _load_run(path)
    config, weights = resolve(name_or_path)
    model = build_from_dict(config)
    try:
        model.load_weights(weights)
    except Exception as e:  # h5py / keras raise several types for a bad file
        raise ValueError(f"zoo model {str(name_or_path)!r}: cannot load weights {weights}: {e}") from e
    return model


def resolve(name_or_path: str | os.PathLike) -> tuple[dict, Path]:
    """(model config, weights file) of a zoo name, a preset folder or a training run folder.

    A preset's weights are verified against their checksum; a run's are its
    ``best.weights.h5`` (else ``final.weights.h5``, else the latest checkpoint).
    """
    path = Path(name_or_path)
    if path.is_dir() and not (path / "preset.json").is_file():
        cfg = path / "model.json"
        if not cfg.is_file():
            raise FileNotFoundError(f"{path} is neither a zoo preset (no preset.json) nor a training run "
                                    "(no model.json)")
        for name in ("best.weights.h5", "final.weights.h5", "checkpoint/model.weights.h5"):
            if (path / name).is_file():
                return json.loads(cfg.read_text()), path / name
        raise FileNotFoundError(f"training run {path} has no weights (best.weights.h5, final.weights.h5)")
    preset = read_preset(path) if path.is_dir() else get_preset(str(name_or_path))
    return preset.model, weights_file(preset)


def load_cascade(name_or_path):
    """A DeepPose cascade (all its stages, checksums verified) from a cascade preset or refinement run."""
    from keras_pose.zoo.cascades import load_cascade as _load

    return _load(name_or_path)


def is_cascade(name_or_path) -> bool:
    """True for a cascade preset, or a training run that refines earlier DeepPose stages."""
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "preset.json").is_file():
            return bool(json.loads((path / "preset.json").read_text()).get("cascade"))
        train = path / "train.json"
        return train.is_file() and bool(json.loads(train.read_text()).get("refine"))
    preset = presets().get(str(name_or_path))
    return preset is not None and preset.cascade is not None


def _load_run(folder: Path):
    config, weights = resolve(folder)
    model = build_from_dict(config)
    model.load_weights(weights)
    return model


def save_preset(model, folder, name: str, description: str, architecture: str | None = None,
                train_config=None, url: str | None = None) -> Preset:
    """Write a preset folder: weights (float32), model config, checksum, training config.

    ``url``: where the weights file will be downloadable from (recorded as
    ``"url"``), for a preset whose weights are hosted rather than shipped.
    """
    from keras_pose.models.common import model_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.weights.h5"
    model.save_weights(weights)
    d = {"name": name, "description": description, "architecture": architecture, "model": model_config(model),
         "weights": weights.name, "sha256": sha256(weights), "size_bytes": weights.stat().st_size}
    if url is not None:
        d["url"] = url
    (folder / "preset.json").write_text(json.dumps(d, indent=2) + "\n")
    if train_config is not None:
        src = Path(train_config)
        if src.resolve() != (folder / "train.json").resolve():
            shutil.copyfile(src, folder / "train.json")
    return read_preset(folder)


def _csv_rows(path: Path) -> builtins.list[dict]:
    import csv

    if not path.is_file():
        return []
    with path.open() as f:
        return builtins.list(csv.DictReader(f))


def _recorded_state(run: Path) -> dict:
    """What a run's ``checkpoint/state.json`` would say (step, hours, best validation PCK and its step), read
    from the record that stays once the resumable state is removed: ``log.csv`` / ``steps.csv`` (the last
    logged step and its training hours) and ``val.csv`` (the best PCK; the trainer keeps the first of equal
    bests)."""
    logged = [r for name in ("log.csv", "steps.csv") for r in _csv_rows(run / name)]
    if not logged:
        raise FileNotFoundError(f"{run} is not a training run folder: it has neither checkpoint/state.json nor "
                                "a record of its steps (log.csv, steps.csv)")
    last = max(logged, key=lambda r: int(r["step"]))
    state = {"step": int(last["step"]), "hours": float(last["train_hours"])}
    val = _csv_rows(run / "val.csv")
    if val:
        best = max(val, key=lambda r: float(r["val_pck"]))  # max keeps the first of equal values
        state.update(best_pck=float(best["val_pck"]), best_step=int(best["step"]))
    return state


def _run_summary(run: Path) -> dict:
    """Steps, epochs, training hours and best validation PCK of a training run folder (from its
    ``checkpoint/state.json``, else from its record: :func:`_recorded_state`)."""
    state_path = run / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else _recorded_state(run)
    train = json.loads((run / "train.json").read_text())
    steps_per_epoch = None
    rows = _csv_rows(run / "log.csv")
    if rows:
        steps_per_epoch = int(rows[0]["step"]) / float(rows[0]["epoch"])
    return {"steps": state["step"], "train_hours": state.get("hours"), "best_pck": state.get("best_pck"),
            "best_step": state.get("best_step"),
            "epochs": state["step"] / steps_per_epoch if steps_per_epoch else None,
            "batch_size": train.get("batch_size"), "run": str(run)}


def _joined_legs(runs: builtins.list[Path], last: dict, curve_file: Path) -> dict:
    """The summary of a preset trained in legs: ``runs`` (earlier legs, oldest first), then the run whose
    summary is ``last``. Steps, epochs and hours add up; the best validation is the last leg's. Writes the
    learning curve to ``curve_file``: each leg's ``val.csv`` follows the previous legs' (its step, epoch and
    hours offset by theirs)."""
    import csv

    legs = [_run_summary(r) for r in runs] + [dict(last)]
    step, epoch, hours = 0, 0.0, 0.0
    with curve_file.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["step", "epoch", "train_hours", "val_pck"])
        for run, leg in zip([*runs, Path(last["run"])], legs):
            out.writerows([int(r["step"]) + step, float(r["epoch"]) + epoch, float(r["train_hours"]) + hours,
                           r["val_pck"]] for r in _csv_rows(run / "val.csv"))
            step, epoch = step + leg["steps"], epoch + (leg["epochs"] or 0.0)
            hours += leg["train_hours"] or 0.0
    return dict(last, steps=step, epochs=epoch, train_hours=hours,
                best_step=sum(leg["steps"] for leg in legs[:-1]) + last["best_step"], legs=legs)


def add_from_run(run_dir, name: str, description: str, folder=None, after=()) -> Preset:
    """Make a preset from a finished training run (``keras-pose zoo-add``).

    Copies the best-validation weights (float32), the model config, the
    training config, a training summary (``training.json``) and the learning
    curve (``val.csv`` -> ``learning_curve.csv``). A DeepPose refinement run
    publishes its whole cascade; the preset folder's ``train.json`` (stage 1's
    config) is kept, and ``training.json`` lists every stage's run summary
    under ``"stages"``. ``after``: the runs that trained the weights this run
    started from (earlier legs, oldest first; ``zoo-add --after``): the summary
    adds them up and lists every leg under ``"legs"``, and the learning curve
    runs through all of them.
    """
    run = Path(run_dir)
    summary = _run_summary(run)
    train = json.loads((run / "train.json").read_text())
    folder = Path(folder) if folder else zoo_dir() / name
    arch = train["model"] if isinstance(train["model"], str) else None
    if train.get("refine"):  # a DeepPose refinement stage: publish the whole cascade
        from keras_pose.zoo.cascades import cascade_folders, save_cascade_preset

        save_cascade_preset(run, folder, name, description, architecture=arch)
        if not (folder / "train.json").is_file():
            shutil.copyfile(run / "train.json", folder / "train.json")
        summary["stages"] = [_run_summary(f) for f in cascade_folders(run) if (f / "checkpoint" / "state.json").is_file()]
        summary["train_hours"] = sum(s["train_hours"] or 0.0 for s in summary["stages"])
        preset = read_preset(folder)
    else:
        preset = save_preset(_load_run(run), folder, name, description, architecture=arch,
                             train_config=run / "train.json")
    if after:
        summary = _joined_legs([Path(r) for r in after], summary, folder / "learning_curve.csv")
    elif (run / "val.csv").is_file():
        shutil.copyfile(run / "val.csv", folder / "learning_curve.csv")
    (folder / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return preset
