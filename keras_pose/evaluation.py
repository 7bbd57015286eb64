"""Run a model over a dataset and score it (shared by validation, ``keras-pose evaluate`` and the zoo guard)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from keras_pose import metrics
from keras_pose.data.pipeline import eval_dataset, to_source_coordinates
from keras_pose.data.records import PoseDataset
from keras_pose.machine import machine_description


def model_input_size(model) -> int:
    """The side S of a model's square (B, S, S, 3) input."""
    shape = model.input_shape if isinstance(model.input_shape, tuple) else model.input_shape[0]
    if shape[1] != shape[2]:
        raise ValueError(f"model {model.name!r} has a non-square input {shape[1:3]}; keras_pose crops are square")
    return int(shape[1])


def keras_predictor(model) -> Callable:
    """images (B, S, S, 3) float32 -> (keypoints (B, K, 2) input px, scores (B, K)), compiled once."""

    @tf.function(reduce_retracing=True)
    def predict(images):
        out = model(images, training=False)
        return tf.cast(out["keypoints"], tf.float32), tf.cast(out["scores"], tf.float32)

    return lambda images: tuple(t.numpy() for t in predict(tf.convert_to_tensor(images, tf.float32)))


def flip_average(predict: Callable, images: np.ndarray, flip_permutation,
                 plain: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flip test: average the predictions of the image and of its mirror (joints swapped back).

    ``plain``: the predictions of ``images`` if already computed (then only the mirror is predicted).
    """
    kp, sc = plain if plain is not None else predict(images)
    kp_f, sc_f = mirrored_prediction(predict, images, flip_permutation)
    return (kp + kp_f) / 2.0, (sc + sc_f) / 2.0


def mirrored_prediction(predict: Callable, images: np.ndarray, flip_permutation) -> tuple[np.ndarray, np.ndarray]:
    """``predict`` on the mirrored images, its keypoints mapped back onto the images and its joints swapped back."""
    kp_f, sc_f = predict(np.ascontiguousarray(np.asarray(images)[:, :, ::-1]))
    perm = list(flip_permutation)
    kp_f = np.asarray(kp_f)[:, perm].copy()
    kp_f[..., 0] = np.asarray(images).shape[2] - 1 - kp_f[..., 0]
    return kp_f, np.asarray(sc_f)[:, perm]


#: Flip agreement (:func:`flip_agreement`): the disagreement, as a fraction of the input side, at which a joint's
#: score falls to exp(-1/2) = 0.61. An LSP person fills about 0.8 of the crop, so 0.05 is a quarter of a torso.
FLIP_AGREEMENT_SIGMA = 0.05


def flip_agreement(predict: Callable, flip_permutation, sigma: float = FLIP_AGREEMENT_SIGMA) -> Callable:
    """A batch function with the keypoints of ``predict`` and, as each joint's score, how well they agree with
    those of the mirrored image (joints swapped back): ``exp(-d^2 / (2 sigma^2))``, ``d`` the distance between
    the two as a fraction of the input side. For a model without a score of its own (DeepPose regresses
    coordinates only): a joint it is unsure of moves when the image is mirrored. Two forward passes."""
    def run(images):
        images = np.asarray(images, np.float32)
        kp, _ = predict(images)
        kp_f, _ = mirrored_prediction(predict, images, flip_permutation)
        d = np.linalg.norm(np.asarray(kp) - kp_f, axis=-1) / float(images.shape[2])
        return np.asarray(kp), np.exp(-0.5 * (d / sigma) ** 2).astype(np.float32)

    return run


def heatmap_flip_predictor(model, flip_permutation) -> Callable | None:
    """Flip test in heatmap space for a model decoded by a ``HeatmapToKeypoints`` layer named ``decode``.

    The image and its mirror go through the model up to the decoder's input maps in one batch; the
    mirror's maps are flipped back (and their joint channels swapped; extra channels such as CPM's
    background stay) and averaged with the image's, and the decoder decodes the average. With the
    decoder's cell-centre convention a map cell and its mirror cell are exact mirrors in input pixels,
    so nothing is shifted. Averaging coordinates instead (:func:`flip_average`) mixes two argmax
    picks: when the image and its mirror disagree on a joint the average lies between two peaks, on
    neither. Returns ``images -> (keypoints, scores)``, or None for a model without such a decoder
    (regression and soft-argmax heads, whose coordinates are already averages).
    """
    import keras

    from keras_pose.layers import HeatmapToKeypoints

    try:
        decoder = model.get_layer("decode")
    except ValueError:
        return None
    if not isinstance(decoder, HeatmapToKeypoints):
        return None
    maps_model = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, decoder.input,
                             name=f"{model.name}_maps")
    perm = list(flip_permutation)
    channels = int(decoder.input.shape[-1])
    if len(perm) > channels:
        raise ValueError(f"flip permutation of {len(perm)} joints for maps of {channels} channels")
    perm += list(range(len(perm), channels))

    @tf.function(reduce_retracing=True)
    def predict(images):
        both = tf.concat([images, tf.reverse(images, [2])], 0)
        maps = tf.cast(maps_model(both, training=False), tf.float32)
        plain, mirrored = tf.split(maps, 2)
        mirrored = tf.gather(tf.reverse(mirrored, [2]), perm, axis=-1)
        keypoints, scores = decoder((plain + mirrored) / 2.0)
        return tf.cast(keypoints, tf.float32), tf.cast(scores, tf.float32)

    return lambda images: tuple(t.numpy() for t in predict(tf.convert_to_tensor(images, tf.float32)))


def predict_dataset(predict: Callable, dataset: PoseDataset, input_size: int, padding: float = 1.25,
                    batch_size: int = 32, flip: bool | str = False, limit: int | None = None,
                    flip_predict: Callable | None = None):
    """Predictions in ORIGINAL image coordinates for every record.

    Args:
        predict: images -> (keypoints, scores), e.g. :func:`keras_predictor`
            or a TFLite/SavedModel predictor from :mod:`keras_pose.inference`.
        dataset: the records (crops come from their centre and scale).
        flip: False (single crop), True (flip test) or ``"both"``: one pass
            over the crops that returns both (with the default flip test each
            crop is predicted once and its mirror once).
        limit: only the first ``limit`` records.
        flip_predict: the flip test's own batch function (e.g.
            :func:`heatmap_flip_predictor`); default: :func:`flip_average`
            of ``predict``.

    Returns:
        dict with ``keypoints`` (N, K, 2), ``scores`` (N, K), ``seconds``;
        with ``flip="both"`` also ``keypoints_flip`` and ``scores_flip``.
    """
    if flip not in (False, True, "both"):
        raise ValueError(f"flip must be False, True or 'both', got {flip!r}")
    if limit is not None:
        dataset = dataset[:limit]
    out = {"keypoints": [], "scores": []}
    perm = dataset.skeleton.flip_permutation
    if flip == "both":
        out.update(keypoints_flip=[], scores_flip=[])
    t0 = time.perf_counter()
    for batch in eval_dataset(dataset, input_size, padding, batch_size):
        images = batch["images"].numpy()
        if flip is True:
            kp, sc = flip_predict(images) if flip_predict else flip_average(predict, images, perm)
        else:
            kp, sc = predict(images)
        out["keypoints"].append(to_source_coordinates(kp, batch["matrix"]).numpy())
        out["scores"].append(np.asarray(sc))
        if flip == "both":
            kp, sc = flip_predict(images) if flip_predict else flip_average(predict, images, perm, plain=(kp, sc))
            out["keypoints_flip"].append(to_source_coordinates(kp, batch["matrix"]).numpy())
            out["scores_flip"].append(np.asarray(sc))
    out = {k: np.concatenate(v) for k, v in out.items()}
    out["seconds"] = time.perf_counter() - t0
    return out


def _predictor(model_or_predict, input_size: int | None, dataset: PoseDataset, flip_predict=None, flip=False):
    """(images -> (keypoints, scores), input side, flip-test function or None) for a Keras model (its
    heatmap-space flip test where it has one, built only when ``flip`` asks for a flip test) or a
    predictor callable (``flip_predict`` as given)."""
    if callable(model_or_predict) and not hasattr(model_or_predict, "input_shape"):
        if input_size is None:
            raise ValueError("input_size is required when evaluating a predictor function")
        return model_or_predict, input_size, flip_predict
    model = model_or_predict
    if flip and flip_predict is None:  # not on every plain validation pass of a training run
        flip_predict = heatmap_flip_predictor(model, dataset.skeleton.flip_permutation)
    return keras_predictor(model), input_size or model_input_size(model), flip_predict


def score_predictions(keypoints: np.ndarray, dataset: PoseDataset, alpha: float = 0.2) -> dict:
    """PCK@alpha (torso-normalised, LSP style) of predictions against a dataset's annotations."""
    a = dataset.arrays()
    result = metrics.pck(keypoints, a["joints"], a["annotated"], metrics.torso_sizes(a["joints"], dataset.skeleton),
                         alpha=alpha)
    return {"pck": float(result.mean) * 100.0, "per_joint": np.asarray(result.per_joint) * 100.0, "result": result}


