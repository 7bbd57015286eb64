"""Reusable test helpers for Keras layers and models (KerasHub-style ``run_layer_test``).

- ``run_serialization_test(obj)``: ``get_config`` / ``from_config`` and
  ``keras.saving.serialize_keras_object`` round trips give the same config.
- ``run_model_saving_test(model, input_data)``: save to a ``.keras`` file,
  load it back, outputs are identical (default ``atol=0``).
- ``run_tflite_test(model, input_data)``: convert with builtin TFLite ops only
  (no SELECT_TF_OPS) and compare every output with Keras within ``atol``.
- ``run_layer_test(layer_cls, init_kwargs, input_data, ...)``: all of the
  above for one layer wrapped in a functional model, plus symbolic and eager
  calls, ``compute_output_shape`` against the real output shapes, finite
  input gradients and, for layers with trainable weights, one training step.

``input_data`` may be one array or a list / dict of arrays (multi-input
layers and models); outputs may be any nest (tuple, dict) of tensors.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf


def _to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def _flat_numpy(outputs):
    return [_to_numpy(o) for o in keras.tree.flatten(outputs)]


def _is_shape(s):
    return isinstance(s, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in s)


def _shape_list(structure):
    """Flattened list of shapes from a nest (tuple / list / dict) of shapes (tuples of ints / None)."""
    if _is_shape(structure):
        return [tuple(None if d is None else int(d) for d in structure)]
    if isinstance(structure, dict):
        return [s for key in sorted(structure) for s in _shape_list(structure[key])]
    if isinstance(structure, (tuple, list)):
        return [s for item in structure for s in _shape_list(item)]
    raise TypeError(f"not a shape or a nest of shapes: {structure!r}")


def _is_float(x):
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def assert_allclose_nested(actual, expected, atol, rtol=0.0, what="outputs"):
    actual, expected = _flat_numpy(actual), _flat_numpy(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} tensors, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{what}[{i}]: shape {a.shape}, expected {e.shape}"
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=f"{what}[{i}]")


def run_serialization_test(obj):
    """Config round trips for a layer, initializer, model or any Keras-serialisable object.

    Returns the object rebuilt from its serialised form.
    """
    config = obj.get_config()
    rebuilt = obj.__class__.from_config(config)
    assert rebuilt.get_config() == config, f"{obj.__class__.__name__}: from_config(get_config()) changed the config"
    serialized = keras.saving.serialize_keras_object(obj)
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert deserialized.__class__ is obj.__class__, (
        f"deserialised a {deserialized.__class__.__name__}, expected {obj.__class__.__name__}; "
        "is the class registered with keras.saving.register_keras_serializable?"
    )
    assert deserialized.get_config() == config, f"{obj.__class__.__name__}: serialize/deserialize changed the config"
    return deserialized


def run_model_saving_test(model, input_data, atol=0.0, custom_objects=None):
    """Save ``model`` to a ``.keras`` file, load it and compare outputs (identical by default)."""
    expected = model(input_data, training=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, custom_objects=custom_objects)
    actual = loaded(input_data, training=False)
    assert_allclose_nested(actual, expected, atol=atol, what="reloaded model outputs")
    return loaded


def convert_to_tflite(model, input_data):
    """TFLite flatbuffer for ``model`` with the (fixed) input shapes of ``input_data``.

    Builtin TFLite ops only. Inputs are named ``input_0..`` (in
    ``keras.tree.flatten(input_data)`` order) and outputs ``output_0..`` (in
    ``keras.tree.flatten(outputs)`` order).
    """
    flat_inputs = [np.asarray(x) for x in keras.tree.flatten(input_data)]
    specs = [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype), name=f"input_{i}") for i, x in enumerate(flat_inputs)]

    def serve(*args):
        inputs = keras.tree.pack_sequence_as(input_data, list(args))
        outputs = keras.tree.flatten(model(inputs, training=False))
        return {f"output_{i}": o for i, o in enumerate(outputs)}

    concrete = tf.function(serve, input_signature=specs).get_concrete_function()
    # Keras 3 variables are not trackables themselves: track their tf.Variables, or the converter
    # silently exports uninitialised weights.
    trackable = tf.Module()
    trackable.tf_variables = [v.value for v in model.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _interpreter(tflite_model):
    """A LiteRT interpreter when ``ai_edge_litert`` is installed, else ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = None
    if Interpreter is not None:
        return Interpreter(model_content=tflite_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "tf.lite.Interpreter is deprecated"
        return tf.lite.Interpreter(model_content=tflite_model)


def run_tflite(tflite_model, input_data):
    """Run a flatbuffer from ``convert_to_tflite``; returns the list of outputs in order."""
    interpreter = _interpreter(tflite_model)
    runner = interpreter.get_signature_runner()
    names = sorted(runner.get_input_details())
    flat_inputs = [np.asarray(x) for x in keras.tree.flatten(input_data)]
    assert len(names) == len(flat_inputs), f"TFLite model has inputs {names}, received {len(flat_inputs)} arrays"
    feeds = {f"input_{i}": x for i, x in enumerate(flat_inputs)}
    result = runner(**feeds)
    # Copy: the arrays may alias interpreter buffers that are freed with the interpreter.
    outputs = [np.array(result[f"output_{i}"], copy=True) for i in range(len(result))]
    del runner, interpreter
    return outputs


def run_tflite_test(model, input_data, atol=1e-5, rtol=0.0):
    """Convert ``model`` to TFLite (builtin ops only) and compare every output with Keras."""
    expected = _flat_numpy(model(input_data, training=False))
    actual = run_tflite(convert_to_tflite(model, input_data), input_data)
    assert len(actual) == len(expected), f"TFLite gives {len(actual)} outputs, Keras {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        a = np.asarray(a).astype(e.dtype)
        assert a.shape == e.shape, f"TFLite output_{i}: shape {a.shape}, Keras {e.shape}"
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=f"TFLite output_{i}")
    return actual


