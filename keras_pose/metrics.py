"""Pose-estimation metrics: PCK, PCKh, strict PCP, PDJ curves and paper-style tables.

Two layers (house style, rule 8):

1. Pure NumPy functions, tested on hand-computed cases: :func:`joint_distances`,
   :func:`torso_sizes`, :func:`head_sizes`, :func:`pck`, :func:`pck_lsp`,
   :func:`pckh`, :func:`pckh_total`, :func:`pcp`, :func:`pcp_groups`,
   :func:`pdj_curve`, :func:`curve_auc`; per-joint confidence:
   :func:`score_auroc`, :func:`youden_threshold`, :func:`reliability`.
2. Thin wrappers: :func:`results_table`, :func:`pcp_table`,
   :func:`table_to_markdown`, :func:`plot_pck_curves`.

Conventions used throughout:

* Coordinates are arrays of shape ``(N, K, 2)``: N samples, K joints, (x, y),
  in any consistent unit (usually pixels of the original image).
* ``mask`` is a boolean ``(N, K)`` array: True where the ground-truth joint is
  *annotated* and therefore counts. On LSP occluded joints are annotated and
  count (the LSP occlusion flag is not a mask). ``mask=None`` means all joints.
* A joint is correct when ``distance / normalizer <= alpha``: inclusive, so a
  joint exactly at the threshold counts as correct. A non-finite prediction
  (NaN, inf) is counted as incorrect, never dropped.
* Rates are fractions in [0, 1]; per-joint and per-limb rates are NaN where no
  sample is valid. The tables convert to percent.

Definitions follow the papers' evaluation code (``docs`` paper specs, section 5):

* PCK@0.2 on LSP: normaliser = torso size = ‖left shoulder − right hip‖ of the
  ground truth (CPM benchmark code, Bulat demo).
* PCKh@0.5 on MPII: normaliser = head size = 0.6 × head-box diagonal (SC_BIAS);
  the total is over 14 joints, excluding pelvis and thorax.
* Strict PCP@0.5: a limb is correct when *both* predicted endpoints lie within
  0.5 × the ground-truth limb length of their ground-truth endpoints. The LSP
  tables use 10 sticks (torso = mid-hips to mid-shoulders, head = neck to head
  top, and two of each leg and arm segment), as in Pishchulin et al.'s
  evaluation code; the total is the mean over the 10 sticks.
* PDJ@f (DeepPose): PCK with the torso normaliser, swept over f.

Example:
    >>> import numpy as np
    >>> from keras_pose.skeletons import LSP14
    >>> gt = np.zeros((1, 14, 2)); gt[0, 9] = (0.0, 0.0); gt[0, 2] = (0.0, 10.0)
    >>> pred = gt.copy(); pred[0, 0] += (2.0, 0.0)   # exactly 0.2 x torso away
    >>> res = pck_lsp(pred, gt, mask=None)
    >>> bool(res.correct[0, 0]), float(res.mean)
    (True, 1.0)
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Mapping, Sequence, Tuple

import numpy as np

from keras_pose.skeletons import LSP14, MPII16, Skeleton

__all__ = [
    "SC_BIAS", "MPII_TOTAL_EXCLUDES", "PCP_GROUPS", "PDJ_THRESHOLDS",
    "PCKResult", "PCPResult", "Stick",
    "joint_distances", "torso_sizes", "head_sizes",
    "pck", "pck_lsp", "pckh", "pckh_total",
    "limb_sticks", "paper_pcp_sticks", "pcp", "pcp_groups",
    "pdj_curve", "curve_auc", "score_auroc", "youden_threshold", "reliability",
    "results_table", "pcp_table", "table_to_markdown", "plot_pck_curves",
]

#: MPII head-size factor: head size = SC_BIAS x head-box diagonal.
SC_BIAS = 0.6

#: Joints left out of the MPII PCKh total (14 of the 16 joints count).
MPII_TOTAL_EXCLUDES = ("pelvis", "thorax")

#: The papers' PCP column order on LSP.
PCP_GROUPS = ("Torso", "Upper leg", "Lower leg", "Upper arm", "Forearm", "Head")

#: Default PDJ thresholds: normalised distance 0, 0.01, ..., 0.5 (read-only).
PDJ_THRESHOLDS = np.linspace(0.0, 0.5, 51)
PDJ_THRESHOLDS.setflags(write=False)

_MAX_LISTED = 20  # indices listed in an error message before "... and n more"


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #

def _fmt_list(items: Sequence) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"[{shown}{f', ... and {more} more' if more > 0 else ''}]"


def _coords(x, arg: str, like: np.ndarray | None = None) -> np.ndarray:
    """``x`` as float64 (N, K, 2); if ``like`` is given, the shapes must agree."""
    x = np.asarray(x, dtype=np.float64)
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{arg} must have shape (N, K, 2) = {like.shape} to match pred; received {x.shape}")
    if x.ndim != 3 or x.shape[-1] != 2:
        raise ValueError(f"{arg} must have shape (N, K, 2) (samples, joints, x/y); received {x.shape}")
    return x


def _mask(mask, n: int, k: int, arg: str = "mask") -> np.ndarray:
    if mask is None:
        return np.ones((n, k), dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{arg} must be a boolean (N, K) array, True where the joint is annotated; received dtype "
                        f"{mask.dtype}. Convert explicitly (note: LSP's third row is an occlusion flag, not a mask; "
                        f"occluded LSP joints are annotated and count).")
    if mask.shape != (n, k):
        raise ValueError(f"{arg} must have shape (N, K) = {(n, k)} to match pred; received {mask.shape}")
    return mask


def _alpha(alpha, arg: str = "alpha") -> float:
    a = float(alpha)
    if not np.isfinite(a) or a < 0:
        raise ValueError(f"{arg} must be a finite number >= 0; received {alpha!r}")
    return a


def _normalizer(normalizer, n: int, arg: str = "normalizer") -> np.ndarray:
    """(N,) float64, finite and > 0 for every sample; a scalar is broadcast."""
    norm = np.asarray(normalizer, dtype=np.float64)
    if norm.ndim == 0:
        norm = np.full((n,), float(norm))
    if norm.shape != (n,):
        raise ValueError(f"{arg} must have shape (N,) = ({n},) (one value per sample) or be a scalar; "
                         f"received {norm.shape}")
    bad = np.flatnonzero(~(np.isfinite(norm) & (norm > 0)))
    if bad.size:
        values = _fmt_list(norm[bad[:_MAX_LISTED]].tolist())
        raise ValueError(f"{arg} must be finite and > 0 for every sample; {bad.size} of {n} samples are not "
                         f"(indices {_fmt_list(bad.tolist())}, values {values}). Fix or drop these samples; "
                         f"they are not silently ignored.")
    return norm


def _check_gt_finite(gt: np.ndarray, mask: np.ndarray, arg: str = "gt") -> None:
    bad = np.argwhere(mask & ~np.isfinite(gt).all(axis=-1))
    if bad.size:
        pairs = [tuple(int(v) for v in p) for p in bad]
        raise ValueError(f"{arg} has non-finite coordinates at {len(pairs)} annotated joints (sample, joint) "
                         f"{_fmt_list(pairs)}; mark them False in mask")


def _check_skeleton(x: np.ndarray, skeleton: Skeleton, arg: str) -> None:
    if x.shape[1] != skeleton.num_joints:
        raise ValueError(f"{arg} has {x.shape[1]} joints (shape {x.shape}) but skeleton {skeleton.name!r} has "
                         f"{skeleton.num_joints}; expected shape (N, {skeleton.num_joints}, 2)")


def _rate(num, den):
    """num / den elementwise, NaN where den == 0 (no warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out if out.ndim else float(out)


# --------------------------------------------------------------------------- #
# Distances and normalisers
# --------------------------------------------------------------------------- #

def joint_distances(pred, gt) -> np.ndarray:
    """Euclidean distance between predicted and ground-truth joints.

    Args:
        pred: predicted coordinates, shape (N, K, 2).
        gt: ground-truth coordinates, same shape.

    Returns:
        float64 array (N, K). NaN where a coordinate is NaN.

    Example:
        >>> joint_distances([[[3.0, 4.0]]], [[[0.0, 0.0]]])
        array([[5.]])
    """
    pred = _coords(pred, "pred")
    gt = _coords(gt, "gt", like=pred)
    return np.hypot(pred[..., 0] - gt[..., 0], pred[..., 1] - gt[..., 1])


def torso_sizes(gt, skeleton: Skeleton = LSP14) -> np.ndarray:
    """Torso size per sample: distance between the skeleton's two torso joints.

    For LSP14 (and MPII16) these are the left shoulder and the right hip
    (indices 9 and 2 in LSP), as in the CPM and part-heatmap-regression code.

    Args:
        gt: ground-truth coordinates (N, K, 2), K = ``skeleton.num_joints``.
        skeleton: defines ``torso``; must not be None.

    Returns:
        float64 array (N,).
    """
    gt = _coords(gt, "gt")
    _check_skeleton(gt, skeleton, "gt")
    if skeleton.torso_indices is None:
        raise ValueError(f"skeleton {skeleton.name!r} defines no torso joints; pass a normalizer to pck() instead")
    a, b = skeleton.torso_indices
    return np.hypot(*(gt[:, a] - gt[:, b]).T)


def head_sizes(head_boxes) -> np.ndarray:
    """MPII head size: ``SC_BIAS`` (0.6) x the diagonal of the head box.

    Args:
        head_boxes: (N, 4) boxes as x1, y1, x2, y2.

    Returns:
        float64 array (N,).

    Example:
        >>> head_sizes([[0, 0, 30, 40]])   # diagonal 50
        array([30.])
    """
    boxes = np.asarray(head_boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"head_boxes must have shape (N, 4) as x1, y1, x2, y2; received {boxes.shape}")
    return SC_BIAS * np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


# --------------------------------------------------------------------------- #
# PCK family
# --------------------------------------------------------------------------- #

@dataclasses.dataclass(frozen=True, eq=False)
class PCKResult:
    """Result of :func:`pck` (and :func:`pck_lsp`, :func:`pckh`).

    Attributes:
        per_joint: (K,) fraction correct per joint over its valid samples; NaN
            for a joint with no valid sample.
        mean: fraction correct over all valid (sample, joint) entries; NaN if
            there are none. (The papers' table "Total" is the plain mean of the
            per-joint values; see :func:`results_table`.)
        correct: (N, K) bool; False wherever ``mask`` is False.
        mask: (N, K) bool, the entries that count.
        distances: (N, K) distances divided by the sample's normaliser.
        alpha: the threshold used.
    """

    per_joint: np.ndarray
    mean: float
    correct: np.ndarray
    mask: np.ndarray
    distances: np.ndarray
    alpha: float

    @property
    def counts(self) -> np.ndarray:
        """(K,) number of valid samples per joint."""
        return self.mask.sum(axis=0)

    def total(self, joints: Iterable[int] | None = None) -> float:
        """Fraction correct over the valid entries of ``joints`` (all joints if None).

        This pools samples, so joints with more valid samples weigh more (the
        official MPII convention; see :func:`pckh_total`).
        """
        idx = np.arange(self.mask.shape[1]) if joints is None else np.asarray(list(joints), dtype=int)
        return _rate(self.correct[:, idx].sum(), self.mask[:, idx].sum())


def _pck_from_distances(dist: np.ndarray, mask: np.ndarray, alpha: float) -> PCKResult:
    with np.errstate(invalid="ignore"):
        correct = (dist <= alpha) & mask  # NaN distance -> False (incorrect)
    return PCKResult(per_joint=_rate(correct.sum(0), mask.sum(0)), mean=_rate(correct.sum(), mask.sum()),
                     correct=correct, mask=mask, distances=dist, alpha=alpha)


def _normalised_distances(pred, gt, mask, normalizer, normalizer_name="normalizer"):
    pred = _coords(pred, "pred")
    gt = _coords(gt, "gt", like=pred)
    n, k, _ = pred.shape
    mask = _mask(mask, n, k)
    norm = _normalizer(normalizer, n, normalizer_name)
    _check_gt_finite(gt, mask)
    return joint_distances(pred, gt) / norm[:, None], mask


def pck(pred, gt, mask, normalizer, alpha: float = 0.2) -> PCKResult:
    """Percentage of Correct Keypoints with a per-sample normaliser.

    A joint is correct if ``‖pred − gt‖ / normalizer <= alpha`` (inclusive).

    Args:
        pred: predicted coordinates (N, K, 2).
        gt: ground-truth coordinates (N, K, 2).
        mask: bool (N, K), True for annotated joints (those that count), or
            None for all. Annotated ground truth must be finite.
        normalizer: (N,) positive reference length per sample (torso size,
            head size, ...), or a scalar for all samples.
        alpha: threshold as a fraction of the normaliser.

    Returns:
        :class:`PCKResult` with ``per_joint`` (K,), ``mean`` and ``correct`` (N, K).

    Raises:
        ValueError: a shape does not match, or a normaliser is <= 0 or not
            finite (the message gives how many samples and their indices).
        TypeError: ``mask`` is not boolean.

    Example:
        >>> r = pck([[[1.0, 0.0], [3.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]], None, [10.0])
        >>> r.per_joint.tolist(), r.mean
        ([1.0, 0.0], 0.5)
    """
    dist, mask = _normalised_distances(pred, gt, mask, normalizer)
    return _pck_from_distances(dist, mask, _alpha(alpha))


def pck_lsp(pred, gt, mask=None, alpha: float = 0.2, skeleton: Skeleton = LSP14) -> PCKResult:
    """PCK@alpha with the torso normaliser, as the LSP papers report it.

    Torso = ‖left shoulder − right hip‖ of the ground truth (:func:`torso_sizes`).

    Args:
        pred: predicted coordinates (N, K, 2).
        gt: ground-truth coordinates (N, K, 2).
        mask: bool (N, K) annotated joints, or None for all (LSP: every joint,
            occluded ones included).
        alpha: threshold as a fraction of the torso size (papers: 0.2).
        skeleton: defines K and the torso joints.

    Returns:
        :class:`PCKResult`.

    Raises:
        ValueError: shapes, a torso joint not annotated in some sample, or a
            zero / non-finite torso size (indices are listed).
    """
    pred = _coords(pred, "pred")
    gt = _coords(gt, "gt", like=pred)
    _check_skeleton(gt, skeleton, "gt")
    n, k, _ = gt.shape
    m = _mask(mask, n, k)
    if skeleton.torso_indices is None:
        raise ValueError(f"skeleton {skeleton.name!r} defines no torso joints; pass a normalizer to pck() instead")
    missing = np.flatnonzero(~m[:, list(skeleton.torso_indices)].all(axis=1))
    if missing.size:
        raise ValueError(f"pck_lsp needs both torso joints {skeleton.torso} annotated in every sample; "
                         f"{missing.size} of {n} samples are not (indices {_fmt_list(missing.tolist())}). "
                         f"Drop them or compute a normalizer yourself and call pck().")
    dist, m = _normalised_distances(pred, gt, m, torso_sizes(gt, skeleton), "torso size (normalizer)")
    return _pck_from_distances(dist, m, _alpha(alpha))


def pckh(pred, gt, mask, head_boxes, alpha: float = 0.5) -> PCKResult:
    """PCKh@alpha (MPII): the normaliser is the head size (:func:`head_sizes`).

    Args:
        pred: predicted coordinates (N, K, 2).
        gt: ground-truth coordinates (N, K, 2).
        mask: bool (N, K) annotated joints, or None for all.
        head_boxes: (N, 4) head boxes x1, y1, x2, y2.
        alpha: threshold as a fraction of the head size (papers: 0.5).

    Returns:
        :class:`PCKResult`. For the MPII total (14 joints, no pelvis / thorax)
        use :func:`pckh_total`.
    """
    pred = _coords(pred, "pred")
    sizes = head_sizes(head_boxes)
    if sizes.shape[0] != pred.shape[0]:
        raise ValueError(f"head_boxes must have shape (N, 4) = ({pred.shape[0]}, 4) to match pred; "
                         f"received {np.shape(head_boxes)}")
    dist, m = _normalised_distances(pred, gt, mask, sizes, "head size (from head_boxes)")
    return _pck_from_distances(dist, m, _alpha(alpha))


def pckh_total(result: PCKResult, skeleton: Skeleton = MPII16,
               exclude: Sequence[str] = MPII_TOTAL_EXCLUDES) -> float:
    """The MPII PCKh total: all joints except pelvis and thorax (14 of 16).

    Follows the official evaluation: correct entries over valid entries of the
    14 joints, so each joint is weighted by its number of annotated samples.
    With every joint annotated this equals the mean of the 14 per-joint
    values (the "Total" column of :func:`results_table` for MPII16).

    Args:
        result: a :class:`PCKResult` over ``skeleton``'s joints.
        skeleton: the joint order (default MPII16).
        exclude: joint names left out.

    Returns:
        The total as a fraction.
    """
    k = result.mask.shape[1]
    if k != skeleton.num_joints:
        raise ValueError(f"result has {k} joints but skeleton {skeleton.name!r} has {skeleton.num_joints}")
    for name in exclude:
        skeleton.index(name)  # KeyError naming the joint if unknown
    keep = [i for i, n in enumerate(skeleton.joint_names) if n not in set(exclude)]
    return result.total(keep)


# --------------------------------------------------------------------------- #
# PCP
# --------------------------------------------------------------------------- #

@dataclasses.dataclass(frozen=True)
class Stick:
    """A limb for PCP. Each endpoint is the mean of one or more joints.

    Attributes:
        name: readable name, e.g. ``"r_knee-r_hip"`` or ``"torso"``.
        group: PCP column (one of :data:`PCP_GROUPS`) or ``"Other"``.
        start: joint indices averaged to give the first endpoint.
        end: joint indices averaged to give the second endpoint.
    """

    name: str
    group: str
    start: Tuple[int, ...]
    end: Tuple[int, ...]


_LIMB_GROUP_RULES = (
    ("Upper leg", frozenset({"hip", "knee"})),
    ("Lower leg", frozenset({"knee", "ankle"})),
    ("Upper arm", frozenset({"shoulder", "elbow"})),
    ("Forearm", frozenset({"elbow", "wrist"})),
)
_TORSO_KINDS = frozenset({"hip", "shoulder", "pelvis", "thorax"})


def _kind(joint_name: str) -> str:
    """Joint name without its side prefix: ``"r_knee"`` -> ``"knee"``."""
    return joint_name[2:] if joint_name[:2] in ("r_", "l_") else joint_name


def _limb_group(a: str, b: str) -> str:
    kinds = frozenset({_kind(a), _kind(b)})
    for group, rule in _LIMB_GROUP_RULES:
        if kinds == rule:
            return group
    if "head_top" in kinds:
        return "Head"
    if kinds <= _TORSO_KINDS:
        return "Torso"
    return "Other"


def limb_sticks(skeleton: Skeleton) -> Tuple[Stick, ...]:
    """One :class:`Stick` per ``skeleton.limbs`` entry, grouped from joint names.

    Groups: hip-knee = Upper leg, knee-ankle = Lower leg, shoulder-elbow =
    Upper arm, elbow-wrist = Forearm, anything to head_top = Head, limbs among
    hips / shoulders / pelvis / thorax = Torso, the rest = Other.
    """
    return tuple(Stick(f"{a}-{b}", _limb_group(a, b), (skeleton.index(a),), (skeleton.index(b),))
                 for a, b in skeleton.limbs)


def paper_pcp_sticks(skeleton: Skeleton = LSP14) -> Tuple[Stick, ...]:
    """The 10 sticks of the LSP PCP protocol, derived from joint names.

    Torso: midpoint of the hips to midpoint of the shoulders (one stick, as in
    Pishchulin et al.'s evaluation code used by the papers); then the
    skeleton's upper-leg, lower-leg, upper-arm, forearm and head limbs (see
    :func:`limb_sticks`). Skeleton limbs of other groups (hip-hip,
    shoulder-shoulder, pelvis/thorax links) are not used.

    Returns:
        Sticks ordered by :data:`PCP_GROUPS`.
    """
    sticks = [Stick("torso", "Torso", (skeleton.index("r_hip"), skeleton.index("l_hip")),
                    (skeleton.index("r_shoulder"), skeleton.index("l_shoulder")))]
    limbs = limb_sticks(skeleton)
    for group in PCP_GROUPS[1:]:
        found = [s for s in limbs if s.group == group]
        if not found:
            raise ValueError(f"skeleton {skeleton.name!r} has no limb in PCP group {group!r}; "
                             f"limbs: {[s.name for s in limbs]}")
        sticks.extend(found)
    return tuple(sticks)


@dataclasses.dataclass(frozen=True, eq=False)
class PCPResult:
    """Result of :func:`pcp`.

    Attributes:
        per_limb: (L,) fraction of valid samples whose limb is correct; NaN for
            a limb with no valid sample.
        mean: fraction correct over all valid (sample, limb) entries.
        correct: (N, L) bool; False where not valid.
        valid: (N, L) bool, True where every endpoint joint is annotated.
        sticks: the L sticks evaluated.
        alpha: the threshold used.
    """

    per_limb: np.ndarray
    mean: float
    correct: np.ndarray
    valid: np.ndarray
    sticks: Tuple[Stick, ...]
    alpha: float

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(s.name for s in self.sticks)


def pcp(pred, gt, skeleton: Skeleton, alpha: float = 0.5, mask=None,
        sticks: Sequence[Stick] | None = None) -> PCPResult:
    """Strict Percentage of Correct Parts.

    A limb is correct if BOTH predicted endpoints lie within
    ``alpha x`` the ground-truth limb length of their ground-truth endpoints
    (inclusive). A zero-length ground-truth limb is correct only if both
    endpoints are exact.

    Args:
        pred: predicted coordinates (N, K, 2).
        gt: ground-truth coordinates (N, K, 2), K = ``skeleton.num_joints``.
        skeleton: joint order and limbs.
        alpha: threshold as a fraction of the limb length (papers: 0.5).
        mask: bool (N, K) annotated joints, or None. A limb counts in a sample
            only when all of its endpoint joints are annotated.
        sticks: limbs to evaluate; default one per ``skeleton.limbs`` entry
            (:func:`limb_sticks`). Use :func:`paper_pcp_sticks` (or
            :func:`pcp_groups`) for the papers' 10-stick LSP protocol.

    Returns:
        :class:`PCPResult` with ``per_limb`` (L,), ``mean`` and ``correct`` (N, L).

    Example:
        >>> from keras_pose.skeletons import LSP14
        >>> gt = np.random.default_rng(0).uniform(0, 100, (4, 14, 2))
        >>> float(pcp(gt, gt, LSP14).mean)
        1.0
    """
    pred = _coords(pred, "pred")
    gt = _coords(gt, "gt", like=pred)
    _check_skeleton(gt, skeleton, "gt")
    n, k, _ = gt.shape
    m = _mask(mask, n, k)
    a = _alpha(alpha)
    _check_gt_finite(gt, m)
    sticks = limb_sticks(skeleton) if sticks is None else tuple(sticks)
    if not sticks:
        raise ValueError("sticks must name at least one limb; received an empty sequence")
    for s in sticks:
        if not s.start or not s.end or not all(0 <= j < k for j in s.start + s.end):
            raise ValueError(f"stick {s.name!r} has joint indices {s.start}, {s.end}; expected indices in [0, {k})")

    def endpoint(x, idx):
        return x[:, list(idx)].mean(axis=1)

    correct = np.zeros((n, len(sticks)), dtype=bool)
    valid = np.zeros((n, len(sticks)), dtype=bool)
    with np.errstate(invalid="ignore"):
        for i, s in enumerate(sticks):
            g0, g1 = endpoint(gt, s.start), endpoint(gt, s.end)
            p0, p1 = endpoint(pred, s.start), endpoint(pred, s.end)
            limit = a * np.hypot(*(g1 - g0).T)
            ok = (np.hypot(*(p0 - g0).T) <= limit) & (np.hypot(*(p1 - g1).T) <= limit)
            valid[:, i] = m[:, list(s.start + s.end)].all(axis=1)
            correct[:, i] = ok & valid[:, i]
    return PCPResult(per_limb=_rate(correct.sum(0), valid.sum(0)), mean=_rate(correct.sum(), valid.sum()),
                     correct=correct, valid=valid, sticks=sticks, alpha=a)


def pcp_groups(pred, gt, skeleton: Skeleton = LSP14, alpha: float = 0.5, mask=None) -> Dict[str, float]:
    """Strict PCP in the papers' LSP layout (torso, upper leg, ..., head, total).

    Evaluates :func:`paper_pcp_sticks`. A group's rate is the mean of its
    sticks' rates (e.g. upper leg = mean of left and right); ``"Total"`` is the
    mean over all valid (sample, stick) entries of the 10 sticks, which with
    full annotations is the mean of the 10 stick rates (so total differs from
    the mean of the 6 groups, as in the papers' tables).

    Args:
        pred, gt: coordinates (N, K, 2).
        skeleton: must have r_/l_ hips, shoulders, knees, ankles, elbows,
            wrists and a head_top limb (LSP14 and MPII16 do).
        alpha: threshold as a fraction of the limb length (papers: 0.5).
        mask: bool (N, K) annotated joints, or None.

    Returns:
        Ordered dict ``{"Torso": f, "Upper leg": f, "Lower leg": f,
        "Upper arm": f, "Forearm": f, "Head": f, "Total": f}``, fractions.
    """
    res = pcp(pred, gt, skeleton, alpha=alpha, mask=mask, sticks=paper_pcp_sticks(skeleton))
    out = {}
    for group in PCP_GROUPS:
        rates = res.per_limb[[i for i, s in enumerate(res.sticks) if s.group == group]]
        out[group] = float(np.nan) if np.isnan(rates).all() else float(np.nanmean(rates))
    out["Total"] = float(res.mean)
    return out


# --------------------------------------------------------------------------- #
# PDJ curves
# --------------------------------------------------------------------------- #

def _thresholds(thresholds, min_size: int = 1) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size < min_size:
        raise ValueError(f"thresholds must be a 1-D array of at least {min_size} value(s); received shape {t.shape}")
    if not np.isfinite(t).all() or (t < 0).any() or (np.diff(t) <= 0).any():
        raise ValueError("thresholds must be finite, >= 0 and strictly increasing; "
                         f"received {_fmt_list(np.round(t, 6).tolist())}")
    return t


def pdj_curve(pred, gt, mask, normalizer, thresholds=PDJ_THRESHOLDS):
    """Detection rate as a function of the normalised distance threshold (PDJ / PCK curve).

    Args:
        pred, gt: coordinates (N, K, 2).
        mask: bool (N, K) annotated joints, or None.
        normalizer: (N,) positive reference length (torso size for PDJ), or a scalar.
        thresholds: increasing thresholds >= 0; default 0, 0.01, ..., 0.5.

    Returns:
        ``(thresholds, rates, per_joint)``: thresholds (T,), overall rate per
        threshold (T,) over the valid entries, and per-joint rates (T, K)
        (NaN for a joint with no valid sample). Fractions.

    Example:
        >>> t, r, _ = pdj_curve([[[1.0, 0.0]]], [[[0.0, 0.0]]], None, [10.0], [0.0, 0.1, 0.2])
        >>> r.tolist()
        [0.0, 1.0, 1.0]
    """
    t = _thresholds(thresholds)
    dist, m = _normalised_distances(pred, gt, mask, normalizer)
    with np.errstate(invalid="ignore"):
        correct = (dist[None] <= t[:, None, None]) & m[None]  # (T, N, K)
    per_joint = _rate(correct.sum(axis=1), m.sum(axis=0)[None])
    rates = _rate(correct.sum(axis=(1, 2)), np.full(t.shape, m.sum()))
    return t, np.atleast_1d(rates), per_joint


def curve_auc(thresholds, rates):
    """Normalised area under a detection-rate curve.

    Trapezoidal area divided by the threshold span (``thresholds[-1] -
    thresholds[0]``; for thresholds starting at 0, as by default, that is the
    maximum threshold). A perfect curve (rate 1 everywhere) gives 1.0.

    Args:
        thresholds: (T,) increasing thresholds.
        rates: (T,) rates, or (T, ...) to integrate each column (e.g. the
            per-joint rates of :func:`pdj_curve`).

    Returns:
        A float, or an array of shape ``rates.shape[1:]``.
    """
    t = _thresholds(thresholds, min_size=2)
    r = np.asarray(rates, dtype=np.float64)
    if r.ndim < 1 or r.shape[0] != t.shape[0]:
        raise ValueError(f"rates must have shape (T, ...) with T = {t.shape[0]} (one rate per threshold); "
                         f"received {r.shape}")
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2 name; np.trapz on NumPy 1.26
    area = trapezoid(r, t, axis=0) / (t[-1] - t[0])
    return float(area) if np.ndim(area) == 0 else area


# --------------------------------------------------------------------------- #
# Thin wrappers: tables and plots
# --------------------------------------------------------------------------- #

# --------------------------------------------------------------------------- #
# Per-joint confidence: does a joint's score tell a correct joint from a wrong one?
# --------------------------------------------------------------------------- #

def _scored(scores, correct, mask):
    s = np.asarray(scores, np.float64)
    c = np.asarray(correct, bool)
    if s.shape != c.shape:
        raise ValueError(f"scores and correct must have the same shape, got {s.shape} and {c.shape}")
    m = np.ones(s.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != s.shape:
        raise ValueError(f"mask must have the shape of scores {s.shape}, got {m.shape}")
    if not np.all(np.isfinite(s[m])):
        raise ValueError(f"scores: {int(np.sum(~np.isfinite(s[m])))} non-finite values among the counted entries")
    return s[m], c[m]


def score_auroc(scores, correct, mask=None) -> float:
    """Area under the ROC curve of ``scores`` as a detector of ``correct`` entries.

    The probability that a random correct joint scores higher than a random
    wrong one (ties count one half; the Mann-Whitney U statistic / n_pos n_neg):
    1.0 separates perfectly, 0.5 is chance (e.g. every score 1.00). NaN when
    every counted entry is correct or every one is wrong.

    Args:
        scores: (N, K) (or any shape) per-joint scores.
        correct: bool, same shape, e.g. :attr:`PCKResult.correct`.
        mask: bool, same shape, the entries that count (default: all), e.g.
            :attr:`PCKResult.mask`.
    """
    from scipy.stats import rankdata

    s, c = _scored(scores, correct, mask)
    n_pos, n_neg = int(c.sum()), int((~c).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[c].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def youden_threshold(scores, correct, mask=None) -> float:
    """The score threshold that best separates correct from wrong entries: the t maximising
    TPR(t) - FPR(t) (Youden's J), where an entry scoring at least t counts as "correct".

    Candidates are the counted scores themselves (the highest of equally good
    ones). NaN when every counted entry is correct or every one is wrong.
    """
    s, c = _scored(scores, correct, mask)
    n_pos, n_neg = int(c.sum()), int((~c).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted, c_sorted = s[order], c[order]
    tp, fp = np.cumsum(c_sorted), np.cumsum(~c_sorted)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # the last entry of each run of equal scores
    j = tp[last] / n_pos - fp[last] / n_neg
    return float(s_sorted[last][int(np.argmax(j))])


def reliability(scores, correct, mask=None, bins: int = 10) -> dict:
    """Reliability table: the fraction correct in equal-width score bins over [0, 1].

    Returns ``edges`` (bins + 1,), ``count``, ``mean_score`` and
    ``accuracy`` (bins,) (NaN in empty bins), and ``ece``: the expected
    calibration error, sum over bins of count / total x |accuracy - mean score|.
    Scores outside [0, 1] are an error (the bins would not hold them).
    """
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    s, c = _scored(scores, correct, mask)
    if s.size and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(f"reliability: scores must lie in [0, 1], got [{s.min():.3g}, {s.max():.3g}]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)  # 1.0 goes in the last bin
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(idx, weights=s, minlength=bins) / count
        accuracy = np.bincount(idx, weights=c.astype(np.float64), minlength=bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] * np.abs(accuracy[filled] - mean_score[filled])) / max(1, s.size))
    return {"edges": edges, "count": count, "mean_score": mean_score, "accuracy": accuracy, "ece": ece}


def _as_models(values, name: str) -> Dict[str, object]:
    if isinstance(values, Mapping):
        if not values:
            raise ValueError("no models given: the mapping is empty")
        return {str(k): v for k, v in values.items()}
    return {name: values}


def _check_fractions(v: np.ndarray, arg: str, model: str) -> None:
    finite = v[np.isfinite(v)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"{arg} for model {model!r} must be fractions in [0, 1] (as pck returns them; the table "
                         f"converts to percent); received values from {finite.min():g} to {finite.max():g}")


def results_table(per_joint_pck, skeleton: Skeleton = LSP14, name: str = "model",
                  total_joints: Sequence[int] | None = None):
    """Per-joint PCK in the papers' layout: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Total.

    A group column is the mean of its joints (``skeleton.group_indices``).
    Total is the mean of the per-joint values (not the mean of the groups).
    By default it is taken over the joints that appear in the groups: all 14
    joints for LSP14, and the 14 joints without pelvis and thorax for MPII16
    (the PCKh convention). NaN joints are ignored in a mean.

    Args:
        per_joint_pck: a (K,) array of fractions, a :class:`PCKResult`, or a
            mapping model name -> either of these for a multi-row table.
        skeleton: the joint order and groups.
        name: row name when a single model is given.
        total_joints: joint indices for Total, overriding the default.

    Returns:
        pandas DataFrame, one row per model (index "Model"), values in percent.

    Example:
        >>> float(results_table(np.full(14, 0.75), name="cpm").loc["cpm", "Total"])
        75.0
    """
    import pandas as pd

    groups = skeleton.group_indices
    if total_joints is None:
        total_joints = sorted({j for idx in groups.values() for j in idx})
    total_joints = list(total_joints)
    rows = {}
    for model, values in _as_models(per_joint_pck, name).items():
        v = np.asarray(values.per_joint if isinstance(values, PCKResult) else values, dtype=np.float64)
        if v.shape != (skeleton.num_joints,):
            raise ValueError(f"per_joint_pck for model {model!r} must have shape ({skeleton.num_joints},) "
                             f"(one value per {skeleton.name} joint); received {v.shape}")
        _check_fractions(v, "per_joint_pck", model)
        row = {g: _nanmean(v[list(idx)]) for g, idx in groups.items()}
        row["Total"] = _nanmean(v[total_joints])
        rows[model] = row
    df = pd.DataFrame.from_dict(rows, orient="index", columns=[*groups, "Total"]) * 100.0
    df.index.name = "Model"
    return df


def pcp_table(pcp_by_model, name: str = "model"):
    """Strict PCP in the papers' layout (Torso, Upper leg, ..., Head, Total), in percent.

    Args:
        pcp_by_model: the dict returned by :func:`pcp_groups`, or a mapping
            model name -> such a dict.
        name: row name when a single model is given.

    Returns:
        pandas DataFrame, one row per model (index "Model").
    """
    import pandas as pd

    columns = [*PCP_GROUPS, "Total"]
    single = isinstance(pcp_by_model, Mapping) and "Total" in pcp_by_model
    models = {name: pcp_by_model} if single else _as_models(pcp_by_model, name)
    rows = {}
    for model, groups in models.items():
        missing = [c for c in columns if c not in groups]
        if missing:
            raise ValueError(f"PCP results for model {model!r} lack columns {missing}; pass pcp_groups() output")
        v = np.array([groups[c] for c in columns], dtype=np.float64)
        _check_fractions(v, "pcp_by_model", model)
        rows[model] = dict(zip(columns, v))
    df = pd.DataFrame.from_dict(rows, orient="index", columns=columns) * 100.0
    df.index.name = "Model"
    return df


def _nanmean(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def table_to_markdown(df, digits: int = 1) -> str:
    """Render a DataFrame as a GitHub markdown table (no ``tabulate`` needed).

    Args:
        df: the table, e.g. from :func:`results_table`.
        digits: decimals for float cells; NaN is shown as ``-``.

    Returns:
        The markdown text (no trailing newline); numeric columns right-aligned.

    Example:
        >>> import pandas as pd
        >>> print(table_to_markdown(pd.DataFrame({"Total": [90.04]}, index=pd.Index(["cpm"], name="Model"))))
        | Model | Total |
        |:--|--:|
        | cpm | 90.0 |
    """
    def cell(x) -> str:
        if isinstance(x, (float, np.floating)):
            return "-" if np.isnan(x) else f"{x:.{digits}f}"
        return str(x).replace("|", "\\|").replace("\n", " ")

    import pandas as pd

    numeric = [pd.api.types.is_numeric_dtype(dt) for dt in df.dtypes]
    header = [cell(df.index.name or "")] + [cell(c) for c in df.columns]
    align = [":--"] + ["--:" if isnum else ":--" for isnum in numeric]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        lines.append("| " + " | ".join([cell(idx)] + [cell(x) for x in row]) + " |")
    return "\n".join(lines)


def plot_pck_curves(curves, ax=None, title: str = "PCK curves"):
    """Plot detection-rate curves, one line per model, labelled with their AUC.

    Safe on headless machines: without ``ax`` a standalone
    ``matplotlib.figure.Figure`` is created (no pyplot, no ``show``).

    Args:
        curves: mapping model name -> ``(thresholds, rates)`` with rates as
            fractions; the 3-tuple from :func:`pdj_curve` is accepted too.
        ax: an existing Axes to draw on, or None.
        title: the axes title.

    Returns:
        The matplotlib Figure. x = normalised distance threshold, y =
        detection rate in percent.
    """
    from matplotlib.figure import Figure

    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping name -> (thresholds, rates)")
    if ax is None:
        fig = Figure(figsize=(5.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for model, curve in curves.items():
        if not isinstance(curve, (tuple, list)) or len(curve) < 2:
            raise ValueError(f"curves[{model!r}] must be (thresholds, rates); received {type(curve).__name__}")
        t, r = np.asarray(curve[0], dtype=np.float64), np.asarray(curve[1], dtype=np.float64)
        if r.shape != t.shape:
            raise ValueError(f"curves[{model!r}]: rates must have the shape of thresholds {t.shape}; "
                             f"received {r.shape}")
        ax.plot(t, 100.0 * r, label=f"{model} (AUC {100.0 * curve_auc(t, r):.1f})")
    ax.set_xlabel("Normalised distance threshold")
    ax.set_ylabel("Detection rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig
