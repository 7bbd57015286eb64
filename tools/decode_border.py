#!/usr/bin/env python
"""Validation PCK@0.2 of a part-heatmap run or preset for several ``decode_border`` values.

Usage:
    python tools/decode_border.py checkpoints/part_heatmap_lsp [--borders 0 1 2 4] [--data ../shared/data]

Scores the run's held-out validation images (every 10th LSP *train* image,
as ``keras-pose train`` holds them out; never the test split) with the
run's best weights, decoding the regression maps while skipping 0, 1, 2...
pixels on each edge (``PartHeatmapConfig.decode_border``). This is how
``part_heatmap_small``'s ``decode_border=2`` was chosen (docs/recipes.md).
"""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="training run folder (model.json + best.weights.h5), zoo preset folder or zoo name")
    parser.add_argument("--borders", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--data", default=None, help="data root holding lsp/ and lspet/")
    parser.add_argument("--val-every", type=int, default=10, help="the run's val_every")
    args = parser.parse_args(argv)

    from keras_pose.evaluation import evaluate_model
    from keras_pose.training.loop import load_datasets, split_holdout
    from keras_pose.zoo import build_from_dict, resolve

    run = args.run
    config, weights = resolve(run)
    if config.get("family") != "part_heatmap":
        raise SystemExit(f"{run}: decode_border is a part_heatmap option, this model is {config.get('family')!r}")
    _, val = split_holdout(load_datasets(("lsp_train",), args.data), args.val_every)
    print(f"{run} ({weights.name}), {len(val)} validation images")
    print("| decode_border | validation PCK@0.2 |\n|---|---|")
    for border in args.borders:
        model = build_from_dict(dict(config, decode_border=border))
        model.load_weights(weights)
        print(f"| {border} | {evaluate_model(model, val)['pck']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
