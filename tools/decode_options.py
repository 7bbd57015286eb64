#!/usr/bin/env python
"""Validation PCK@0.2 of a part-heatmap run or preset for several decoder settings.

Usage:
    python tools/decode_options.py checkpoints/part_heatmap_lsp [--borders 0 2] [--smooth 0 5 9 13]
        [--int8] [--data ../shared/data]

Scores the run's held-out validation images (every 10th LSP *train* image,
as ``keras-pose train`` holds them out; never the test split) with the
run's best weights, for every pair of ``PartHeatmapConfig.decode_border``
(pixels skipped on each edge) and ``decode_smooth`` (box width of the blur
before the argmax). With ``--int8`` it also scores the full-int8 TFLite
file, calibrated on 100 training crops (hold-out excluded). This
is how ``part_heatmap_scratch_lsp``'s decoder was chosen (docs/recipes.md).
"""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="training run folder (model.json + best.weights.h5), zoo preset folder or zoo name")
    parser.add_argument("--borders", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--smooth", type=int, nargs="+", default=[0])
    parser.add_argument("--int8", action="store_true", help="also score the full-int8 TFLite file")
    parser.add_argument("--data", default=None, help="data root holding lsp/ and lspet/")
    parser.add_argument("--val-every", type=int, default=10, help="the run's val_every")
    args = parser.parse_args(argv)

    from keras_pose import export
    from keras_pose.evaluation import evaluate_model
    from keras_pose.training.loop import load_datasets, split_holdout
    from keras_pose.zoo import build_from_dict, resolve

    run = args.run
    config, weights = resolve(run)
    if config.get("family") != "part_heatmap":
        raise SystemExit(f"{run}: decode_border / decode_smooth are part_heatmap options, "
                         f"this model is {config.get('family')!r}")
    train, val = split_holdout(load_datasets(("lsp_train",), args.data), args.val_every)
    crops = export.representative_crops(train, config["input_size"][0]) if args.int8 else None
    print(f"{run} ({weights.name}), {len(val)} validation images")
    columns = ["decode_border", "decode_smooth", "validation PCK@0.2"] + (["full int8"] if args.int8 else [])
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for border in args.borders:
        for smooth in args.smooth:
            model = build_from_dict(dict(config, decode_border=border, decode_smooth=smooth))
            model.load_weights(weights)
            row = [str(border), str(smooth), f"{evaluate_model(model, val)['pck']:.1f}"]
            if args.int8:
                runner = export.TFLiteRunner.from_bytes(export.convert_tflite(model, "full_int8", crops))
                row.append(f"{evaluate_model(runner, val, input_size=runner.input_size)['pck']:.1f}")
            print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
