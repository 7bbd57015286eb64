"""File helpers shared by the zoo and the trunk weight cache (no keras_pose imports)."""

from __future__ import annotations

import hashlib


def sha256(path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["sha256"]
