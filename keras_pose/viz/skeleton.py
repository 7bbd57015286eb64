"""Draw a skeleton (limb colours from the skeleton definition, joint scores shown) on an image."""

from __future__ import annotations

import cv2
import numpy as np

from keras_pose.skeletons import Skeleton


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton, scores: np.ndarray | None = None,
                  threshold: float = 0.0, thickness: int | None = None, radius: int | None = None,
                  show_scores: bool = True, low: str = "hide") -> np.ndarray:
    """Return a copy of an RGB uint8 image with the skeleton drawn on it.

    Args:
        image: (H, W, 3) RGB uint8.
        keypoints: (K, 2) x, y in image pixels.
        skeleton: gives the limbs and their colours (``skeleton.limb_colors``).
        scores: optional (K,) per-joint scores; scores are written next to
            the joints when ``show_scores``.
        threshold: joints scoring below it, and the limbs touching them, are
            left out (``low="hide"``) or drawn grey (``low="grey"``).
        thickness, radius: line width and joint radius (default: scaled with
            the image size).

    Returns:
        (H, W, 3) RGB uint8.
    """
    if low not in ("hide", "grey"):
        raise ValueError(f"draw_skeleton: low must be 'hide' or 'grey', got {low!r}")
    img = np.ascontiguousarray(np.asarray(image, np.uint8).copy())
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"draw_skeleton: image must be (H, W, 3) RGB uint8, got shape {img.shape}")
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (skeleton.num_joints, 2):
        raise ValueError(f"draw_skeleton: keypoints must be ({skeleton.num_joints}, 2) for {skeleton.name}, "
                         f"got {kp.shape}")
    size = max(img.shape[:2])
    thickness = thickness or max(1, int(round(size / 150)))
    radius = radius or max(2, int(round(size / 110)))
    ok = np.ones(len(kp), bool) if scores is None else np.asarray(scores) >= threshold
    pts = [tuple(int(round(v)) for v in p) if np.all(np.isfinite(p)) else None for p in kp]
    grey = (128, 128, 128)
    for (a, b), colour in zip(skeleton.limb_indices, skeleton.limb_colors):
        if pts[a] is None or pts[b] is None or (low == "hide" and not (ok[a] and ok[b])):
            continue
        c = colour if ok[a] and ok[b] else grey
        cv2.line(img, pts[a], pts[b], tuple(int(v) for v in c), thickness, cv2.LINE_AA)
    for j, (p, colour) in enumerate(zip(pts, skeleton.joint_colors)):
        if p is None or (low == "hide" and not ok[j]):
            continue
        cv2.circle(img, p, radius, tuple(int(v) for v in (colour if ok[j] else grey)), -1, cv2.LINE_AA)
        cv2.circle(img, p, radius, (255, 255, 255), 1, cv2.LINE_AA)
        if scores is not None and show_scores:
            cv2.putText(img, f"{float(scores[j]):.2f}", (p[0] + radius + 1, p[1] - radius),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.3, size / 1200), (255, 255, 255), 1, cv2.LINE_AA)
    return img
