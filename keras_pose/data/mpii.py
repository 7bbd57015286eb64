"""Reader for the MPII Human Pose dataset, from the official .mat or the common JSON.

Two annotation formats, chosen by the file's suffix:

``.mat``: the official release ``mpii_human_pose_v1_u12_1.mat``, a MATLAB
struct ``RELEASE`` with ``annolist(i).image.name``, ``annolist(i).annorect(r)``
(``annopoints.point(j).id/.x/.y/.is_visible``, ``objpos.x/.y``, ``scale``,
head box ``x1 y1 x2 y2``), ``img_train(i)`` (1 = train, 0 = test) and
``single_person{i}`` (1-based indices of the sufficiently separated persons).
The joint annotations of the test images are withheld by the authors, so the
.mat has no test joints and no validation split: its ``"train"`` split is
every annotated training person, i.e. the usual train *and* validation sets.

``.json``: the conversion used by MMPose, HRNet and the stacked-hourglass
ports (``mpii_train.json``, ``mpii_val.json``, ...): a list of
``{"image", "joints" (16 x 2), "joints_vis" (16), "center" (2), "scale"}``,
optionally ``"headbox"`` ``[[x1, y1], [x2, y2]]``. Its train / val files are the
disjoint split (Tompson et al.) on which results are usually reported.

Conventions (see :mod:`keras_pose.data.records`):

- Both files store MATLAB 1-based pixel coordinates. By default (``one_based``
  left to ``None``) 1 is subtracted from joints, centre and head box of either
  format, giving our 0-based convention. This is what MMPose and HRNet do with
  the same JSON (``joints - 1``, ``center - 1``; they add 1 back before the
  MATLAB PCKh evaluation), so the two formats give identical records for the
  same person. Pass ``one_based=False`` for a file already in 0-based pixels.
- ``scale`` is MPII's own (person height / 200 px) and ``center`` MPII's
  ``objpos``, kept as they are: the +15 * scale vertical shift and 1.25
  enlargement that the hourglass / HRNet pipelines apply belong to the
  pipeline, not to the reader.
- Joints that are not annotated (absent from the .mat point list, or
  ``joints_vis`` 0, or a non-finite coordinate) get coordinates 0 and
  ``annotated=False``.
- .mat: ``visible = annotated & is_visible``. ``is_visible`` is stored as an
  int, a string ('0' / '1'), an empty string / array, or is missing for a
  whole image; empty or missing means "not recorded" and is read as visible,
  as the other public MPII readers do.
- .json: ``joints_vis`` only says whether a joint is *annotated* (the file has
  no occlusion flag), so ``visible = annotated = joints_vis``.
- ``head_box`` (x1, y1, x2, y2), for PCKh, from the rect's head box (.mat) or
  ``"headbox"`` (.json) when present, else None.
- ``image_id`` is ``"mpii/<image name without suffix>"``; the several persons
  of one image share it.

Reference: Andriluka et al., "2D Human Pose Estimation: New Benchmark and
State of the Art Analysis", CVPR 2014.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import scipy.io

from keras_pose.data.paths import find_dataset_dir
from keras_pose.data.records import PoseDataset, PoseRecord, estimate_center_scale
from keras_pose.skeletons import MPII16

log = logging.getLogger(__name__)

NUM_JOINTS = 16
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
MAT_SPLITS = ("train", "all_with_joints")
JSON_KEYS = ("image", "joints", "joints_vis", "center", "scale")
# Whether each format's file is in MATLAB 1-based coordinates (used when one_based=None).
ONE_BASED_DEFAULT = {".mat": True, ".json": True}

_Struct = scipy.io.matlab.mat_struct


def read_mpii(root: str | os.PathLike | None = None, split: str = "train",
              annotation: str | os.PathLike | None = None, image_dir: str | os.PathLike | None = None,
              require_images: bool = True, *, one_based: bool | None = None,
              single_person: bool = False) -> PoseDataset:
    """Read MPII Human Pose, one record per annotated person.

    Args:
        root: the data root holding ``mpii/``, or the ``mpii`` folder itself;
            default: see :mod:`keras_pose.data.paths`.
        split: with the official .mat, ``"train"`` (training images, persons
            with joints) or ``"all_with_joints"`` (every person with joints,
            whatever ``img_train`` says); ``"test"`` raises, as the official
            test joints are withheld. With a JSON file, the file to read is
            ``mpii_<split>.json`` (``"train"``, ``"val"``, ``"trainval"``...);
            with an explicit JSON ``annotation``, ``split`` only names the
            dataset.
        annotation: the annotation file (``.mat`` or ``.json``), overriding
            the lookup below. Without it, ``<mpii>/annotations/mpii_<split>.json``
            and ``<mpii>/mpii_<split>.json`` are tried first, then the .mat in
            ``<mpii>/annotations/``, ``<mpii>/`` and
            ``<mpii>/mpii_human_pose_v1_u12_2/`` (JSON first because its
            train and val are disjoint, the .mat "train" is both).
        image_dir: the folder of the images; default ``<mpii>/images``, where
            ``<mpii>`` is the dataset folder, or, when ``annotation`` is given
            without ``root``, the folder holding the annotation file (or its
            parent when that folder is ``annotations`` or
            ``mpii_human_pose_v1_u12_2``).
        require_images: raise if an annotated image is missing; with False,
            records are returned whether the images exist or not.
        one_based: subtract 1 from joints, centre and head box (the file is in
            MATLAB 1-based coordinates); None: the format's default
            (``ONE_BASED_DEFAULT``: True for both, see the module docstring).
        single_person: .mat only: keep only the persons listed in
            ``single_person`` (the single-person benchmark's persons).

    Returns:
        A :class:`PoseDataset` named ``mpii_<split>`` with skeleton ``MPII16``.

    Raises:
        FileNotFoundError: dataset folder, annotation file or an image missing.
        ValueError: annotation of the wrong structure, ``split="test"`` with
            the .mat, or an unknown split or suffix.
    """
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string such as 'train', got {split!r}")
    if annotation is not None:
        ann = Path(annotation)
        if not ann.is_file():
            raise FileNotFoundError(f"annotation file {ann} does not exist")
        folder = find_dataset_dir("mpii", root) if root is not None else _folder_of(ann)
    else:
        folder = find_dataset_dir("mpii", root)
        ann = _find_annotation(folder, split)
    suffix = ann.suffix.lower()
    if suffix not in ONE_BASED_DEFAULT:
        raise ValueError(f"annotation file {ann}: unknown format {ann.suffix!r}, expected .mat or .json")
    offset = 1.0 if (ONE_BASED_DEFAULT[suffix] if one_based is None else one_based) else 0.0
    images = Path(image_dir) if image_dir is not None else folder / "images"
    log.info("MPII %s: reading %s, images in %s", split, ann, images)
    if suffix == ".mat":
        records = _read_mat(ann, split, images, offset, single_person)
    else:
        if single_person:
            raise ValueError(f"annotation file {ann}: single_person=True needs the official .mat; "
                             "the JSON conversion has no single-person list")
        records = _read_json(ann, images, offset)
    if require_images:
        _check_images(records, ann)
    log.info("MPII %s: %d persons in %d images", split, len(records), len({r.image_path for r in records}))
    return PoseDataset(f"mpii_{split}", MPII16, records)


def _folder_of(annotation: Path) -> Path:
    parent = annotation.resolve().parent
    return parent.parent if parent.name in ("annotations", "mpii_human_pose_v1_u12_2") else parent


def _find_annotation(folder: Path, split: str) -> Path:
    tried = []
    if split not in ("all_with_joints",):
        tried += [folder / "annotations" / f"mpii_{split}.json", folder / f"mpii_{split}.json"]
    if split in MAT_SPLITS + ("test",):
        tried += [folder / "annotations" / MAT_NAME, folder / MAT_NAME, folder / "mpii_human_pose_v1_u12_2" / MAT_NAME]
    for path in tried:
        if path.is_file():
            return path
    if not tried:
        raise ValueError(f"unknown MPII split {split!r}")
    raise FileNotFoundError(f"no MPII annotation for split {split!r} in {folder}; looked for: "
                            f"{', '.join(str(t) for t in tried)}")


def _check_images(records: list[PoseRecord], annotation: Path) -> None:
    seen = set()
    for r in records:
        if r.image_path in seen:
            continue
        if not Path(r.image_path).is_file():
            raise FileNotFoundError(f"MPII image {r.image_path} is missing (annotated in {annotation})")
        seen.add(r.image_path)


def _record(image_path: Path, xy, annotated, visible, center, scale, head_box, image_name: str,
            context: str) -> PoseRecord:
    annotated = np.asarray(annotated, bool) & np.isfinite(xy).all(axis=1)
    xy = np.where(annotated[:, None], xy, 0.0).astype(np.float32)
    if center is None or scale is None:
        # Not expected in the official files; estimate rather than drop the person.
        log.warning("%s: no centre / scale in the annotation, estimated from the joints", context)
        center, scale = estimate_center_scale(xy, annotated, context=context)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{context}: scale must be a positive number, got {scale}")
    return PoseRecord(image_path=str(image_path), joints=xy, visible=np.asarray(visible, bool) & annotated,
                      annotated=annotated, center=np.asarray(center, np.float32), scale=float(scale),
                      image_id=f"mpii/{Path(image_name).stem}",
                      head_box=None if head_box is None else np.asarray(head_box, np.float32))


# --- official .mat ------------------------------------------------------------------------------


def _items(value) -> list:
    """A MATLAB struct array / cell as a list: squeeze_me turns 1 element into a scalar, 0 into []."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel()) if value.size else []
    return [value]


def _number(value, context: str) -> float | None:
    """A MATLAB scalar (int, float, '3', 1-element array); None when empty or missing."""
    if value is None:
        return None
    a = np.asarray(value)
    if a.size == 0:
        return None
    if a.size != 1:
        raise ValueError(f"{context}: expected a single number, got an array of shape {a.shape}")
    v = a.item()
    if isinstance(v, (str, bytes)):
        v = v.decode() if isinstance(v, bytes) else v
        if not v.strip():
            return None
        try:
            return float(v)
        except ValueError:
            raise ValueError(f"{context}: expected a number, got the string {v!r}") from None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{context}: expected a number, got {type(v).__name__} {v!r}") from None


def _load_release(path: Path):
    try:
        mat = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except Exception as e:  # scipy raises several types for corrupt files
        raise ValueError(f"annotation file {path} is not a readable MATLAB .mat file: {e}") from e
    if "RELEASE" not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise ValueError(f"annotation file {path} has no variable 'RELEASE' (found {keys}); "
                         f"expected the official {MAT_NAME}")
    release = mat["RELEASE"]
    missing = [f for f in ("annolist", "img_train") if not hasattr(release, f)]
    if not isinstance(release, _Struct) or missing:
        fields = getattr(release, "_fieldnames", type(release).__name__)
        raise ValueError(f"annotation file {path}: RELEASE must be a struct with fields annolist and img_train "
                         f"(missing {missing}); found {fields}")
    return release


def _read_mat(path: Path, split: str, images: Path, offset: float, single_person: bool) -> list[PoseRecord]:
    if split == "test":
        raise ValueError(f"annotation file {path}: the official MPII test joints are withheld by the authors "
                         f"(evaluation is by submission), so split 'test' has no joints; use split "
                         f"'train', 'all_with_joints' or a JSON validation file such as mpii_val.json")
    if split not in MAT_SPLITS:
        raise ValueError(f"annotation file {path}: unknown split {split!r} for the official .mat, expected one of "
                         f"{list(MAT_SPLITS)} ('test' joints are withheld)")
    release = _load_release(path)
    annolist = _items(release.annolist)
    img_train = np.atleast_1d(np.asarray(release.img_train)).ravel()
    if len(img_train) != len(annolist):
        raise ValueError(f"annotation file {path}: img_train has {len(img_train)} entries, "
                         f"expected one per annolist entry ({len(annolist)})")
    singles = None
    if single_person:
        if not hasattr(release, "single_person"):
            raise ValueError(f"annotation file {path}: single_person=True but RELEASE has no field single_person")
        singles = _items(release.single_person) if len(annolist) != 1 else [release.single_person]
        if len(singles) != len(annolist):
            raise ValueError(f"annotation file {path}: single_person has {len(singles)} entries, "
                             f"expected one per annolist entry ({len(annolist)})")
    records = []
    for i, entry in enumerate(annolist):
        if split == "train" and _number(img_train[i], f"{path}: img_train({i + 1})") != 1:
            continue
        context = f"annotation file {path}: annolist({i + 1})"
        name = getattr(getattr(entry, "image", None), "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{context}: expected image.name to be a file name, got {name!r}")
        keep = None
        if singles is not None:
            keep = {int(_number(v, f"{context}: single_person")) for v in _items(singles[i])}
        for r, rect in enumerate(_items(getattr(entry, "annorect", None))):
            rcontext = f"{context}.annorect({r + 1}) ({name})"
            if not isinstance(rect, _Struct):
                raise ValueError(f"{rcontext}: expected a struct, got {type(rect).__name__}")
            if keep is not None and r + 1 not in keep:
                continue
            points = _items(getattr(getattr(rect, "annopoints", None), "point", None))
            if not points:
                continue  # a person without joints (test images, unannotated people)
            records.append(_mat_person(rect, points, images / name, name, offset, rcontext))
    return records


def _mat_person(rect, points: list, image_path: Path, name: str, offset: float, context: str) -> PoseRecord:
    if len(points) > NUM_JOINTS:
        raise ValueError(f"{context}: {len(points)} annotated points, expected at most {NUM_JOINTS}")
    xy = np.full((NUM_JOINTS, 2), np.nan)
    annotated = np.zeros(NUM_JOINTS, bool)
    visible = np.zeros(NUM_JOINTS, bool)
    for j, p in enumerate(points):
        pcontext = f"{context}.annopoints.point({j + 1})"
        if not isinstance(p, _Struct):
            raise ValueError(f"{pcontext}: expected a struct with id, x, y, got {type(p).__name__}")
        jid = _number(getattr(p, "id", None), f"{pcontext}.id")
        if jid is None or not jid.is_integer() or not 0 <= jid < NUM_JOINTS:
            shown = "missing" if jid is None else f"{jid:g}"
            raise ValueError(f"{pcontext}: joint id {shown}, expected an integer in 0-{NUM_JOINTS - 1} "
                             f"(MPII's {NUM_JOINTS} joints)")
        jid = int(jid)
        if annotated[jid]:
            raise ValueError(f"{pcontext}: joint id {jid} ({MPII16.joint_names[jid]}) is annotated twice")
        x = _number(getattr(p, "x", None), f"{pcontext}.x")
        y = _number(getattr(p, "y", None), f"{pcontext}.y")
        if x is None or y is None:
            continue
        xy[jid] = (x - offset, y - offset)
        annotated[jid] = True
        flag = _number(getattr(p, "is_visible", None), f"{pcontext}.is_visible")
        visible[jid] = True if flag is None else flag != 0
    objpos = getattr(rect, "objpos", None)
    cx = _number(getattr(objpos, "x", None), f"{context}.objpos.x")
    cy = _number(getattr(objpos, "y", None), f"{context}.objpos.y")
    center = None if cx is None or cy is None else (cx - offset, cy - offset)
    scale = _number(getattr(rect, "scale", None), f"{context}.scale")
    box = [_number(getattr(rect, k, None), f"{context}.{k}") for k in ("x1", "y1", "x2", "y2")]
    head_box = None if any(v is None for v in box) else [v - offset for v in box]
    return _record(image_path, xy, annotated, visible, center, scale, head_box, name, context)


# --- JSON conversion ----------------------------------------------------------------------------


def _array(entry: dict, key: str, shape: tuple, context: str) -> np.ndarray:
    try:
        a = np.asarray(entry[key], np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{context}: {key!r} must be numeric with shape {shape}, got {entry[key]!r:.80}") from None
    if a.shape != shape:
        raise ValueError(f"{context}: {key!r} has shape {a.shape}, expected {shape}")
    return a


def _read_json(path: Path, images: Path, offset: float) -> list[PoseRecord]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"annotation file {path} is not readable JSON: {e}") from e
    if not isinstance(data, list):
        raise ValueError(f"annotation file {path}: expected a list of person entries, got {type(data).__name__}")
    records = []
    for i, entry in enumerate(data):
        context = f"annotation file {path}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{context}: expected an object with keys {list(JSON_KEYS)}, got {type(entry).__name__}")
        missing = [k for k in JSON_KEYS if k not in entry]
        if missing:
            raise ValueError(f"{context}: missing keys {missing}; expected {list(JSON_KEYS)}, found {sorted(entry)}")
        name = entry["image"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"{context}: 'image' must be a file name, got {name!r}")
        context = f"{context} ({name})"
        xy = _array(entry, "joints", (NUM_JOINTS, 2), context)
        vis = _array(entry, "joints_vis", (NUM_JOINTS,), context)
        center = _array(entry, "center", (2,), context)
        scale = _number(entry["scale"], f"{context}: 'scale'")
        if scale is None:
            raise ValueError(f"{context}: 'scale' is empty, expected a positive number")
        head_box = None
        if entry.get("headbox") is not None:
            head_box = np.asarray(entry["headbox"], dtype=object)
            if head_box.shape not in ((2, 2), (4,)):
                raise ValueError(f"{context}: 'headbox' has shape {head_box.shape}, "
                                 "expected (2, 2) [[x1, y1], [x2, y2]] or (4,)")
            head_box = _array(entry, "headbox", head_box.shape, context).ravel() - offset
        annotated = vis > 0.5
        records.append(_record(images / name, xy - offset, annotated, annotated, center - offset, scale,
                               head_box, name, context))
    return records