def evaluate_model(model_or_predict, dataset: PoseDataset, padding: float = 1.25, batch_size: int = 32,
                   flip: bool = False, limit: int | None = None, input_size: int | None = None,
                   alpha: float = 0.2, flip_predict: Callable | None = None) -> dict:
    """PCK@alpha of a Keras model (or predictor callable) on a dataset, in original image coordinates.

    The flip test of a Keras model with a heatmap decoder averages maps (:func:`heatmap_flip_predictor`);
    a predictor callable's averages coordinates unless ``flip_predict`` is given.
    """
    predict, input_size, flip_predict = _predictor(model_or_predict, input_size, dataset, flip_predict, flip)
    if limit is not None:
        dataset = dataset[:limit]
    pred = predict_dataset(predict, dataset, input_size, padding, batch_size, flip, flip_predict=flip_predict)
    out = score_predictions(pred["keypoints"], dataset, alpha)
    out.update(keypoints=pred["keypoints"], scores=pred["scores"], seconds=pred["seconds"], count=len(dataset))
    return out


def measure_latency(predict: Callable, input_size: int | None = None, runs: int = 30, warmup: int = 3,
                    batch: int = 1, images: np.ndarray | None = None) -> dict:
    """Median and p90 wall time (ms) of one ``predict`` call on ``images`` (default: a random batch)."""
    x = images if images is not None else np.random.default_rng(0).uniform(
        0, 255, (batch, input_size, input_size, 3)).astype(np.float32)
    for _ in range(warmup):
        predict(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        predict(x)
        times.append((time.perf_counter() - t) * 1000.0)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "runs": runs,
            "machine": machine_description()}


