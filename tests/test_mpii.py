"""Tests for the MPII reader, on small official-style .mat and JSON files written here."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from keras_pose.data.mpii import MAT_NAME, read_mpii

EMPTY = np.zeros((0, 0))


# --- helpers that write the files ---------------------------------------------------------------


def write_jpeg(path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def struct_array(rows: list[dict]) -> np.ndarray:
    """A 1xN MATLAB struct array; fields absent from a row are stored as [] (as MATLAB does)."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    out = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        out[0, i] = tuple(row.get(f, EMPTY) for f in fields)
    return out


def point_array(points) -> np.ndarray:
    """points: (id, x, y) or (id, x, y, is_visible) tuples; without a 4th item the field is absent."""
    return struct_array([dict(id=p[0], x=p[1], y=p[2], **({"is_visible": p[3]} if len(p) > 3 else {}))
                         for p in points])


def rect_array(rects: list[dict]) -> np.ndarray:
    rows = []
    for r in rects:
        row = {}
        if "head" in r:
            row.update(zip(("x1", "y1", "x2", "y2"), r["head"]))
        if "points" in r:
            row["annopoints"] = {"point": point_array(r["points"])} if r["points"] else EMPTY
        if "objpos" in r:
            row["objpos"] = {"x": r["objpos"][0], "y": r["objpos"][1]}
        if "scale" in r:
            row["scale"] = r["scale"]
        rows.append(row)
    return struct_array(rows) if rows else EMPTY


def write_mat(path: Path, images: list[dict], variable: str = "RELEASE") -> Path:
    annolist = struct_array([{"image": {"name": im["name"]}, "annorect": rect_array(im["rects"])} for im in images])
    single = np.empty((len(images), 1), dtype=object)
    for i, im in enumerate(images):
        single[i, 0] = np.array(im.get("single", []), np.float64).reshape(-1, 1) if im.get("single") else EMPTY
    release = {"annolist": annolist, "img_train": np.array([[im["train"] for im in images]], np.float64),
               "single_person": single}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {variable: release})
    return path


# Image 1: two persons; mixed is_visible types (int, '', '1', '0'); points out of id order.
# Image 2: a single rect with a single point (both squeezed to scalar structs by loadmat).
# Image 3: a test image whose rect has objpos / scale but no annopoints field at all.
# Image 4: one unannotated person (annopoints []), one annotated person.
# Image 5: a test image that nevertheless has joints (only read by "all_with_joints").
PERSON_A = dict(points=[(9, 150, 61, 1), (0, 101, 201, 1), (3, 131, 151, ""), (1, 111, 181.5, 0),
                        (2, 121, 161, "1"), (4, 141, 171, "0")],
                objpos=(126, 131), scale=1.5, head=(141, 51, 161, 71))
PERSON_B = dict(points=[(6, 301, 301), (7, 301, 251), (8, 301, 231)], objpos=(301, 281), scale=0.8,
                head=(291, 201, 311, 231))
IMAGES = [
    dict(name="img1.jpg", train=1, rects=[PERSON_A, PERSON_B], single=[2]),
    dict(name="img2.jpg", train=1, rects=[dict(points=[(15, 11, 21, 1)], objpos=(11, 21), scale=0.5,
                                               head=(1, 1, 11, 11))], single=[1]),
    dict(name="img3.jpg", train=0, rects=[dict(objpos=(51, 51), scale=1.0)]),
    dict(name="img4.jpg", train=1, rects=[dict(points=[], scale=2.0),
                                          dict(points=[(12, 41, 41, 1), (13, 61, 41, 1)], objpos=(51, 61),
                                               scale=1.2, head=(41, 1, 61, 31))], single=[2]),
    dict(name="img5.jpg", train=0, rects=[dict(points=[(0, 6, 6, 1), (5, 16, 6, 1)], objpos=(11, 11), scale=0.3)]),
]


@pytest.fixture
def mat_root(tmp_path):
    """A data root with mpii/annotations/<official .mat> and every image."""
    write_mat(tmp_path / "mpii" / "annotations" / MAT_NAME, IMAGES)
    for im in IMAGES:
        write_jpeg(tmp_path / "mpii" / "images" / im["name"])
    return tmp_path


