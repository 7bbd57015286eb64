"""Skeletons, readers, image checks and the tf.data pipeline."""

import json

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from keras_pose.data import (PipelineConfig, PoseDataset, PoseRecord, TrainPipeline, eval_dataset, read_image,
                             read_lsp, read_lspet, to_rgb, to_source_coordinates, verify_images)
from keras_pose.data.paths import find_dataset_dir
from keras_pose.data.pipeline import AugmentConfig, augment_batch, decode_image_file
from keras_pose.data.transforms import affine_matrix, invert_affine, transform_points, warp_images
from keras_pose.skeletons import LSP14, MPII16, get_skeleton

# ---------------------------------------------------------------- skeletons


@pytest.mark.parametrize("skel", [LSP14, MPII16])
def test_flip_permutation_is_derived_involution(skel):
    perm = skel.flip_permutation
    assert sorted(perm) == list(range(skel.num_joints))
    assert all(perm[perm[i]] == i for i in range(skel.num_joints))
    for i, name in enumerate(skel.joint_names):
        other = skel.joint_names[perm[i]]
        if name.startswith("l_"):
            assert other == "r_" + name[2:]
        elif name.startswith("r_"):
            assert other == "l_" + name[2:]
        else:
            assert other == name


def test_lsp_skeleton_layout():
    assert LSP14.flip_permutation == (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13)
    assert LSP14.torso_indices == (9, 2)
    assert len(LSP14.limb_colors) == len(LSP14.limbs)
    assert get_skeleton("mpii16") is MPII16
    with pytest.raises(KeyError, match="known skeletons"):
        get_skeleton("coco17")


# ---------------------------------------------------------------- readers on the real data


@pytest.mark.data
def test_lsp_reader_real(lsp_train, lsp_test, data_root):
    assert len(lsp_train) == 1000 and len(lsp_test) == 1000
    everything = read_lsp(data_root, "all")
    assert len(everything) == 2000
    a = everything.arrays()
    assert a["joints"].shape == (2000, 14, 2)
    assert a["annotated"].all()  # occluded LSP joints are still annotated
    occluded = 1.0 - a["visible"].mean()
    assert 0.06 < occluded < 0.08, occluded  # "about 7%"
    assert lsp_test[0].image_path.endswith("im1001.jpg")
    # the person box covers every joint
    r = lsp_train[0]
    assert np.all(np.abs(r.joints - r.center) <= 100 * r.scale + 1e-3)


@pytest.mark.data
def test_lspet_reader_real(data_root):
    ds = read_lspet(data_root)
    n_images = len(list((data_root / "lspet" / "images").glob("im*.jpg")))
    assert len(ds) == n_images
    assert ds.name == f"lspet_{n_images}of10000"
    a = ds.arrays()
    share = a["annotated"].mean()
    assert 0.85 < share < 0.91, share  # ~12% not annotated
    assert np.array_equal(a["visible"], a["annotated"])
    # not-annotated joints lie outside the image in this dataset
    r = next(r for r in ds.records if not r.annotated.all())
    h, w = read_image(r.image_path).shape[:2]
    bad = r.joints[~r.annotated]
    assert np.all((bad[:, 0] < 0) | (bad[:, 1] < 0) | (bad[:, 0] >= w) | (bad[:, 1] >= h))


# ---------------------------------------------------------------- readers on synthetic data


def _write_lsp(tmp_path, n=2000, shape=None, images=True):
    folder = tmp_path / "lsp"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    joints = np.zeros((3, 14, n))
    joints[:2] = rng.uniform(10, 90, (2, 14, n))
    joints[2] = rng.uniform(size=(14, n)) < 0.1
    if shape is not None:
        joints = np.zeros(shape)
    scipy.io.savemat(folder / "joints.mat", {"joints": joints})
    if images:
        img = np.full((100, 100, 3), 127, np.uint8)
        for i in range(n):
            cv2.imwrite(str(folder / "images" / f"im{i + 1:04d}.jpg"), img)
    return folder, joints


