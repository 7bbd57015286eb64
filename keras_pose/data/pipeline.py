"""tf.data input pipelines: person-centred crops, the papers' augmentation, evaluation crops.

Training runs in two stages so that augmentation is a *batched* tensor op:

1. per sample, in ``tf.data`` (parallel): read + decode the image and cut a
   deterministic person-centred "canvas" (``canvas_factor`` x the crop, at
   ``canvas_factor`` x the input resolution), then cache it in memory;
2. per batch: :func:`augment_batch` applies the random rotation (+-40 deg),
   scale (0.7-1.3), horizontal flip with left/right swap, translation and
   colour jitter with one ``ImageProjectiveTransformV3`` warp, moving the joints
   with exactly the same matrix. It runs either as a ``tf.data`` map
   (``augment_in="data"``) or inside the compiled training step
   (``augment_in="step"``, so on a GPU it runs on the GPU).

Evaluation (:func:`eval_dataset`) crops straight from the source image, with
no augmentation, and returns each crop's source->input matrix so that
predictions map back to original image coordinates exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from keras_pose.data.records import PoseDataset
from keras_pose.data.transforms import (affine_matrix, flip_joints, inside_mask, invert_affine,
                                        transform_points, warp_images)

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The papers' augmentation (CPM / Bulat / Luvizon all use these ranges).

    Args:
        rotation: maximum absolute rotation in degrees (uniform).
        zoom: (min, max) scale factor, uniform.
        flip: probability of a horizontal flip (left/right joints swapped).
        shift: maximum translation as a fraction of the input side (uniform).
        brightness, contrast, saturation: colour jitter; each factor is
            uniform in [1 - v, 1 + v].
        part_crop: fraction of crops centred on one annotated joint (chosen
            uniformly among the annotated joints inside the canvas) instead of
            the person, and magnified by ``part_zoom`` in place of ``zoom``, so
            that the training data holds close-ups in which some annotated
            joints lie outside the crop (what a head-and-shoulders photo looks
            like to the model; the joint-probability / score targets are
            "annotated and inside the crop"). 0 disables it.
        part_zoom: (min, max) magnification of a part crop, uniform.
        frame_cut: fraction of crops cut by a picture edge: everything beyond
            a straight line across the crop is blanked (the warp's fill, 0,
            what lies outside a photo) and the joints there are not in the
            crop, so the person looks as in a photo that ends at the chest or
            the waist (an upper-body shot seen at person scale). The edge is
            the bottom one in a fraction ``frame_cut_bottom`` of the cuts, else the
            left, right or top one alike; the line crosses the person's
            in-crop joints at a uniform fraction in ``frame_cut_at`` of their
            extent from the kept side. 0 disables it.
        frame_cut_at: (min, max) of that fraction, in (0, 1).
        frame_cut_bottom: the fraction of the cuts made at the bottom edge.
    """

    rotation: float = 40.0
    zoom: tuple = (0.7, 1.3)
    flip: float = 0.5
    shift: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    part_crop: float = 0.0
    part_zoom: tuple = (1.6, 3.0)
    frame_cut: float = 0.0
    frame_cut_at: tuple = (0.25, 0.75)
    frame_cut_bottom: float = 0.7

    def __post_init__(self):
        for name in ("zoom", "part_zoom"):
            lo_hi = tuple(getattr(self, name))
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"AugmentConfig.{name}: expected (min, max) with 0 < min <= max, got {lo_hi!r}")
        if not 0.0 <= self.part_crop <= 1.0:
            raise ValueError(f"AugmentConfig.part_crop: expected a fraction in [0, 1], got {self.part_crop!r}")
        if not 0.0 <= self.frame_cut <= 1.0:
            raise ValueError(f"AugmentConfig.frame_cut: expected a fraction in [0, 1], got {self.frame_cut!r}")
        at = tuple(self.frame_cut_at)
        if len(at) != 2 or not 0 < at[0] <= at[1] < 1:
            raise ValueError(f"AugmentConfig.frame_cut_at: expected (min, max) with 0 < min <= max < 1, got {at!r}")
        if not 0.0 <= self.frame_cut_bottom <= 1.0:
            raise ValueError(f"AugmentConfig.frame_cut_bottom: expected a fraction in [0, 1], "
                             f"got {self.frame_cut_bottom!r}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        for name in ("zoom", "part_zoom", "frame_cut_at"):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Crop geometry and where augmentation runs.

    Args:
        input_size: side of the square model input, pixels.
        padding: crop side = ``200 * scale * padding`` source pixels.
        canvas_factor: the cached canvas covers ``canvas_factor`` x the crop.
        augment: an :class:`AugmentConfig`, or ``None`` for no augmentation.
        augment_in: ``"data"`` (tf.data map, CPU) or ``"step"`` (inside the
            compiled training step).
    """

    input_size: int = 256
    padding: float = 1.25
    canvas_factor: float = 1.25
    augment: AugmentConfig | None = AugmentConfig()
    augment_in: str = "data"

    def __post_init__(self):
        if self.augment_in not in ("data", "step"):
            raise ValueError(f"augment_in must be 'data' or 'step', got {self.augment_in!r}")
        if self.input_size < 8:
            raise ValueError(f"input_size must be >= 8, got {self.input_size}")
        if self.padding <= 0 or self.canvas_factor < 1:
            raise ValueError(f"need padding > 0 and canvas_factor >= 1, got {self.padding}, {self.canvas_factor}")

    @property
    def canvas_size(self) -> int:
        return int(round(self.input_size * self.canvas_factor))

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["augment"] = None if self.augment is None else self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        if d.get("augment") is not None:
            d["augment"] = AugmentConfig.from_dict(d["augment"])
        return cls(**d)


def decode_image_file(path):
    """Read and decode a JPEG/PNG/BMP/GIF file to (H, W, 3) uint8; the error names the file."""
    data = tf.io.read_file(path)
    head = tf.strings.substr(data, 0, 4)
    is_image = (tf.image.is_jpeg(data) | tf.equal(head, b"\x89PNG") | tf.equal(head, b"GIF8")
                | tf.equal(tf.strings.substr(data, 0, 2), b"BM"))
    with tf.control_dependencies([tf.debugging.Assert(is_image, ["not a JPEG/PNG/BMP/GIF image file:", path])]):
        img = tf.io.decode_image(data, channels=3, expand_animations=False)
    tf.debugging.assert_positive(tf.size(img), message="zero-size image")
    return img


def _crop_sample(sample, out_size, side_factor):
    """Decode one image and cut a square crop around the person (deterministic)."""
    img = decode_image_file(sample["image_path"])
    m = affine_matrix(sample["center"][None], [200.0 * sample["scale"] * side_factor], out_size)
    crop = warp_images(img[None], m, out_size)[0]
    joints = transform_points(sample["joints"][None], m)[0]
    out = dict(sample)
    out.update(image=tf.cast(tf.round(tf.clip_by_value(crop, 0, 255)), tf.uint8), joints=joints, matrix=m[0])
    return out


def _columns(dataset: PoseDataset):
    arr = dataset.arrays()
    arr["index"] = np.arange(len(dataset), dtype=np.int64)
    return arr


def augment_batch(batch, seed, config: PipelineConfig, flip_permutation):
    """Random augmentation of a batch of canvases, as one batched op.

    Args:
        batch: dict with ``image`` (B, C, C, 3) canvases (uint8 or float),
            ``joints`` (B, K, 2) in canvas pixels, ``visible``, ``annotated``
            (B, K) bool.
        seed: int tensor of shape (2,), for stateless random ops (the same
            seed gives the same augmentation).
        config: the pipeline config (``augment=None`` gives centre crops).
        flip_permutation: the skeleton's left/right permutation.

    Returns:
        dict with ``images`` (B, S, S, 3) float32 in [0, 255], ``joints``
        (B, K, 2) input pixels, ``visible`` (annotated, not occluded and inside
        the crop), ``annotated`` and ``in_crop`` (annotated and inside) (B, K) bool.
    """
    image = batch["image"]
    b = tf.shape(image)[0]
    s, c = config.input_size, tf.cast(tf.shape(image)[1], tf.float32)
    aug = config.augment
    seed = tf.cast(seed, tf.int32)
    seeds = [tf.stack([seed[0], seed[1] * 7 + i]) for i in range(8)]
    if aug is None:
        rotation = zoom = flip = shift = None
    else:
        rotation = tf.random.stateless_uniform([b], seeds[0], -aug.rotation, aug.rotation)
        zoom = tf.random.stateless_uniform([b], seeds[1], aug.zoom[0], aug.zoom[1])
        flip = tf.random.stateless_uniform([b], seeds[2]) < aug.flip
        shift = tf.random.stateless_uniform([b, 2], seeds[3], -aug.shift * s, aug.shift * s)
    center = tf.fill([b, 2], c / 2.0 - 0.5)
    if aug is not None and aug.part_crop > 0:
        # own seeds (another first component), so the person-crop draws above stay as they were
        part_seeds = [tf.stack([seed[0] + 7919, seed[1] * 3 + i]) for i in range(3)]
        center, zoom = part_crops(batch["joints"], tf.cast(batch["annotated"], tf.bool), center, zoom, c,
                                  part_seeds, aug)
    m = affine_matrix(center, tf.fill([b], c / config.canvas_factor), s, rotation, zoom, flip, shift)
    images = warp_images(image, m, s)
    joints = transform_points(batch["joints"], m)
    visible = tf.cast(batch["visible"], tf.bool)
    annotated = tf.cast(batch["annotated"], tf.bool)
    if flip is not None:
        joints = flip_joints(joints, flip, flip_permutation)
        visible = flip_joints(visible, flip, flip_permutation)
        annotated = flip_joints(annotated, flip, flip_permutation)
    inside = inside_mask(joints, s)
    if aug is not None and aug.frame_cut > 0:
        cut_seeds = [tf.stack([seed[0] + 104729, seed[1] * 5 + i]) for i in range(3)]
        images, kept = frame_cuts(images, joints, annotated & inside, cut_seeds, aug)
        inside = inside & kept
    if aug is not None and (aug.brightness or aug.contrast or aug.saturation):
        images = color_jitter(images, seeds[4:7], aug)
    out = {"images": images, "joints": joints, "visible": visible & inside & annotated,
           "annotated": annotated, "in_crop": annotated & inside}
    return out


def part_crops(joints, annotated, center, zoom, canvas_size, seeds, aug: AugmentConfig):
    """Re-centre a random ``aug.part_crop`` fraction of the crops on one annotated joint, zoomed in.

    Args:
        joints: (B, K, 2) canvas pixels; annotated: (B, K) bool.
        center: (B, 2) the person crops' centres; zoom: (B,) their zoom.
        canvas_size: the canvas side (pixels); only joints inside it are chosen.
        seeds: three stateless seeds (which crops, which joint, what zoom).

    Returns:
        ``(center, zoom)`` with the chosen crops' rows replaced (a crop with
        no annotated joint on the canvas stays a person crop).
    """
    b, k = tf.shape(joints)[0], tf.shape(joints)[1]
    candidates = annotated & inside_mask(joints, canvas_size)
    chosen = (tf.random.stateless_uniform([b], seeds[0]) < aug.part_crop) & tf.reduce_any(candidates, axis=1)
    noise = tf.random.stateless_uniform([b, k], seeds[1])
    joint = tf.argmax(tf.where(candidates, noise, -1.0), axis=1, output_type=tf.int32)
    part_center = tf.gather(tf.cast(joints, tf.float32), joint, batch_dims=1)
    part_zoom = tf.random.stateless_uniform([b], seeds[2], aug.part_zoom[0], aug.part_zoom[1])
    return tf.where(chosen[:, None], part_center, center), tf.where(chosen, part_zoom, zoom)


def frame_cuts(images, joints, in_crop, seeds, aug: AugmentConfig):
    """Blank a random ``aug.frame_cut`` fraction of the crops beyond a picture edge.

    Args:
        images: (B, S, S, 3) crops; joints: (B, K, 2) crop pixels;
            in_crop: (B, K) bool, the joints that are annotated and inside.
        seeds: three stateless seeds (which crops, which side, where).

    Returns:
        ``(images, kept)``: the crops with the cut-off part set to 0 and
        (B, K) bool, False for the joints beyond the cut (a crop with fewer
        than two in-crop joints is left whole).
    """
    b, s = tf.shape(images)[0], tf.shape(images)[1]
    chosen = ((tf.random.stateless_uniform([b], seeds[0]) < aug.frame_cut)
              & (tf.reduce_sum(tf.cast(in_crop, tf.int32), axis=1) >= 2))
    u = tf.random.stateless_uniform([b, 2], seeds[1])
    other = 1 + tf.minimum(tf.cast(u[:, 1] * 3.0, tf.int32), 2)
    side = tf.where(u[:, 0] < aug.frame_cut_bottom, 0, other)  # 0 bottom, 1 left, 2 right, 3 top
    # the signed coordinate that grows towards the cut-off side: y, -x, x, -y
    use_y = (side == 0) | (side == 3)
    sign = tf.where((side == 0) | (side == 2), 1.0, -1.0)
    coord = tf.where(use_y[:, None], joints[..., 1], joints[..., 0]) * sign[:, None]
    big = tf.constant(1e9, tf.float32)
    lo = tf.reduce_min(tf.where(in_crop, coord, big), axis=1)
    hi = tf.reduce_max(tf.where(in_crop, coord, -big), axis=1)
    at = tf.random.stateless_uniform([b], seeds[2], aug.frame_cut_at[0], aug.frame_cut_at[1])
    cut = tf.where(chosen, lo + at * (hi - lo), big)  # in the signed coordinate; beyond it is cut off
    pix = tf.cast(tf.range(s), tf.float32)
    grid = tf.where(use_y[:, None, None], pix[None, :, None], pix[None, None, :]) * sign[:, None, None]  # (B, S, S)
    keep_pix = grid <= cut[:, None, None]
    images = images * tf.cast(keep_pix, images.dtype)[..., None]
    kept = coord <= cut[:, None]
    return images, kept


def color_jitter(images, seeds, aug: AugmentConfig):
    """Per-image brightness, contrast and saturation factors (stateless random), in one fused pass.

    Brightness ``b`` then contrast ``c`` is the affine map ``y = b c x + b mean(x) (1 - c)``;
    saturation ``s`` then mixes ``y`` with its grey level, and since grey(y)
    is the same affine map of grey(x), the three compose to
    ``z = b c (s x + (1 - s) grey(x)) + b mean(x) (1 - c)``.
    """
    b = tf.shape(images)[0]

    def factor(v, sd):
        if not v:
            return tf.ones([b, 1, 1, 1])
        return tf.reshape(tf.random.stateless_uniform([b], sd, 1.0 - v, 1.0 + v), [-1, 1, 1, 1])

    br, co, sa = factor(aug.brightness, seeds[0]), factor(aug.contrast, seeds[1]), factor(aug.saturation, seeds[2])
    return _fused_jitter(tf.cast(images, tf.float32), br, co, sa)


@tf.function(jit_compile=True)
def _fused_jitter(images, br, co, sa):
    # XLA fuses these element-wise ops into one pass (about 15x faster than separate TF ops on CPU).
    grey = (images[..., 0:1] + images[..., 1:2] + images[..., 2:3]) * (1.0 / 3.0)
    mean = tf.reduce_mean(grey, axis=[1, 2, 3], keepdims=True)
    a = br * co
    out = (a * sa) * images + (a * (1.0 - sa)) * grey + br * mean * (1.0 - co)
    return tf.clip_by_value(out, 0.0, 255.0)


class TrainPipeline:
    """Training input for one dataset: cached canvases, shuffled per epoch, batched.

    ``epoch(e)`` gives epoch ``e``'s batches; its order depends only on
    ``(seed, e)`` and the augmentation of global batch ``i`` only on
    ``(seed, i)``, so a resumed run sees exactly the data an uninterrupted
    run would (``epoch(e, skip=k)`` starts at batch ``k``).

    Args:
        dataset: the records (any skeleton).
        config: a :class:`PipelineConfig`.
        batch_size: batch size (the last partial batch of an epoch is dropped).
        seed: the run's seed.
        encode: optional callable ``batch -> targets`` applied after
            augmentation wherever augmentation runs.
    """

    def __init__(self, dataset: PoseDataset, config: PipelineConfig, batch_size: int, seed: int = 0,
                 encode: Callable | None = None):
        if len(dataset) < batch_size:
            raise ValueError(f"dataset {dataset.name!r} has {len(dataset)} records, fewer than batch_size={batch_size}")
        self.dataset, self.config, self.batch_size, self.seed, self.encode = dataset, config, batch_size, seed, encode
        self.flip_permutation = dataset.skeleton.flip_permutation
        side = config.padding * config.canvas_factor
        base = tf.data.Dataset.from_tensor_slices(_columns(dataset))
        base = base.map(lambda x: _crop_sample(x, config.canvas_size, side), num_parallel_calls=AUTOTUNE)
        self._base = base.map(lambda x: {k: x[k] for k in ("image", "joints", "visible", "annotated", "index")}).cache()

    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def augment(self, batch, step):
        """Augment (+ encode) one batch of canvases; ``step`` is the global batch index."""
        out = augment_batch(batch, tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)]),
                            self.config, self.flip_permutation)
        out["index"] = batch["index"]
        if self.encode is not None:
            out["targets"] = self.encode(out)
        return out

    def epoch(self, epoch: int, skip: int = 0) -> tf.data.Dataset:
        """The batches of epoch ``epoch`` (0-based), starting at batch ``skip``.

        With ``augment_in="data"`` each element is the augmented batch (with
        ``targets`` if ``encode`` was given) plus ``step``; with ``"step"``
        it is the raw canvas batch plus ``step``, for :meth:`augment` in the step.
        """
        n = len(self.dataset)
        ds = self._base.shuffle(n, seed=self.seed * 100003 + epoch, reshuffle_each_iteration=False)
        ds = ds.batch(self.batch_size, drop_remainder=True).skip(skip)
        start = epoch * self.steps_per_epoch + skip
        ds = ds.enumerate(start=start)
        if self.config.augment_in == "data":
            ds = ds.map(lambda i, b: dict(self.augment(b, i), step=i), num_parallel_calls=AUTOTUNE)
        else:
            ds = ds.map(lambda i, b: dict(b, step=i))
        return ds.prefetch(AUTOTUNE)


    def stream(self) -> tf.data.Dataset:
        """Endless augmented batches, reshuffled every epoch (for ``model.fit``); needs ``augment_in="data"``."""
        ds = self._base.shuffle(len(self.dataset), seed=self.seed, reshuffle_each_iteration=True).repeat()
        ds = ds.batch(self.batch_size, drop_remainder=True).enumerate()
        return ds.map(lambda i, b: dict(self.augment(b, i), step=i), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def eval_dataset(dataset: PoseDataset, input_size: int, padding: float = 1.25, batch_size: int = 32,
                 cache: bool = False) -> tf.data.Dataset:
    """Deterministic evaluation crops straight from the source images.

    Each element: ``images`` (B, S, S, 3) float32 [0, 255], ``matrix``
    (B, 3, 3) source->input, ``joints`` (B, K, 2) ORIGINAL image pixels,
    ``visible``, ``annotated`` (B, K) and ``index`` (B,) into ``dataset``.
    Map predictions back with :func:`to_source_coordinates`.
    """
    ds = tf.data.Dataset.from_tensor_slices(_columns(dataset))

    def crop(x):
        out = _crop_sample(x, input_size, padding)
        return {"images": tf.cast(out["image"], tf.float32), "matrix": out["matrix"], "joints": x["joints"],
                "visible": x["visible"], "annotated": x["annotated"], "index": x["index"]}

    ds = ds.map(crop, num_parallel_calls=AUTOTUNE)
    if cache:
        ds = ds.cache()
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def to_source_coordinates(keypoints, matrix):
    """Map (B, K, 2) model-input keypoints back to source pixels with the crop matrices."""
    return transform_points(keypoints, invert_affine(matrix))