def evaluation_report(model_or_predict, dataset: PoseDataset, padding: float = 1.25, input_size: int | None = None,
                      limit: int | None = None, flip: bool = True, latency: bool = True, name: str = "model",
                      flip_predict: Callable | None = None) -> dict:
    """PCK@0.2 per joint group with and without flip test, plus CPU latency: what model cards report.

    The crop is the papers' one, centred on the annotated person (``crop="person"``); the flip test
    is as in :func:`evaluate_model`. Returns a JSON-friendly dict; :func:`report_markdown` renders it.
    (The whole-image protocol a user meets is :func:`keras_pose.inference.predictor_report`.)
    """
    predict, size, flip_predict = _predictor(model_or_predict, input_size, dataset, flip_predict, flip)
    if limit is not None:
        dataset = dataset[:limit]
    pred = predict_dataset(predict, dataset, size, padding, flip="both" if flip else False,
                           flip_predict=flip_predict)  # one pass over the crops for both
    out = report_from_predictions(pred, dataset, name=name, padding=padding, crop="person")
    if flip:
        out["flip_test"] = "heatmaps" if flip_predict else "coordinates"
    if latency:
        out["latency_batch1"] = measure_latency(predict, size)
    return out


def report_from_predictions(pred: dict, dataset: PoseDataset, name: str = "model", padding: float = 1.25,
                            crop: str = "person", refine: int = 0) -> dict:
    """The report's accuracy and confidence part from predictions in original image pixels.

    ``pred``: ``keypoints`` (N, K, 2) and ``scores`` (N, K), optionally
    ``keypoints_flip`` / ``scores_flip``. Besides PCK@0.2 per joint group it
    reports how well the scores separate correct from wrong joints (``confidence``:
    :func:`keras_pose.metrics.score_auroc` and the :func:`keras_pose.metrics.reliability`
    table over the annotated joints; the ECE only for scores in [0, 1]).
    """
    out = {"name": name, "dataset": dataset.name, "count": len(dataset), "alpha": 0.2, "padding": padding,
           "crop": crop, "refine": int(refine)}
    for suffix in ("", "_flip"):
        if f"keypoints{suffix}" not in pred:
            continue
        res = score_predictions(pred[f"keypoints{suffix}"], dataset)
        out[f"pck{suffix}"] = res["pck"]
        out[f"groups{suffix}"] = _groups(res["per_joint"], dataset)
        out[f"confidence{suffix}"] = confidence_report(pred[f"scores{suffix}"], res["result"])
    return out


