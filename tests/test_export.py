"""Export: SavedModel / TFLite parity with Keras, builtin ops only, predictors, export_all, the CLI."""

import json
import warnings

import cv2
import keras
import numpy as np
import pytest
import scipy.io

from keras_pose import export
from keras_pose.data import PoseDataset, PoseRecord
from keras_pose.evaluation import evaluate_model, keras_predictor
from keras_pose.inference import load_predictor, saved_model_predictor, tflite_predictor
from keras_pose.models.registry import build_model
from keras_pose.skeletons import LSP14

TINY = ["cpm_tiny", "part_heatmap_tiny", "softargmax_tiny", "deeppose_tiny"]
SIZE = 64
BASE_POSE = np.array([[40, 85], [42, 68], [44, 52], [54, 52], [56, 68], [58, 85], [30, 50], [34, 38],
                      [40, 28], [58, 28], [64, 38], [68, 50], [49, 22], [49, 10]], np.float32)


def _stick_figure(rng, size=96):
    """A coloured stick figure on a dark background, and its joints (14, 2) in pixels."""
    joints = BASE_POSE * (size / 96.0) + rng.normal(0, 3 * size / 96.0, BASE_POSE.shape).astype(np.float32)
    img = np.full((size, size, 3), int(rng.integers(10, 60)), np.uint8)
    for a, b in LSP14.limb_indices:
        cv2.line(img, tuple(int(v) for v in joints[a]), tuple(int(v) for v in joints[b]), (200, 200, 200), 2)
    for j, (x, y) in enumerate(joints):
        cv2.circle(img, (int(x), int(y)), 3, tuple(int(c) for c in LSP14.joint_colors[j]), -1)
    return img, joints


def _images(n=6, size=SIZE, seed=0):
    """(n, size, size, 3) uint8 crops: stick figures with noise, structured enough to give varied keypoints."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img, _ = _stick_figure(rng, size)
        noise = rng.normal(0, 12, img.shape)
        out.append(np.clip(img + noise, 0, 255).astype(np.uint8))
    return np.stack(out)


def _dataset(folder, n=6, size=96, seed=1):
    """Stick-figure images on disk with their records (an LSP14 PoseDataset)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        img, joints = _stick_figure(rng, size)
        path = folder / f"fig{i}.png"
        cv2.imwrite(str(path), img[..., ::-1])
        records.append(PoseRecord(str(path), joints, np.ones(14, bool), np.ones(14, bool),
                                  np.array([49.0, 48.0], np.float32), 0.42, image_id=f"sticks/{i}"))
    return PoseDataset("sticks", LSP14, records)


def _tiny(name):
    """A tiny model whose keypoints depend on the image.

    Untrained soft-argmax maps are nearly flat, so every keypoint sits at the
    crop centre (+-0.02 px) and a parity test would pass trivially; scaling the
    map convolutions' kernels makes the maps peaked, like a trained model's.
    """
    model = build_model(name)
    for layer in model.layers:
        if name.startswith("softargmax") and layer.name.endswith("_maps") and hasattr(layer, "kernel"):
            layer.kernel.assign(layer.kernel * 200.0)
    return model


def _keras(model, images):
    kp, sc = keras_predictor(model)(images.astype(np.float32))
    return kp, sc


def _assert_not_trivial(kp):
    """The reference keypoints vary across images (a constant output would make parity meaningless)."""
    assert np.isfinite(kp).all()
    assert np.ptp(kp, axis=0).max() > 1.0, "keypoints are (nearly) the same for every image"


# ---------------------------------------------------------------- per family: SavedModel and TFLite float32


@pytest.fixture(scope="module", params=TINY)
def exported(request, tmp_path_factory):
    name = request.param
    model = _tiny(name)
    out = tmp_path_factory.mktemp(name)
    images = _images()
    return {"name": name, "model": model, "images": images, "keras": _keras(model, images),
            "saved_model": export.export_saved_model(model, out / "saved_model"),
            "float32": export.export_tflite(model, out / "model_float32.tflite", "float32")}


def test_saved_model_matches_keras(exported):
    kp_ref, sc_ref = exported["keras"]
    _assert_not_trivial(kp_ref)
    runner = export.SavedModelRunner(exported["saved_model"])
    assert (runner.input_size, runner.num_joints) == (SIZE, 14)
    kp, sc = runner(exported["images"])
    assert kp.shape == (len(exported["images"]), 14, 2) and sc.shape == (len(exported["images"]), 14)
    np.testing.assert_allclose(kp, kp_ref, atol=0.5)
    np.testing.assert_allclose(sc, sc_ref, atol=1e-3)


