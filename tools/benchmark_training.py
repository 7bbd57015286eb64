#!/usr/bin/env python
"""Print the training throughput of each small configuration (figures for docs/benchmarks.md).

Usage: python tools/benchmark_training.py [--presets cpm_small ...] [--policies float32 mixed_bfloat16]
       [--freeze-backbone-bn] [--fused-batchnorm both] [--set num_blocks=1 num_context=0]
Run it on an otherwise idle machine.
"""

import argparse
import dataclasses
import json

from keras_pose.benchmarks.training import training_throughput
from keras_pose.models.registry import get_config, list_architectures


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=list_architectures(variant="small"))
    ap.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--freeze-backbone-bn", action="store_true",
                    help="trunk presets: BN layers of the pretrained trunk in inference mode")
    ap.add_argument("--fused-batchnorm", choices=["off", "on", "both"], default="off",
                    help="BN layers on TensorFlow's fused kernel, as the Trainer runs them (TrainConfig.fused_batchnorm)")
    ap.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                    help="replace fields of each preset's model config (values are JSON: 1, 0.5, true, [3, 3])")
    args = ap.parse_args()
    overrides = {"freeze_backbone_bn": True} if args.freeze_backbone_bn else {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            ap.error(f"--set: expected FIELD=VALUE, got {item!r}")
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError:
            ap.error(f"--set {item}: the value is not JSON (a number, true/false, a list or a quoted string)")
    for name in args.presets:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(get_config(name))})
        if unknown:
            ap.error(f"--set: {name}'s model config has no field {', '.join(unknown)}")
    fused = {"off": [False], "on": [True], "both": [False, True]}[args.fused_batchnorm]
    print("| preset | GFLOPs | precision | fused BN | images/s | training GFLOP/s (3 x forward) |")
    print("|---|---|---|---|---|---|")
    for name in args.presets:
        for policy in args.policies:
            for f in fused:
                r = training_throughput(name, args.batch_size, policy=policy, fused=f, **overrides)
                label = " ".join([f"`{name}`"] + [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
                print(f"| {label} | {r['gflops']:.2f} | {policy} | {'yes' if f else 'no'} | {r['images_per_s']:.1f} | "
                      f"{r['train_gflops_per_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