def confidence_report(scores, result: "metrics.PCKResult", bins: int = 10) -> dict:
    """AUROC of the scores for "correct at PCK" (annotated joints), the score threshold that separates them best
    (:func:`keras_pose.metrics.youden_threshold`), and a reliability table if scores are in [0, 1]."""
    scores = np.asarray(scores, np.float64)
    out = {"auroc": metrics.score_auroc(scores, result.correct, result.mask),
           "threshold": metrics.youden_threshold(scores, result.correct, result.mask),
           "score_min": float(np.min(scores[result.mask])), "score_max": float(np.max(scores[result.mask]))}
    if 0.0 <= out["score_min"] and out["score_max"] <= 1.0:
        rel = metrics.reliability(scores, result.correct, result.mask, bins=bins)
        out["ece"] = rel["ece"]
        out["reliability"] = {k: [None if not np.isfinite(v) else float(v) for v in np.asarray(rel[k], np.float64)]
                              for k in ("edges", "count", "mean_score", "accuracy")}
    return out


def _groups(per_joint, dataset):
    table = metrics.results_table(np.asarray(per_joint) / 100.0, dataset.skeleton)
    return {k: float(v) for k, v in table.iloc[0].items()}


def report_markdown(report: dict) -> str:
    """The report as Markdown tables (papers' joint-group layout)."""
    import pandas as pd

    rows = {"single crop": report["groups"]}
    if "groups_flip" in report:
        rows["flip test"] = report["groups_flip"]
    df = pd.DataFrame.from_dict(rows, orient="index")
    crop = report.get("crop", "person")
    how = {"person": "crop centred on the annotated person", "image": "the whole image as the crop",
           "portrait": "each image cut to the person's head and shoulders, the picture as the crop"}[crop]
    if report.get("search"):
        how += f", zoomed out {'/'.join(f'{z:g}' for z in report['search'])} times too (the most confident kept)"
    if report.get("refine"):
        how += f", then {report['refine']} re-crop(s) around the confident keypoints"
    if crop == "portrait":
        how += (f"; the joints in the picture count, {report.get('count_skipped', 0)} persons not upright "
                "enough to frame left out")
    lines = [f"PCK@{report['alpha']} on {report['dataset']} ({report['count']} images; {how}), in %:", "",
             metrics.table_to_markdown(df)]
    if report.get("flip_test"):
        lines += ["", "Flip test: the image and its mirror, their "
                  + {"heatmaps": "heatmaps averaged before decoding.",
                     "coordinates": "keypoints averaged."}[report["flip_test"]]]
    conf = report.get("confidence")
    if conf:
        line = (f"Per-joint scores (single crop) as a detector of joints correct at PCK@0.2: "
                f"ROC AUC {conf['auroc']:.3f}")
        line += f", expected calibration error {conf['ece']:.3f}." if "ece" in conf else "."
        lines += ["", line]
    pres = report.get("presence")
    if pres:
        lines += ["", f"Joints in the picture ({pres['joints_in']}) against annotated joints outside it "
                  f"({pres['joints_out']}): ROC AUC {pres['auroc']:.3f}; scoring >= {pres['threshold']:.3g} and "
                  f"drawn: {100 * pres['shown_in']:.0f}% of those in it, {100 * pres['shown_out']:.0f}% of those "
                  "outside."]
    if "latency_batch1" in report:
        lat = report["latency_batch1"]
        where = f" ({lat['machine']})" if lat.get("machine") else ""
        lines += ["", f"CPU latency, batch 1{where}: median {lat['median_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms."]
    return "\n".join(lines) + "\n"


#: The portrait protocol (``keras-pose evaluate --crop portrait``): each image cut as a head-and-shoulders photo
#: frames its person. The picture ends this fraction of the way down from the shoulders to the hips ...
PORTRAIT_CUT = 0.4
#: ... and leaves this much room, in torso lengths (shoulders to hips), above the head and beside the joints kept.
PORTRAIT_MARGIN = 0.3
#: The joints that say whether a person stands upright enough to be framed so (all must be annotated).
PORTRAIT_JOINTS = ("head_top", "neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip")