def test_lsp_reader_synthetic_flags(tmp_path):
    folder, joints = _write_lsp(tmp_path)
    ds = read_lsp(tmp_path, "test")
    assert len(ds) == 1000
    r = ds[0]
    np.testing.assert_allclose(r.joints, joints[:2, :, 1000].T, atol=1e-4)
    np.testing.assert_array_equal(r.visible, joints[2, :, 1000] == 0)
    assert read_lsp(folder, "train")[0].image_path.endswith("im0001.jpg")  # the folder itself works too


def test_lsp_reader_wrong_shape_names_file(tmp_path):
    _write_lsp(tmp_path, shape=(14, 3, 2000), images=False)
    with pytest.raises(ValueError, match=r"joints\.mat.*shape \(14, 3, 2000\), expected \(3x14xN\)"):
        read_lsp(tmp_path)


def test_lsp_reader_missing_image_names_file(tmp_path):
    folder, _ = _write_lsp(tmp_path)
    (folder / "images" / "im0007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="im0007.jpg"):
        read_lsp(tmp_path, "train")


def test_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "lsp")):
        find_dataset_dir("lsp", tmp_path)
    with pytest.raises(FileNotFoundError, match="looked in"):
        read_lspet(tmp_path / "nowhere")


def test_lspet_reads_only_present_images(tmp_path):
    folder = tmp_path / "lspet"
    (folder / "images").mkdir(parents=True)
    joints = np.zeros((14, 3, 10))
    joints[:, :2] = np.random.default_rng(1).uniform(5, 50, (14, 2, 10))
    joints[:, 2] = 1
    joints[0, 2, 3] = 0
    scipy.io.savemat(folder / "joints.mat", {"joints": joints})
    for i in (1, 4, 9):
        cv2.imwrite(str(folder / "images" / f"im{i:05d}.jpg"), np.zeros((60, 60, 3), np.uint8))
    ds = read_lspet(tmp_path)
    assert [r.image_id for r in ds] == ["lspet/00001", "lspet/00004", "lspet/00009"]
    assert not ds[1].annotated[0] and ds[1].annotated[1:].all()


# ---------------------------------------------------------------- images


def test_corrupt_and_empty_images_name_the_file(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((5, 7, 3), np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert read_image(good).shape == (5, 7, 3)
    with pytest.raises(ValueError, match="bad.jpg"):
        read_image(bad)
    with pytest.raises(ValueError, match="empty.jpg.*empty"):
        read_image(empty)
    with pytest.raises(ValueError, match="2 of 3 images cannot be read.*bad.jpg"):
        verify_images([good, bad, empty])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(tf.errors.InvalidArgumentError, match="notes.txt"):
        decode_image_file(str(text))


def test_to_rgb_handles_channel_layouts():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    assert to_rgb(bgr, "bgr")[0, 0].tolist() == [0, 0, 255]
    assert to_rgb(np.full((2, 2), 9, np.uint8)).shape == (2, 2, 3)
    rgba = np.dstack([np.full((2, 2, 3), 200, np.uint8), np.array([[255, 0], [0, 0]], np.uint8)])
    assert to_rgb(rgba)[0, 0].tolist() == [200, 200, 200] and to_rgb(rgba)[0, 1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="shape"):
        to_rgb(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        to_rgb(np.zeros((4, 4, 2), np.uint8))


# ---------------------------------------------------------------- transforms and augmentation


def _dot_image(h, w, x, y, sigma=1.5):
    """A small Gaussian blob (survives minification, centroid exactly at (x, y))."""
    yy, xx = np.mgrid[:h, :w]
    blob = 255.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat(blob[None, ..., None], 3, axis=3).astype(np.float32)


def _centroid(img):
    w = img / img.sum()
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()])


@pytest.mark.parametrize("rot,zoom,flip", [(0.0, 1.0, False), (33.0, 1.3, False), (-40.0, 0.7, True)])
def test_warp_keeps_pixel_joint_correspondence(rot, zoom, flip):
    img = _dot_image(120, 160, 97, 41)
    m = affine_matrix([[80.0, 60.0]], [130.0], 96, [rot], [zoom], [flip], [[2.0, -3.0]])
    out = warp_images(img, m, 96).numpy()[0, ..., 0]
    expected = transform_points([[[97.0, 41.0]]], m).numpy()[0, 0]
    assert np.linalg.norm(_centroid(out) - expected) < 1.0
    back = transform_points(transform_points([[[97.0, 41.0]]], m), invert_affine(m)).numpy()
    np.testing.assert_allclose(back[0, 0], [97.0, 41.0], atol=1e-3)


def _synthetic_dataset(tmp_path, n=4, size=(90, 70)):
    """Images with one bright dot per joint; returns a PoseDataset."""
    rng = np.random.default_rng(3)
    records = []
    for i in range(n):
        joints = rng.uniform(15, 55, (14, 2)).astype(np.float32)
        img = np.zeros(size + (3,), np.uint8)
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), img)
        records.append(PoseRecord(str(p), joints, np.ones(14, bool), np.ones(14, bool),
                                  np.array([35.0, 45.0], np.float32), 0.3))
    return PoseDataset("synthetic", LSP14, records)


