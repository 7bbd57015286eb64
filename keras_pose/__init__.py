"""keras_pose: a Keras 3 / TensorFlow model zoo for single-person 2D pose estimation.

Four classic papers as working, trained, exportable models: DeepPose, Convolutional
Pose Machines, part heatmap regression and soft-argmax regression.

Sub-modules are imported lazily so that ``import keras_pose`` stays cheap.
"""

__version__ = "0.1.0"

import importlib

_SUBMODULES = ("skeletons", "data", "codecs", "layers", "models", "losses", "metrics", "training",
               "zoo", "inference", "export", "viz", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'keras_pose' has no attribute {name!r}")
