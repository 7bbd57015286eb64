"""``keras-pose info | train | evaluate | zoo | zoo-add | zoo-card``: thin wrappers over the library."""

from __future__ import annotations

import sys

from keras_pose.cli.registry import command


@command("info", "versions, and where datasets and the zoo are looked for")
def _info(p):
    def run(args):
        import platform

        import keras
        import numpy
        import tensorflow as tf

        import keras_pose
        from keras_pose.data.paths import ENV_VAR, candidate_data_roots

        print(f"keras_pose {keras_pose.__version__}")
        print(f"python {platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, "
              f"numpy {numpy.__version__}")
        print(f"devices: {[d.name for d in tf.config.list_physical_devices()]}")
        from keras_pose.machine import native_bfloat16

        bf16 = native_bfloat16()
        print("native bfloat16 (mixed_bfloat16 training): "
              + {True: "yes", False: "no (train with --precision float32)", None: "unknown"}[bf16])
        print(f"data roots (in order; ${ENV_VAR} first if set):")
        for root in candidate_data_roots(args.data):
            found = [n for n in ("lsp", "lspet", "mpii") if (root / n).is_dir()]
            print(f"  {root}  {'found: ' + ', '.join(found) if found else '(nothing found)'}")
        try:
            from keras_pose.zoo import zoo_dir

            print(f"zoo: {zoo_dir()}")
        except ImportError:
            pass
        return 0

    p.add_argument("--data", default=None, help="a data root to check instead of the defaults")
    return run


@command("train", "train a model from a training config (resumable)")
def _train(p):
    def run(args):
        import logging

        from keras_pose.training import TrainConfig, train

        import signal

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

        from keras_pose.training.loop import STOP_REQUESTED, request_stop

        def stop(signum, frame):
            # First SIGTERM / Ctrl-C: the trainer finishes its step, writes a checkpoint and stops.
            # A second one interrupts at once (the last regular checkpoint stays).
            if STOP_REQUESTED.is_set():
                raise KeyboardInterrupt
            print(f"\n{signal.Signals(signum).name}: stopping after this step (again to stop at once)",
                  file=sys.stderr, flush=True)
            request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        config = TrainConfig.load(args.config)
        if args.precision is not None:  # e.g. float32 on a CPU without native bfloat16
            import dataclasses

            config = dataclasses.replace(config, mixed_precision=None if args.precision == "float32"
                                         else args.precision)
        strategy = None
        if args.strategy == "mirrored":
            import tensorflow as tf

            strategy = tf.distribute.MirroredStrategy()
        elif args.strategy == "multiworker":
            import tensorflow as tf

            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        trainer = train(config, args.out, data_root=args.data, resume=args.resume, epochs=args.epochs,
                        strategy=strategy, max_hours=args.max_hours)
        print(f"done: step {trainer.state['step']}, best validation PCK@0.2 {trainer.state['best_pck']:.2f}; "
              f"weights in {args.out}")
        return 0

    p.add_argument("--config", required=True,
                   help="training config JSON (e.g. keras_pose/zoo/presets/cpm_scratch_lsp/train.json)")
    p.add_argument("--data", default=None, help="data root holding lsp/, lspet/ (default: see `keras-pose info`)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, weights)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--epochs", type=int, default=None, help="train until this many epochs in total")
    p.add_argument("--max-hours", type=float, default=None,
                   help="stop (with a checkpoint) once the run has trained this many hours in total")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                   help="tf.distribute strategy (multiworker reads TF_CONFIG)")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16", "mixed_float16"], default=None,
                   help="override the config's mixed_precision (bfloat16 is only fast on CPUs with native "
                        "bfloat16: AVX512-BF16 or AMX; `keras-pose info` tells)")
    return run


SPLITS = ("lsp_test", "lsp_val", "lsp_train")


def _load_dataset(name, root):
    """lsp_test (final evaluation only), lsp_val (the training runs' validation holdout: every 10th LSP
    train image, for choosing options) or lsp_train."""
    from keras_pose.data import read_lsp

    if name not in SPLITS:
        raise ValueError(f"--split must be one of {list(SPLITS)}, got {name!r}")
    if name == "lsp_val":
        from keras_pose.training.config import TrainConfig
        from keras_pose.training.loop import split_holdout

        return split_holdout(read_lsp(root, "train"), TrainConfig.val_every)[1]
    return read_lsp(root, {"lsp_test": "test", "lsp_train": "train"}[name])


