#!/usr/bin/env python
"""Print the training throughput of each small configuration (figures for docs/benchmarks.md).

Usage: python tools/benchmark_training.py [--presets cpm_small ...] [--policies float32 mixed_bfloat16]
       [--freeze-backbone-bn]
Run it on an otherwise idle machine.
"""

import argparse

from keras_pose.benchmarks.training import training_throughput
from keras_pose.models.registry import list_architectures


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=list_architectures(variant="small"))
    ap.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--freeze-backbone-bn", action="store_true",
                    help="trunk presets: BN layers of the pretrained trunk in inference mode")
    args = ap.parse_args()
    overrides = {"freeze_backbone_bn": True} if args.freeze_backbone_bn else {}
    print("| preset | GFLOPs | precision | images/s | training GFLOP/s (3 x forward) |")
    print("|---|---|---|---|---|")
    for name in args.presets:
        for policy in args.policies:
            r = training_throughput(name, args.batch_size, policy=policy, **overrides)
            print(f"| `{name}` | {r['gflops']:.2f} | {policy} | {r['images_per_s']:.1f} | "
                  f"{r['train_gflops_per_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
