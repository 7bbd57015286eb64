"""Where datasets are looked for.

Order: an explicit argument, then ``$KERAS_POSE_DATA``, then ``../shared/data``
relative to the project root (the folder holding ``setup.cfg``), then
``../shared/data`` relative to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "KERAS_POSE_DATA"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def candidate_data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The data roots that would be tried, in order."""
    if root is not None:
        return [Path(root)]
    out = []
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]))
    out.append(PROJECT_ROOT.parent / "shared" / "data")
    out.append(Path.cwd().parent / "shared" / "data")
    unique = []
    for p in out:
        if p.resolve() not in [u.resolve() for u in unique]:
            unique.append(p)
    return unique


def find_dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``name`` (e.g. ``"lsp"``).

    ``root`` may be the data root (holding ``name/``) or the dataset folder
    itself. Raises ``FileNotFoundError`` listing every place looked at.
    """
    tried = []
    for base in candidate_data_roots(root):
        if (base / name).is_dir():
            return base / name
        tried.append(base / name)
        # An explicit root may already be the dataset folder itself.
        if root is not None and base.is_dir() and base.name == name:
            return base
    raise FileNotFoundError(
        f"dataset {name!r} not found; looked in: {', '.join(str(t) for t in tried)}. "
        f"Pass the folder explicitly or set ${ENV_VAR} to the folder holding {name}/.")
