#!/usr/bin/env python
"""Benchmark the exported forms of zoo models: latency (1 and 2 threads), file size, PCK@0.2 (docs/export.md).

For every zoo preset (or the --model list): export (SavedModel + 4 TFLite
variants, full int8 calibrated on LSP training crops), then time batch-1
calls and score the first --limit LSP test images. Prints a Markdown table.

Usage: python tools/benchmark_export.py [--model cpm_lsp ...] [--data DIR] [--limit 200] [--runs 50]
                                        [--threads 1 2] [--calibration 100] [--json results.json]
"""

import argparse
import json
import sys

from keras_pose import zoo
from keras_pose.benchmarks.export import benchmark_export, results_markdown


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=None,
                    help="zoo names or preset / run folders (default: every preset)")
    ap.add_argument("--data", default=None, help="data root holding lsp/")
    ap.add_argument("--limit", type=int, default=200, help="PCK on the first N LSP test images")
    ap.add_argument("--runs", type=int, default=50, help="timed batch-1 calls per variant")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="TFLite interpreter thread counts")
    ap.add_argument("--calibration", type=int, default=100, help="LSP training crops for full-int8 calibration")
    ap.add_argument("--json", default=None, help="also write the raw results to this JSON file")
    args = ap.parse_args(argv)
    models = args.model or list(zoo.presets())
    if not models:
        print(f"no zoo presets in {zoo.zoo_dir()}; pass --model", file=sys.stderr)
        return 2
    results = []
    for m in models:
        print(f"benchmarking {m}", file=sys.stderr)
        results.append(benchmark_export(m, data_root=args.data, limit=args.limit, threads=args.threads, runs=args.runs,
                                        calibration=args.calibration, log=lambda s: print(s, file=sys.stderr)))
    print(results_markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
