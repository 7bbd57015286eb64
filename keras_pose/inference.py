"""Inference: keypoints in original-image pixels for any image, any family, any runtime.

Example:
    >>> from keras_pose.inference import load_predictor
    >>> pose = load_predictor("cpm_lsp")                       # doctest: +SKIP
    >>> result = pose("photo.jpg")                             # whole image as the person crop  # doctest: +SKIP
    >>> result = pose(rgb_array, box=(x1, y1, x2, y2))         # or a person box  # doctest: +SKIP
    >>> result.keypoints, result.scores                        # (K, 2) pixels, (K,)  # doctest: +SKIP
    >>> result.confident()                                     # (K,) bool, the preset's threshold  # doctest: +SKIP

Images may be a file path, or an array (H, W), (H, W, 1), (H, W, 3) or
(H, W, 4), uint8 or float in [0, 255]; 3/4-channel arrays are RGB unless
``color="bgr"`` (OpenCV) is given. Alpha is composited over black.

Options used by the papers (see ``docs/`` per family): ``flip=True``
averages the prediction of the image and of its mirror (Bulat's demo): the
heatmaps of a Keras heatmap model (CPM, part heatmap regression; see
``keras_pose.evaluation.heatmap_flip_predictor``), the coordinates otherwise;
``scales=(0.8, 1.0, 1.2)`` averages crops of several sizes (CPM uses 7
scales, averaging belief maps; here the mapped-back coordinates are
averaged, which works for every family).

Without a box the person crop is the whole image. ``refine=N`` then
re-crops N times around the model's own confident keypoints (those scoring
at least ``refine_threshold``), as MediaPipe derives its next region of interest
from its landmarks: the box of those keypoints times the training padding,
the crop the model was trained on. By default (``refine=None``) an image
without a box is re-cropped once when the preset's holdout reports show it
helps (:func:`model_refine`), and one with a box is not. ``search=(1.5, 2, 3)``
first tries zoomed-out crops of an image without a box beside the whole image
(a photo cut by its frame, such as a head-and-shoulders portrait, shows its
person larger than any training crop did) and keeps the crop with the most
confident joints; a re-crop is then kept only if it is not less confident. By
default (``search=None``) a preset searches when its holdout reports show that
it helps portraits at little cost to whole images (:func:`model_search`). Per-joint scores are the model's own
(joint probability for soft-argmax, heatmap peak for heatmap models);
``PoseResult.confident(threshold)`` tells which joints to trust, and the
drawing helpers leave out the joints below it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from keras_pose.skeletons import Skeleton, skeleton_for

#: Per-joint score threshold of a model without its own: joints scoring below it are not drawn, nor used to
#: re-crop. A zoo preset's own is the one that best separates correct from wrong joints on the LSP-train
#: holdout (``keras-pose evaluate --model NAME --split lsp_val`` writes it to the preset's
#: ``metrics_lsp_val.json``; :func:`model_threshold`).
DEFAULT_SCORE_THRESHOLD = 0.5
#: The report whose ``confidence.threshold`` gives a preset's score threshold.
THRESHOLD_REPORT = "metrics_lsp_val.json"
#: Score a keypoint needs to shape a re-crop (``refine``). Kept apart from the drawing threshold: a missing
#: joint shrinks the box and cuts the person, a wrong one only widens it, so the re-crop wants a permissive
#: threshold (the holdout measurement of DEFAULT_REFINE used this one).
REFINE_THRESHOLD = 0.5
#: The re-crop box holds at least this fraction of the joints (the best-scoring ones when fewer reach the
#: re-crop threshold): heatmap peaks of one family sit lower than another's probabilities.
REFINE_MIN_FRACTION = 0.5
#: Re-crops around the confident keypoints when no box is given (``refine=None``) for a zoo preset whose
#: LSP-train holdout reports show that one helps (:func:`model_refine`); with a box, or without that evidence,
#: none. docs/getting_started.md has the measurements.
DEFAULT_REFINE = 1
#: The holdout reports that decide it: the whole image as the crop, without and with one re-crop.
REFINE_REPORTS = ("metrics_lsp_val_image.json", "metrics_lsp_val_image_refine1.json")
#: Zoom-outs an image without a box is also tried at (``search``): crop sides as multiples of the whole image's,
#: centred across the image, the image's top edge where a training crop has the person's top (the padding's
#: margin). A head-and-shoulders photo holds a person cut by the frame, 2-4 times larger than the crops the
#: models were trained on; the zoomed-out crop shows it at their scale. docs/getting_started.md has the
#: measurements.
SEARCH_ZOOMS = (1.5, 2.0, 3.0)
#: The holdout reports that decide whether a preset searches by default (:func:`model_search`): the whole image
#: and the portrait protocol (``keras-pose evaluate --crop portrait``), each at the preset's re-crop count,
#: without and with the search; ``{refine}`` is ``_refine1`` or empty.
SEARCH_REPORTS = (("metrics_lsp_val_image{refine}.json", "metrics_lsp_val_portrait{refine}.json"),
                  ("metrics_lsp_val_image_search{refine}.json", "metrics_lsp_val_portrait_search{refine}.json"))
#: The most holdout PCK points the search may cost the whole image (full-body photos, the common case) to be a
#: preset's default.
SEARCH_MAX_COST = 1.0


@dataclasses.dataclass
class PoseResult:
    """Keypoints (K, 2) in original image pixels (x, y), per-joint scores (K,), the crop box used
    (after ``refinements`` re-crops around the confident keypoints)."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: tuple
    skeleton: Skeleton
    image_shape: tuple
    refinements: int = 0
    threshold: float = DEFAULT_SCORE_THRESHOLD  # the predictor's: what "confident" means by default

    def confident(self, threshold: float | None = None) -> np.ndarray:
        """(K,) bool: finite keypoints scoring at least ``threshold`` (default: the result's own)."""
        threshold = self.threshold if threshold is None else threshold
        return (np.asarray(self.scores) >= threshold) & np.all(np.isfinite(self.keypoints), axis=-1)

    def keypoint_box(self, threshold: float | None = None, min_fraction: float = REFINE_MIN_FRACTION):
        """The square (x1, y1, x2, y2) around the keypoints to re-crop on: those scoring at least
        ``threshold`` (default: the result's own), topped up with the next best-scoring ones to at least
        ``min_fraction`` of the joints (a missing joint cuts the person out of the next crop, a wrong one
        only widens it). Centred on their box, side = its longer side (the person box the training crops
        are cut from, see :func:`keras_pose.data.records.estimate_center_scale`); None when fewer than two
        keypoints are finite or they span no more than a pixel."""
        kp = np.asarray(self.keypoints, np.float64)
        finite = np.all(np.isfinite(kp), axis=-1)
        scores = np.where(finite, np.asarray(self.scores, np.float64), -np.inf)
        keep = self.confident(threshold)
        need = min(int(finite.sum()), int(np.ceil(min_fraction * len(kp))))
        if keep.sum() < need:
            keep = np.zeros(len(kp), bool)
            keep[np.argsort(-scores, kind="stable")[:need]] = True
        pts = kp[keep & finite]
        if len(pts) < 2:
            return None
        lo, hi = pts.min(0), pts.max(0)
        half = float(max(hi - lo)) / 2.0
        if half <= 0.5:
            return None
        cx, cy = (lo + hi) / 2.0
        return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))

    def rank(self, threshold: float | None = None) -> tuple:
        """How confident the crop is, to choose between crops of one image: (the number of confident joints,
        the sum of the finite keypoints' scores); higher is better."""
        finite = np.all(np.isfinite(self.keypoints), axis=-1)
        return int(self.confident(threshold).sum()), float(np.sum(np.asarray(self.scores, np.float64)[finite]))

    def to_dict(self, threshold: float | None = None) -> dict:
        """JSON-friendly: every joint with its score (and whether it reaches ``threshold``, default the
        result's own), the crop box."""
        threshold = self.threshold if threshold is None else threshold
        ok = self.confident(threshold)
        return {"keypoints": [{"joint": n, "x": float(x), "y": float(y), "score": float(s), "confident": bool(c)}
                              for n, (x, y), s, c in zip(self.skeleton.joint_names, self.keypoints, self.scores, ok)],
                "threshold": float(threshold), "box": [float(v) for v in self.box],
                "refinements": int(self.refinements), "image_size": list(self.image_shape[:2]),
                "skeleton": self.skeleton.name}


