"""Inference: keypoints in original-image pixels for any image, any family, any runtime.

Example:
    >>> from keras_pose.inference import load_predictor
    >>> pose = load_predictor("cpm_lsp")                       # doctest: +SKIP
    >>> result = pose("photo.jpg")                             # whole image as the person crop  # doctest: +SKIP
    >>> result = pose(rgb_array, box=(x1, y1, x2, y2))         # or a person box  # doctest: +SKIP
    >>> result.keypoints, result.scores                        # (K, 2) pixels, (K,)  # doctest: +SKIP

Images may be a file path, or an array (H, W), (H, W, 1), (H, W, 3) or
(H, W, 4), uint8 or float in [0, 255]; 3/4-channel arrays are RGB unless
``color="bgr"`` (OpenCV) is given. Alpha is composited over black.

Options used by the papers (see ``docs/`` per family): ``flip=True``
averages the prediction of the image and of its mirror (Bulat's demo): the
heatmaps of a Keras heatmap model (CPM, part heatmap regression; see
``keras_pose.evaluation.heatmap_flip_predictor``), the coordinates otherwise;
``scales=(0.8, 1.0, 1.2)`` averages crops of several sizes (CPM uses 7
scales, averaging belief maps; here the mapped-back coordinates are
averaged, which works for every family).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from keras_pose.data.images import read_image, to_rgb
from keras_pose.skeletons import LSP14, MPII16, Skeleton


@dataclasses.dataclass
class PoseResult:
    """Keypoints (K, 2) in original image pixels (x, y), per-joint scores (K,), the crop box used."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: tuple
    skeleton: Skeleton
    image_shape: tuple

    def to_dict(self) -> dict:
        return {"keypoints": [{"joint": n, "x": float(x), "y": float(y), "score": float(s)}
                              for n, (x, y), s in zip(self.skeleton.joint_names, self.keypoints, self.scores)],
                "box": [float(v) for v in self.box], "image_size": list(self.image_shape[:2]),
                "skeleton": self.skeleton.name}


def skeleton_for(num_joints: int) -> Skeleton:
    """The known skeleton with ``num_joints`` joints (LSP14 or MPII16)."""
    for s in (LSP14, MPII16):
        if s.num_joints == num_joints:
            return s
    raise ValueError(f"no skeleton with {num_joints} joints; known: LSP14 (14), MPII16 (16)")


