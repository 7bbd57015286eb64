"""Export a keras_pose model to a SavedModel and to TFLite, and run the exported files.

Every exported file has the same interface, with preprocessing and decoding
inside:

- input ``images``: uint8 (B, S, S, 3) RGB person crops at the model's input
  size S (B is dynamic);
- outputs ``keypoints``: float32 (B, K, 2) (x, y) in input-crop pixels, and
  ``scores``: float32 (B, K).

Files written by :func:`export_all` (see ``docs/export.md``):

- ``saved_model/``: TensorFlow SavedModel, signature ``serving_default``;
- ``model_float32.tflite``: TFLite, float32 weights and activations;
- ``model_float16.tflite``: float16 weights (dequantised at load on CPU);
- ``model_dynamic_int8.tflite``: dynamic-range quantisation (int8 weights,
  activations quantised on the fly); needs no calibration data;
- ``model_full_int8.tflite``: full-integer quantisation (int8 weights and
  activations, calibrated on LSP *training* crops); uint8 image input as the
  others and float32 outputs (only written when calibration crops are given);
- ``export.json``: input size, skeleton, crop padding, file sizes, source,
  and the measured agreement of every file with Keras.

Only builtin TFLite ops are used (``TFLITE_BUILTINS``, plus
``TFLITE_BUILTINS_INT8`` for the full-integer model): no ``SELECT_TF_OPS``,
so the files run on any LiteRT runtime without the Flex delegate.

Example:
    >>> from keras_pose import export, zoo
    >>> model = zoo.load("cpm_scratch_lsp")                                   # doctest: +SKIP
    >>> crops = export.representative_crops(read_lsp(None, "train"), 128)     # doctest: +SKIP
    >>> export.export_all(model, "exported/cpm_scratch_lsp", representative=crops)  # doctest: +SKIP
    >>> from keras_pose.inference import tflite_predictor                      # predictors live there
    >>> pose = tflite_predictor("exported/cpm_scratch_lsp/model_full_int8.tflite")  # doctest: +SKIP
    >>> pose("photo.jpg").keypoints                                           # doctest: +SKIP

Gotcha (see ``tests/layer_testing.py``): Keras 3 variables are not
trackables, so a ``tf.function`` closing over a Keras model is saved or
converted with UNINITIALISED weights unless its ``tf.Variable`` values are
tracked by the exported ``tf.Module``; :class:`ServingModule` does that.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from keras_pose.skeletons import skeleton_for

#: The TFLite variants, in the order they are written.
QUANTIZATIONS = ("float32", "float16", "dynamic_int8", "full_int8")
SIGNATURE_KEY = "serving_default"
SAVED_MODEL_DIR = "saved_model"
EXPORT_JSON = "export.json"
FORMAT_VERSION = 1
DEFAULT_PADDING = 1.25

#: Largest acceptable |exported - Keras| keypoint difference (input pixels) of the float32 files on the
#: probe crops; a larger one means a broken export (e.g. uninitialised weights) and triggers a warning.
FLOAT32_TOLERANCE_PX = 0.5


def tflite_filename(quantization: str) -> str:
    """``model_<quantization>.tflite``."""
    _check_quantization(quantization)
    return f"model_{quantization}.tflite"


def _check_quantization(quantization):
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")


# ---------------------------------------------------------------------------
# The serving function
# ---------------------------------------------------------------------------


def model_input_size(model) -> int:
    """S, the side of the model's square ``images`` input."""
    from keras_pose.evaluation import model_input_size as size

    return size(model)


def model_num_joints(model) -> int:
    """K, from the model's ``keypoints`` output (B, K, 2)."""
    shape = model.output_shape
    if isinstance(shape, dict) and "keypoints" in shape:
        return int(shape["keypoints"][1])
    names = list(getattr(model, "output_names", []) or [])
    if "keypoints" in names:
        return int(model.outputs[names.index("keypoints")].shape[1])
    raise ValueError(f"model {model.name!r} has no 'keypoints' output (outputs: {names}); "
                     "keras_pose models output a dict with 'keypoints' (B, K, 2) and 'scores' (B, K)")


