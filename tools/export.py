#!/usr/bin/env python
"""Export a zoo model to a SavedModel and TFLite (float32, float16, dynamic-range int8, full int8).

Same arguments as ``keras-pose export`` (see docs/export.md):

    python tools/export.py --model cpm_lsp --out exported/cpm_lsp [--data DIR] [--no-int8] [--calibration 100]
"""

import sys

from keras_pose.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