@command("evaluate", "PCK@0.2 per joint group (with and without flip test), score quality and CPU latency of a model")
def _evaluate(p):
    def run(args):
        import json
        from pathlib import Path

        from keras_pose import evaluation, zoo
        from keras_pose.inference import load_predictor, predictor_report

        if args.refine < 0:
            raise ValueError(f"--refine must be >= 0, got {args.refine}")
        predictor = load_predictor(args.model)
        dataset = _load_dataset(args.split, args.data)
        if args.search and args.crop == "person":
            raise ValueError("--search tries zoom-outs of an image without a box: use it with --crop image or portrait")
        if args.crop == "person" and not args.refine:  # the papers' protocol, batched
            report = evaluation.evaluation_report(predictor.predict, dataset, padding=predictor.padding,
                                                  input_size=predictor.input_size, limit=args.limit,
                                                  flip=not args.no_flip, name=predictor.name,
                                                  flip_predict=predictor.flip_predict)
        else:  # each image as `keras-pose predict` runs it
            report = predictor_report(predictor, dataset, crop=args.crop, refine=args.refine, flip=not args.no_flip,
                                      refine_threshold=args.refine_threshold, limit=args.limit,
                                      search=SEARCH_ZOOMS if args.search else ())
        report["command"] = "keras-pose " + " ".join(args.argv)
        md = evaluation.report_markdown(report)
        print(md)
        out = Path(args.out) if args.out else (zoo.get_preset(args.model).folder if args.model in zoo.presets()
                                                 else None)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            stem = metrics_stem(args.split, args.limit, args.crop, args.refine, args.search)
            (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
            (out / f"{stem}.md").write_text(md)
            print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
        return 0

    from keras_pose.inference import CROPS, REFINE_THRESHOLD, SEARCH_ZOOMS

    p.add_argument("--model", required=True,
                   help="zoo name (see `keras-pose zoo`), a preset or run folder, a SavedModel folder or a .tflite file")
    p.add_argument("--data", default=None, help="data root holding lsp/")
    p.add_argument("--split", default="lsp_test", choices=SPLITS,
                   help="lsp_test (default; final evaluation only), lsp_val (the training runs' validation "
                        "holdout, for choosing options such as --refine) or lsp_train")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--no-flip", action="store_true", help="skip the flip-test evaluation")
    p.add_argument("--crop", choices=CROPS, default="person",
                   help="person (default, the papers' protocol): a crop centred on the annotated person; "
                        "image: the whole image, as `keras-pose predict` crops a photo without --box; portrait: "
                        "each image cut to the person's head and shoulders, given whole (upright persons only)")
    p.add_argument("--refine", type=int, default=0,
                   help="re-crop N times around the confident keypoints (as `keras-pose predict --refine N`)")
    p.add_argument("--search", action="store_true",
                   help=f"also try the image zoomed out {'/'.join(f'{z:g}' for z in SEARCH_ZOOMS)} times and keep "
                        "the crop with the most confident joints (as `keras-pose predict --search`)")
    p.add_argument("--refine-threshold", type=float, default=REFINE_THRESHOLD,
                   help=f"score a keypoint needs to shape a re-crop (default {REFINE_THRESHOLD}, as for predict)")
    p.add_argument("--out", default=None, help="folder for metrics.json / metrics.md (default: the zoo preset's)")
    return run


def metrics_stem(split: str, limit, crop: str = "person", refine: int = 0, search: bool = False) -> str:
    """``metrics`` for the full LSP test split with the papers' crop, else e.g. ``metrics_image_refine1``,
    ``metrics_lsp_val_portrait_search_refine1``, ``metrics_lsp_train_100``."""
    parts = ["metrics"]
    if split != "lsp_test" or limit is not None:
        parts += [split] + ([str(limit)] if limit is not None else [])
    if crop != "person":
        parts.append(crop)
    if search:
        parts.append("search")
    if refine:
        parts.append(f"refine{refine}")
    return "_".join(parts)


@command("zoo", "list the zoo's trained models with their measured accuracy")
def _zoo(p):
    def run(args):
        from keras_pose import zoo

        rows = zoo.list()
        if not rows:
            print(f"no presets in {zoo.zoo_dir()}")
        for r in rows:
            pck = "not evaluated" if r["pck@0.2"] is None else f"PCK@0.2 {r['pck@0.2']:.1f}"
            if r["pck@0.2 flip"] is not None:
                pck += f" ({r['pck@0.2 flip']:.1f} with flip)"
            print(f"{r['name']:<22} {r['family']:<13} {pck:<34} {r['description']}")
        return 0

    return run


@command("zoo-add", "make a zoo preset from a finished training run (best weights, configs, learning curve)")
def _zoo_add(p):
    def run(args):
        from keras_pose import zoo

        preset = zoo.add_from_run(args.run, args.name, args.description, after=args.after)
        print(f"wrote {preset.folder} (weights SHA-256 {preset.sha256[:16]}...); next: "
              f"keras-pose evaluate --model {args.name} && keras-pose evaluate --model {args.name} --limit 100 "
              f"&& keras-pose zoo-card {args.name}")
        return 0

    p.add_argument("--run", required=True, help="training run folder (keras-pose train --out)")
    p.add_argument("--after", nargs="+", default=(), metavar="RUN",
                   help="the earlier runs (oldest first) whose weights --run continued: training.json and the "
                        "learning curve join them as legs")
    p.add_argument("--name", required=True, help="preset name, <network>_<dataset>, e.g. cpm_lsp")
    p.add_argument("--description", required=True, help="one line for `keras-pose zoo`")
    return run


@command("zoo-card", "regenerate model cards (<preset folder>/README.md) and docs/zoo.md from the committed files")
def _zoo_card(p):
    def run(args):
        from pathlib import Path

        from keras_pose import zoo
        from keras_pose.zoo import cards

        out = Path(args.table) if args.table else cards.default_table_path()  # outside a checkout: an error
        names = sorted(zoo.presets()) if args.all or not args.names else args.names
        for n in names:
            print(f"wrote {cards.write_card(n)}")
        out.write_text(cards.zoo_table(out.parent))
        print(f"wrote {out}")
        return 0

    p.add_argument("names", nargs="*", help="presets (default: all)")
    p.add_argument("--all", action="store_true", help="every preset")
    p.add_argument("--table", default=None,
                   help="where to write the zoo table (default: docs/zoo.md of the source checkout; "
                        "required when keras_pose is installed from a wheel)")
    return run