class PosePredictor:
    """Crops, runs a model and maps its keypoints back to the image.

    Args:
        predict: batch function ``images (B, S, S, 3) float32 [0, 255] -> (keypoints (B, K, 2), scores (B, K))``
            in input-crop pixels (a Keras model, SavedModel or TFLite wrapper).
        input_size: S, the model's square input side.
        skeleton: the joints' skeleton (for flip test and output names).
        padding: crop side = ``padding`` x person box side (the training padding).
        name: for messages and reports.
        flip_predict: the flip test's batch function (same signature as ``predict``), e.g. a heatmap
            model's map-averaging one; default: average ``predict``'s coordinates on the image and mirror.
    """

    def __init__(self, predict: Callable, input_size: int, skeleton: Skeleton, padding: float = 1.25,
                 name: str = "model", flip_predict: Callable | None = None):
        self.predict, self.input_size, self.skeleton, self.padding, self.name = predict, input_size, skeleton, padding, name
        self.flip_predict = flip_predict

    # -- image level --------------------------------------------------------
    def load_image(self, image, color: str = "rgb") -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        return to_rgb(image, assume=color, name=f"{self.name} input")

    def crop_geometry(self, shape, box=None):
        """(centre (2,), side of the square crop in image pixels) for an image shape and optional box."""
        h, w = shape[:2]
        if box is None:
            return np.array([(w - 1) / 2.0, (h - 1) / 2.0], np.float32), float(max(h, w))
        box = np.asarray(box, np.float64).reshape(-1)
        if box.size != 4 or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box.tolist()}")
        centre = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0], np.float32)
        return centre, float(max(box[2] - box[0], box[3] - box[1]) * self.padding)

    def __call__(self, image, box=None, flip: bool = False, scales: Sequence[float] = (1.0,),
                 color: str = "rgb") -> PoseResult:
        """Predict one image (see module docstring for accepted inputs)."""
        return self.predict_many([image], [box], flip=flip, scales=scales, color=color)[0]

    def predict_many(self, images, boxes=None, flip: bool = False, scales: Sequence[float] = (1.0,),
                     color: str = "rgb") -> list[PoseResult]:
        """Predict several images (a list, or an array batch (B, H, W[, C]))."""
        import tensorflow as tf

        from keras_pose.data.transforms import affine_matrix, invert_affine, transform_points, warp_images
        from keras_pose.evaluation import flip_average

        images = [self.load_image(im, color) for im in images]
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError(f"got {len(boxes)} boxes for {len(images)} images")
        results = []
        for img, box in zip(images, boxes):
            centre, side = self.crop_geometry(img.shape, box)
            kps, scs = [], []
            for s in scales:
                m = affine_matrix(centre[None], [side * float(s)], self.input_size)
                crop = warp_images(img[None].astype(np.float32), m, self.input_size).numpy()
                crop = np.clip(np.round(crop), 0, 255)
                if flip and self.flip_predict is not None:
                    kp, sc = self.flip_predict(crop)
                elif flip:
                    kp, sc = flip_average(self.predict, crop, self.skeleton.flip_permutation)
                else:
                    kp, sc = self.predict(crop)
                kps.append(transform_points(tf.constant(kp, tf.float32), invert_affine(m)).numpy()[0])
                scs.append(np.asarray(sc)[0])
            half = side / 2.0
            results.append(PoseResult(np.mean(kps, 0), np.mean(scs, 0),
                                      (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half),
                                      self.skeleton, img.shape))
        return results


def keras_predictor(model, padding: float = 1.25, name: str | None = None) -> PosePredictor:
    """A :class:`PosePredictor` around a Keras keras_pose model."""
    from keras_pose.evaluation import keras_predictor as batch_fn
    from keras_pose.evaluation import model_input_size

    from keras_pose.evaluation import heatmap_flip_predictor

    k = int(model.output_shape["keypoints"][1]) if isinstance(model.output_shape, dict) else int(
        dict(zip(model.output_names, model.outputs))["keypoints"].shape[1])
    skeleton = skeleton_for(k)
    return PosePredictor(batch_fn(model), model_input_size(model), skeleton, padding, name or model.name,
                         flip_predict=heatmap_flip_predictor(model, skeleton.flip_permutation))


def load_predictor(spec: str | os.PathLike, padding: float | None = None) -> PosePredictor:
    """A predictor from a zoo name, a preset / run folder, a SavedModel folder or a ``.tflite`` file.

    ``padding`` (crop side / person box side) defaults to the one the model was
    trained with (its ``train.json`` or ``export.json``), else 1.25.
    """
    path = Path(spec)
    if path.suffix == ".tflite":
        from keras_pose.export import tflite_predictor

        return tflite_predictor(path, padding=padding)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        from keras_pose.export import saved_model_predictor

        return saved_model_predictor(path, padding=padding)
    from keras_pose import zoo
    from keras_pose.export import training_padding

    padding = padding if padding is not None else training_padding(spec)
    if zoo.is_cascade(spec):  # DeepPose: run every stage of the cascade
        from keras_pose.training.deeppose import cascade_predictor

        cascade = zoo.load_cascade(spec)
        size = int(cascade.stage_models[0].inputs[0].shape[1])
        return PosePredictor(cascade_predictor(cascade, size), size, cascade.skeleton, padding, str(spec))
    return keras_predictor(zoo.load(spec), padding=padding, name=str(spec))
