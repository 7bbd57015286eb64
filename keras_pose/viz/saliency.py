"""Which pixels drive one joint's prediction: vanilla saliency / SmoothGrad and Grad-CAM (tf-keras-vis).

The score explained for a joint j depends on the family (the choice is made
by :func:`joint_score_target`):

- ``cpm``: the maximum of the joint's belief map in the final stage
  ``stage_T[..., j]`` (the value the argmax decoder picks).
- ``part_heatmap``: the maximum of the joint's ``regression`` heatmap (the map
  the keypoints are decoded from).
- ``softargmax``: the maximum of the joint's part-map logit in the final
  block's ``heatmaps[..., j]``. This is the logit of the joint probability
  ``p_j = sigmoid(max h_j)`` that the ``scores`` / ``visibility`` outputs
  report: same ranking, without the sigmoid's saturation flattening the
  gradients of a confident model.
- ``deeppose``: DeepPose has no score (its ``scores`` are constant ones), so
  the joint's predicted coordinates are explained, taken from the ``coords``
  output (box-normalised, about [-0.5, 0.5]; pixels are an affine function of
  them, and small values keep Grad-CAM++'s ``exp(score)`` finite). Saliency
  is the element-wise maximum of the maps of x and of y (pixels that move
  the joint in any direction). Grad-CAM keeps positive
  evidence only, so it is the maximum over the four maps of +x, -x, +y and
  -y.

Each model is wrapped in a single-output ``keras.Model`` (images -> the
explained tensor) and passed to tf-keras-vis with ``clone=False``.

Grad-CAM needs a convolutional feature map. :func:`default_gradcam_layer`
picks the last feature layer feeding the head automatically: walking back
from the explained output, the first 4-D tensor with more than one cell per
side that is not a heatmap itself (its channel count differs from the
output's). That is the ReLU after the last conv block before the final 1x1
head convolution: ``stage{T}_mconv*_relu`` (CPM), ``reg_head_relu`` (part
heatmap regression, residual), ``block{K}_b_maps_relu`` (soft-argmax), the
last 4-D tensor before ``flatten`` (DeepPose). Pass ``layer="name"`` to
override.

Example:
    >>> from keras_pose.models import build_model
    >>> from keras_pose.viz import crop_for_model, saliency_figure, saliency_map
    >>> model = build_model("cpm_tiny")
    >>> crop = crop_for_model(model, "photo.jpg")                              # doctest: +SKIP
    >>> fig = saliency_figure(model, crop, "r_wrist", method="gradcam")      # doctest: +SKIP
    >>> cam = saliency_map(model, crop, "r_wrist", method="gradcam")         # (64, 64) in [0, 1]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from keras_pose.viz.heatmaps import (_new_figure, _panel, check_crop, joint_index, model_family, model_outputs,
                                     model_skeleton, overlay_heatmap, predict_crop)

#: Accepted ``method`` values.
METHODS = ("saliency", "smoothgrad", "gradcam", "gradcam++")


def joint_score_target(model, joint: int) -> tuple[str, list[Callable], str]:
    """The output explained for a joint, the score functions on it, and a description.

    Args:
        model: a keras_pose model.
        joint: joint index.

    Returns:
        ``(output_name, score_functions, description)``. Each score function
        maps the output batch to one score per sample; methods combine the
        maps of several functions by their element-wise maximum (DeepPose
        coordinates). See the module docstring for the choices.
    """
    import tensorflow as tf

    family = model_family(model)
    outputs = model_outputs(model)
    if family == "cpm":
        last = max((k for k in outputs if k.startswith("stage_")), key=lambda k: int(k.split("_")[1]))
        return last, [lambda o: tf.reduce_max(o[..., joint], axis=(1, 2))], f"max of {last} belief map"
    if family == "part_heatmap":
        return "regression", [lambda o: tf.reduce_max(o[..., joint], axis=(1, 2))], "max of regression heatmap"
    if family == "softargmax":
        return "heatmaps", [lambda o: tf.reduce_max(o[..., joint], axis=(1, 2))], "part-map logit (max)"
    if family == "deeppose":
        return "coords", [lambda o: o[:, joint, 0], lambda o: -o[:, joint, 0],
                             lambda o: o[:, joint, 1], lambda o: -o[:, joint, 1]], "predicted x / y"
    raise ValueError(f"joint_score_target: unsupported family {family!r}")


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, []
    layer, node_index = history[0], history[1]
    node = layer._inbound_nodes[node_index]
    return layer, list(node.input_tensors)


def default_gradcam_layer(model, output_name: str | None = None) -> str:
    """Name of the layer whose output Grad-CAM uses by default.

    Walks back from the explained output (first input at each layer) to the
    first 4-D tensor with spatial size > 1 whose channel count differs from the
    output's (i.e. a feature map, not the heatmap or its resized copies).

    Args:
        model: a keras_pose model.
        output_name: the explained output (default: the family's, see
            :func:`joint_score_target`).

    Returns:
        A layer name of ``model``.
    """
    outputs = model_outputs(model)
    name = output_name or joint_score_target(model, 0)[0]
    target = outputs[name]
    channels = target.shape[-1] if len(target.shape) == 4 else None
    inputs = {id(t) for t in model.inputs}
    t = target
    for _ in range(len(model.layers) + 1):
        layer, parents = _producer(t)
        if layer is None or id(t) in inputs:
            break
        shape = t.shape
        if len(shape) == 4 and (shape[1] or 0) > 1 and (shape[2] or 0) > 1 and shape[-1] != channels:
            return layer.name
        if not parents:
            break
        t = parents[0]
    raise ValueError(f"no convolutional feature map found before output {name!r} of model {model.name!r}; "
                     "pass layer=<name> explicitly")


def _single_output_model(model, output_name: str):
    import keras

    return keras.Model(model.inputs, model_outputs(model)[output_name], name=f"{model.name}_{output_name}")


def saliency_map(model, crop, joint: str | int, method: str = "saliency", layer: str | None = None,
                 smooth_samples: int = 20, smooth_noise: float = 0.2) -> np.ndarray:
    """Attribution map of one joint's score over the crop's pixels, normalised to [0, 1].

    Args:
        model: a keras_pose model of any family.
        crop: (S, S, 3) RGB crop of the model's input size, in [0, 255].
        joint: joint name or index.
        method: ``"saliency"`` (vanilla gradients, max |grad| over RGB),
            ``"smoothgrad"`` (saliency averaged over ``smooth_samples`` noisy
            copies), ``"gradcam"`` or ``"gradcam++"``.
        layer: Grad-CAM feature layer name (default :func:`default_gradcam_layer`).
        smooth_samples, smooth_noise: SmoothGrad settings (noise as a fraction
            of the crop's value range).

    Returns:
        (S, S) float32 map in [0, 1]. All zeros when the score does not
        depend on the pixels, or for Grad-CAM when no location carries
        positive evidence (e.g. an untrained model whose heatmap for the joint
        is negative everywhere).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    x = check_crop(model, crop)
    j = joint_index(model_skeleton(model), joint)
    output_name, scores, _ = joint_score_target(model, j)
    wrapped = _single_output_model(model, output_name)
    if method in ("saliency", "smoothgrad"):
        from tf_keras_vis.saliency import Saliency

        vis = Saliency(wrapped, clone=False)
        # |grad| is sign-free: +x and -x (DeepPose) give the same map, so keep one per axis.
        funcs = scores[::2] if len(scores) == 4 else scores
        maps = [vis(f, x, smooth_samples=smooth_samples if method == "smoothgrad" else 0, smooth_noise=smooth_noise,
                    normalize_map=False) for f in funcs]
    else:
        from tf_keras_vis.gradcam import Gradcam, GradcamPlusPlus

        name = layer or default_gradcam_layer(model, output_name)
        try:
            feature_layer = wrapped.get_layer(name)
        except ValueError:
            suggestion = default_gradcam_layer(model, output_name)
            raise ValueError(f"layer {name!r} is not on the path to output {output_name!r} of model {model.name!r}; "
                             f"choose a 4-D feature layer such as {suggestion!r}") from None
        if len(feature_layer.output.shape) != 4:
            raise ValueError(f"Grad-CAM layer {name!r} must output a 4-D feature map (B, h, w, C); its output has "
                             f"shape {tuple(feature_layer.output.shape)}")
        vis = (Gradcam if method == "gradcam" else GradcamPlusPlus)(wrapped, clone=False)
        maps = [vis(f, x, penultimate_layer=feature_layer, seek_penultimate_conv_layer=False, normalize_cam=False)
                for f in scores]
    m = np.max(np.stack([np.asarray(a, np.float32).reshape(x.shape[1:3]) for a in maps]), axis=0)
    m = np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(m.min()), float(m.max())
    return ((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)).astype(np.float32)


def saliency_figure(model, crop, joint: str | int, method: str = "saliency", layer: str | None = None,
                    alpha: float = 0.6, cmap: str = "jet", **kwargs):
    """Two panels: the crop with the joint's prediction, and the attribution map over it.

    Args:
        model: a keras_pose model of any family.
        crop: (S, S, 3) RGB crop of the model's input size, in [0, 255].
        joint: joint name or index.
        method: ``"saliency"``, ``"smoothgrad"``, ``"gradcam"`` or ``"gradcam++"``.
        layer: Grad-CAM feature layer (default: chosen automatically).
        alpha, cmap: overlay opacity and colormap.
        **kwargs: passed to :func:`saliency_map` (``smooth_samples``, ``smooth_noise``).

    Returns:
        A matplotlib Figure with 2 axes (one image each).
    """
    skeleton = model_skeleton(model)
    j = joint_index(skeleton, joint)
    amap = saliency_map(model, crop, j, method=method, layer=layer, **kwargs)
    out = predict_crop(model, crop)
    kp, score = out["keypoints"][j], float(out["scores"][j])
    output_name, _, what = joint_score_target(model, j)
    crop = np.asarray(crop).astype(np.uint8)
    fig, axes = _new_figure(1, 2, panel=3.0)
    name = skeleton.joint_names[j]
    _panel(axes[0, 0], crop, f"{name}: prediction (score {score:.2f})", kp, color="lime")
    label = {"saliency": "saliency", "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
    extra = f"\nlayer {layer or default_gradcam_layer(model, output_name)}" if method.startswith("gradcam") else ""
    _panel(axes[0, 1], overlay_heatmap(crop, amap, alpha, cmap, 0.0, 1.0), f"{label[method]} of {what}{extra}", kp,
           color="white", fontsize=8)
    fig.suptitle(f"What drives {name} ({model.name}, {model_family(model)})", fontsize=10)
    return fig


__all__ = ["METHODS", "default_gradcam_layer", "joint_score_target", "saliency_figure", "saliency_map"]
