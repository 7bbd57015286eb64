"""Training-pipeline throughput (images/s with augmentation) at several input sizes."""

from __future__ import annotations

import time

from keras_pose.data import PipelineConfig, TrainPipeline
from keras_pose.data.records import PoseDataset


def pipeline_throughput(dataset: PoseDataset, input_size: int, batch_size: int = 32, batches: int = 40,
                        augment_in: str = "data") -> dict:
    """Images/s of the training pipeline: first pass (decode + crop + cache) and cached epochs."""
    tp = TrainPipeline(dataset, PipelineConfig(input_size=input_size, augment_in=augment_in), batch_size, seed=0)
    t = time.perf_counter()
    n = 0
    for _ in tp.epoch(0):
        n += batch_size
    first = n / (time.perf_counter() - t)
    it = iter(tp.epoch(1))
    next(it)  # warm up the augmentation graph
    t = time.perf_counter()
    for _ in range(min(batches, tp.steps_per_epoch - 1)):
        batch = next(it)
        if augment_in == "step":
            tp.augment(batch, batch["step"])
    cached = min(batches, tp.steps_per_epoch - 1) * batch_size / (time.perf_counter() - t)
    return {"input_size": input_size, "first_epoch_images_per_s": first, "augmented_images_per_s": cached,
            "images": len(dataset)}