def _symbolic_inputs(input_data):
    def make(x):
        x = np.asarray(x)
        return keras.Input(shape=x.shape[1:], dtype=str(x.dtype))

    return keras.tree.map_structure(make, input_data)


def _input_shapes(input_data, batch=True):
    def shape(x):
        s = tuple(np.shape(x))
        return s if batch else (None,) + s[1:]

    return keras.tree.map_structure(shape, input_data)


def _check_shapes(what, actual, expected):
    actual, expected = _shape_list(actual), _shape_list(expected)
    assert actual == expected, f"{what}: shapes {actual}, expected {expected}"


def run_gradient_test(model, input_data):
    """d sum(float outputs) / d float inputs is finite for every float input."""
    flat = [tf.convert_to_tensor(x) for x in keras.tree.flatten(input_data)]
    float_inputs = [x for x in flat if x.dtype.is_floating]
    if not float_inputs:
        return None
    with tf.GradientTape() as tape:
        for x in float_inputs:
            tape.watch(x)
        outputs = model(keras.tree.pack_sequence_as(input_data, flat), training=True)
        total = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in keras.tree.flatten(outputs) if o.dtype.is_floating])
    grads = tape.gradient(total, float_inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    for g in grads:
        assert np.all(np.isfinite(g.numpy())), "non-finite input gradient"
    return grads


def run_training_step(model, input_data):
    """One SGD step on an MSE loss towards zero targets; checks that the loss is finite and weights move."""
    targets = keras.tree.map_structure(lambda o: np.zeros(o.shape, "float32"), model(input_data, training=False))
    if isinstance(targets, tuple):
        targets = list(targets)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    logs = model.train_on_batch(input_data, targets, return_dict=True)
    assert np.isfinite(logs["loss"]), f"training loss is not finite: {logs}"
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "one training step changed no weight"


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape=None,
    expected_output=None,
    *,
    atol=1e-6,
    run_saving=True,
    run_tflite=True,
    tflite_atol=1e-5,
    run_gradient=True,
    run_training=True,
    custom_objects=None,
):
    """Everything a layer must satisfy; returns the eager outputs.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: one array or a list / dict of arrays, with a batch axis.
        expected_output_shape: the eager output shape(s), a shape or a nest of
            shapes matching the outputs.
        expected_output: optional expected values (compared with ``atol``).
        run_saving: save / load a functional model around the layer.
        run_tflite: convert that model to TFLite and compare within
            ``tflite_atol``.
        run_gradient: input gradients exist and are finite.
        run_training: one training step if the layer has trainable weights.
        custom_objects: passed to ``keras.saving.load_model``.
    """
    layer = layer_cls(**init_kwargs)
    run_serialization_test(layer)

    # Eager call.
    eager = layer(input_data)
    eager_shapes = keras.tree.map_structure(lambda o: tuple(o.shape), eager)
    _check_shapes("compute_output_shape (eager)", layer.compute_output_shape(_input_shapes(input_data)), eager_shapes)
    if expected_output_shape is not None:
        _check_shapes("eager output", eager_shapes, expected_output_shape)
    if expected_output is not None:
        assert_allclose_nested(eager, expected_output, atol=atol, what="eager outputs")

    # Symbolic call on the same (built) layer; the functional model must agree with the eager call.
    inputs = _symbolic_inputs(input_data)
    symbolic = layer(inputs)
    _check_shapes(
        "symbolic output", keras.tree.map_structure(lambda t: tuple(t.shape), symbolic),
        layer.compute_output_shape(_input_shapes(input_data, batch=False)),
    )
    model = keras.Model(inputs, symbolic)
    assert_allclose_nested(model(input_data), eager, atol=atol, what="functional model vs eager layer")

    # The rebuilt layer computes the same thing (for parameter-free layers; otherwise copy weights).
    rebuilt = layer_cls.from_config(layer.get_config())
    rebuilt(input_data)
    rebuilt.set_weights(layer.get_weights())
    assert_allclose_nested(rebuilt(input_data), eager, atol=atol, what="from_config layer vs original")

    if run_gradient:
        run_gradient_test(model, input_data)
    if run_training and layer.trainable_weights:
        train_model = keras.Model(inputs, layer_cls.from_config(layer.get_config())(inputs))
        run_training_step(train_model, input_data)
    if run_saving:
        run_model_saving_test(model, input_data, custom_objects=custom_objects)
    if run_tflite:
        run_tflite_test(model, input_data, atol=tflite_atol)
    return eager
