"""Custom Keras layers and initialisers (parameter-free, ``keras.ops`` only, TFLite-exportable).

All are registered for serialisation under the ``keras_pose`` package.
"""

from keras_pose.layers.bilinear import BilinearKernel, bilinear_filter_1d, bilinear_upsample
from keras_pose.layers.center_map import CenterMap, center_gaussian
from keras_pose.layers.context import (ContextAggregation, JointProbability, LocalizedJointProbability,
                                      joint_probability, localized_probability)
from keras_pose.layers.heatmap import HeatmapToKeypoints
from keras_pose.layers.softargmax import RAMPS, SpatialSoftArgmax, coordinate_ramp, soft_argmax, spatial_softmax

__all__ = [
    "RAMPS",
    "BilinearKernel",
    "CenterMap",
    "ContextAggregation",
    "HeatmapToKeypoints",
    "JointProbability",
    "LocalizedJointProbability",
    "SpatialSoftArgmax",
    "bilinear_filter_1d",
    "bilinear_upsample",
    "center_gaussian",
    "coordinate_ramp",
    "joint_probability",
    "localized_probability",
    "soft_argmax",
    "spatial_softmax",
]