def json_entry(image="img1.jpg", **overrides):
    joints = [[0.0, 0.0]] * 16
    vis = [0] * 16
    for jid, x, y, *_ in PERSON_A["points"]:
        joints[jid] = [float(x), float(y)]
        vis[jid] = 1
    entry = {"image": image, "joints": joints, "joints_vis": vis, "center": list(PERSON_A["objpos"]),
             "scale": PERSON_A["scale"], "headbox": [[141, 51], [161, 71]]}
    entry.update(overrides)
    return entry


def write_json(path: Path, entries) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path


# --- official .mat --------------------------------------------------------------------------------


def test_mat_train_records(mat_root):
    ds = read_mpii(mat_root)
    assert ds.name == "mpii_train" and ds.skeleton.name == "mpii16"
    assert [r.image_id for r in ds] == ["mpii/img1", "mpii/img1", "mpii/img2", "mpii/img4"]
    a = ds[0]
    assert a.image_path == str(mat_root / "mpii" / "images" / "img1.jpg")
    # 1-based MATLAB coordinates become 0-based; joints placed by id, not by file order.
    np.testing.assert_allclose(a.joints[[0, 1, 2, 3, 4, 9]],
                               [[100, 200], [110, 180.5], [120, 160], [130, 150], [140, 170], [149, 60]])
    assert a.joints.dtype == np.float32 and a.joints.shape == (16, 2)
    expected_annotated = np.zeros(16, bool)
    expected_annotated[[0, 1, 2, 3, 4, 9]] = True
    np.testing.assert_array_equal(a.annotated, expected_annotated)
    np.testing.assert_array_equal(a.joints[~expected_annotated], 0)
    # is_visible: 1 -> True, 0 -> False, '' -> True (not recorded), '1' -> True, '0' -> False.
    np.testing.assert_array_equal(np.flatnonzero(a.visible), [0, 2, 3, 9])
    np.testing.assert_allclose(a.center, [125, 130])
    assert a.scale == pytest.approx(1.5)
    np.testing.assert_allclose(a.head_box, [140, 50, 160, 70])


def test_mat_quirks_missing_visibility_and_squeezed_structs(mat_root):
    ds = read_mpii(mat_root)
    b = ds[1]  # points without an is_visible field: annotated joints count as visible
    np.testing.assert_array_equal(np.flatnonzero(b.annotated), [6, 7, 8])
    np.testing.assert_array_equal(b.visible, b.annotated)
    np.testing.assert_allclose(b.joints[7], [300, 250])
    c = ds[2]  # single rect, single point
    np.testing.assert_array_equal(np.flatnonzero(c.annotated), [15])
    np.testing.assert_allclose(c.joints[15], [10, 20])
    np.testing.assert_allclose(c.center, [10, 20])
    np.testing.assert_allclose(c.head_box, [0, 0, 10, 10])
    d = ds[3]  # the unannotated person of img4 is skipped
    np.testing.assert_array_equal(np.flatnonzero(d.annotated), [12, 13])
    assert d.scale == pytest.approx(1.2)


def test_mat_splits_and_single_person(mat_root):
    assert len(read_mpii(mat_root, split="all_with_joints")) == 5
    assert read_mpii(mat_root, split="all_with_joints")[4].image_id == "mpii/img5"
    singles = read_mpii(mat_root, single_person=True)
    assert [(r.image_id, float(r.scale)) for r in singles] == [("mpii/img1", pytest.approx(0.8)),
                                                               ("mpii/img2", 0.5), ("mpii/img4", pytest.approx(1.2))]
    arrays = read_mpii(mat_root).arrays()
    assert arrays["joints"].shape == (4, 16, 2) and arrays["visible"].shape == (4, 16)


def test_mat_test_split_is_withheld(mat_root):
    with pytest.raises(ValueError, match="withheld"):
        read_mpii(mat_root, split="test")


def test_mat_one_based_false_keeps_file_coordinates(mat_root):
    a = read_mpii(mat_root, one_based=False)[0]
    np.testing.assert_allclose(a.joints[0], [101, 201])
    np.testing.assert_allclose(a.center, [126, 131])
    np.testing.assert_allclose(a.head_box, [141, 51, 161, 71])


