"""Model cards and the zoo table, generated from a preset folder's committed files.

A preset folder holds what the commands wrote: ``preset.json`` (``keras-pose
zoo-add``), ``train.json``, ``training.json`` (run summary: epochs, steps,
training hours), ``learning_curve.csv`` (the run's ``val.csv``),
``metrics.json`` / ``metrics.md`` (``keras-pose evaluate``) and the card's
hand-written part ``notes.md`` (how the preset differs from the paper). The
card (``README.md``) and ``docs/zoo.md`` are rebuilt from these by
``keras-pose zoo-card``, so no number in them is typed by hand.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from keras_pose.zoo import ENV_VAR, PROJECT_ROOT, Preset, get_preset, presets, weights_file

GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total")

#: The zoo's accuracy floors (issue #16): PCK@0.2 on the LSP test split, single crop, per family.
FLOORS = {"cpm": 80.0, "part_heatmap": 80.0, "softargmax": 80.0, "deeppose": 70.0}
#: The flagship preset (the README demo's model once it is on a pretrained trunk) has its own, higher floor.
#: It is soft-argmax on the ImageNet EfficientNet-Lite0 trunk; the from-scratch soft-argmax preset that
#: carried the name first is ``softargmax_scratch_lsp``.
FLAGSHIP, FLAGSHIP_FLOOR = "softargmax_lsp", 85.0


def preset_floor(preset: Preset) -> float | None:
    """The accuracy floor of ``preset``: the flagship's, else its family's (None: no floor)."""
    return FLAGSHIP_FLOOR if preset.name == FLAGSHIP else FLOORS.get(preset.family)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


#: The user-facing protocols a card reports beside the papers' centred crop: (report file stem, row label).
WHOLE_IMAGE_REPORTS = (("metrics_image", "whole image (`--crop image`)"),
                       ("metrics_image_refine1", "whole image, re-cropped once (`--crop image --refine 1`)"),
                       ("metrics_image_search_refine1", "whole image, zoom-outs searched, re-cropped once "
                                                        "(`--crop image --search --refine 1`)"),
                       ("metrics_portrait", "head-and-shoulders portrait (`--crop portrait`)"),
                       ("metrics_portrait_refine1", "head-and-shoulders portrait, re-cropped once "
                                                    "(`--crop portrait --refine 1`)"),
                       ("metrics_portrait_search_refine1", "portrait, zoom-outs searched, re-cropped once "
                                                           "(`--crop portrait --search --refine 1`)"))


def protocol_reports(folder: Path) -> list[tuple[str, dict]]:
    """(label, report) of every LSP test report in a preset folder: the centred crop (``metrics.json``), then
    the whole-image protocols of :data:`WHOLE_IMAGE_REPORTS` that were measured."""
    out = [("centred on the person (the papers' protocol)", _read_json(folder / "metrics.json"))]
    out += [(label, _read_json(folder / f"{stem}.json")) for stem, label in WHOLE_IMAGE_REPORTS]
    return [(label, r) for label, r in out if r]


def _score_quality(reports: list[tuple[str, dict]]) -> list[str]:
    """The card's per-joint score section: ROC AUC and ECE per protocol, when the reports have them."""
    rows = [(label, r["confidence"]) for label, r in reports if r.get("confidence")]
    if not rows:
        return []
    lines = ["## Per-joint scores", "",
             "How well a joint's score tells a joint correct at PCK@0.2 from a wrong one (single crop, LSP test): "
             "ROC AUC (0.5: the score says nothing, 1: perfect separation) and, for scores in [0, 1], the expected "
             "calibration error. `keras-pose visualize --kind reliability --models <preset> [--report "
             "metrics_image]` draws the reliability diagram.", "",
             "| crop | ROC AUC | ECE | scores |", "|---|---|---|---|"]
    for label, c in rows:
        ece = f"{c['ece']:.3f}" if "ece" in c else "(not in [0, 1])"
        lines.append(f"| {label} | {c['auroc']:.3f} | {ece} | {c['score_min']:.2f} to {c['score_max']:.2f} |")
    present = [(label, r) for label, r in reports if r.get("presence")]
    if present:
        lines += ["", "On the portraits (each LSP test image cut to its person's head and shoulders; `keras-pose "
                  "evaluate --crop portrait`): PCK@0.2 of the joints in the picture pooled (the accuracy table's "
                  "Total averages its joints, among them the few hips, knees and ankles in a picture), how well the "
                  "score tells them from the annotated joints outside it, and how many of each `keras-pose "
                  "predict` draws at the preset's threshold:", "",
                  "| crop | PCK, pooled | ROC AUC | threshold | drawn, in the picture | drawn, outside it |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {label} | {r['pck']:.1f} | {p['auroc']:.3f} | {p['threshold']:.3g} | {100 * p['shown_in']:.0f}% "
                  f"of {p['joints_in']} | {100 * p['shown_out']:.0f}% of {p['joints_out']} |"
                  for label, r in present for p in [r["presence"]]]
    return lines + [""]


