"""Datasets, records and the tf.data input pipeline."""

from keras_pose.data.images import read_image, to_rgb, verify_images
from keras_pose.data.lsp import read_lsp, read_lspet
from keras_pose.data.mpii import read_mpii
from keras_pose.data.paths import candidate_data_roots, find_dataset_dir
from keras_pose.data.pipeline import (AugmentConfig, PipelineConfig, TrainPipeline, augment_batch, eval_dataset,
                                      to_source_coordinates)
from keras_pose.data.records import PoseDataset, PoseRecord, estimate_center_scale

__all__ = ["AugmentConfig", "PipelineConfig", "PoseDataset", "PoseRecord", "TrainPipeline", "augment_batch",
           "candidate_data_roots", "estimate_center_scale", "eval_dataset", "find_dataset_dir", "read_image",
           "read_lsp", "read_lspet", "read_mpii", "to_rgb", "to_source_coordinates", "verify_images"]
