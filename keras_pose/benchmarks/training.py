"""Training throughput (images/s of the compiled training step) of the zoo-sized configurations."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from keras_pose.flops import count_flops
from keras_pose.models.registry import build_model, get_config
from keras_pose.training.fused_bn import fused_batchnorm
from keras_pose.training.objectives import make_objective


def training_throughput(name: str, batch_size: int = 16, steps: int = 15, policy: str = "float32",
                        fused: bool = False, **overrides) -> dict:
    """Images/s of one training step (forward, losses, backward, Adam) on random data.

    The step is the one the Trainer compiles (targets encoded in the step from
    random joints), so the figure is the model's cost without the input pipeline.
    ``overrides`` replace fields of the architecture's config (e.g.
    ``freeze_backbone_bn=True``). ``fused``: BN on the fused kernel, as the Trainer runs it
    (:func:`keras_pose.training.fused_bn.fused_batchnorm`, ``TrainConfig.fused_batchnorm``).
    """
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(get_config(name).replace(**overrides), name=name) if overrides else build_model(name)
        gflops = count_flops(model) / 1e9
        objective = make_objective(model)
        optimizer = keras.optimizers.Adam(1e-4)
        optimizer.build(model.trainable_variables)
        s = int(model.input_shape[1])
        k = int(dict(zip(model.output_names, model.outputs))["keypoints"].shape[1])
        rng = np.random.default_rng(0)
        images = tf.constant(rng.uniform(0, 255, (batch_size, s, s, 3)), tf.float32)
        flags = tf.ones((batch_size, k), tf.bool)
        batch = {"joints": tf.constant(rng.uniform(0.1 * s, 0.9 * s, (batch_size, k, 2)), tf.float32),
                 "visible": flags, "annotated": flags, "in_crop": flags}
        targets = objective.encode(batch)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                total, _ = objective(model(images, training=True), targets)
            grads = tape.gradient(total, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return total

        with fused_batchnorm(model, fused):
            step()  # traced here
        step()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        float(step())
        seconds = (time.perf_counter() - t) / (steps + 1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    ips = batch_size / seconds
    return {"name": name, "policy": policy, "batch_size": batch_size, "fused": fused, "gflops": gflops,
            "images_per_s": ips,
            "train_gflops_per_s": 3 * gflops * ips}