def test_augment_batch_moves_dot_with_joint_and_flips_labels():
    """Paint a dot at one joint, augment, and find the dot at the transformed joint."""
    c = 80
    canvas = np.repeat(_dot_image(c, c, 30, 50), 8, axis=0)
    joints = np.full((8, 14, 2), 40.0, np.float32)
    joints[:, 0] = [30.0, 50.0]  # right ankle at (30, 50), where the dot is
    batch = {"image": canvas, "joints": joints, "visible": np.ones((8, 14), bool), "annotated": np.ones((8, 14), bool)}
    aug = AugmentConfig(brightness=0, contrast=0, saturation=0, flip=0.5)
    cfg = PipelineConfig(input_size=64, canvas_factor=1.25, augment=aug)
    out = augment_batch(batch, tf.constant([1, 2]), cfg, LSP14.flip_permutation)
    images, kp = out["images"].numpy(), out["joints"].numpy()
    flipped = 0
    for b in range(8):
        # the dot is wherever joint slot 0 (not flipped) or slot 5 (flipped: r_ankle became l_ankle) went
        found = _centroid(images[b, ..., 0])
        dists = [np.linalg.norm(found - kp[b, j]) for j in (0, 5)]
        assert min(dists) < 1.0, (b, dists)
        flipped += int(dists[1] < dists[0])
    assert 0 < flipped < 8  # both cases exercised with this seed
    # the same seed gives the same augmentation
    again = augment_batch(batch, tf.constant([1, 2]), cfg, LSP14.flip_permutation)
    np.testing.assert_array_equal(again["joints"].numpy(), kp)


def test_joints_pushed_outside_become_not_visible():
    c = 80
    joints = np.full((1, 14, 2), 40.0, np.float32)
    joints[0, 3] = [-50.0, 40.0]
    batch = {"image": np.zeros((1, c, c, 3), np.float32), "joints": joints,
             "visible": np.ones((1, 14), bool), "annotated": np.ones((1, 14), bool)}
    out = augment_batch(batch, tf.constant([0, 0]), PipelineConfig(input_size=64, augment=None), LSP14.flip_permutation)
    assert not out["visible"].numpy()[0, 3] and not out["in_crop"].numpy()[0, 3]
    assert out["annotated"].numpy()[0, 3] and out["visible"].numpy()[0, :3].all()


def _spread_joints(b, c):
    """(b, 14, 2) joints spread over a c x c canvas: a person filling most of it."""
    rng = np.random.default_rng(0)
    return rng.uniform(0.15 * c, 0.85 * c, (b, 14, 2)).astype(np.float32)


