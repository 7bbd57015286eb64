"""The common pose record every reader returns, and a columnar dataset of them.

Conventions (used across keras_pose):
- Coordinates are (x, y) in pixels, 0-based, with pixel *centres* at integer
  coordinates (the convention of ``ImageProjectiveTransformV3`` and of the LSP
  annotations).
- ``visible``: the joint is annotated and not occluded. ``annotated``: the
  joint has a ground-truth location (occluded joints are annotated in LSP).
- ``center`` and ``scale`` follow the MPII convention: ``scale`` is the
  person's size / 200 px, so a square box of side ``200 * scale`` (times the
  pipeline's padding factor) around ``center`` contains the person.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from keras_pose.skeletons import Skeleton


@dataclasses.dataclass(frozen=True)
class PoseRecord:
    """One annotated person in one image."""

    image_path: str
    joints: np.ndarray  # (K, 2) float32, x, y
    visible: np.ndarray  # (K,) bool
    annotated: np.ndarray  # (K,) bool
    center: np.ndarray  # (2,) float32
    scale: float
    image_id: str = ""
    head_box: np.ndarray | None = None  # (4,) x1, y1, x2, y2 (MPII PCKh), else None


def estimate_center_scale(joints: np.ndarray, annotated: np.ndarray, *, context: str = "") -> tuple[np.ndarray, float]:
    """Person centre and scale from the annotated joints, as the papers do.

    The centre is the middle of the annotated joints' bounding box; the scale
    is the larger box side / 200 (so ``200 * scale`` spans the joints; the
    pipeline adds its own padding factor).
    """
    pts = np.asarray(joints, np.float32)[np.asarray(annotated, bool)]
    if len(pts) < 2:
        raise ValueError(f"{context or 'record'}: need at least 2 annotated joints to estimate centre and scale, got {len(pts)}")
    lo, hi = pts.min(0), pts.max(0)
    side = float(max(hi - lo))
    if side <= 0:
        raise ValueError(f"{context or 'record'}: annotated joints are all at one point {lo.tolist()}")
    return ((lo + hi) / 2).astype(np.float32), side / 200.0


@dataclasses.dataclass
class PoseDataset:
    """A list of records with their skeleton, plus columnar NumPy views.

    ``arrays()`` gives the stacked columns that the tf.data pipeline consumes.
    """

    name: str
    skeleton: Skeleton
    records: list[PoseRecord]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return PoseDataset(self.name, self.skeleton, self.records[i])
        return self.records[i]

    def subset(self, indices: Sequence[int], name: str | None = None) -> "PoseDataset":
        return PoseDataset(name or self.name, self.skeleton, [self.records[int(i)] for i in indices])

    def __add__(self, other: "PoseDataset") -> "PoseDataset":
        if other.skeleton.name != self.skeleton.name:
            raise ValueError(f"cannot concatenate {self.name!r} ({self.skeleton.name}) and {other.name!r} ({other.skeleton.name})")
        return PoseDataset(f"{self.name}+{other.name}", self.skeleton, self.records + other.records)

    def arrays(self) -> dict[str, np.ndarray]:
        """Stacked columns: image_path (N,) str, joints (N,K,2), visible, annotated (N,K), center (N,2), scale (N,)."""
        r = self.records
        k = self.skeleton.num_joints
        return {
            "image_path": np.array([x.image_path for x in r], dtype=object).astype(str) if r else np.zeros((0,), str),
            "joints": np.stack([x.joints for x in r]).astype(np.float32) if r else np.zeros((0, k, 2), np.float32),
            "visible": np.stack([x.visible for x in r]).astype(bool) if r else np.zeros((0, k), bool),
            "annotated": np.stack([x.annotated for x in r]).astype(bool) if r else np.zeros((0, k), bool),
            "center": np.stack([x.center for x in r]).astype(np.float32) if r else np.zeros((0, 2), np.float32),
            "scale": np.array([x.scale for x in r], np.float32),
        }
