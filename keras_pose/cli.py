"""The ``keras-pose`` command line: thin wrappers over the library.

Subcommands register themselves in ``COMMANDS`` (name -> (add_arguments, run)).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMMANDS = {}


def command(name, help):
    """Decorator: register ``add_arguments`` for subcommand ``name``; it returns the run function."""

    def deco(add_arguments):
        COMMANDS[name] = (help, add_arguments)
        return add_arguments

    return deco


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


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-pose", description="keras_pose: 2D human pose estimation model zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, add_arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(_run=add_arguments(p))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"keras-pose {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