def test_part_crops_centre_on_an_annotated_joint_and_zoom_in():
    b, c, s = 64, 80, 64
    joints = _spread_joints(b, c)
    annotated = np.ones((b, 14), bool)
    annotated[:, 7:] = False  # only joints 0-6 may be chosen
    aug = AugmentConfig(rotation=0, zoom=(1.0, 1.0), shift=0, flip=0, brightness=0, contrast=0, saturation=0,
                        part_crop=0.5, part_zoom=(2.0, 3.0))
    batch = {"image": np.zeros((b, c, c, 3), np.float32), "joints": joints,
             "visible": annotated.copy(), "annotated": annotated}
    cfg = PipelineConfig(input_size=s, canvas_factor=1.25, augment=aug)
    out = augment_batch(batch, tf.constant([3, 4]), cfg, LSP14.flip_permutation)
    kp = out["joints"].numpy()
    centre = s / 2 - 0.5
    person_scale = s / (c / 1.25)
    part = 0
    for i in range(b):
        at_centre = np.linalg.norm(kp[i] - centre, axis=-1) < 1e-3
        if at_centre[:7].any():  # a part crop: an annotated joint sits at the crop centre
            part += 1
            j = int(np.flatnonzero(at_centre)[0])
            # magnified 2-3x about that joint, relative to the person crop
            scale = np.linalg.norm(kp[i, (j + 1) % 7] - kp[i, j]) / np.linalg.norm(joints[i, (j + 1) % 7] - joints[i, j])
            assert 2.0 * person_scale - 1e-3 <= scale <= 3.0 * person_scale + 1e-3, (i, scale)
        else:  # a person crop, as without part crops
            np.testing.assert_allclose(kp[i], (joints[i] - (c / 2 - 0.5)) * person_scale + centre, atol=1e-3)
        assert not at_centre[7:].any()  # never a joint that is not annotated
    assert 16 < part < 48  # about half of the 64 crops
    # zoomed in about a joint, some joints leave the crop and are annotated but not in it
    in_crop, ann = out["in_crop"].numpy(), out["annotated"].numpy()
    assert (ann & ~in_crop).any()
    np.testing.assert_array_equal(in_crop, ann & (kp >= -0.5).all(-1) & (kp <= s - 0.5).all(-1))


def test_part_crop_zero_leaves_the_augmentation_unchanged():
    b, c = 8, 80
    batch = {"image": np.zeros((b, c, c, 3), np.float32), "joints": _spread_joints(b, c),
             "visible": np.ones((b, 14), bool), "annotated": np.ones((b, 14), bool)}
    plain = PipelineConfig(input_size=64, augment=AugmentConfig())
    off = PipelineConfig(input_size=64, augment=AugmentConfig(part_crop=0.0, part_zoom=(1.2, 1.5)))
    a = augment_batch(batch, tf.constant([1, 9]), plain, LSP14.flip_permutation)["joints"].numpy()
    z = augment_batch(batch, tf.constant([1, 9]), off, LSP14.flip_permutation)["joints"].numpy()
    np.testing.assert_array_equal(a, z)
    # the person-crop draws do not depend on part_crop: the crops left as person crops are unchanged
    on = PipelineConfig(input_size=64, augment=AugmentConfig(part_crop=0.5))
    o = augment_batch(batch, tf.constant([1, 9]), on, LSP14.flip_permutation)["joints"].numpy()
    same = np.all(np.isclose(a, o), axis=(1, 2))
    assert same.any() and not same.all()


