"""The four paper networks, their configs and the architecture registry.

One file per paper network (``deeppose``, ``cpm``, ``part_heatmap``,
``softargmax``), each with a frozen config dataclass and a functional
``build_xxx(config) -> keras.Model``. The registry holds the presets
(``*_paper``, ``*_small``, ``*_tiny``).

Model contract (every family): one input ``"images"`` (B, H, W, 3) float32
RGB in [0, 255], normalised inside the model; a dict of named outputs that
always includes ``"keypoints"`` (B, K, 2) in input pixels and ``"scores"``
(B, K).

Example:
    >>> from keras_pose.models import build_model, list_architectures
    >>> list_architectures("cpm")
    ['cpm_paper', 'cpm_small', 'cpm_tiny']
    >>> model = build_model("cpm_tiny")
"""

from keras_pose.models.common import ModelConfig, model_config
from keras_pose.models.cpm import CPMConfig, build_cpm
from keras_pose.models.deeppose import (DeepPoseCascade, DeepPoseConfig, build_deeppose, build_deeppose_cascade,
                                        refinement_crops)
from keras_pose.models.part_heatmap import PartHeatmapConfig, build_part_heatmap
from keras_pose.models.registry import (ARCHITECTURES, FAMILIES, build_model, config_from_dict, get_architecture,
                                        get_config, list_architectures)
from keras_pose.models.softargmax import SoftArgmaxConfig, build_softargmax

__all__ = [
    "ARCHITECTURES", "CPMConfig", "DeepPoseCascade", "DeepPoseConfig", "FAMILIES", "ModelConfig", "PartHeatmapConfig",
    "SoftArgmaxConfig", "build_cpm", "build_deeppose", "build_deeppose_cascade", "build_model", "build_part_heatmap",
    "build_softargmax", "config_from_dict", "get_architecture", "get_config", "list_architectures", "model_config",
    "refinement_crops",
]