def portrait_window(record, image_shape, skeleton, cut: float = PORTRAIT_CUT,
                    margin: float = PORTRAIT_MARGIN) -> tuple[int, int, int, int] | None:
    """The head-and-shoulders picture of a record's person: integer (x0, y0, x1, y1), the image rows and columns
    ``[y0:y1, x0:x1]``; the picture ends ``cut`` of the way from the shoulders down to the hips, and leaves
    ``margin`` torso lengths above the head and beside the annotated joints above that line.

    None when the person is not upright (the head above the shoulders above the hips, each annotated) or the
    picture would be under 8 pixels on a side: such a person is not framed as a portrait.
    """
    idx = [skeleton.index(n) for n in PORTRAIT_JOINTS]
    joints, annotated = np.asarray(record.joints, np.float64), np.asarray(record.annotated, bool)
    if not annotated[idx].all():
        return None
    head, neck = joints[idx[0], 1], joints[idx[1], 1]
    shoulders, hips = joints[idx[2:4], 1].mean(), joints[idx[4:6], 1].mean()
    if not head < neck < hips or not head < shoulders < hips:
        return None
    torso = hips - shoulders
    bottom = shoulders + cut * torso
    kept = joints[annotated & (joints[:, 1] < bottom)]
    h, w = image_shape[:2]
    room = margin * torso
    x0, x1 = max(0, int(np.floor(kept[:, 0].min() - room))), min(w, int(np.ceil(kept[:, 0].max() + room)))
    y0, y1 = max(0, int(np.floor(head - room))), min(h, int(np.ceil(bottom)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def in_window(joints, window) -> np.ndarray:
    """(..., K) bool: the points (..., K, 2) inside the picture ``window`` (x0, y0, x1, y1) of image rows and
    columns ``[y0:y1, x0:x1]`` (pixel centres at integer coordinates, so its edges lie half a pixel out)."""
    x, y = np.moveaxis(np.asarray(joints, np.float64), -1, 0)
    x0, y0, x1, y1 = (float(v) - 0.5 for v in window)
    return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)


def portrait_report(pred: dict, dataset: PoseDataset, threshold: float, name: str = "model", padding: float = 1.25,
                    refine: int = 0) -> dict:
    """:func:`report_from_predictions` for the portrait protocol (``pred`` from
    :func:`keras_pose.inference.predict_records` with ``crop="portrait"``).

    The persons not framed as a portrait (NaN ``windows``) are left out and counted (``count_skipped``). PCK
    and the score quality count the annotated joints inside the picture; ``presence`` says how well the scores
    tell them from the annotated joints outside it, which a photo does not show: the ROC AUC, and the fractions
    of each scoring at least ``threshold`` (drawn by ``keras-pose predict``).
    """
    import dataclasses

    windows = np.asarray(pred["windows"], np.float64)
    idx = np.flatnonzero(np.all(np.isfinite(windows), axis=1))
    if not len(idx):
        raise ValueError(f"no person of {dataset.name} is framed as a portrait (it needs {', '.join(PORTRAIT_JOINTS)} "
                         f"annotated and the head above the shoulders above the hips)")
    sub = dataset.subset(idx)
    a = sub.arrays()
    inside = a["annotated"] & np.stack([in_window(a["joints"][i], windows[j]) for i, j in enumerate(idx)])
    framed = PoseDataset(sub.name, sub.skeleton,
                         [dataclasses.replace(r, annotated=m) for r, m in zip(sub.records, inside)])
    kept = {k: np.asarray(v)[idx] for k, v in pred.items() if k.startswith(("keypoints", "scores"))}
    out = report_from_predictions(kept, framed, name=name, padding=padding, crop="portrait", refine=refine)
    out["count_skipped"] = int(len(dataset) - len(idx))
    for suffix in ("", "_flip"):
        if f"scores{suffix}" in kept:
            out[f"presence{suffix}"] = presence_report(kept[f"scores{suffix}"], inside, a["annotated"], threshold)
    return out


def presence_report(scores, inside, annotated, threshold: float) -> dict:
    """How well per-joint ``scores`` (N, K) tell the annotated joints ``inside`` a picture from the annotated
    ones outside it: ROC AUC, and the fraction of each scoring at least ``threshold`` (NaN if there are none)."""
    scores = np.asarray(scores, np.float64)
    inside, annotated = np.asarray(inside, bool), np.asarray(annotated, bool)
    outside = annotated & ~inside

    def shown(mask):
        return float(np.mean(scores[mask] >= threshold)) if mask.any() else float("nan")

    return {"auroc": metrics.score_auroc(scores, inside, annotated), "threshold": float(threshold),
            "joints_in": int(inside.sum()), "joints_out": int(outside.sum()),
            "shown_in": shown(inside), "shown_out": shown(outside)}