def test_frame_cuts_blank_beyond_an_edge_and_take_the_joints_there_out_of_the_crop():
    b, c, s = 64, 80, 64
    joints = _spread_joints(b, c)
    annotated = np.ones((b, 14), bool)
    annotated[:, 13] = False
    aug = AugmentConfig(rotation=0, zoom=(1.0, 1.0), shift=0, flip=0, brightness=0, contrast=0, saturation=0,
                        frame_cut=0.5, frame_cut_at=(0.3, 0.6), frame_cut_bottom=0.5)
    batch = {"image": np.full((b, c, c, 3), 200.0, np.float32), "joints": joints,
             "visible": annotated.copy(), "annotated": annotated}
    cfg = PipelineConfig(input_size=s, canvas_factor=1.25, augment=aug)
    out = augment_batch(batch, tf.constant([5, 6]), cfg, LSP14.flip_permutation)
    images, kp = out["images"].numpy(), out["joints"].numpy()
    in_crop, ann = out["in_crop"].numpy(), out["annotated"].numpy()
    inside = (kp >= -0.5).all(-1) & (kp <= s - 0.5).all(-1)
    # the person crop is as without cuts (the canvas fills the crop: every pixel 200, every joint inside)
    np.testing.assert_allclose(kp, (joints - (c / 2 - 0.5)) * (s / (c / 1.25)) + s / 2 - 0.5, atol=1e-3)
    assert inside.all()
    sides = []
    for i in range(b):
        blank = images[i, ..., 0] == 0
        if not blank.any():
            np.testing.assert_array_equal(images[i], 200.0)
            np.testing.assert_array_equal(in_crop[i], ann[i])
            continue
        assert set(np.unique(images[i])) <= {0.0, 200.0}
        rows, cols = blank.all(1), blank.all(0)
        if rows.any():  # a horizontal cut: the bottom or the top rows are blank
            axis, far = 1, bool(rows[-1])
            line = np.flatnonzero(~rows).max() if far else np.flatnonzero(~rows).min()
        else:
            axis, far = 0, bool(cols[-1])
            line = np.flatnonzero(~cols).max() if far else np.flatnonzero(~cols).min()
        side = {(1, True): "bottom", (1, False): "top", (0, True): "right", (0, False): "left"}[axis, far]
        sides.append(side)
        pixel = np.broadcast_to(np.arange(s)[:, None] if axis else np.arange(s)[None, :], (s, s))
        np.testing.assert_array_equal(blank, pixel > line if far else pixel < line)
        v = kp[i, :, axis]
        beyond = v > line + 0.5 if far else v < line - 0.5
        assert not in_crop[i][beyond].any() and not out["visible"].numpy()[i][beyond].any()
        within = v < line - 0.5 if far else v > line + 0.5
        np.testing.assert_array_equal(in_crop[i][within], ann[i][within])
        # the line crosses the in-crop joints' extent at 30-60% from the kept side
        ext = kp[i, ann[i], axis]
        frac = (line - ext.min()) / np.ptp(ext) if far else (ext.max() - line) / np.ptp(ext)
        assert 0.3 - 2 / np.ptp(ext) <= frac <= 0.6 + 2 / np.ptp(ext), (i, side, frac)
    assert 16 < len(sides) < 48
    assert 0 < sides.count("bottom") < len(sides)  # half the cuts at the bottom, the rest on the other sides


def test_frame_cut_zero_leaves_the_augmentation_unchanged():
    b, c = 8, 80
    batch = {"image": np.full((b, c, c, 3), 100.0, np.float32), "joints": _spread_joints(b, c),
             "visible": np.ones((b, 14), bool), "annotated": np.ones((b, 14), bool)}
    still = dict(zoom=(1.1, 1.3), brightness=0, contrast=0, saturation=0)  # crops inside the canvas, no jitter
    plain = augment_batch(batch, tf.constant([2, 3]), PipelineConfig(input_size=64, augment=AugmentConfig(**still)),
                          LSP14.flip_permutation)
    cut = augment_batch(batch, tf.constant([2, 3]),
                        PipelineConfig(input_size=64, augment=AugmentConfig(frame_cut=1.0, **still)),
                        LSP14.flip_permutation)
    np.testing.assert_array_equal(plain["joints"].numpy(), cut["joints"].numpy())  # same geometry, own seeds
    assert not (plain["images"].numpy() == 0).any()
    assert (cut["images"].numpy() == 0).all(-1).any(axis=(1, 2)).all()  # every crop cut
    assert (cut["in_crop"].numpy() <= plain["in_crop"].numpy()).all() and (cut["in_crop"].numpy() < plain["in_crop"].numpy()).any()


@pytest.mark.parametrize("kwargs, word", [({"part_crop": 1.5}, "part_crop"), ({"part_crop": -0.1}, "part_crop"),
                                          ({"part_zoom": (3.0, 1.6)}, "part_zoom"), ({"zoom": (0.0, 1.0)}, "zoom"),
                                          ({"part_zoom": (2.0,)}, "part_zoom"), ({"frame_cut": 2.0}, "frame_cut"),
                                          ({"frame_cut_at": (0.5, 1.0)}, "frame_cut_at"),
                                          ({"frame_cut_bottom": 1.5}, "frame_cut_bottom")])
def test_augment_config_rejects_bad_ranges(kwargs, word):
    with pytest.raises(ValueError, match=word):
        AugmentConfig(**kwargs)


