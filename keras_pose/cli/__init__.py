"""The ``keras-pose`` command line: thin wrappers over the library.

One package, data flowing one way (library -> predictor -> CLI): the
subcommand modules (:mod:`~keras_pose.cli.core`: info, train, evaluate, zoo,
zoo-add, zoo-card; :mod:`~keras_pose.cli.export`: export, predict;
:mod:`~keras_pose.cli.visualize`: visualize) register themselves in
:data:`keras_pose.cli.registry.COMMANDS`; this module imports them and
builds the parser. Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_pose.cli import core, export, visualize  # noqa: E402 - each registers its subcommands
from keras_pose.cli.core import metrics_stem  # noqa: E402
from keras_pose.cli.registry import COMMANDS, command  # noqa: E402


def build_parser():
    """The argparse parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="keras-pose", description="keras_pose: 2D human pose estimation model zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, add_arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(_run=add_arguments(p))
    return parser


def main(argv=None):
    """Entry point of ``keras-pose``; returns the exit code (2 for a clear user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args._run(args) or 0
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"keras-pose {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-pose {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "build_parser", "command", "core", "export", "main", "metrics_stem", "visualize"]
