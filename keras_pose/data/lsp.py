"""Readers for Leeds Sports Pose (LSP) and LSP Extended (LSPET).

LSP: ``joints.mat`` variable ``joints`` of shape (3, 14, N): x, y and an
*occlusion* flag (0 = visible, 1 = occluded). Occluded joints are annotated.
Standard split: images 1-1000 train, 1001-2000 test.

LSPET: ``joints.mat`` of shape (14, 3, N): x, y and an *annotated* flag
(1 = annotated and visible, 0 = not annotated; those coordinates lie outside
the image). Training only. Only the images present on disk are read.

References: Johnson & Everingham, BMVC 2010 (LSP) and CVPR 2011 (LSPET).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import scipy.io

from keras_pose.data.paths import find_dataset_dir
from keras_pose.data.records import PoseDataset, PoseRecord, estimate_center_scale
from keras_pose.skeletons import LSP14

log = logging.getLogger(__name__)

LSP_SPLITS = {"train": range(0, 1000), "test": range(1000, 2000), "all": range(0, 2000)}


def load_joints_mat(path: str | os.PathLike, expected: tuple) -> np.ndarray:
    """Read variable ``joints`` from a MATLAB file and check its shape.

    ``expected`` is the required shape with ``None`` for the free (image) axis.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for corrupt files
        raise ValueError(f"annotation file {path} is not a readable MATLAB .mat file: {e}") from e
    if "joints" not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise ValueError(f"annotation file {path} has no variable 'joints' (found {keys})")
    joints = np.asarray(mat["joints"], np.float64)
    ok = joints.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, joints.shape))
    if not ok:
        shape = "x".join("N" if e is None else str(e) for e in expected)
        raise ValueError(f"annotation file {path}: 'joints' has shape {joints.shape}, expected ({shape})")
    return joints


def _record(image_path: Path, xy: np.ndarray, visible: np.ndarray, annotated: np.ndarray, image_id: str) -> PoseRecord:
    center, scale = estimate_center_scale(xy, annotated, context=str(image_path))
    return PoseRecord(image_path=str(image_path), joints=xy.astype(np.float32), visible=visible.astype(bool),
                      annotated=annotated.astype(bool), center=center, scale=scale, image_id=image_id)


def read_lsp(root: str | os.PathLike | None = None, split: str = "train") -> PoseDataset:
    """Read LSP (the 2,000-image person-cropped release).

    Args:
        root: the data root holding ``lsp/``, or the ``lsp`` folder itself;
            default: see :mod:`keras_pose.data.paths`.
        split: ``"train"`` (images 1-1000), ``"test"`` (1001-2000) or ``"all"``.

    Returns:
        A :class:`PoseDataset` with skeleton ``LSP14``. Every joint is
        annotated; ``visible`` is False for the ~7% occluded joints.

    Raises:
        FileNotFoundError: dataset folder, ``joints.mat`` or an image missing.
        ValueError: ``joints.mat`` of the wrong shape or an unknown split.
    """
    if split not in LSP_SPLITS:
        raise ValueError(f"split must be one of {sorted(LSP_SPLITS)}, got {split!r}")
    folder = find_dataset_dir("lsp", root)
    joints = load_joints_mat(folder / "joints.mat", (3, 14, None))
    n = joints.shape[2]
    if n != 2000:
        raise ValueError(f"annotation file {folder / 'joints.mat'}: expected 2000 images, found {n}")
    records = []
    for i in LSP_SPLITS[split]:
        image = folder / "images" / f"im{i + 1:04d}.jpg"
        if not image.is_file():
            raise FileNotFoundError(f"LSP image {image} is missing (annotated in {folder / 'joints.mat'})")
        xy = joints[:2, :, i].T
        occluded = joints[2, :, i] > 0.5
        records.append(_record(image, xy, ~occluded, np.ones(14, bool), f"lsp/{i + 1:04d}"))
    return PoseDataset(f"lsp_{split}", LSP14, records)


def read_lspet(root: str | os.PathLike | None = None, min_annotated: int = 2) -> PoseDataset:
    """Read LSP Extended (training only), keeping the images present on disk.

    Args:
        root: the data root holding ``lspet/``, or the folder itself.
        min_annotated: a record needs this many annotated joints to define a
            person box; images with fewer raise (none of the official ones do).

    Returns:
        A :class:`PoseDataset`; the number of images found is logged and
        stored in the dataset name (``lspet_5000of10000``).
    """
    folder = find_dataset_dir("lspet", root)
    joints = load_joints_mat(folder / "joints.mat", (14, 3, None))
    n = joints.shape[2]
    present = {p.name for p in (folder / "images").glob("im*.jpg")}
    records = []
    for i in range(n):
        name = f"im{i + 1:05d}.jpg"
        if name not in present:
            continue
        xy = joints[:, :2, i]
        annotated = joints[:, 2, i] > 0.5
        if annotated.sum() < min_annotated:
            raise ValueError(f"LSPET image {name}: only {annotated.sum()} annotated joints, need {min_annotated}")
        records.append(_record(folder / "images" / name, xy, annotated, annotated, f"lspet/{i + 1:05d}"))
    extra = present - {f"im{i + 1:05d}.jpg" for i in range(n)}
    if extra:
        raise ValueError(f"{folder / 'images'}: {len(extra)} images have no annotation in joints.mat, e.g. {sorted(extra)[0]}")
    log.info("LSPET: %d of %d annotated images found in %s", len(records), n, folder / "images")
    return PoseDataset(f"lspet_{len(records)}of{n}", LSP14, records)
