#!/usr/bin/env python
"""Write docs/models.md: params, GFLOPs at the native input and output strides of every registered preset.

Usage:
    python tools/model_table.py [--output docs/models.md] [--only cpm_small softargmax_small ...]

All logic lives in ``keras_pose.models.registry.architectures_markdown``.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--output", default=os.path.join(root, "docs", "models.md"), help="markdown file to write")
    parser.add_argument("--only", nargs="*", default=None, help="preset names (default: every registered preset)")
    args = parser.parse_args(argv)

    from keras_pose.models.registry import architectures_markdown

    text = architectures_markdown(args.only)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
