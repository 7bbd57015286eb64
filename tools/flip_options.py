#!/usr/bin/env python
"""Validation PCK@0.2 of runs or presets: single crop, flip test averaging coordinates, flip test averaging heatmaps.

Usage:
    python tools/flip_options.py cpm_lsp part_heatmap_scratch_lsp [--data ../shared/data] [--val-every 10]

Scores each model's held-out validation images (every 10th LSP *train*
image, as ``keras-pose train`` holds them out; never the test split). The
heatmap column is there for models decoded by a ``HeatmapToKeypoints``
layer (CPM, part heatmap regression; ``keras_pose.evaluation.heatmap_flip_predictor``).
This is how the flip test of the Keras heatmap models was chosen (docs/recipes.md).
"""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="zoo names, preset folders or training run folders")
    parser.add_argument("--data", default=None, help="data root holding lsp/")
    parser.add_argument("--val-every", type=int, default=10, help="the runs' val_every")
    args = parser.parse_args(argv)

    from keras_pose.evaluation import (evaluate_model, evaluation_report, heatmap_flip_predictor, keras_predictor,
                                       model_input_size)
    from keras_pose.training.loop import load_datasets, split_holdout
    from keras_pose.zoo import build_from_dict, resolve

    _, val = split_holdout(load_datasets(("lsp_train",), args.data), args.val_every)
    print(f"{len(val)} validation images (every {args.val_every}th LSP train image)\n")
    print("| model | single crop | flip, coordinates averaged | flip, heatmaps averaged |\n|---|---|---|---|")
    for spec in args.models:
        config, weights = resolve(spec)
        model = build_from_dict(config)
        model.load_weights(weights)
        size = model_input_size(model)
        predict = keras_predictor(model)
        report = evaluation_report(predict, val, input_size=size, latency=False)  # single crop + coordinates
        maps = heatmap_flip_predictor(model, val.skeleton.flip_permutation)
        heat = (f"{evaluate_model(predict, val, input_size=size, flip=True, flip_predict=maps)['pck']:.1f}"
                if maps else "n/a")
        plain, coords = report["pck"], report["pck_flip"]
        print(f"| `{spec}` | {plain:.1f} | {coords:.1f} | {heat} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