def learning_curve(folder: Path) -> list[dict]:
    """Rows of a preset's learning_curve.csv (step, epoch, train_hours, val_pck)."""
    path = folder / "learning_curve.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_learning_curve(folder: Path) -> Path | None:
    """learning_curve.png: validation PCK against training hours (no dataset pixels, safe to commit)."""
    rows = learning_curve(folder)
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), dpi=110)
    ax = fig.add_subplot(111)
    ax.plot([r["train_hours"] for r in rows], [r["val_pck"] for r in rows], marker=".")
    ax.set_xlabel("training time on this machine (CPU hours)")
    ax.set_ylabel("validation PCK@0.2 (%)")
    ax.set_title(f"{folder.name}: learning curve (held-out LSP train images)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = folder / "learning_curve.png"
    fig.savefig(out)
    return out


def extrapolate_to_floor(rows: list[dict], floor: float, test_pck: float | None = None) -> dict | None:
    """What more training would buy, read off a learning curve: a log-linear fit over its second half.

    Fits validation PCK = a + b ln(hours) to the points from half the run's
    training hours on, and solves for the hours at which it reaches
    ``floor``. The floor is on the LSP test split and the curve is on
    held-out training images, so when ``test_pck`` is given the target is
    shifted by the gap between the run's best validation PCK and its test
    PCK. This is an optimistic extrapolation (the end of a cosine schedule
    gains from the decaying learning rate, and accuracy saturates); it says
    how far off the floor is, not when it will be met.

    Returns ``{"per_doubling", "target", "hours"}`` (``hours`` None when the
    fitted slope is not positive), or None with fewer than 3 points to fit.
    """
    import numpy as np

    hours = np.array([r["train_hours"] for r in rows], dtype=float)
    pck = np.array([r["val_pck"] for r in rows], dtype=float)
    keep = (hours >= hours.max() / 2) & (hours > 0) if len(hours) else hours.astype(bool)
    if keep.sum() < 3:
        return None
    slope, intercept = np.polyfit(np.log(hours[keep]), pck[keep], 1)
    target = floor + (pck.max() - test_pck if test_pck is not None else 0.0)
    return {"per_doubling": float(slope * np.log(2)), "target": float(target),
            "hours": float(np.exp((target - intercept) / slope)) if slope > 0 else None}


def _extrapolation(preset: Preset, rows: list[dict]) -> dict | None:
    """:func:`extrapolate_to_floor` of a preset's learning-curve ``rows`` to its floor (:func:`preset_floor`)."""
    floor = preset_floor(preset)
    if floor is None or not rows:
        return None
    m = preset.metrics
    return extrapolate_to_floor(rows, floor, m["pck"] if m else None)


def _shown_path(path: Path) -> str:
    """A path as a card shows it: relative to the repository in a source checkout, else from ``$KERAS_POSE_ZOO``
    when the file is in that zoo folder, else absolute."""
    path = Path(path).resolve()
    if PROJECT_ROOT is not None and path.is_relative_to(PROJECT_ROOT):
        return path.relative_to(PROJECT_ROOT).as_posix()
    if os.environ.get(ENV_VAR) and path.is_relative_to(Path(os.environ[ENV_VAR]).resolve()):
        return f"${ENV_VAR}/{path.relative_to(Path(os.environ[ENV_VAR]).resolve()).as_posix()}"
    return path.as_posix()


def default_table_path() -> Path:
    """``docs/zoo.md`` of the source checkout; outside one (an installed package) an error asking for a path."""
    if PROJECT_ROOT is None:
        raise FileNotFoundError("the zoo table's default place, docs/zoo.md, exists only in a source checkout of "
                                "keras_pose (this one is installed, not editable); give the table's path "
                                "(keras-pose zoo-card --table PATH)")
    return PROJECT_ROOT / "docs" / "zoo.md"


def _group_row(groups: dict) -> str:
    return " | ".join(f"{groups[g]:.1f}" for g in GROUPS)


def render_card(preset: Preset) -> str:
    """The Markdown model card of a preset."""
    from keras_pose.flops import count_flops
    from keras_pose.zoo import build_from_dict

    folder = preset.folder
    train = _read_json(folder / "train.json")
    summary = _read_json(folder / "training.json")
    m = preset.metrics
    model = build_from_dict(preset.model)
    params = model.count_params()
    gflops = count_flops(model) / 1e9
    size_mb = weights_file(preset).stat().st_size / 1e6
    notes = (folder / "notes.md").read_text().strip() if (folder / "notes.md").is_file() else ""
    lines = [f"# `{preset.name}`", "", preset.description, ""]
    if notes:
        lines += [notes, ""]
    lines += ["## Model", "",
              "| | |", "|---|---|",
              f"| family | {preset.family} |",
              f"| architecture preset | `{preset.architecture}` |",
              f"| input | {preset.model['input_size'][0]}x{preset.model['input_size'][1]} RGB, person-centred crop "
              f"(box side = 1.25 x the person's joint extent) |",
              f"| joints | {preset.model['num_joints']} (LSP order) |",
              f"| parameters | {params / 1e6:.3f} M |",
              f"| GFLOPs (2 x MACs, batch 1) | {gflops:.3f} |",
              f"| weights | `{preset.weights}`, {size_mb:.1f} MB, SHA-256 `{preset.sha256[:16]}...` |", ""]
    lines += ["## Training", ""]
    if train:
        lines += [f"- data: {', '.join(train.get('train_data', []))} (every {train.get('val_every')}th LSP *train* "
                  "image held out for validation; the LSP test split is never used for training or selection)",
                  f"- optimiser: `{json.dumps(train.get('optimizer'))}`, schedule `{json.dumps(train.get('schedule'))}`, "
                  f"batch {train.get('batch_size')}, precision {train.get('mixed_precision') or 'float32'}"]
    stage_runs = summary.get("stages") or ([summary] if summary else [])
    configs = ["train.json"] + sorted(p.name for p in folder.glob("refine*.json"))
    for s, config in enumerate(configs, start=1):
        out = f"runs/{preset.name}" + (f"_stage{s}" if s > 1 else "")
        what = f"stage {s}" if len(configs) > 1 else "command"
        lines += [f"- {what}: `keras-pose train --config {_shown_path(folder / config)} --data ../shared/data "
                  f"--out {out}` (add `--resume` to continue)"]
        if s <= len(stage_runs) and stage_runs[s - 1].get("epochs") is not None:
            r = stage_runs[s - 1]
            lines += [f"  - trained {r['epochs']:.1f} epochs ({r['steps']} steps) in {r['train_hours']:.2f} h of "
                      f"training on this 2-core CPU; weights = best validation checkpoint (step {r.get('best_step')}, "
                      f"validation PCK@0.2 {r.get('best_pck') or 0:.1f})"]
    if len(stage_runs) > 1:
        lines += [f"- all stages: {summary['train_hours']:.2f} h of training"]
    lines += [""]
    reports = protocol_reports(folder)
    if m:
        lines += ["## Accuracy: LSP test split (1000 images), PCK@0.2", "",
                  "| crop | | " + " | ".join(GROUPS) + " |", "|---" * (len(GROUPS) + 2) + "|"]
        for label, r in reports:
            lines += [f"| {label} | single crop | {_group_row(r['groups'])} |"]
            if "groups_flip" in r:
                lines += [f"| {label} | flip test | {_group_row(r['groups_flip'])} |"]
        lat = m.get("latency_batch1")
        lines += [""] + [f"Command ({label}): `{r.get('command', 'keras-pose evaluate --model ' + preset.name)}` "
                         f"({r['count']} images)." for label, r in reports]
        if lat:
            where = lat.get("machine", "this machine")
            lines += ["", f"CPU latency (Keras, batch 1, {where}): median {lat['median_ms']:.1f} ms, "
                      f"p90 {lat['p90_ms']:.1f} ms."]
        lines += [""]
        lines += _score_quality(reports)
    if (folder / "learning_curve.csv").is_file():
        rows = learning_curve(folder)
        lines += ["## Learning curve", "",
                  "Validation PCK@0.2 (held-out LSP train images) against training hours, from the run's "
                  "`val.csv` (`learning_curve.csv`):", "", "![learning curve](learning_curve.png)", "",
                  "| hours | " + " | ".join(f"{r['train_hours']:.2f}" for r in rows[:: max(1, len(rows) // 10)])
                  + " |",
                  "|---" * (1 + len(rows[:: max(1, len(rows) // 10)])) + "|",
                  "| PCK | " + " | ".join(f"{r['val_pck']:.1f}" for r in rows[:: max(1, len(rows) // 10)]) + " |", ""]
        ex = _extrapolation(preset, rows)
        if ex:
            floor = preset_floor(preset)
            met = bool(m) and m["pck"] >= floor
            reach = ("the fit never reaches it" if ex["hours"] is None
                     else f"the fit reaches it after about {ex['hours']:.1f} h of training in all")
            lines += [f"Over the second half of the run, validation PCK gained {ex['per_doubling']:.1f} points per "
                      "doubling of training time (log-linear fit, `keras_pose.zoo.cards.extrapolate_to_floor`). "
                      + ("The preset meets its floor." if met else
                         f"The preset's floor is {floor:.0f} on the test split, {ex['target']:.1f} on this "
                         f"validation curve (shifted by the validation-test gap); {reach}. This is optimistic: "
                         "part of the late gain comes from the cosine schedule's decaying learning rate, and "
                         "accuracy saturates."), ""]
    return "\n".join(lines)


def write_card(name: str) -> Path:
    """Regenerate the preset's model card ``<preset folder>/README.md`` (and its learning-curve plot);
    returns its path."""
    preset = get_preset(name)
    plot_learning_curve(preset.folder)
    out = preset.folder / "README.md"
    out.write_text(render_card(preset))
    return out


def _link(target: Path, table_dir: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(table_dir).resolve())).as_posix()


def zoo_table(table_dir=None) -> str:
    """docs/zoo.md: one row per preset, from the presets' metrics.json.

    ``table_dir``: the folder the table is written to, which its links to the
    model cards are relative to (default: the folder of :func:`default_table_path`).
    """
    table_dir = Path(table_dir) if table_dir is not None else default_table_path().parent
    lines = ["# The zoo", "",
             "Generated by `keras-pose zoo-card --all` from each preset's `metrics.json` (written by "
             "`keras-pose evaluate`); do not edit by hand.", "",
             "| preset | family | input | PCK@0.2 | with flip | whole image | score AUROC | "
             + " | ".join(GROUPS[:-1]) + " | floor | training h | per doubling | h to floor (extrap.) | card |",
             "|---" * (12 + len(GROUPS) - 1) + "|"]
    for p in presets().values():
        m = p.metrics
        if m:
            g = m.get("groups_flip", m["groups"])
            wild = _read_json(p.folder / "metrics_image.json")
            auroc = (m.get("confidence") or {}).get("auroc")
            cells = (f"{m['pck']:.1f} | {m.get('pck_flip', float('nan')):.1f} | "
                     f"{wild['pck']:.1f} | " if wild else f"{m['pck']:.1f} | {m.get('pck_flip', float('nan')):.1f} | | ")
            cells += (f"{auroc:.2f} | " if auroc is not None else " | ") + " | ".join(f"{g[k]:.1f}" for k in GROUPS[:-1])
        else:
            cells = "not evaluated | | | | " + " | ".join("" for _ in GROUPS[:-1])
        size = p.model["input_size"]
        floor = preset_floor(p)
        status = "" if floor is None else (f"{floor:.0f}" + ("" if not m else " (met)" if m["pck"] >= floor
                                                              else f" ({m['pck'] - floor:+.1f})"))
        summary = _read_json(p.folder / "training.json")
        ex = _extrapolation(p, learning_curve(p.folder))
        trained = f"{summary['train_hours']:.2f}" if summary.get("train_hours") is not None else ""
        per_doubling = f"{ex['per_doubling']:+.1f}" if ex else ""
        to_floor = "" if not ex or (m and floor is not None and m["pck"] >= floor) else (
            f"{ex['hours']:.1f}" if ex["hours"] is not None else "not reached")
        lines.append(f"| `{p.name}` | {p.family} | {size[0]}x{size[1]} | {cells} | {status} | {trained} "
                     f"| {per_doubling} | {to_floor} | [card]({_link(p.folder / 'README.md', table_dir)}) |")
    lines += ["", "Per-group columns are with flip test. LSP test split (images 1001-2000), person-centric, "
              "torso-normalised PCK@0.2 (left shoulder to right hip). *whole image*: the whole image as the crop, "
              "as `keras-pose predict` crops a photo without a box before any re-crop (`keras-pose evaluate --crop "
              "image`, single crop; the card also lists `--refine 1` where it was measured). *score AUROC*: "
              "how well the per-joint score separates joints correct at PCK@0.2 from wrong ones (centred crop; "
              "0.5 = no information). *floor*: the zoo's target for the "
              f"family (single crop; the flagship `{FLAGSHIP}`: {FLAGSHIP_FLOOR:.0f}), and how far the preset is from it. *training h*: CPU hours of training on "
              "this 2-core machine (all stages). *per doubling*: validation PCK gained per doubling of training "
              "time over the second half of the run; *h to floor*: total training hours at which that log-linear "
              "fit reaches the floor (shifted by the preset's validation-test gap). The extrapolation is "
              "optimistic (cosine-schedule gains, saturation); it sizes the gap, it is not a promise."]
    return "\n".join(lines) + "\n"