def test_mat_single_image_file(tmp_path):
    # One image: annolist, img_train and single_person are all squeezed to scalars.
    ann = write_mat(tmp_path / "one" / MAT_NAME, [IMAGES[1]])
    ds = read_mpii(annotation=ann, require_images=False, single_person=True)
    assert len(ds) == 1 and ds[0].image_path == str(tmp_path / "one" / "images" / "img2.jpg")


def test_mat_missing_centre_and_scale_are_estimated(tmp_path):
    ann = write_mat(tmp_path / MAT_NAME, [dict(name="x.jpg", train=1, rects=[dict(points=[(0, 11, 11), (5, 51, 31)])])])
    r = read_mpii(annotation=ann, require_images=False)[0]
    np.testing.assert_allclose(r.center, [30, 20])
    assert r.scale == pytest.approx(40 / 200)
    assert r.head_box is None


def test_mat_wrong_joint_id(tmp_path):
    ann = write_mat(tmp_path / MAT_NAME, [dict(name="x.jpg", train=1, rects=[dict(points=[(0, 1, 1), (16, 2, 2)],
                                                                                 objpos=(1, 1), scale=1.0)])])
    message = r"annolist\(1\)\.annorect\(1\).*joint id 16, expected an integer in 0-15"
    with pytest.raises(ValueError, match=message) as e:
        read_mpii(annotation=ann, require_images=False)
    assert str(ann) in str(e.value)


def test_mat_non_integer_joint_id(tmp_path):
    rect = dict(points=[(np.nan, 1, 1)], scale=1.0)
    ann = write_mat(tmp_path / MAT_NAME, [dict(name="x.jpg", train=1, rects=[rect])])
    with pytest.raises(ValueError, match="joint id nan, expected an integer in 0-15"):
        read_mpii(annotation=ann, require_images=False)


def test_mat_too_many_points(tmp_path):
    points = [(j % 16, 1, 1) for j in range(17)]
    ann = write_mat(tmp_path / MAT_NAME, [dict(name="x.jpg", train=1, rects=[dict(points=points, scale=1.0)])])
    with pytest.raises(ValueError, match="17 annotated points, expected at most 16"):
        read_mpii(annotation=ann, require_images=False)


def test_mat_without_release(tmp_path):
    ann = tmp_path / MAT_NAME
    scipy.io.savemat(str(ann), {"joints": np.zeros((3, 14, 2))})
    with pytest.raises(ValueError, match=r"has no variable 'RELEASE' \(found \['joints'\]\)") as e:
        read_mpii(annotation=ann, require_images=False)
    assert str(ann) in str(e.value)


