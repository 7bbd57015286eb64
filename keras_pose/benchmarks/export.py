"""Exported-model benchmark: batch-1 CPU latency, file size and PCK@0.2 of every runtime and quantization.

For one model (a zoo name or a preset / run folder): export everything with
:func:`keras_pose.export.export_from_spec` (full int8 calibrated on LSP
*training* crops), then for Keras, the SavedModel and each TFLite file (with
1 and 2 interpreter threads) measure the median / p90 latency of one
batch-1 call on a person crop, and PCK@0.2 on the first ``limit`` LSP *test*
images (single crop, no flip). ``tools/benchmark_export.py`` prints the
Markdown table of ``docs/export.md``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from keras_pose.machine import machine_description


def _latency(predict: Callable, crop: np.ndarray, runs: int, warmup: int = 3) -> dict:
    from keras_pose.evaluation import measure_latency

    out = measure_latency(predict, runs=runs, warmup=warmup, images=crop)
    return {"median_ms": out["median_ms"], "p90_ms": out["p90_ms"]}


def benchmark_export(spec: str | os.PathLike, data_root=None, limit: int = 200, threads: Sequence[int] = (1, 2),
                     runs: int = 50, calibration: int = 100, out_dir: str | os.PathLike | None = None,
                     log: Callable[[str], None] = print) -> dict:
    """Latency, size and PCK@0.2 of every exported form of one model.

    Args:
        spec: zoo name, or preset / training run folder.
        data_root: folder holding ``lsp/`` (default: see ``keras-pose info``).
        limit: PCK on the first ``limit`` LSP test images.
        threads: TFLite interpreter thread counts to time.
        runs: timed batch-1 calls per variant (after 3 warm-up calls).
        calibration: LSP training crops for the full-int8 model.
        out_dir: where the exported files go (default: a temporary folder,
            removed afterwards).

    Returns:
        ``{"model", "input_size", "rows": [...], "machine"}``; each row has
        ``runtime`` (``keras``, ``saved_model``, ``tflite float32``, ...),
        ``threads``, ``bytes``, ``median_ms``, ``p90_ms``, ``pck``.
    """
    from keras_pose import zoo
    from keras_pose.data import read_lsp
    from keras_pose.evaluation import evaluate_model, keras_predictor
    from keras_pose.export import (QUANTIZATIONS, SAVED_MODEL_DIR, SavedModelRunner, TFLiteRunner, export_from_spec,
                                   tflite_filename)

    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="keras_pose_export_")
        out_dir = tmp.name
    out_dir = Path(out_dir)
    try:
        manifest = export_from_spec(spec, out_dir, data_root=data_root, calibration=calibration, log=log)
        model = zoo.load(spec, cascade=True)
        s, padding = manifest["input_size"], manifest["padding"]
        test = read_lsp(data_root, "test")[:limit]
        crop = np.asarray(next(iter(_first_crop(test, s, padding))), np.float32)

        def pck(predict):
            return evaluate_model(predict, test, padding=padding, input_size=s)["pck"]

        rows = []
        variants = [("keras", keras_predictor(model), None),
                    ("saved_model", SavedModelRunner(out_dir / SAVED_MODEL_DIR), manifest["files"]["saved_model"])]
        for runtime, predict, info in variants:
            log(f"  {runtime}")
            rows.append({"runtime": runtime, "threads": "tf default", "bytes": None if info is None else info["bytes"],
                         **_latency(predict, crop, runs), "pck": pck(predict)})
        for q in QUANTIZATIONS:
            if q not in manifest["files"]:
                continue
            path = out_dir / tflite_filename(q)
            score = None
            for n in threads:
                log(f"  tflite {q}, {n} thread(s)")
                runner = TFLiteRunner(path, num_threads=n)
                if score is None:
                    score = pck(runner)
                rows.append({"runtime": f"tflite {q}", "threads": n, "bytes": path.stat().st_size,
                             **_latency(runner, crop, runs), "pck": score})
        return {"model": str(spec), "input_size": s, "limit": len(test), "runs": runs, "rows": rows,
                "manifest": manifest, "machine": machine_description()}
    finally:
        if tmp is not None:
            tmp.cleanup()


def _first_crop(dataset, input_size, padding):
    from keras_pose.data import eval_dataset

    for batch in eval_dataset(dataset[:1], input_size, padding, batch_size=1):
        yield batch["images"].numpy()


def results_markdown(results: Sequence[dict]) -> str:
    """One Markdown table for several :func:`benchmark_export` results."""
    lines = ["| model | runtime | threads | size (MB) | median (ms) | p90 (ms) | PCK@0.2 |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            size = "" if row["bytes"] is None else f"{row['bytes'] / 1e6:.2f}"
            lines.append(f"| `{r['model']}` | {row['runtime']} | {row['threads']} | {size} | {row['median_ms']:.2f} | "
                         f"{row['p90_ms']:.2f} | {row['pck']:.1f} |")
    if results:
        r = results[0]
        lines += ["", f"Latency: batch 1, median and p90 of {r['runs']} calls on one LSP test crop after 3 warm-up "
                  f"calls (Keras and SavedModel use TensorFlow's default thread pools). PCK@0.2 (torso) on the "
                  f"first {r['limit']} LSP test images, single crop, no flip. Machine: {r['machine']}."]
    return "\n".join(lines) + "\n"