def test_saved_model_signature(exported):
    import tensorflow as tf

    fn = tf.saved_model.load(str(exported["saved_model"])).signatures["serving_default"]
    spec = fn.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, SIZE, SIZE, 3]
    assert set(fn.structured_outputs) == {"keypoints", "scores"}


def test_tflite_float32_matches_keras(exported):
    kp_ref, sc_ref = exported["keras"]
    runner = export.TFLiteRunner(exported["float32"])
    assert runner.input_dtype == np.uint8 and runner.dynamic_batch
    kp, sc = runner(exported["images"])  # one call, input resized to the batch
    np.testing.assert_allclose(kp, kp_ref, atol=0.5)
    np.testing.assert_allclose(sc, sc_ref, atol=1e-3)
    runner.dynamic_batch = False  # the per-image path gives the same
    kp1, _ = runner(exported["images"][:3])
    np.testing.assert_allclose(kp1, kp[:3], atol=1e-4)


def test_tflite_float32_uses_builtin_ops_only(exported):
    ops = export.tflite_ops(exported["float32"])
    assert "CONV_2D" in ops
    assert export.non_builtin_ops(ops) == [], ops


def test_non_builtin_ops_are_detected():
    """The op check would catch a Flex op (keras.ops.argmax on floats needs BitwiseAnd, see layer_testing)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([4], tf.float32)])
    def f(x):
        return {"y": tf.cast(keras.ops.argmax(x), tf.float32)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    assert export.non_builtin_ops(export.tflite_ops(converter.convert())) == ["FlexBitwiseAnd"]


# ---------------------------------------------------------------- quantized variants


def _check_quantized(model, out, quantization, images, kp_ref, atol=None):
    calib = _images(16, seed=7) if quantization == "full_int8" else None
    path = export.export_tflite(model, out / export.tflite_filename(quantization), quantization, calib)
    assert export.non_builtin_ops(export.tflite_ops(path)) == []
    kp, sc = export.TFLiteRunner(path)(images)
    assert kp.shape == kp_ref.shape and sc.shape == kp_ref.shape[:2]
    assert kp.dtype == np.float32 and np.isfinite(kp).all() and np.isfinite(sc).all()
    if atol is not None:
        np.testing.assert_allclose(kp, kp_ref, atol=atol)
    return path


@pytest.mark.slow  # cpm_tiny's quantized files are checked in the default suite by test_cli_export_quantized_files
@pytest.mark.parametrize("name", TINY)
def test_quantized_variants(name, tmp_path):
    keras.utils.set_random_seed(2)  # with this seed, softargmax_tiny's int8 DIV used to abort (zero denominator)
    model = _tiny(name)
    images = _images()
    kp_ref, _ = _keras(model, images)
    sizes = {}
    for q in ("float16", "dynamic_int8", "full_int8"):
        path = _check_quantized(model, tmp_path, q, images, kp_ref, atol=3.0 if q == "float16" else None)
        sizes[q] = path.stat().st_size
    f32 = export.export_tflite(model, tmp_path / "model_float32.tflite").stat().st_size
    assert sizes["float16"] < 0.7 * f32 and sizes["dynamic_int8"] < 0.45 * f32 and sizes["full_int8"] < 0.45 * f32


def test_full_int8_keeps_the_decoder_in_float():
    """The weight-free tail (here DeepPose's normalised -> pixel mapping) is not quantized.

    Quantized, the keypoints were int8 codes over the whole output range (72 px mean error on this
    untrained model, whose outputs span hundreds of pixels); in float the error is that of the int8 body.
    """
    keras.utils.set_random_seed(0)
    model = build_model("deeppose_tiny")
    f32 = export.convert_tflite(model)
    tail = export.decoder_tail_tensors(f32)
    assert tail and not any("conv" in t.lower() or "dense" in t.lower() for t in tail), tail
    images = _images()
    kp_ref, _ = _keras(model, images)
    _assert_not_trivial(kp_ref)
    runner = export.TFLiteRunner.from_bytes(export.convert_tflite(model, "full_int8", _images(16, seed=7)))
    kp, _ = runner(images)
    assert np.abs(kp - kp_ref).mean() < 10.0, np.abs(kp - kp_ref).mean()


def test_full_int8_keeps_the_output_layer_in_float():
    """Full int8 also keeps the layer that feeds the decoder in float: the last block's map convolution.

    Its int8 logits went through a spatial softmax (softargmax_scratch_lsp: full-int8 PCK 30.6 vs 47.3 in
    float32; with the layer in float, 48.0 vs 48.2 on 200 test images). Earlier blocks' map
    convolutions also feed the next block, so they stay int8.
    """
    keras.utils.set_random_seed(0)
    model = build_model("softargmax_tiny")
    f32 = export.convert_tflite(model)
    tail = set(export.decoder_tail_tensors(f32))
    head = set(export.float_head_tensors(f32))
    extra = head - tail
    assert tail < head
    blocks = model.pose_config.num_blocks
    assert blocks >= 2 and len(extra) == 1, extra
    (name,) = extra
    assert f"block{blocks}_maps" in name, name
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        q = export.convert_tflite(model, "full_int8", _images(8, seed=3))
    assert export.int8_head_tensors(q) == []


def test_localized_score_exports_with_builtins_and_stays_in_float():
    """The soft-argmax presets' localized score (weight-free, after the last map convolution) converts to
    builtin ops, matches Keras in float32 TFLite and is part of the float tail of a full-int8 file."""
    keras.utils.set_random_seed(0)
    plain = _tiny("softargmax_tiny")
    model = build_model(plain.pose_config.replace(score="localized"))
    model.set_weights(plain.get_weights())
    images = _images()
    kp_ref, sc_ref = _keras(model, images)
    _assert_not_trivial(kp_ref)
    assert sc_ref.std() > 0.01  # scores that differ across joints and images
    f32 = export.convert_tflite(model)
    assert export.non_builtin_ops(export.tflite_ops(f32)) == []
    kp, sc = export.TFLiteRunner.from_bytes(f32)(images)
    np.testing.assert_allclose(kp, kp_ref, atol=1e-3)
    np.testing.assert_allclose(sc, sc_ref, atol=1e-4)
    assert any("localized_probability" in t for t in export.decoder_tail_tensors(f32))
    q = export.TFLiteRunner.from_bytes(export.convert_tflite(model, "full_int8", _images(16, seed=7)))
    _, sc_q = q(images)
    assert np.isfinite(sc_q).all() and ((sc_q >= 0) & (sc_q <= 1)).all()


def test_full_int8_warns_when_an_output_layer_stays_int8():
    """The denylist does not keep a TRANSPOSE_CONV output layer in float (part heatmap's final x4
    upsampling): the export says so instead of silently quantizing it."""
    keras.utils.set_random_seed(0)
    model = build_model("part_heatmap_tiny")
    with pytest.warns(RuntimeWarning, match="kept these output layers in int8"):
        q = export.convert_tflite(model, "full_int8", _images(8, seed=3))
    (name,) = export.int8_head_tensors(q)
    assert "regression" in name, name

def test_full_int8_channel_reversal_keeps_the_input():
    """InputNormalization(reverse_channels=True) (CPM's RGB -> BGR) survives full-int8 quantization.

    With ops.flip the converter emitted an int8 REVERSE_V2 whose output scale differed from its input's
    while the kernel copies the codes, so every pixel reached the first convolution wrong (cpm_scratch_lsp
    lost 12 PCK points in full int8).
    """
    import tensorflow as tf

    from keras_pose.models.common import InputNormalization

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = InputNormalization(offset=128.0, scale=1 / 256, reverse_channels=True)(inp)
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(x))
    module = tf.Module()
    module.weights_ = [v.value for v in model.variables]
    module.f = tf.function(lambda im: model(tf.cast(im, tf.float32)),
                           input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.uint8)])
    data = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 3)).astype(np.uint8)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([d[None]] for d in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    interp = tf.lite.Interpreter(model_content=converter.convert())
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], data[:1])
    interp.invoke()
    out_details = interp.get_output_details()[0]
    out = interp.get_tensor(out_details["index"]).astype(np.float32)
    if out_details["dtype"] != np.float32:
        scale, zero = out_details["quantization"]
        out = (out - zero) * scale
    ref = model(data[:1].astype(np.float32)).numpy()
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max(), (np.abs(out - ref).max(), np.abs(ref).max())


def test_conversion_errors(tmp_path):
    model = build_model("deeppose_tiny")
    with pytest.raises(ValueError, match="quantization must be one of"):
        export.convert_tflite(model, "int4")
    with pytest.raises(ValueError, match="needs representative crops"):
        export.convert_tflite(model, "full_int8")
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\).*\(4, 32, 32, 3\)"):
        export.convert_tflite(model, "full_int8", np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="nothing.tflite"):
        export.TFLiteRunner(tmp_path / "nothing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(ValueError, match="junk.tflite"):
        export.TFLiteRunner(junk)
    with pytest.raises(FileNotFoundError, match="not a SavedModel"):
        export.SavedModelRunner(tmp_path)


# ---------------------------------------------------------------- the CLI, export_all, predictors


def _write_lsp_train(root, size=96):
    """A synthetic LSP folder: joints.mat for 2000 images but only the 1000 TRAINING images on disk."""
    folder = root / "lsp"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    joints = np.zeros((3, 14, 2000))
    for i in range(2000):
        img, xy = _stick_figure(rng, size)
        joints[:2, :, i] = xy.T
        if i < 1000:
            cv2.imwrite(str(folder / "images" / f"im{i + 1:04d}.jpg"), img[..., ::-1])
    scipy.io.savemat(folder / "joints.mat", {"joints": joints})
    return root


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory):
    """``keras-pose export`` of a cpm_tiny preset, calibrated on synthetic LSP training images."""
    from keras_pose import cli, zoo

    tmp = tmp_path_factory.mktemp("cli_export")
    model = build_model("cpm_tiny")
    zoo.save_preset(model, tmp / "preset", "cpm_tiny_test", "tiny test preset")
    (tmp / "preset" / "train.json").write_text(json.dumps({"model": "cpm_tiny", "pipeline": {"padding": 1.3}}))
    data = _write_lsp_train(tmp / "data")
    code = cli.main(["export", "--model", str(tmp / "preset"), "--out", str(tmp / "out"), "--data", str(data),
                     "--calibration", "20"])
    assert code == 0
    return {"model": model, "out": tmp / "out", "data": data, "tmp": tmp}


def test_cli_export_writes_every_file(cli_export):
    out = cli_export["out"]
    for name in ["saved_model/saved_model.pb"] + [export.tflite_filename(q) for q in export.QUANTIZATIONS]:
        assert (out / name).is_file(), name
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["input_size"] == SIZE and manifest["num_joints"] == 14 and manifest["skeleton"] == "lsp14"
    assert manifest["padding"] == pytest.approx(1.3)  # from the preset's train.json
    assert manifest["name"] == "cpm_tiny_test" and manifest["source"]["kind"] == "preset_folder"
    assert manifest["source"]["path"].endswith("preset") and manifest["model_config"]["family"] == "cpm"
    assert manifest["calibration_crops"] == 20 and "lsp_train" in manifest["calibration"]
    assert manifest["signature"]["inputs"]["images"]["dtype"] == "uint8"
    for key in ("saved_model", "float32", "float16", "dynamic_int8", "full_int8"):
        f = manifest["files"][key]
        assert f["bytes"] > 10_000
    assert manifest["files"]["float32"]["max_keypoint_diff_px"] <= 0.5
    assert manifest["files"]["saved_model"]["max_keypoint_diff_px"] <= 0.5
    for q in export.QUANTIZATIONS:
        assert export.non_builtin_ops(export.tflite_ops(out / export.tflite_filename(q))) == []


def test_representative_crops_spread_over_training_split(cli_export):
    from keras_pose.data import read_lsp

    train = read_lsp(cli_export["data"], "train")
    crops = export.representative_crops(train, SIZE, n=5)
    assert crops.shape == (5, SIZE, SIZE, 3) and crops.dtype == np.uint8
    assert crops.std() > 10  # real image content, not blank
    assert export.representative_crops(train[:3], SIZE, n=10).shape[0] == 3
    with pytest.raises(ValueError, match="empty"):
        export.representative_crops(train[:0], SIZE)


@pytest.mark.parametrize("file", ["model_float32.tflite", "saved_model"])
def test_load_predictor_evaluates_like_keras(cli_export, file, tmp_path):
    model, out = cli_export["model"], cli_export["out"]
    predictor = load_predictor(out / file)
    assert predictor.input_size == SIZE and predictor.skeleton is LSP14
    direct = tflite_predictor if file.endswith(".tflite") else saved_model_predictor
    assert direct(out / file).padding == pytest.approx(1.3)  # from export.json when padding is not given
    assert predictor.name.startswith("cpm_tiny_test (")  # the preset's name, from export.json
    dataset = _dataset(tmp_path / "imgs")
    got = evaluate_model(predictor.predict, dataset, padding=1.25, input_size=predictor.input_size)
    ref = evaluate_model(model, dataset, padding=1.25)
    assert got["keypoints"].shape == (len(dataset), 14, 2)
    # 0.5 input px; the crop is ~1.6x the input here
    np.testing.assert_allclose(got["keypoints"], ref["keypoints"], atol=1.0)
    assert got["pck"] == pytest.approx(ref["pck"], abs=100.0 / (14 * len(dataset)) + 1e-6)
    # the image-level predictor (flip + scales) works too
    result = predictor(cv2.imread(dataset[0].image_path)[..., ::-1], box=(20, 5, 80, 90), flip=True, scales=(0.9, 1.1))
    assert result.keypoints.shape == (14, 2) and np.isfinite(result.keypoints).all()


def test_cli_export_quantized_files(cli_export):
    images = _images()
    kp_ref, _ = _keras(cli_export["model"], images)
    _assert_not_trivial(kp_ref)
    size = {q: (cli_export["out"] / export.tflite_filename(q)).stat().st_size for q in export.QUANTIZATIONS}
    assert size["float16"] < 0.7 * size["float32"]
    assert size["dynamic_int8"] < 0.45 * size["float32"] and size["full_int8"] < 0.45 * size["float32"]
    for q in ("float16", "dynamic_int8", "full_int8"):
        predictor = tflite_predictor(cli_export["out"] / export.tflite_filename(q), padding=1.25, num_threads=1)
        assert predictor.padding == 1.25  # an explicit padding wins over export.json
        kp, sc = predictor.predict(images.astype(np.float32))
        assert kp.shape == (len(images), 14, 2) and sc.shape == (len(images), 14)
        assert kp.dtype == np.float32 and np.isfinite(kp).all() and np.isfinite(sc).all()
        if q == "float16":
            np.testing.assert_allclose(kp, kp_ref, atol=3.0)


def test_cli_export_without_int8_needs_no_data(tmp_path, monkeypatch):
    from keras_pose import cli, zoo

    monkeypatch.setenv("KERAS_POSE_DATA", str(tmp_path / "no_data_here"))
    zoo.save_preset(build_model("deeppose_tiny"), tmp_path / "preset", "dp", "tiny")
    assert cli.main(["export", "--model", str(tmp_path / "preset"), "--out", str(tmp_path / "out"), "--no-int8"]) == 0
    assert not (tmp_path / "out" / "model_full_int8.tflite").exists()
    assert (tmp_path / "out" / "model_dynamic_int8.tflite").is_file()
    manifest = json.loads((tmp_path / "out" / "export.json").read_text())
    assert "full_int8" not in manifest["files"] and manifest["calibration"] is None
    # asking for int8 without data is a clear error (exit 2), not a crash
    assert cli.main(["export", "--model", str(tmp_path / "preset"), "--out", str(tmp_path / "out2"),
                     "--data", str(tmp_path / "no_data_here")]) == 2


# ---------------------------------------------------------------- trained presets on real data


@pytest.mark.slow
@pytest.mark.data
def test_zoo_presets_keep_accuracy_after_export(data_root, lsp_train, lsp_test, tmp_path):
    from keras_pose import zoo

    names = sorted(zoo.presets())
    if not names:
        pytest.skip(f"no zoo presets in {zoo.zoo_dir()}")
    test = lsp_test[:100]
    report = {}
    for name in names:
        model = zoo.load(name, cascade=True)
        s, padding = export.model_input_size(model), export.training_padding(name)
        crops = export.representative_crops(lsp_train, s, n=100, padding=padding)
        f32 = export.export_tflite(model, tmp_path / name / "model_float32.tflite", "float32")
        i8 = export.export_tflite(model, tmp_path / name / "model_full_int8.tflite", "full_int8", crops)
        pck = {"keras": evaluate_model(model, test, padding=padding)["pck"]}
        for key, path in (("float32", f32), ("full_int8", i8)):
            pck[key] = evaluate_model(export.TFLiteRunner(path), test, padding=padding, input_size=s)["pck"]
        report[name] = pck
    for name, pck in report.items():
        assert abs(pck["float32"] - pck["keras"]) <= 1.0, (name, report)
        assert abs(pck["full_int8"] - pck["float32"]) <= 2.0, (name, report)