class ServingModule(tf.Module):
    """A ``tf.Module`` holding a model's variables and its serving function.

    ``serve(images)``: uint8 (B, S, S, 3) RGB crops -> ``{"keypoints": (B, K, 2),
    "scores": (B, K)}`` float32; the cast to float32 [0, 255] is the only
    preprocessing (normalisation is inside every keras_pose model) and the
    model's own decoder gives the keypoints.

    Args:
        model: a keras_pose model (input ``"images"``, dict outputs with
            ``"keypoints"`` and ``"scores"``).
    """

    def __init__(self, model):
        super().__init__(name="keras_pose_serving")
        self.input_size = model_input_size(model)
        self.num_joints = model_num_joints(model)
        # Keras 3 variables are not trackables: track their tf.Variables, or the SavedModel / the TFLite
        # converter silently get uninitialised weights.
        self.model_variables = [v.value for v in model.variables]
        s = self.input_size

        @tf.function(input_signature=[tf.TensorSpec([None, s, s, 3], tf.uint8, name="images")])
        def serve(images):
            out = model(tf.cast(images, tf.float32), training=False)
            return {"keypoints": tf.cast(out["keypoints"], tf.float32), "scores": tf.cast(out["scores"], tf.float32)}

        self.serve = serve

    def concrete_function(self):
        return self.serve.get_concrete_function()


# ---------------------------------------------------------------------------
# SavedModel
# ---------------------------------------------------------------------------


def export_saved_model(model, out_dir: str | os.PathLike) -> Path:
    """Write a SavedModel with signature ``serving_default``.

    ``images`` uint8 (None, S, S, 3) -> ``keypoints`` (None, K, 2), ``scores`` (None, K) float32.

    Returns the SavedModel folder.
    """
    out_dir = Path(out_dir)
    module = ServingModule(model)
    tf.saved_model.save(module, str(out_dir), signatures={SIGNATURE_KEY: module.concrete_function()})
    return out_dir


# ---------------------------------------------------------------------------
# TFLite
# ---------------------------------------------------------------------------


def _as_uint8_crops(representative, input_size: int) -> np.ndarray:
    crops = np.asarray(representative)
    if crops.ndim != 4 or crops.shape[1:] != (input_size, input_size, 3) or len(crops) == 0:
        raise ValueError(f"representative crops must be an array (N, {input_size}, {input_size}, 3) with N >= 1 "
                         f"(the model's input size), got shape {crops.shape}")
    if crops.dtype != np.uint8:
        crops = np.clip(np.rint(crops), 0, 255).astype(np.uint8)
    return crops


