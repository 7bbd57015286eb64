"""Image reading and checking with clear errors (OpenCV for host-side work)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import cv2
import numpy as np


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Raises ``FileNotFoundError`` if it does not exist and ``ValueError`` if
    it cannot be decoded or is empty, naming the file in both cases.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file {path} does not exist")
    data = np.fromfile(path, np.uint8)
    if data.size == 0:
        raise ValueError(f"image file {path} is empty (0 bytes)")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"image file {path} is not a readable image (corrupt or unsupported format)")
    return to_rgb(img, assume="bgr", name=path)


def to_rgb(img: np.ndarray, assume: str = "rgb", name: str = "image") -> np.ndarray:
    """Convert an image array to RGB uint8 (H, W, 3), explicitly.

    Args:
        img: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array; uint8, or float
            in [0, 255].
        assume: channel order of 3/4-channel input: ``"rgb"`` or ``"bgr"``
            (OpenCV). Alpha is dropped (composited over black).
        name: used in error messages.
    """
    if assume not in ("rgb", "bgr"):
        raise ValueError(f"assume must be 'rgb' or 'bgr', got {assume!r}")
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name}: expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
                         f"with H, W > 0, got shape {img.shape}")
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.number) or not np.all(np.isfinite(img)):
            raise ValueError(f"{name}: image values must be finite numbers, got dtype {img.dtype}")
        lo, hi = float(img.min()), float(img.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: float image values must lie in [0, 255], got [{lo}, {hi}]")
        img = np.round(img).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c == 1:
        return np.repeat(img, 3, axis=2)
    if c == 4:
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        img = np.round(img[..., :3].astype(np.float32) * alpha).astype(np.uint8)
        c = 3
    if c != 3:
        raise ValueError(f"{name}: expected 1, 3 or 4 channels, got {img.shape[2]}")
    return np.ascontiguousarray(img[..., ::-1]) if assume == "bgr" else img


def verify_images(paths: Iterable[str], workers: int = 4) -> None:
    """Decode every image once; raise naming each unreadable file.

    Training calls this before the tf.data pipeline (whose decode errors do
    not name the file), so a corrupt image is reported up front.
    """
    paths = list(paths)

    def check(p):
        try:
            read_image(p)
            return None
        except (FileNotFoundError, ValueError) as e:
            return str(e)

    with ThreadPoolExecutor(workers) as ex:
        errors = [e for e in ex.map(check, paths) if e]
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValueError(f"{len(errors)} of {len(paths)} images cannot be read: " + "; ".join(errors[:5]) + more)
