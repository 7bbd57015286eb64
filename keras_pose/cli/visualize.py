"""``keras-pose visualize``: figures from the library's :mod:`keras_pose.viz` (thin wrapper).

Usage:
    keras-pose visualize --model cpm_lsp --image photo.jpg [--box X1 Y1 X2 Y2] [--joint r_wrist] \\
        --kind stages|saliency|smoothgrad|gradcam|gradcam++|skeleton --out figures/cpm_stages.png
    keras-pose visualize --kind pck --models cpm_lsp softargmax_lsp --data ../shared/data \\
        --out docs/pck_curves.png [--limit N] [--table docs/pck_vs_papers.md]
    keras-pose visualize --kind reliability --models cpm_lsp softargmax_lsp [--report metrics_image] \\
        --out docs/reliability.png

``--model`` is a zoo name or a preset / run folder (:func:`keras_pose.zoo.load`).
The image is cropped as :class:`keras_pose.inference.PosePredictor` does: the
whole image (longer side, centred) or ``--box`` times ``--padding``.
Figures that show dataset pixels go where ``--out`` says; keep them in an
ignored folder such as ``figures/``. PCK curves hold no pixels and may go
into ``docs/``.
"""

from __future__ import annotations

from pathlib import Path

from keras_pose.cli.registry import command

KINDS = ("skeleton", "stages", "saliency", "smoothgrad", "gradcam", "gradcam++", "pck", "reliability")


def _joint(value):
    if value is None:
        from keras_pose.viz.heatmaps import DEFAULT_JOINT

        return DEFAULT_JOINT
    return int(value) if value.lstrip("-").isdigit() else value


def _confidence(model: str, report: str) -> dict:
    """The ``confidence`` part of an evaluation report: a report .json file, or ``<report>.json`` in a zoo
    preset / preset folder."""
    import json

    from keras_pose import zoo

    if model.endswith(".json"):
        path = Path(model)
    else:
        folder = Path(model) if Path(model).is_dir() else zoo.get_preset(model).folder
        path = folder / f"{report}.json"
    if not path.is_file():
        raise FileNotFoundError(f"--kind reliability: {path} does not exist (write it with keras-pose evaluate "
                                f"--model {model})")
    data = json.loads(path.read_text())
    if "confidence" not in data:
        raise ValueError(f"--kind reliability: {path} has no per-joint score figures (it predates them: "
                         f"run keras-pose evaluate --model {model} again)")
    return data["confidence"]


def _need(args, *names):
    missing = [f"--{n}" for n in names if getattr(args, n) in (None, [])]
    if missing:
        raise ValueError(f"--kind {args.kind} needs {' and '.join(missing)}")


def run_visualize(args) -> int:
    """Run ``keras-pose visualize`` from parsed arguments (see the module docstring).

    Args:
        args: the argparse namespace.

    Returns:
        0 on success (errors raise and are reported by ``keras_pose.cli.main``).
    """
    from keras_pose import viz

    if args.kind == "pck":
        if not args.models:
            from keras_pose import zoo

            args.models = sorted(zoo.presets())
            if not args.models:
                raise ValueError(f"--kind pck: no --models given and no zoo presets in {zoo.zoo_dir()}")
        from keras_pose import metrics
        from keras_pose.data import read_lsp

        dataset = read_lsp(args.data, "test")
        results, per_joint = viz.pck_results({m: m for m in args.models}, dataset, limit=args.limit,
                                             padding=args.padding)
        n = len(next(iter(results.values()))[0])
        fig = viz.pck_curves_figure(results, dataset.skeleton, title=f"PCK on LSP test ({n} images, torso-normalised)")
        path = viz.save_figure(fig, args.out)
        table = metrics.table_to_markdown(viz.paper_comparison_table(per_joint, dataset.skeleton))
        print(f"PCK@0.2 on LSP test ({n} images) beside the papers' LSP numbers, in %:\n\n{table}\n")
        if args.table:
            Path(args.table).parent.mkdir(parents=True, exist_ok=True)
            Path(args.table).write_text(table + "\n")
            print(f"wrote {args.table}")
        print(f"wrote {path}")
        return 0

    if args.kind == "reliability":
        _need(args, "models")
        confidence = {Path(m).stem if m.endswith(".json") else m: _confidence(m, args.report) for m in args.models}
        path = viz.save_figure(viz.reliability_figure(confidence), args.out)
        print(f"wrote {path}")
        return 0

    _need(args, "model", "image")
    from keras_pose import zoo

    model = zoo.load(args.model, cascade=args.kind == "skeleton")  # figures of layers use stage 1
    if args.kind == "skeleton":
        from keras_pose.inference import keras_predictor

        predictor = keras_predictor(model, padding=args.padding, name=args.model)
        image = predictor.load_image(args.image)
        result = predictor(image, box=args.box)
        drawn = viz.draw_skeleton(image, result.keypoints, result.skeleton, result.scores, threshold=args.threshold)
        path = viz.save_figure(drawn, args.out)
    else:
        crop = viz.crop_for_model(model, args.image, box=args.box, padding=args.padding)
        joint = _joint(args.joint)
        if args.kind == "stages":
            fig = viz.stage_heatmaps_figure(model, crop, joint)
        else:
            fig = viz.saliency_figure(model, crop, joint, method=args.kind, layer=args.layer)
        path = viz.save_figure(fig, args.out)
    print(f"wrote {path}")
    return 0


@command("visualize", "figures: skeleton, belief maps per stage, saliency / Grad-CAM of a joint, PCK curves")
def _visualize(p):
    p.add_argument("--kind", required=True, choices=KINDS,
                   help="skeleton: predicted pose on the image; stages: heatmaps per stage / subnetwork; "
                        "saliency|smoothgrad|gradcam|gradcam++: what drives --joint; pck: PCK curves of --models; "
                        "reliability: fraction correct against per-joint score, from the evaluation reports of --models")
    p.add_argument("--model", default=None, help="zoo name or preset / run folder (all kinds but pck)")
    p.add_argument("--image", default=None, help="image file (all kinds but pck)")
    p.add_argument("--box", nargs=4, type=float, default=None, metavar=("X1", "Y1", "X2", "Y2"),
                   help="person box in image pixels (default: the whole image is the crop)")
    p.add_argument("--padding", type=float, default=1.25, help="crop side / box side (default 1.25)")
    p.add_argument("--joint", default=None, help="joint name (e.g. r_wrist, the default) or index")
    p.add_argument("--layer", default=None, help="Grad-CAM feature layer (default: the last one before the head)")
    p.add_argument("--threshold", type=float, default=0.0, help="skeleton: joints scoring below it, and the limbs touching them, are left out")
    p.add_argument("--models", nargs="+", default=None,
                   help="pck / reliability: zoo names or preset folders to compare (pck default: every zoo "
                        "preset); reliability also takes report .json files")
    p.add_argument("--data", default=None, help="pck: data root holding lsp/ (default: see `keras-pose info`)")
    p.add_argument("--limit", type=int, default=None, help="pck: only the first N test images")
    p.add_argument("--table", default=None, help="pck: also write the comparison with the papers as markdown")
    p.add_argument("--report", default="metrics",
                   help="reliability: which evaluation report of each preset (default metrics: the centred crop; "
                        "metrics_image: the whole image; see keras-pose evaluate)")
    p.add_argument("--out", required=True, help="output image (.png); use an ignored folder (figures/) for "
                                                "anything showing dataset pixels")
    return run_visualize


__all__ = ["KINDS", "run_visualize"]