def convert_tflite(model, quantization: str = "float32", representative=None) -> bytes:
    """The TFLite flatbuffer of ``model`` (builtin ops only).

    Args:
        model: a keras_pose model.
        quantization: ``"float32"``, ``"float16"`` (float16 weights),
            ``"dynamic_int8"`` (dynamic-range: int8 weights) or ``"full_int8"``
            (int8 weights and activations; needs ``representative``).
        representative: calibration crops (N, S, S, 3) uint8 (or float in
            [0, 255]), e.g. from :func:`representative_crops` on LSP
            training images. Used only for ``"full_int8"``.

    Returns:
        The flatbuffer bytes. Input ``images`` uint8 (B, S, S, 3), outputs
        ``keypoints`` (B, K, 2) and ``scores`` (B, K) float32, for every
        quantization.
    """
    _check_quantization(quantization)
    module = ServingModule(model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "full_int8":
        if representative is None:
            raise ValueError("full_int8 quantization needs representative crops (calibration images); "
                             "see keras_pose.export.representative_crops")
        crops = _as_uint8_crops(representative, module.input_size)

        def representative_dataset():
            for crop in crops:
                yield [crop[None]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        # The input is already uint8 and the outputs stay float32 (keypoints in pixels, not int8 codes).
        return _full_int8_float_tail(converter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


#: TFLite ops that carry learned weights; the ops after the last of them form the weight-free "tail".
WEIGHTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D",
                          "BATCH_MATMUL", "EMBEDDING_LOOKUP"})


def _tail_analysis(model: bytes):
    """(ops, tensor details by index, tail op indices, head op indices) of a TFLite model.

    The tail: ops from which no weighted op can be reached (see
    :func:`decoder_tail_tensors`). The head: the output layers, weighted ops
    whose outputs feed only the tail (a SHAPE consumer only reads the shape,
    e.g. a transposed convolution's output size).
    """
    interp = _interpreter(model_content=model, delegates=False)
    ops = interp._get_ops_details()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    consumers: dict[int, list[int]] = {}
    for op in ops:
        for i in op["inputs"]:
            consumers.setdefault(int(i), []).append(op["index"])
    reaches: dict[int, bool] = {}
    # Ops are stored in execution (topological) order: decide from the last op backwards.
    for op in reversed(ops):
        reaches[op["index"]] = op["op_name"] in WEIGHTED_OPS or any(
            reaches.get(c, False) for o in op["outputs"] for c in consumers.get(int(o), []))
    tail = {i for i, r in reaches.items() if not r}
    head = {op["index"] for op in ops if op["op_name"] in WEIGHTED_OPS and len(op["outputs"]) and all(
        consumers.get(int(o)) and all(c in tail or ops[c]["op_name"] == "SHAPE" for c in consumers[int(o)])
        for o in op["outputs"])}
    return ops, tensors, tail, head


def _output_names(ops, tensors, which, keep=lambda t: True) -> list[str]:
    return sorted({tensors[int(o)]["name"] for op in ops if op["index"] in which for o in op["outputs"]
                   if keep(tensors[int(o)])})


def decoder_tail_tensors(model: bytes) -> list[str]:
    """Output tensor names of the ops of a TFLite model from which no weighted op can be reached.

    That is the weight-free tail after the last convolution / dense layer on
    every path: the keypoint decoder (argmax or soft-argmax, context
    aggregation, mapping to pixels) and the scores.
    """
    ops, tensors, tail, _ = _tail_analysis(model)
    return _output_names(ops, tensors, tail)


def float_head_tensors(model: bytes) -> list[str]:
    """:func:`decoder_tail_tensors` plus the outputs of the output layers: weighted ops that feed only the tail.

    These are what full-int8 export keeps in float32. The output layer's
    values (heatmap logits, coordinates) go straight into the decoder, where
    an int8 step is not a small error: a soft-argmax takes ``exp`` of the
    logits, so a logit step of 0.3 is a 35 % change of a probability, and the
    quantizer may give the layer a range narrower than its values (seen on
    ``softargmax_scratch_lsp``: RMS logit error 2.7, full-int8 PCK 30.6 vs 47.3).
    It is one 1x1 convolution or dense layer, so float costs little time.
    """
    ops, tensors, tail, head = _tail_analysis(model)
    return _output_names(ops, tensors, tail | head)


def int8_head_tensors(model: bytes) -> list[str]:
    """Outputs of a quantized model's output layers (weighted ops feeding only the tail) that are int8.

    Empty when :func:`float_head_tensors` worked. The converter's denylist is
    not honoured by every op: a ``TRANSPOSE_CONV`` output layer stays int8
    (seen on ``part_heatmap_small``, whose decoder's ``smooth`` absorbs the
    extra noise).
    """
    ops, tensors, _, head = _tail_analysis(model)
    return _output_names(ops, tensors, head, keep=lambda t: t["dtype"] in (np.int8, np.uint8))


def _full_int8_float_tail(converter) -> bytes:
    """Full-integer quantization of the network body; the weight-free decoder tail stays float32.

    Quantizing the decoder gains no speed (it is tiny) but costs accuracy and
    robustness: keypoints in pixels would be int8 codes (input side / 256
    steps), soft-argmax probabilities (~1 / (h w)) round to zero, and the
    context-aggregation DIV can get an all-zero int8 denominator and abort at
    run time. So: calibrate, then quantize with the tail's ops denylisted
    (the converter's experimental ``denylisted_nodes``, as used by
    ``tf.lite.experimental.QuantizationDebugger``). Falls back to plain full
    int8 (with a warning) if this TensorFlow lacks those hooks.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from tensorflow.lite.python import convert as tflite_convert

            mlir_quantize = tflite_convert.mlir_quantize
            converter._experimental_calibrate_only = True
            calibrated = converter.convert()
        except (ImportError, AttributeError) as e:
            warnings.warn(f"full_int8: cannot keep the decoder in float32 with TensorFlow {tf.__version__} ({e}); "
                          "quantizing the whole graph", RuntimeWarning, stacklevel=3)
            converter._experimental_calibrate_only = False
            return converter.convert()
        finally:
            converter._experimental_calibrate_only = False
        quantized = mlir_quantize(calibrated, disable_per_channel=converter._experimental_disable_per_channel,
                                  denylisted_nodes=float_head_tensors(calibrated))
    int8_head = int8_head_tensors(quantized)
    if int8_head:
        warnings.warn(f"full_int8: the converter kept these output layers in int8 despite the denylist: {int8_head} "
                      "(their int8 rounding goes straight into the decoder; check the int8 accuracy)",
                      RuntimeWarning, stacklevel=3)
    return quantized


def export_tflite(model, out_path: str | os.PathLike, quantization: str = "float32", representative=None) -> Path:
    """Write :func:`convert_tflite` ``(model, quantization, representative)`` to ``out_path``; returns the path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(convert_tflite(model, quantization, representative))
    return out_path


def representative_crops(dataset, input_size: int, n: int = 100, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """``n`` person crops (n, S, S, 3) uint8 for full-int8 calibration.

    The records are spread evenly over ``dataset`` (LSP is ordered by sport,
    so the first ``n`` would all be of a few sports) and cropped exactly as
    at evaluation (:func:`keras_pose.data.eval_dataset`). Use TRAINING
    images (``read_lsp(root, "train")``), never the test split.
    """
    from keras_pose.data import eval_dataset

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(dataset) == 0:
        raise ValueError(f"dataset {getattr(dataset, 'name', '')!r} is empty; cannot make calibration crops")
    n = min(n, len(dataset))
    idx = np.unique(np.round(np.linspace(0, len(dataset) - 1, n)).astype(int))
    subset = dataset.subset(idx, name=f"{dataset.name}[calibration]")
    crops = [b["images"].numpy() for b in eval_dataset(subset, input_size, padding, batch_size=32)]
    return np.clip(np.rint(np.concatenate(crops)), 0, 255).astype(np.uint8)


def _interpreter(model_path=None, model_content=None, num_threads=None, delegates=True):
    """A LiteRT interpreter (``ai_edge_litert`` when installed, else ``tf.lite.Interpreter``)."""
    kw = {"model_path": None if model_path is None else str(model_path), "model_content": model_content,
          "num_threads": num_threads}
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        litert = None
    if litert is not None:
        if not delegates:
            kw["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return litert.Interpreter(**kw)
    if not delegates:
        kw["experimental_op_resolver_type"] = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "tf.lite.Interpreter is deprecated"
        return tf.lite.Interpreter(**kw)


def tflite_ops(model: str | os.PathLike | bytes) -> list[str]:
    """The sorted op names of a TFLite file or flatbuffer (before any delegate rewrites them).

    Builtin ops have their builtin names (``CONV_2D``); ops that need the
    Flex delegate are named ``Flex...`` and custom ops ``CUSTOM``.
    """
    kw = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": model}
    interp = _interpreter(**kw, delegates=False)
    return sorted({op["op_name"] for op in interp._get_ops_details()})


def non_builtin_ops(ops: Iterable[str]) -> list[str]:
    """The ops of :func:`tflite_ops` that are not TFLite builtins (Flex / custom / delegate ops)."""
    return [o for o in ops if o.startswith("Flex") or o in ("CUSTOM", "DELEGATE") or not o.isupper()]


# ---------------------------------------------------------------------------
# Runners (batch functions) and predictors
# ---------------------------------------------------------------------------


def _to_uint8(images, input_size: int, what: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1:] != (input_size, input_size, 3):
        raise ValueError(f"{what}: expected images (B, {input_size}, {input_size}, 3), got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


class TFLiteRunner:
    """Batch function of a TFLite file: images (B, S, S, 3) [0, 255] -> (keypoints (B, K, 2), scores (B, K)).

    Batches are run in one call when the file's batch axis is dynamic (the
    input tensor is resized), else image by image. Not thread-safe (one
    interpreter).

    Args:
        path: a ``.tflite`` file with the :mod:`keras_pose.export` interface
            (or use :meth:`from_bytes` for a flatbuffer in memory).
        num_threads: interpreter threads (``None``: the runtime's default).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, *, _content: bytes | None = None):
        self.path = Path(path)
        if _content is None and not self.path.is_file():
            raise FileNotFoundError(f"TFLite file {self.path} does not exist")
        try:
            if _content is None:
                self.interpreter = _interpreter(model_path=self.path, num_threads=num_threads)
            else:
                self.interpreter = _interpreter(model_content=_content, num_threads=num_threads)
            self.runner = self.interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path} is not a readable TFLite model: {e}") from e
        inputs, outputs = self.runner.get_input_details(), self.runner.get_output_details()
        if "images" not in inputs or not {"keypoints", "scores"} <= set(outputs):
            raise ValueError(f"{self.path}: expected a signature with input 'images' and outputs 'keypoints', "
                             f"'scores' (a keras_pose export), got inputs {sorted(inputs)} and outputs "
                             f"{sorted(outputs)}")
        spec = inputs["images"]
        shape = spec.get("shape_signature", spec["shape"])
        self.input_size = int(shape[1])
        self.input_dtype = spec["dtype"]
        if self.input_dtype not in (np.uint8, np.float32):
            raise ValueError(f"{self.path}: input 'images' has dtype {self.input_dtype.__name__}, "
                             "expected uint8 or float32")
        self.dynamic_batch = int(shape[0]) == -1
        kshape = outputs["keypoints"].get("shape_signature", outputs["keypoints"]["shape"])
        self.num_joints = int(kshape[1])

    @classmethod
    def from_bytes(cls, content: bytes, num_threads: int | None = None, name: str = "<tflite bytes>") -> "TFLiteRunner":
        """A runner for a flatbuffer in memory (e.g. from :func:`convert_tflite`)."""
        return cls(name, num_threads, _content=bytes(content))

    def _run(self, x):
        out = self.runner(images=x)
        # Copy: the arrays may alias interpreter buffers reused by the next call.
        return (np.array(out["keypoints"], np.float32, copy=True), np.array(out["scores"], np.float32, copy=True))

    def __call__(self, images):
        x = _to_uint8(images, self.input_size, str(self.path))
        if self.input_dtype == np.float32:
            x = x.astype(np.float32)
        if self.dynamic_batch or len(x) == 1:
            return self._run(x)
        parts = [self._run(x[i:i + 1]) for i in range(len(x))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class SavedModelRunner:
    """Batch function of an exported SavedModel's ``serving_default`` signature (contract of :class:`TFLiteRunner`)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / "saved_model.pb").is_file():
            raise FileNotFoundError(f"{self.path} is not a SavedModel folder (no saved_model.pb)")
        self.loaded = tf.saved_model.load(str(self.path))
        if SIGNATURE_KEY not in self.loaded.signatures:
            raise ValueError(f"SavedModel {self.path} has no {SIGNATURE_KEY!r} signature "
                             f"(has {sorted(self.loaded.signatures)})")
        self.function = self.loaded.signatures[SIGNATURE_KEY]
        spec = self.function.structured_input_signature[1].get("images")
        outputs = self.function.structured_outputs
        if spec is None or not {"keypoints", "scores"} <= set(outputs):
            raise ValueError(f"SavedModel {self.path}: expected signature input 'images' and outputs 'keypoints', "
                             f"'scores' (a keras_pose export), got {self.function.structured_input_signature[1]} "
                             f"-> {sorted(outputs)}")
        self.input_size = int(spec.shape[1])
        self.input_dtype = spec.dtype
        self.num_joints = int(outputs["keypoints"].shape[1])

    def __call__(self, images):
        x = _to_uint8(images, self.input_size, str(self.path))
        out = self.function(images=tf.constant(x, dtype=self.input_dtype))
        return out["keypoints"].numpy().astype(np.float32), out["scores"].numpy().astype(np.float32)


def read_export_json(path: str | os.PathLike) -> dict | None:
    """The ``export.json`` beside an exported file (or inside / beside a SavedModel folder), if any."""
    path = Path(path)
    candidates = [path / EXPORT_JSON, path.parent / EXPORT_JSON] if path.is_dir() else [path.parent / EXPORT_JSON]
    for c in candidates:
        if c.is_file():
            try:
                return json.loads(c.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"export manifest {c} is not valid JSON: {e}") from e
    return None


# ---------------------------------------------------------------------------
# Everything at once
# ---------------------------------------------------------------------------


def probe_crops(input_size: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """Deterministic smooth synthetic crops (n, S, S, 3) uint8 (blobs and bars), for parity checks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:input_size, :input_size].astype(np.float32) / input_size
    out = np.empty((n, input_size, input_size, 3), np.float32)
    for i in range(n):
        img = np.zeros((input_size, input_size, 3), np.float32) + rng.uniform(20, 80, 3)
        for _ in range(6):
            cx, cy, r = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.12)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            img += blob[..., None] * rng.uniform(60, 200, 3)
        out[i] = img
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _mean_diff(a, b) -> float:
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def export_all(model, out_dir: str | os.PathLike, representative=None, *, padding: float = DEFAULT_PADDING,
               source: dict | None = None, calibration: str | None = None,
               quantizations: Iterable[str] = QUANTIZATIONS) -> dict:
    """Export the SavedModel and every TFLite variant, and write ``export.json``.

    Args:
        model: a keras_pose model.
        out_dir: output folder (created; existing files of the same names are
            replaced).
        representative: calibration crops (N, S, S, 3) for ``full_int8``
            (from LSP training images: :func:`representative_crops`); without
            them the full-integer model is skipped.
        padding: the crop padding the model was trained with (recorded for
            the predictors).
        source: where the model came from (:func:`model_source`, e.g.
            ``{"kind": "zoo", "name": "cpm_lsp", ...}``); recorded as is; its
            ``name`` names the export (default: the model's name).
        calibration: a description of the calibration images (recorded).
        quantizations: the TFLite variants to write.

    Returns:
        The manifest written to ``out_dir/export.json``: ``name``,
        ``input_size``, ``num_joints``, ``skeleton``, ``padding``, ``files``
        (per variant: file name, bytes, mean and max keypoint difference to
        Keras on probe crops), ``source``, ``model_config``, versions.
    """
    import keras

    import keras_pose
    from keras_pose.evaluation import keras_predictor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s, k = model_input_size(model), model_num_joints(model)
    quantizations = [q for q in quantizations if q != "full_int8" or representative is not None]
    for q in quantizations:
        _check_quantization(q)
    if representative is not None:
        representative = _as_uint8_crops(representative, s)
    probe = representative[:8] if representative is not None else probe_crops(s)
    ref_kp, ref_sc = keras_predictor(model)(probe.astype(np.float32))

    files = {}
    sm = out_dir / SAVED_MODEL_DIR
    if sm.exists():
        shutil.rmtree(sm)
    export_saved_model(model, sm)
    kp, sc = SavedModelRunner(sm)(probe)
    files["saved_model"] = {"path": SAVED_MODEL_DIR, "bytes": _tree_size(sm),
                            "max_keypoint_diff_px": _max_diff(kp, ref_kp),
                            "mean_keypoint_diff_px": _mean_diff(kp, ref_kp), "max_score_diff": _max_diff(sc, ref_sc)}
    for q in quantizations:
        path = export_tflite(model, out_dir / tflite_filename(q), q, representative)
        kp, sc = TFLiteRunner(path)(probe)
        files[q] = {"path": path.name, "bytes": path.stat().st_size, "max_keypoint_diff_px": _max_diff(kp, ref_kp),
                    "mean_keypoint_diff_px": _mean_diff(kp, ref_kp), "max_score_diff": _max_diff(sc, ref_sc),
                    "finite": bool(np.all(np.isfinite(kp)))}
    for key in ("saved_model", "float32"):
        if key in files and files[key]["max_keypoint_diff_px"] > FLOAT32_TOLERANCE_PX:
            warnings.warn(f"export of {model.name!r}: the {key} file's keypoints differ from Keras by "
                          f"{files[key]['max_keypoint_diff_px']:.2f} px on the probe crops "
                          f"(> {FLOAT32_TOLERANCE_PX} px); "
                          "the export may be broken", RuntimeWarning, stacklevel=2)

    config = getattr(model, "pose_config", None)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": (source or {}).get("name") or model.name,
        "input_size": s,
        "num_joints": k,
        "skeleton": skeleton_for(k).name,
        "padding": float(padding),
        "signature": {"key": SIGNATURE_KEY, "inputs": {"images": {"dtype": "uint8", "shape": [None, s, s, 3]}},
                      "outputs": {"keypoints": {"dtype": "float32", "shape": [None, k, 2], "units": "input pixels"},
                                  "scores": {"dtype": "float32", "shape": [None, k]}}},
        "files": files,
        "parity_probe": "calibration crops" if representative is not None else "synthetic probe crops",
        "calibration": calibration if representative is not None else None,
        "calibration_crops": None if representative is None else int(len(representative)),
        "source": dict(source or {}),
        "model_config": None if config is None else config.to_dict(),
        "versions": {"keras_pose": keras_pose.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (out_dir / EXPORT_JSON).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def training_padding(spec: str | os.PathLike) -> float:
    """The crop padding a zoo preset / run folder was trained with (its ``train.json``), else 1.25."""
    from keras_pose import zoo

    folder = zoo.preset_folder(spec)
    if folder is None or not (folder / "train.json").is_file():
        return DEFAULT_PADDING
    try:
        train = json.loads((folder / "train.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"training config {folder / 'train.json'} is not valid JSON: {e}") from e
    return float((train.get("pipeline") or {}).get("padding", DEFAULT_PADDING))


def model_source(spec: str | os.PathLike) -> dict:
    """What ``export.json`` records as the source of a zoo name / preset folder / run folder.

    ``{"kind": "zoo" | "preset_folder" | "run_folder", "name", "path", "weights_sha256" (presets)}``.
    """
    from keras_pose import zoo

    path = Path(spec)
    if path.is_dir():
        if (path / "preset.json").is_file():
            preset = zoo.read_preset(path)
            return {"kind": "preset_folder", "name": preset.name, "path": str(path.resolve()),
                    "weights_sha256": preset.sha256}
        return {"kind": "run_folder", "name": path.resolve().name, "path": str(path.resolve())}
    preset = zoo.get_preset(str(spec))
    return {"kind": "zoo", "name": preset.name, "path": str(preset.folder), "weights_sha256": preset.sha256}


def export_from_spec(spec: str | os.PathLike, out_dir: str | os.PathLike, data_root=None, int8: bool = True,
                     calibration: int = 100, log: Callable[[str], None] = print) -> dict:
    """``keras-pose export``: load a zoo name or preset / run folder and :func:`export_all` it.

    Full-int8 calibration uses ``calibration`` crops from the LSP TRAINING
    split under ``data_root`` (never the test split); ``int8=False`` skips
    the full-integer model (then no data is needed).
    """
    from keras_pose import zoo

    model = zoo.load(spec, cascade=True)  # a DeepPose cascade exports whole
    source = model_source(spec)
    padding = training_padding(spec)
    representative, described = None, None
    if int8:
        from keras_pose.data import read_lsp

        if calibration < 1:
            raise ValueError(f"--calibration must be >= 1, got {calibration}")
        train = read_lsp(data_root, "train")
        log(f"calibrating full int8 on {min(calibration, len(train))} LSP training crops")
        representative = representative_crops(train, model_input_size(model), calibration, padding)
        described = f"{len(representative)} crops evenly spaced over {train.name} (LSP training split)"
    log(f"exporting {spec} to {out_dir}")
    return export_all(model, out_dir, representative, padding=padding, source=source, calibration=described)


def manifest_markdown(manifest: dict) -> str:
    """A short Markdown table of an ``export.json``: file, size, max keypoint difference to Keras."""
    lines = [f"{manifest['name']}: input {manifest['input_size']}x{manifest['input_size']}, "
             f"{manifest['num_joints']} joints ({manifest['skeleton']}), padding {manifest['padding']}", "",
             f"| file | size (MB) | keypoint diff to Keras on {manifest['parity_probe']}, mean / max (px) |",
             "|---|---|---|"]
    for f in manifest["files"].values():
        lines.append(f"| `{f['path']}` | {f['bytes'] / 1e6:.2f} | "
                     f"{f.get('mean_keypoint_diff_px', float('nan')):.3f} / {f['max_keypoint_diff_px']:.3f} |")
    return "\n".join(lines) + "\n"


__all__ = ["EXPORT_JSON", "QUANTIZATIONS", "SIGNATURE_KEY", "SavedModelRunner", "ServingModule", "TFLiteRunner",
           "convert_tflite", "decoder_tail_tensors", "float_head_tensors", "export_all", "export_from_spec", "export_saved_model",
           "export_tflite", "manifest_markdown", "model_source", "non_builtin_ops", "probe_crops", "read_export_json",
           "representative_crops", "tflite_filename", "tflite_ops", "training_padding"]