def test_augment_config_round_trips_part_crop():
    aug = AugmentConfig(part_crop=0.3, part_zoom=(1.5, 2.5))
    assert AugmentConfig.from_dict(aug.to_dict()) == aug
    assert AugmentConfig.from_dict({"part_zoom": [1.5, 2.5], "part_crop": 0.3}) == aug
    cut = AugmentConfig(frame_cut=0.2, frame_cut_at=(0.2, 0.5), frame_cut_bottom=0.8)
    assert AugmentConfig.from_dict(json.loads(json.dumps(cut.to_dict()))) == cut


def test_train_pipeline_is_repeatable_and_resumable(tmp_path):
    ds = _synthetic_dataset(tmp_path, n=6)
    tp = TrainPipeline(ds, PipelineConfig(input_size=32), batch_size=2, seed=5)
    assert tp.steps_per_epoch == 3
    e1 = list(tp.epoch(1))
    again = list(TrainPipeline(ds, PipelineConfig(input_size=32), batch_size=2, seed=5).epoch(1, skip=1))
    assert [int(b["step"]) for b in e1] == [3, 4, 5]
    np.testing.assert_array_equal(e1[1]["joints"].numpy(), again[0]["joints"].numpy())
    np.testing.assert_array_equal(e1[2]["images"].numpy(), again[1]["images"].numpy())
    step_mode = TrainPipeline(ds, PipelineConfig(input_size=32, augment_in="step"), batch_size=2, seed=5)
    raw = next(iter(step_mode.epoch(1)))
    np.testing.assert_allclose(step_mode.augment(raw, raw["step"])["joints"].numpy(), e1[0]["joints"].numpy(), atol=1e-4)


def test_eval_pipeline_maps_back_exactly(tmp_path):
    ds = _synthetic_dataset(tmp_path, n=3)
    batch = next(iter(eval_dataset(ds, input_size=48, batch_size=3)))
    assert batch["images"].shape == (3, 48, 48, 3)
    in_crop = transform_points(batch["joints"], batch["matrix"])
    back = to_source_coordinates(in_crop, batch["matrix"]).numpy()
    np.testing.assert_allclose(back, batch["joints"].numpy(), atol=1e-3)
    # the person centre lands in the middle of the crop
    centre = transform_points(np.array([[[35.0, 45.0]]] * 3, np.float32), batch["matrix"]).numpy()
    np.testing.assert_allclose(centre[:, 0], 23.5, atol=1e-4)


@pytest.mark.data
def test_pipeline_on_real_lsp_keeps_joints_on_dots(lsp_train):
    """Real images through the full training pipeline: joints stay in the crop's frame."""
    ds = lsp_train[:16]
    tp = TrainPipeline(ds, PipelineConfig(input_size=64, augment=AugmentConfig(flip=0.0)), batch_size=16)
    b = next(iter(tp.epoch(0)))
    assert b["images"].shape == (16, 64, 64, 3)
    assert float(tf.reduce_max(b["images"])) <= 255.0
    vis_share = float(tf.reduce_mean(tf.cast(b["visible"], tf.float32)))
    assert vis_share > 0.7


def test_fused_color_jitter_equals_sequential_definition():
    """brightness, then contrast about the mean, then saturation about the grey level."""
    from keras_pose.data.pipeline import color_jitter

    rng = np.random.default_rng(0)
    x = rng.uniform(60, 190, (3, 8, 8, 3)).astype(np.float32)
    aug = AugmentConfig(brightness=0.2, contrast=0.2, saturation=0.2)
    seeds = [tf.constant([1, i]) for i in range(3)]
    got = color_jitter(tf.constant(x), seeds, aug).numpy()
    f = [tf.random.stateless_uniform([3], s, 0.8, 1.2).numpy().reshape(-1, 1, 1, 1) for s in seeds]
    y = x * f[0]
    y = (y - y.mean(axis=(1, 2, 3), keepdims=True)) * f[1] + y.mean(axis=(1, 2, 3), keepdims=True)
    g = y.mean(axis=3, keepdims=True)
    y = np.clip((y - g) * f[2] + g, 0, 255)
    np.testing.assert_allclose(got, y, atol=1e-3)