def test_mat_missing_image_names_the_file(mat_root):
    (mat_root / "mpii" / "images" / "img4.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="img4.jpg is missing") as e:
        read_mpii(mat_root)
    assert MAT_NAME in str(e.value)
    assert len(read_mpii(mat_root, require_images=False)) == 4


# --- JSON -----------------------------------------------------------------------------------------


def test_json_records_and_agreement_with_mat(mat_root):
    entries = [json_entry(), json_entry("img2.jpg", joints_vis=[1] * 16, headbox=None)]
    entries[1].pop("headbox")
    write_json(mat_root / "mpii" / "annotations" / "mpii_val.json", entries)
    ds = read_mpii(mat_root, split="val")
    assert ds.name == "mpii_val" and len(ds) == 2
    a, m = ds[0], read_mpii(mat_root)[0]
    # Same person, same default convention: identical joints, centre, scale and head box.
    np.testing.assert_array_equal(a.annotated, m.annotated)
    np.testing.assert_allclose(a.joints, m.joints)
    np.testing.assert_allclose(a.center, m.center)
    assert a.scale == pytest.approx(m.scale)
    np.testing.assert_allclose(a.head_box, m.head_box)
    # joints_vis is the annotated flag; JSON has no occlusion flag.
    np.testing.assert_array_equal(a.visible, a.annotated)
    assert ds[1].annotated.all() and ds[1].head_box is None
    raw = read_mpii(annotation=mat_root / "mpii" / "annotations" / "mpii_val.json", one_based=False)[0]
    np.testing.assert_allclose(raw.joints[0], [101, 201])
    np.testing.assert_allclose(raw.center, [126, 131])


def test_json_preferred_to_mat_for_train(mat_root):
    write_json(mat_root / "mpii" / "mpii_train.json", [json_entry("img2.jpg")])
    assert len(read_mpii(mat_root, split="train")) == 1  # the JSON: disjoint from val
    assert len(read_mpii(mat_root, split="all_with_joints")) == 5  # only the .mat has this split


def test_json_unannotated_and_nan_joints_are_zero(tmp_path):
    joints = [[5.0, 5.0]] * 16
    joints[3] = [float("nan"), float("nan")]
    ann = write_json(tmp_path / "mpii_train.json",
                     [json_entry("x.jpg", joints=joints, joints_vis=[1] * 8 + [0] * 8)])
    r = read_mpii(annotation=ann, require_images=False, one_based=False)[0]
    np.testing.assert_array_equal(np.flatnonzero(r.annotated), [0, 1, 2, 4, 5, 6, 7])
    np.testing.assert_array_equal(r.joints[~r.annotated], 0)


@pytest.mark.parametrize("entry, message", [
    (json_entry(joints=[[1.0, 2.0]] * 15), r"entry 1 \(img1.jpg\): 'joints' has shape \(15, 2\), expected \(16, 2\)"),
    (json_entry(joints=[[1.0, 2.0, 1.0]] * 16), r"'joints' has shape \(16, 3\), expected \(16, 2\)"),
    (json_entry(joints_vis=[1] * 14), r"'joints_vis' has shape \(14,\), expected \(16,\)"),
    ({k: v for k, v in json_entry().items() if k != "scale"}, r"entry 1: missing keys \['scale'\]"),
    (json_entry(headbox=[1, 2, 3]), r"'headbox' has shape \(3,\)"),
    (json_entry(headbox=[[1, 2], [3, "a"]]), r"'headbox' must be numeric with shape \(2, 2\)"),
    (json_entry(scale=-1.0), "scale must be a positive number"),
])
def test_json_wrong_structure(tmp_path, entry, message):
    ann = write_json(tmp_path / "mpii_train.json", [json_entry(), entry])
    with pytest.raises(ValueError, match=message) as e:
        read_mpii(annotation=ann, require_images=False)
    assert str(ann) in str(e.value)


def test_json_not_a_list(tmp_path):
    ann = write_json(tmp_path / "mpii_train.json", {"annotations": []})
    with pytest.raises(ValueError, match="expected a list of person entries, got dict"):
        read_mpii(annotation=ann)


def test_json_missing_image_names_the_file(tmp_path):
    ann = write_json(tmp_path / "mpii" / "annotations" / "mpii_train.json",
                     [json_entry("present.jpg"), json_entry("gone.jpg")])
    write_jpeg(tmp_path / "mpii" / "images" / "present.jpg")
    with pytest.raises(FileNotFoundError, match=r"MPII image .*gone\.jpg is missing"):
        read_mpii(annotation=ann)
    assert len(read_mpii(annotation=ann, require_images=False)) == 2
    other = tmp_path / "elsewhere"
    write_jpeg(other / "present.jpg")
    write_jpeg(other / "gone.jpg")
    assert read_mpii(annotation=ann, image_dir=other)[1].image_path == str(other / "gone.jpg")


# --- locating the files ---------------------------------------------------------------------------


def test_missing_dataset_folder_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="looked in: " + str(tmp_path / "mpii")):
        read_mpii(tmp_path)


def test_missing_annotation_lists_candidates(tmp_path):
    (tmp_path / "mpii").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no MPII annotation for split 'val'.*mpii_val\.json"):
        read_mpii(tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match=MAT_NAME):
        read_mpii(tmp_path / "mpii", split="train")  # the dataset folder itself is accepted too


def test_explicit_annotation_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file .*nope.json does not exist"):
        read_mpii(annotation=tmp_path / "nope.json")
    (tmp_path / "ann.csv").write_text("x")
    with pytest.raises(ValueError, match=r"unknown format '\.csv', expected \.mat or \.json"):
        read_mpii(annotation=tmp_path / "ann.csv")
    ann = write_json(tmp_path / "a.json", [json_entry()])
    with pytest.raises(ValueError, match="single_person=True needs the official .mat"):
        read_mpii(annotation=ann, single_person=True, require_images=False)