class PosePredictor:
    """Crops, runs a model and maps its keypoints back to the image.

    Args:
        predict: batch function ``images (B, S, S, 3) float32 [0, 255] -> (keypoints (B, K, 2), scores (B, K))``
            in input-crop pixels (a Keras model, SavedModel or TFLite wrapper).
        input_size: S, the model's square input side.
        skeleton: the joints' skeleton (for flip test and output names).
        padding: crop side = ``padding`` x person box side (the training padding).
        name: for messages and reports.
        flip_predict: the flip test's batch function (same signature as ``predict``), e.g. a heatmap
            model's map-averaging one; default: average ``predict``'s coordinates on the image and mirror.
        threshold: the per-joint score a keypoint needs to count as confident (and be drawn).
        refine: re-crops for an image without a box when ``refine=None`` is asked (0 or
            :data:`DEFAULT_REFINE`; :func:`load_predictor` sets it per preset).
        search: the zoom-outs tried for an image without a box when ``search=None`` is asked (empty or
            :data:`SEARCH_ZOOMS`; :func:`load_predictor` sets it per preset).
    """

    def __init__(self, predict: Callable, input_size: int, skeleton: Skeleton, padding: float = 1.25,
                 name: str = "model", flip_predict: Callable | None = None,
                 threshold: float = DEFAULT_SCORE_THRESHOLD, refine: int = 0, search: Sequence[float] = ()):
        self.predict, self.input_size, self.skeleton, self.padding, self.name = predict, input_size, skeleton, padding, name
        self.flip_predict = flip_predict
        self.threshold = float(threshold)
        self.refine = int(refine)
        self.search = check_zooms(search)

    # -- image level --------------------------------------------------------
    def load_image(self, image, color: str = "rgb") -> np.ndarray:
        # imported here: this module stays free of TensorFlow until used (the CLI reads its defaults)
        from keras_pose.data.images import read_image, to_rgb

        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        return to_rgb(image, assume=color, name=f"{self.name} input")

    def crop_geometry(self, shape, box=None):
        """(centre (2,), side of the square crop in image pixels) for an image shape and optional box."""
        h, w = shape[:2]
        if box is None:
            return np.array([(w - 1) / 2.0, (h - 1) / 2.0], np.float32), float(max(h, w))
        box = np.asarray(box, np.float64).reshape(-1)
        if box.size != 4 or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box.tolist()}")
        centre = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0], np.float32)
        return centre, float(max(box[2] - box[0], box[3] - box[1]) * self.padding)

    def zoom_geometry(self, shape, zoom: float):
        """(centre, side) of the crop ``zoom`` times the whole image's side, centred across the image, with the
        image's top edge where a training crop has the person's top (see :data:`SEARCH_ZOOMS`)."""
        h, w = shape[:2]
        side = float(zoom) * float(max(h, w))
        top = side * (1.0 - 1.0 / self.padding) / 2.0  # the padding's margin above the person box
        return np.array([(w - 1) / 2.0, -0.5 - top + side / 2.0], np.float32), side

    def __call__(self, image, box=None, flip: bool = False, scales: Sequence[float] = (1.0,),
                 color: str = "rgb", refine: int | None = None, threshold: float | None = None,
                 refine_threshold: float = REFINE_THRESHOLD, search: Sequence[float] | None = None) -> PoseResult:
        """Predict one image (see module docstring for accepted inputs, ``refine`` and ``search``)."""
        return self.predict_many([image], [box], flip=flip, scales=scales, color=color, refine=refine,
                                 threshold=threshold, refine_threshold=refine_threshold, search=search)[0]

    def predict_many(self, images, boxes=None, flip: bool = False, scales: Sequence[float] = (1.0,),
                     color: str = "rgb", refine: int | None = None,
                     threshold: float | None = None,
                     refine_threshold: float = REFINE_THRESHOLD,
                     search: Sequence[float] | None = None) -> list[PoseResult]:
        """Predict several images (a list, or an array batch (B, H, W[, C])).

        ``refine``: re-crop this many times around the keypoints scoring at
        least ``refine_threshold``, at least half of the joints (:meth:`PoseResult.keypoint_box`);
        ``None``: the predictor's ``refine`` times for an image without a box,
        never for one with a box. ``search``: zoom-outs also tried for an image without a box, the crop with
        the most confident joints kept (:meth:`PoseResult.rank` at ``threshold``), and then a re-crop only if
        it ranks no lower; ``None``: the predictor's. ``threshold``: default the predictor's.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        if refine is not None and (not isinstance(refine, (int, np.integer)) or isinstance(refine, bool)
                                   or refine < 0):
            raise ValueError(f"refine must be None or a non-negative integer, got {refine!r}")
        for arg, value in (("threshold", threshold), ("refine_threshold", refine_threshold)):
            if not np.isfinite(value):
                raise ValueError(f"{arg} must be a finite number, got {value!r}")
        search = self.search if search is None else check_zooms(search)
        images = [self.load_image(im, color) for im in images]
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError(f"got {len(boxes)} boxes for {len(images)} images")
        results = []
        for img, box in zip(images, boxes):
            result = self._predict_crop(img, *self.crop_geometry(img.shape, box), flip, scales)
            searched = box is None and bool(search)
            if searched:
                for zoom in search:
                    other = self._predict_crop(img, *self.zoom_geometry(img.shape, zoom), flip, scales)
                    if other.rank(threshold) > result.rank(threshold):
                        result = other
            times = (self.refine if box is None else 0) if refine is None else refine
            for i in range(times):
                new_box = result.keypoint_box(refine_threshold)
                if new_box is None:
                    break
                refined = self._predict_crop(img, *self.crop_geometry(img.shape, new_box), flip, scales)
                if searched and refined.rank(threshold)[0] < result.rank(threshold)[0]:
                    break  # the re-crop lost confident joints: the searched crop stays
                result, result.refinements = refined, i + 1
            result.threshold = threshold
            results.append(result)
        return results

    def _predict_crop(self, img: np.ndarray, centre, side: float, flip: bool, scales) -> PoseResult:
        import tensorflow as tf

        from keras_pose.data.transforms import affine_matrix, invert_affine, transform_points, warp_images
        from keras_pose.evaluation import flip_average

        kps, scs = [], []
        for s in scales:
            m = affine_matrix(centre[None], [side * float(s)], self.input_size)
            crop = warp_images(img[None].astype(np.float32), m, self.input_size).numpy()
            crop = np.clip(np.round(crop), 0, 255)
            if flip and self.flip_predict is not None:
                kp, sc = self.flip_predict(crop)
            elif flip:
                kp, sc = flip_average(self.predict, crop, self.skeleton.flip_permutation)
            else:
                kp, sc = self.predict(crop)
            kps.append(transform_points(tf.constant(kp, tf.float32), invert_affine(m)).numpy()[0])
            scs.append(np.asarray(sc)[0])
        half = side / 2.0
        return PoseResult(np.mean(kps, 0), np.mean(scs, 0),
                          (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half),
                          self.skeleton, img.shape)


def check_zooms(zooms) -> tuple:
    """``search`` zooms as a tuple of floats, each finite and > 1 (the whole image, zoom 1, is always tried)."""
    try:
        if isinstance(zooms, (str, bytes)):
            raise TypeError
        out = tuple(float(z) for z in zooms)
    except (TypeError, ValueError):
        raise ValueError(f"search must be a sequence of zooms > 1, got {zooms!r}") from None
    if not all(np.isfinite(z) and z > 1.0 for z in out):
        raise ValueError(f"search zooms must be finite and > 1 (the whole image is always tried), got {list(out)}")
    return out


CROPS = ("person", "image", "portrait")


def person_box(record) -> tuple:
    """The annotated person's box of a dataset record (its joints' box: centre +- 100 x scale), the box whose
    padded crop the papers evaluate on."""
    half = 100.0 * float(record.scale)
    cx, cy = (float(v) for v in record.center)
    return (cx - half, cy - half, cx + half, cy + half)


def predict_records(predictor: PosePredictor, dataset, crop: str = "image", refine: int = 0, flip: bool = False,
                    refine_threshold: float = REFINE_THRESHOLD, limit: int | None = None,
                    search: Sequence[float] = ()) -> dict:
    """Predictions in original image pixels for every record, each crop made exactly as ``predict`` makes it.

    ``crop="image"``: the whole image (what a user without a box gets);
    ``"person"``: the annotated person's box (:func:`person_box`) times the
    predictor's padding; ``"portrait"``: the image cut to the person's head and
    shoulders (:func:`keras_pose.evaluation.portrait_window`) and given whole,
    the keypoints mapped back to the image; ``windows`` (N, 4) holds the
    pictures, NaN (and NaN predictions) for a person not framed so.
    ``search``: the zoom-outs also tried (:meth:`PosePredictor.predict_many`).
    ``flip=True`` also gives ``keypoints_flip`` / ``scores_flip``. Returns
    ``keypoints`` (N, K, 2), ``scores`` (N, K), ``refinements`` (N,) and ``seconds``.
    """
    import time

    from keras_pose.evaluation import portrait_window

    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    records = dataset[:limit] if limit is not None else dataset
    out = {"keypoints": [], "scores": [], "refinements": [], "windows": []}
    if flip:
        out.update(keypoints_flip=[], scores_flip=[])
    k = records.skeleton.num_joints
    t0 = time.perf_counter()
    for rec in records:
        img = predictor.load_image(rec.image_path)
        box, window = (person_box(rec) if crop == "person" else None), (0, 0) + img.shape[1::-1]
        if crop == "portrait":
            window = portrait_window(rec, img.shape, records.skeleton)
            if window is None:  # not framed as a portrait: NaN rows, which the report leaves out and counts
                for key, row in (("keypoints", np.full((k, 2), np.nan)), ("scores", np.full(k, np.nan)),
                                 ("windows", np.full(4, np.nan)), ("refinements", 0)):
                    for suffix in ("", "_flip") if key in ("keypoints", "scores") and flip else ("",):
                        out[key + suffix].append(row)
                continue
            img = img[window[1]:window[3], window[0]:window[2]]
        for suffix, f in [("", False)] + ([("_flip", True)] if flip else []):
            r = predictor(img, box=box, flip=f, refine=refine, refine_threshold=refine_threshold, search=search)
            out[f"keypoints{suffix}"].append(r.keypoints + np.asarray(window[:2], np.float32))
            out[f"scores{suffix}"].append(r.scores)
            if not f:
                out["refinements"].append(r.refinements)
        out["windows"].append(np.asarray(window, np.float64))
    out = {k: np.asarray(v) for k, v in out.items()}
    out["seconds"] = time.perf_counter() - t0
    return out


def predictor_report(predictor: PosePredictor, dataset, crop: str = "image", refine: int = 0, flip: bool = True,
                     refine_threshold: float = REFINE_THRESHOLD, limit: int | None = None,
                     latency: bool = True, search: Sequence[float] = ()) -> dict:
    """:func:`keras_pose.evaluation.evaluation_report` for the crops a user meets (``keras-pose evaluate
    --crop image|portrait [--refine N] [--search]``): every image through the predictor, as ``keras-pose
    predict`` runs it (the portrait protocol: :func:`keras_pose.evaluation.portrait_report`)."""
    from keras_pose.evaluation import measure_latency, portrait_report, report_from_predictions

    records = dataset[:limit] if limit is not None else dataset
    search = check_zooms(search)
    pred = predict_records(predictor, records, crop, refine, flip, refine_threshold, search=search)
    if crop == "portrait":
        out = portrait_report(pred, records, predictor.threshold, name=predictor.name, padding=predictor.padding,
                              refine=refine)
    else:
        out = report_from_predictions(pred, records, name=predictor.name, padding=predictor.padding, crop=crop,
                                      refine=refine)
    out["search"] = list(search)
    if refine:
        out["refine_threshold"] = float(refine_threshold)
        out["mean_refinements"] = float(np.mean(pred["refinements"]))
    if flip:
        out["flip_test"] = "heatmaps" if predictor.flip_predict is not None else "coordinates"
    if latency:
        out["latency_batch1"] = measure_latency(predictor.predict, predictor.input_size)
    return out


def keras_predictor(model, padding: float = 1.25, name: str | None = None) -> PosePredictor:
    """A :class:`PosePredictor` around a Keras keras_pose model."""
    from keras_pose.evaluation import keras_predictor as batch_fn
    from keras_pose.evaluation import model_input_size

    from keras_pose.evaluation import flip_agreement, heatmap_flip_predictor

    k = int(model.output_shape["keypoints"][1]) if isinstance(model.output_shape, dict) else int(
        dict(zip(model.output_names, model.outputs))["keypoints"].shape[1])
    skeleton = skeleton_for(k)
    predict = batch_fn(model)
    if has_unit_scores(model):  # DeepPose: no score of its own, so the image and its mirror's agreement
        predict = flip_agreement(predict, skeleton.flip_permutation)
    return PosePredictor(predict, model_input_size(model), skeleton, padding, name or model.name,
                         flip_predict=heatmap_flip_predictor(model, skeleton.flip_permutation))


def has_unit_scores(model) -> bool:
    """Whether a Keras model's ``scores`` are the constant ones of a coordinate regressor (DeepPose's
    ``UnitScores``), which say nothing about a joint."""
    from keras_pose.models.deeppose import UnitScores

    return any(isinstance(layer, UnitScores) for layer in model.layers)


def _exported_predictor(runner, path: Path, padding, kind: str) -> PosePredictor:
    from keras_pose.export import DEFAULT_PADDING, read_export_json

    meta = read_export_json(path) or {}
    if padding is None:
        padding = float(meta.get("padding", DEFAULT_PADDING))
    skeleton = skeleton_for(runner.num_joints)
    name = f"{meta.get('name') or path.stem} ({kind})"
    return PosePredictor(runner, runner.input_size, skeleton, padding, name)


def tflite_predictor(path: str | os.PathLike, padding: float | None = None,
                     num_threads: int | None = None) -> PosePredictor:
    """A :class:`PosePredictor` running a ``.tflite`` file.

    Args:
        path: a file written by :func:`keras_pose.export.export_tflite` or :func:`keras_pose.export.export_all`.
        padding: crop side / person box side; ``None``: the ``padding`` of
            the ``export.json`` beside the file, else 1.25.
        num_threads: interpreter threads (``None``: runtime default).
    """
    from keras_pose.export import TFLiteRunner

    path = Path(path)
    quant = path.stem[len("model_"):] if path.stem.startswith("model_") else "tflite"
    return _exported_predictor(TFLiteRunner(path, num_threads), path, padding, f"tflite {quant}")


def saved_model_predictor(path: str | os.PathLike, padding: float | None = None) -> PosePredictor:
    """A :class:`PosePredictor` running an exported SavedModel folder.

    ``padding=None``: the ``export.json`` inside or beside the folder, else 1.25.
    """
    from keras_pose.export import SavedModelRunner

    path = Path(path)
    return _exported_predictor(SavedModelRunner(path), path, padding, "saved_model")


def load_predictor(spec: str | os.PathLike, padding: float | None = None) -> PosePredictor:
    """A predictor from a zoo name, a preset / run folder, a SavedModel folder or a ``.tflite`` file.

    ``padding`` (crop side / person box side) defaults to the one the model was
    trained with (its ``train.json`` or ``export.json``), else 1.25.
    """
    path = Path(spec)
    if path.suffix == ".tflite":
        return tflite_predictor(path, padding=padding)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return saved_model_predictor(path, padding=padding)
    from keras_pose import zoo
    from keras_pose.export import training_padding

    padding = padding if padding is not None else training_padding(spec)
    if zoo.is_cascade(spec):  # DeepPose: run every stage of the cascade
        from keras_pose.zoo.cascades import cascade_predictor

        cascade = zoo.load_cascade(spec)
        size = int(cascade.stage_models[0].inputs[0].shape[1])
        from keras_pose.evaluation import flip_agreement

        predict = flip_agreement(cascade_predictor(cascade, size), cascade.skeleton.flip_permutation)  # see above
        predictor = PosePredictor(predict, size, cascade.skeleton, padding, str(spec))
    else:
        predictor = keras_predictor(zoo.load(spec), padding=padding, name=str(spec))
    folder = zoo.preset_folder(spec)  # one scan of the zoo for both defaults
    if folder is not None:
        predictor.threshold, predictor.refine = model_threshold(folder), model_refine(folder)
        predictor.search = model_search(folder)
    return predictor


def _report(path: Path) -> dict | None:
    import json

    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"evaluation report {path} is not valid JSON: {e}") from e


def model_refine(spec: str | os.PathLike) -> int:
    """:data:`DEFAULT_REFINE` if the preset's holdout reports (:data:`REFINE_REPORTS`) show that one re-crop
    beats the whole-image crop, else 0 (also without the reports)."""
    from keras_pose import zoo

    folder = zoo.preset_folder(spec)
    if folder is None:
        return 0
    plain, refined = (_report(folder / name) for name in REFINE_REPORTS)
    return DEFAULT_REFINE if plain and refined and refined["pck"] > plain["pck"] else 0


def model_threshold(spec: str | os.PathLike) -> float:
    """The score threshold of a zoo preset or preset / run folder: the ``confidence.threshold`` of its
    :data:`THRESHOLD_REPORT` (chosen on the LSP-train holdout, never the test split), else
    :data:`DEFAULT_SCORE_THRESHOLD`."""
    from keras_pose import zoo

    folder = zoo.preset_folder(spec)
    report = _report(folder / THRESHOLD_REPORT) if folder is not None else None
    value = ((report or {}).get("confidence") or {}).get("threshold")
    return float(value) if value is not None and np.isfinite(value) else DEFAULT_SCORE_THRESHOLD


def model_search(spec: str | os.PathLike) -> tuple:
    """:data:`SEARCH_ZOOMS` if the preset's holdout reports (:data:`SEARCH_REPORTS`, at the preset's re-crop
    count :func:`model_refine`) show that the search raises the portrait protocol's PCK and costs the whole
    image's at most :data:`SEARCH_MAX_COST` points, else ``()`` (also without the reports)."""
    from keras_pose import zoo

    folder = zoo.preset_folder(spec)
    if folder is None:
        return ()
    refine = f"_refine{DEFAULT_REFINE}" if model_refine(folder) else ""
    (image, portrait), (image_searched, portrait_searched) = (
        [_report(folder / n.format(refine=refine)) for n in names] for names in SEARCH_REPORTS)
    if not all((image, portrait, image_searched, portrait_searched)):
        return ()
    helps = portrait_searched["pck"] > portrait["pck"] and image_searched["pck"] >= image["pck"] - SEARCH_MAX_COST
    return SEARCH_ZOOMS if helps else ()
