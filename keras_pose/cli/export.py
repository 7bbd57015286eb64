"""``keras-pose export`` and ``keras-pose predict``: thin wrappers over the export and inference modules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_pose.cli.registry import command
from keras_pose.zoo.cards import FLAGSHIP

#: ``predict``'s model: the zoo's flagship (its most accurate preset).
DEFAULT_MODEL = FLAGSHIP
#: A real photo of a person shipped with matplotlib (its sample data), used when ``predict`` gets no image.
SAMPLE_PHOTO = "grace_hopper.jpg"


@command("export", "export a model to a SavedModel and TFLite (float32, float16, dynamic-range and full int8)")
def _export(p):
    def run(args):
        from keras_pose.export import export_from_spec, manifest_markdown

        manifest = export_from_spec(args.model, args.out, data_root=args.data, int8=not args.no_int8,
                                    calibration=args.calibration)
        print(manifest_markdown(manifest))
        print(f"wrote {Path(args.out) / 'export.json'} and the files above in {args.out}")
        return 0

    p.add_argument("--model", required=True, help="zoo name (see `keras-pose zoo`) or a preset / training run folder")
    p.add_argument("--out", required=True, help="output folder (saved_model/, model_*.tflite, export.json)")
    p.add_argument("--data", default=None,
                   help="data root holding lsp/ (full-int8 calibration uses LSP TRAINING images only)")
    p.add_argument("--no-int8", action="store_true",
                   help="skip the full-integer int8 model, which needs LSP training images for calibration "
                        "(the dynamic-range int8 model needs no data and is always written)")
    p.add_argument("--calibration", type=int, default=100, help="number of LSP training crops for calibration")
    return run


def sample_photo() -> Path:
    """The photo of a person that ships with matplotlib (Grace Hopper), used when no image is given."""
    from matplotlib import cbook

    path = Path(cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False))
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's sample photo {path} is missing; pass an image")
    return path


def _unique_stem(path: Path, used: set) -> str:
    stem, i = path.stem or "image", 2
    name = stem
    while name in used:
        name, i = f"{stem}_{i}", i + 1
    used.add(name)
    return name


def predict_images(predictor, images, out_dir, box=None, flip=False, scales=(1.0,), refine=None, threshold=None,
                   refine_threshold=None, search=None,
                   log=print, err=lambda s: print(s, file=sys.stderr)) -> list:
    """Predict each image, write ``<stem>.png`` (the skeleton of the joints scoring at least ``threshold``
    drawn, with their scores) and ``<stem>.json`` (every joint with its score).

    An unreadable input is reported through ``err`` (naming it) and skipped.
    Returns the list of inputs that failed.
    """
    import cv2

    from keras_pose.inference import REFINE_THRESHOLD
    from keras_pose.viz.skeleton import draw_skeleton

    threshold = predictor.threshold if threshold is None else threshold
    refine_threshold = REFINE_THRESHOLD if refine_threshold is None else refine_threshold
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, used = [], set()
    for image in images:
        path = Path(image)
        try:
            if path.is_dir():
                raise ValueError("is a folder, not an image file")
            rgb = predictor.load_image(path)
            result = predictor(rgb, box=box, flip=flip, scales=scales, refine=refine, threshold=threshold,
                               refine_threshold=refine_threshold, search=search)
        except (FileNotFoundError, ValueError, OSError) as e:
            msg = str(e)
            err(f"keras-pose predict: error: {msg if str(path) in msg else f'{path}: {msg}'}")
            failed.append(str(path))
            continue
        stem = _unique_stem(path, used)
        drawn = draw_skeleton(rgb, result.keypoints, predictor.skeleton, result.scores, threshold=threshold)
        x1, y1, x2, y2 = (int(round(v)) for v in result.box)
        cv2.rectangle(drawn, (x1, y1), (x2, y2), (255, 255, 255), 1)
        png, js = out_dir / f"{stem}.png", out_dir / f"{stem}.json"
        if not cv2.imwrite(str(png), drawn[..., ::-1]):
            err(f"keras-pose predict: error: {path}: cannot write {png}")
            failed.append(str(path))
            continue
        record = {"image": str(path), "model": predictor.name, **result.to_dict(threshold), "flip": bool(flip),
                  "scales": [float(s) for s in scales],
                  "search": [] if box is not None else list(predictor.search if search is None else search)}
        js.write_text(json.dumps(record, indent=2) + "\n")
        shown = int(result.confident(threshold).sum())
        note = "" if shown else "; the model is confident of no joint in this photo (lower --threshold to see its guesses)"
        log(f"{path}: wrote {png} and {js} ({shown} of {len(result.scores)} joints score >= {threshold:g} and are "
            f"drawn{note})")
    return failed


@command("predict", "keypoints for images: writes <stem>.png (skeleton drawn) and <stem>.json per image")
def _predict(p):
    from keras_pose.inference import (DEFAULT_REFINE, DEFAULT_SCORE_THRESHOLD, REFINE_THRESHOLD, SEARCH_ZOOMS,
                                      THRESHOLD_REPORT)

    def run(args):
        from keras_pose.inference import load_predictor

        images = list(args.images)
        if not images:
            photo = sample_photo()
            print(f"no image given: using the sample photo {photo} (Grace Hopper, shipped with matplotlib)")
            images = [photo]
        if args.box is not None and (args.box[2] <= args.box[0] or args.box[3] <= args.box[1]):
            raise ValueError(f"--box must be x1 y1 x2 y2 with x2 > x1 and y2 > y1, got {args.box}")
        if any(s <= 0 for s in args.scales):
            raise ValueError(f"--scales must be positive, got {args.scales}")
        try:
            predictor = load_predictor(args.model)
        except KeyError as e:  # unknown zoo name: the message lists the valid names
            raise ValueError(e.args[0] if e.args else str(e)) from None
        if args.refine is not None and args.refine < 0:
            raise ValueError(f"--refine must be >= 0, got {args.refine}")
        failed = predict_images(predictor, images, args.out, box=args.box, flip=args.flip, scales=args.scales,
                                refine=args.refine, threshold=args.threshold, refine_threshold=args.refine_threshold,
                                search=None if args.search is None else SEARCH_ZOOMS if args.search else ())
        if failed:
            print(f"keras-pose predict: {len(failed)} of {len(images)} inputs failed: {', '.join(failed)}",
                  file=sys.stderr)
            return 1
        return 0

    p.add_argument("images", nargs="*",
                   help="image files (default: a sample photo of a person shipped with matplotlib)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"zoo name (default {DEFAULT_MODEL}), preset / run folder, SavedModel folder or .tflite file")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    p.add_argument("--box", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), default=None,
                   help="the person's box, for every image (default: the whole image is the person crop)")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image's prediction")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="crop scales to average (e.g. 0.8 1 1.2)")
    p.add_argument("--refine", type=int, default=None,
                   help="re-crop N times around the confident keypoints, a crop the model finds itself (default: "
                        f"{DEFAULT_REFINE} without --box for a preset whose holdout reports show it helps, else 0)")
    p.add_argument("--refine-threshold", type=float, default=REFINE_THRESHOLD,
                   help=f"score a keypoint needs to shape a re-crop (default {REFINE_THRESHOLD})")
    p.add_argument("--search", action=argparse.BooleanOptionalAction, default=None,
                   help=f"without --box, also try the image zoomed out {'/'.join(f'{z:g}' for z in SEARCH_ZOOMS)} "
                        "times (a photo cut by its frame, e.g. a head-and-shoulders portrait) and keep the crop with "
                        "the most confident joints (default: for a preset whose holdout reports show it helps)")
    p.add_argument("--threshold", type=float, default=None,
                   help="joints scoring below it are not drawn (the JSON keeps them); default: the preset's own, "
                        f"chosen on the LSP-train holdout (its {THRESHOLD_REPORT}), else {DEFAULT_SCORE_THRESHOLD}")
    return run
