#!/usr/bin/env python
"""Figures: skeleton, heatmaps per stage, saliency / Grad-CAM of a joint, PCK curves.

Usage (same arguments as ``keras-pose visualize``):
    python tools/visualize.py --model cpm_lsp --image photo.jpg --joint r_wrist --kind stages --out figures/stages.png
    python tools/visualize.py --kind pck --models cpm_lsp softargmax_lsp --data ../shared/data --out docs/pck.png

All logic lives in ``keras_pose.viz`` and ``keras_pose.cli.visualize``.
"""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    from keras_pose.cli import main as cli_main

    return cli_main(["visualize", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
