"""Run a model over a dataset and score it (shared by validation, ``keras-pose evaluate`` and the zoo guard)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from keras_pose import metrics
from keras_pose.data.pipeline import eval_dataset, to_source_coordinates
from keras_pose.data.records import PoseDataset


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


def flip_average(predict: Callable, images: np.ndarray, flip_permutation) -> tuple[np.ndarray, np.ndarray]:
    """Flip test: average the predictions of the image and of its mirror (joints swapped back)."""
    kp, sc = predict(images)
    kp_f, sc_f = predict(np.ascontiguousarray(images[:, :, ::-1]))
    width = images.shape[2]
    perm = list(flip_permutation)
    kp_f = kp_f[:, perm].copy()
    kp_f[..., 0] = width - 1 - kp_f[..., 0]
    return (kp + kp_f) / 2.0, (sc + sc_f[:, perm]) / 2.0


def predict_dataset(predict: Callable, dataset: PoseDataset, input_size: int, padding: float = 1.25,
                    batch_size: int = 32, flip: bool = False, limit: int | None = None):
    """Predictions in ORIGINAL image coordinates for every record.

    Args:
        predict: images -> (keypoints, scores), e.g. :func:`keras_predictor`
            or a TFLite/SavedModel predictor from :mod:`keras_pose.inference`.
        dataset: the records (crops come from their centre and scale).
        limit: only the first ``limit`` records.

    Returns:
        dict with ``keypoints`` (N, K, 2), ``scores`` (N, K), ``seconds``.
    """
    if limit is not None:
        dataset = dataset[:limit]
    kps, scores = [], []
    t0 = time.perf_counter()
    for batch in eval_dataset(dataset, input_size, padding, batch_size):
        images = batch["images"].numpy()
        if flip:
            kp, sc = flip_average(predict, images, dataset.skeleton.flip_permutation)
        else:
            kp, sc = predict(images)
        kps.append(to_source_coordinates(kp, batch["matrix"]).numpy())
        scores.append(np.asarray(sc))
    return {"keypoints": np.concatenate(kps), "scores": np.concatenate(scores), "seconds": time.perf_counter() - t0}


def score_predictions(keypoints: np.ndarray, dataset: PoseDataset, alpha: float = 0.2) -> dict:
    """PCK@alpha (torso-normalised, LSP style) of predictions against a dataset's annotations."""
    a = dataset.arrays()
    result = metrics.pck(keypoints, a["joints"], a["annotated"], metrics.torso_sizes(a["joints"], dataset.skeleton),
                         alpha=alpha)
    return {"pck": float(result.mean) * 100.0, "per_joint": np.asarray(result.per_joint) * 100.0, "result": result}


def evaluate_model(model_or_predict, dataset: PoseDataset, padding: float = 1.25, batch_size: int = 32,
                   flip: bool = False, limit: int | None = None, input_size: int | None = None,
                   alpha: float = 0.2) -> dict:
    """PCK@alpha of a Keras model (or predictor callable) on a dataset, in original image coordinates."""
    if callable(model_or_predict) and not hasattr(model_or_predict, "input_shape"):
        predict = model_or_predict
        if input_size is None:
            raise ValueError("input_size is required when evaluating a predictor function")
    else:
        predict = keras_predictor(model_or_predict)
        input_size = input_size or model_input_size(model_or_predict)
    if limit is not None:
        dataset = dataset[:limit]
    pred = predict_dataset(predict, dataset, input_size, padding, batch_size, flip)
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
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "runs": runs}


def evaluation_report(model_or_predict, dataset: PoseDataset, padding: float = 1.25, input_size: int | None = None,
                      limit: int | None = None, flip: bool = True, latency: bool = True, name: str = "model") -> dict:
    """PCK@0.2 per joint group with and without flip test, plus CPU latency: what model cards report.

    Returns a JSON-friendly dict; :func:`report_markdown` renders it.
    """
    res = evaluate_model(model_or_predict, dataset, padding=padding, limit=limit, input_size=input_size)
    size = input_size or model_input_size(model_or_predict)
    out = {"name": name, "dataset": dataset.name, "count": res["count"], "alpha": 0.2, "padding": padding,
           "pck": res["pck"], "groups": _groups(res["per_joint"], dataset)}
    if flip:
        rf = evaluate_model(model_or_predict, dataset, padding=padding, limit=limit, input_size=input_size, flip=True)
        out.update(pck_flip=rf["pck"], groups_flip=_groups(rf["per_joint"], dataset))
    if latency:
        predict = model_or_predict if input_size else keras_predictor(model_or_predict)
        out["latency_batch1"] = measure_latency(predict, size)
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
    lines = [f"PCK@{report['alpha']} on {report['dataset']} ({report['count']} images), in %:", "",
             metrics.table_to_markdown(df)]
    if "latency_batch1" in report:
        lat = report["latency_batch1"]
        lines += ["", f"CPU latency, batch 1: median {lat['median_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms."]
    return "\n".join(lines) + "\n"
