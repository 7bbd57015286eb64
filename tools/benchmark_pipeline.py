#!/usr/bin/env python
"""Print the training pipeline's throughput at 128, 256 and 368 (figures for docs/benchmarks.md).

Usage: python tools/benchmark_pipeline.py [--data DIR] [--sizes 128 256 368] [--images 2000]
"""

import argparse

from keras_pose.benchmarks.pipeline import pipeline_throughput
from keras_pose.data import read_lsp, read_lspet


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 368])
    ap.add_argument("--images", type=int, default=2000, help="records used (LSP train + LSPET)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    ds = (read_lsp(args.data, "train") + read_lspet(args.data))[: args.images]
    print("| input | first epoch (decode + crop + cache), img/s | augmented batches, img/s |")
    print("|---|---|---|")
    for s in args.sizes:
        r = pipeline_throughput(ds, s, args.batch_size)
        print(f"| {s}x{s} | {r['first_epoch_images_per_s']:.0f} | {r['augmented_images_per_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
