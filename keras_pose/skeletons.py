"""Declarative skeleton definitions (joint names, mirror partners, limbs, colours).

Every piece of joint metadata lives here, once per skeleton. Flip permutations
are *derived* from the mirror partners, never typed by hand.

Example:
    >>> from keras_pose.skeletons import LSP14
    >>> LSP14.num_joints
    14
    >>> LSP14.flip_permutation[:3]
    (5, 4, 3)
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

Color = Tuple[int, int, int]

# Colours are RGB, grouped by body side so drawings are easy to read.
_RIGHT = (230, 60, 60)
_LEFT = (60, 120, 230)
_CENTRE = (60, 200, 80)


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A keypoint skeleton.

    Args:
        name: short identifier, e.g. ``"lsp14"``.
        joint_names: one name per joint, in the dataset's order.
        mirror: name -> name of the joint's left/right mirror partner. Joints
            on the body's midline are omitted (they mirror to themselves).
        limbs: pairs of joint names; used for PCP and for drawing.
        joint_groups: table-column name -> joint names averaged in that column
            (the papers' Head, Shoulder, ... layout).
        torso: the two joints whose distance normalises PCK (LSP: left
            shoulder to right hip), or ``None``.
        limb_colors: RGB colour per limb (same order as ``limbs``).
    """

    name: str
    joint_names: Tuple[str, ...]
    mirror: Dict[str, str]
    limbs: Tuple[Tuple[str, str], ...]
    joint_groups: Dict[str, Tuple[str, ...]]
    torso: Tuple[str, str] | None = None
    limb_colors: Tuple[Color, ...] = ()

    def __post_init__(self):
        names = set(self.joint_names)
        if len(names) != len(self.joint_names):
            raise ValueError(f"skeleton {self.name!r}: duplicate joint names")
        for a, b in self.mirror.items():
            if a not in names or b not in names:
                raise ValueError(f"skeleton {self.name!r}: mirror pair ({a!r}, {b!r}) names an unknown joint")
            if self.mirror.get(b) != a:
                raise ValueError(f"skeleton {self.name!r}: mirror is not symmetric for {a!r} <-> {b!r}")
        for a, b in self.limbs:
            if a not in names or b not in names:
                raise ValueError(f"skeleton {self.name!r}: limb ({a!r}, {b!r}) names an unknown joint")
        if self.limb_colors and len(self.limb_colors) != len(self.limbs):
            raise ValueError(f"skeleton {self.name!r}: {len(self.limb_colors)} limb colours for {len(self.limbs)} limbs")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of the joint called ``name``."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"skeleton {self.name!r} has no joint {name!r}; joints: {list(self.joint_names)}") from None

    @property
    def flip_permutation(self) -> Tuple[int, ...]:
        """``perm[i]`` = index of joint i's mirror partner (derived from ``mirror``)."""
        return tuple(self.index(self.mirror.get(n, n)) for n in self.joint_names)

    @property
    def limb_indices(self) -> Tuple[Tuple[int, int], ...]:
        return tuple((self.index(a), self.index(b)) for a, b in self.limbs)

    @property
    def torso_indices(self) -> Tuple[int, int] | None:
        return None if self.torso is None else (self.index(self.torso[0]), self.index(self.torso[1]))

    @property
    def group_indices(self) -> Dict[str, Tuple[int, ...]]:
        return {g: tuple(self.index(n) for n in names) for g, names in self.joint_groups.items()}

    @property
    def joint_colors(self) -> Tuple[Color, ...]:
        """Colour per joint, from its body side (right red, left blue, midline green)."""
        out = []
        for n in self.joint_names:
            out.append(_RIGHT if n.startswith("r_") else _LEFT if n.startswith("l_") else _CENTRE)
        return tuple(out)


def _side_colors(limbs):
    def colour(a, b):
        if a.startswith("r_") or b.startswith("r_"):
            return _RIGHT
        if a.startswith("l_") or b.startswith("l_"):
            return _LEFT
        return _CENTRE

    return tuple(colour(a, b) for a, b in limbs)


def _mirror(*pairs):
    out = {}
    for a, b in pairs:
        out[a] = b
        out[b] = a
    return out


_LIMB_PAIRS = (("r_ankle", "l_ankle"), ("r_knee", "l_knee"), ("r_hip", "l_hip"),
               ("r_wrist", "l_wrist"), ("r_elbow", "l_elbow"), ("r_shoulder", "l_shoulder"))

_GROUPS_COMMON = {
    "Shoulder": ("r_shoulder", "l_shoulder"),
    "Elbow": ("r_elbow", "l_elbow"),
    "Wrist": ("r_wrist", "l_wrist"),
    "Hip": ("r_hip", "l_hip"),
    "Knee": ("r_knee", "l_knee"),
    "Ankle": ("r_ankle", "l_ankle"),
}

_LSP_LIMBS = (
    ("r_ankle", "r_knee"), ("r_knee", "r_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
    ("r_wrist", "r_elbow"), ("r_elbow", "r_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
    ("r_hip", "l_hip"), ("r_shoulder", "l_shoulder"), ("neck", "head_top"),
)

#: Leeds Sports Pose, 14 joints (person-centric left/right), the order of joints.mat.
LSP14 = Skeleton(
    name="lsp14",
    joint_names=("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
                 "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top"),
    mirror=_mirror(*_LIMB_PAIRS),
    limbs=_LSP_LIMBS,
    joint_groups={"Head": ("neck", "head_top"), **_GROUPS_COMMON},
    torso=("l_shoulder", "r_hip"),
    limb_colors=_side_colors(_LSP_LIMBS),
)

_MPII_LIMBS = (
    ("r_ankle", "r_knee"), ("r_knee", "r_hip"), ("r_hip", "pelvis"), ("pelvis", "l_hip"),
    ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("pelvis", "thorax"), ("thorax", "upper_neck"),
    ("upper_neck", "head_top"), ("r_wrist", "r_elbow"), ("r_elbow", "r_shoulder"),
    ("r_shoulder", "thorax"), ("thorax", "l_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
)

#: MPII Human Pose, 16 joints, the official annotation order.
MPII16 = Skeleton(
    name="mpii16",
    joint_names=("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
                 "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
                 "l_elbow", "l_wrist"),
    mirror=_mirror(*_LIMB_PAIRS),
    limbs=_MPII_LIMBS,
    joint_groups={"Head": ("upper_neck", "head_top"), **_GROUPS_COMMON},
    torso=("l_shoulder", "r_hip"),
    limb_colors=_side_colors(_MPII_LIMBS),
)

SKELETONS = {s.name: s for s in (LSP14, MPII16)}


def get_skeleton(name: str | Skeleton) -> Skeleton:
    """Look up a skeleton by name (``"lsp14"``, ``"mpii16"``)."""
    if isinstance(name, Skeleton):
        return name
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known skeletons: {sorted(SKELETONS)}") from None


def skeleton_for(num_joints: int) -> Skeleton:
    """The known skeleton with ``num_joints`` joints (LSP14 or MPII16)."""
    for s in (LSP14, MPII16):
        if s.num_joints == num_joints:
            return s
    raise ValueError(f"no skeleton with {num_joints} joints; known: LSP14 (14), MPII16 (16)")
