"""What the networks see: belief maps per stage, detection vs regression maps, part and context maps.

One entry point, :func:`stage_heatmaps_figure`, dispatches on the model's
family (``keras_pose.models.common.model_config(model)["family"]``) and draws
the figure each paper uses to explain its network:

- **CPM** (Wei et al., CVPR 2016, Fig. 1): the belief map of one joint at every
  stage ``stage_1 .. stage_T``, overlaid on the crop, on one colour scale, so
  that the sharpening from stage to stage is visible.
- **Part heatmap regression** (Bulat & Tzimiropoulos, ECCV 2016, Fig. 2): for a
  few joints, the detection subnetwork's part map (sigmoid of the
  ``detection`` logits) above the regression subnetwork's heatmap
  (``regression``, negatives clamped to 0 as in the official demo).
- **Soft-argmax regression** (Luvizon et al., C&G 2019, Fig. 4): the joint's
  part map and its ``N_c`` context maps from the final block's ``heatmaps``
  (channel ``n`` and channels ``N + n * N_c + i``), each shown as its spatial
  softmax (coloured from the uniform level ``1 / (h w)`` up) with the
  soft-argmax location marked.
- **DeepPose** regresses coordinates directly and has no maps: a
  ``ValueError`` says so (use :func:`keras_pose.viz.saliency_figure`).

Shared helpers used by :mod:`keras_pose.viz.saliency` and the CLI live here
too: :func:`model_family`, :func:`model_skeleton`, :func:`joint_index`,
:func:`crop_for_model`, :func:`overlay_heatmap`, :func:`figure_to_array`,
:func:`save_figure`.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot
(Agg rendering, safe on headless machines; nothing is shown) or an RGB array.

Example:
    >>> from keras_pose.models import build_model
    >>> from keras_pose.viz import stage_heatmaps_figure, crop_for_model, save_figure
    >>> model = build_model("cpm_tiny")
    >>> crop = crop_for_model(model, "photo.jpg")                  # doctest: +SKIP
    >>> fig = stage_heatmaps_figure(model, crop, "r_wrist")        # doctest: +SKIP
    >>> save_figure(fig, "figures/cpm_stages.png")                 # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from keras_pose.skeletons import Skeleton

#: Joints added to the chosen one in the part-heatmap figure (Bulat Fig. 2 shows a few parts side by side).
DEFAULT_EXTRA_JOINTS = ("head_top", "r_wrist", "l_knee", "l_ankle")

#: Maximum number of joints (columns) in the part-heatmap figure.
MAX_JOINTS = 4

#: Joint used by the CLI when ``--joint`` is not given.
DEFAULT_JOINT = "r_wrist"

_FAMILY_BY_OUTPUTS = (("cpm", "stage_1"), ("part_heatmap", "regression"), ("softargmax", "pose_1"),
                      ("deeppose", "coords"))


# ---------------------------------------------------------------------------
# Model helpers
# ---------------------------------------------------------------------------


def model_outputs(model) -> dict:
    """The model's symbolic outputs by name (``{"stage_1": KerasTensor, ...}``).

    Args:
        model: a functional keras_pose model.

    Returns:
        dict output name -> KerasTensor.
    """
    if isinstance(model.output, dict):
        return dict(model.output)
    return dict(zip(model.output_names, model.outputs))


def model_family(model) -> str:
    """The keras_pose family of a model: ``"cpm"``, ``"part_heatmap"``, ``"softargmax"`` or ``"deeppose"``.

    Read from the config the builder attached; models without one (e.g. loaded
    from a ``.keras`` file) are recognised by their output names.

    Args:
        model: a keras_pose model.

    Returns:
        The family name.

    Raises:
        ValueError: the model is not a keras_pose model.
    """
    from keras_pose.models.common import model_config

    try:
        return model_config(model)["family"]
    except ValueError:
        names = set(model_outputs(model))
        for family, key in _FAMILY_BY_OUTPUTS:
            if key in names:
                return family
        raise ValueError(f"model {model.name!r} is not a keras_pose model: it has no attached config and its "
                         f"outputs {sorted(names)} match no family (expected one of "
                         f"{[k for _, k in _FAMILY_BY_OUTPUTS]})") from None


def model_skeleton(model) -> Skeleton:
    """The skeleton matching the model's ``keypoints`` output (LSP14 for 14 joints, MPII16 for 16).

    Args:
        model: a keras_pose model (has a ``keypoints`` output (B, K, 2)).

    Returns:
        The :class:`~keras_pose.skeletons.Skeleton`.
    """
    from keras_pose.skeletons import skeleton_for

    outputs = model_outputs(model)
    if "keypoints" not in outputs:
        raise ValueError(f"model {model.name!r} has no 'keypoints' output; outputs: {sorted(outputs)}")
    return skeleton_for(int(outputs["keypoints"].shape[1]))


def model_input_size(model) -> int:
    """The side S of the model's square ``"images"`` input."""
    shape = model.inputs[0].shape
    if shape[1] != shape[2]:
        raise ValueError(f"model {model.name!r} has a non-square input {tuple(shape[1:3])}; "
                         "keras_pose crops are square")
    return int(shape[1])


def joint_index(skeleton: Skeleton, joint: str | int) -> int:
    """Index of a joint given by name (``"r_wrist"``) or index.

    Args:
        skeleton: the model's skeleton.
        joint: joint name or integer index.

    Returns:
        The joint index.

    Raises:
        KeyError: unknown joint name (the message lists the valid names).
        ValueError: index out of range.
    """
    if isinstance(joint, (int, np.integer)) and not isinstance(joint, bool):
        if not 0 <= int(joint) < skeleton.num_joints:
            raise ValueError(f"joint index {int(joint)} is out of range for skeleton {skeleton.name!r} "
                             f"(0..{skeleton.num_joints - 1})")
        return int(joint)
    if isinstance(joint, str) and joint in skeleton.joint_names:
        return skeleton.joint_names.index(joint)
    raise KeyError(f"unknown joint {joint!r} for skeleton {skeleton.name!r}; valid joints: "
                   f"{', '.join(skeleton.joint_names)}")


def check_crop(model, crop) -> np.ndarray:
    """The crop as float32 (1, S, S, 3) in [0, 255], checked against the model's input size.

    Args:
        model: the keras_pose model.
        crop: (S, S, 3) or (1, S, S, 3) RGB, uint8 or float in [0, 255].

    Returns:
        (1, S, S, 3) float32.
    """
    x = np.asarray(crop, np.float32)
    if x.ndim == 3:
        x = x[None]
    s = model_input_size(model)
    if x.shape != (1, s, s, 3):
        raise ValueError(f"crop must be an RGB image of the model's input size ({s}, {s}, 3) "
                         f"(use keras_pose.viz.crop_for_model to cut one from an image); got shape {np.shape(crop)}")
    if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 255:
        raise ValueError("crop values must be finite and lie in [0, 255]")
    return x


def crop_for_model(model_or_size, image, box=None, padding: float = 1.25, color: str = "rgb") -> np.ndarray:
    """Cut the model's input crop from an image, as :class:`~keras_pose.inference.PosePredictor` does.

    Without ``box`` the whole image (its longer side, centred) is the crop;
    with ``box = (x1, y1, x2, y2)`` the crop is a square of side
    ``padding x max(box side)`` around the box centre.

    Args:
        model_or_size: a keras_pose model or the input side S.
        image: a file path, or an image array (see :mod:`keras_pose.inference`).
        box: optional person box in image pixels.
        padding: crop side over box side (the training padding).
        color: channel order of a 3/4-channel array, ``"rgb"`` or ``"bgr"``.

    Returns:
        (S, S, 3) uint8 RGB crop.
    """
    from keras_pose.data.transforms import affine_matrix, warp_images
    from keras_pose.inference import PosePredictor
    from keras_pose.skeletons import LSP14

    size = int(model_or_size) if isinstance(model_or_size, (int, np.integer)) else model_input_size(model_or_size)
    helper = PosePredictor(None, size, LSP14, padding, name="crop")
    img = helper.load_image(image, color)
    centre, side = helper.crop_geometry(img.shape, box)
    m = affine_matrix(centre[None], [side], size)
    crop = warp_images(img[None].astype(np.float32), m, size).numpy()[0]
    return np.clip(np.round(crop), 0, 255).astype(np.uint8)


def predict_crop(model, crop) -> dict:
    """Run the model on one crop (inference mode).

    Args:
        model: keras_pose model.
        crop: (S, S, 3) RGB in [0, 255].

    Returns:
        dict output name -> NumPy array of the first (only) batch element.
    """
    out = model(check_crop(model, crop), training=False)
    if not isinstance(out, dict):
        out = dict(zip(model.output_names, out if isinstance(out, (list, tuple)) else [out]))
    return {k: np.asarray(v)[0] for k, v in out.items()}


# ---------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------


def overlay_heatmap(crop, heatmap, alpha: float = 0.6, cmap: str = "jet", vmin: float | None = None,
                    vmax: float | None = None) -> np.ndarray:
    """Blend a heatmap of any resolution over an RGB crop.

    The heatmap is resized (bilinear) to the crop, scaled to [0, 1] with
    ``vmin``/``vmax`` (default: its own min and max), coloured with ``cmap``
    and blended with a per-pixel weight ``alpha x value``, so that cold areas
    keep the picture visible.

    Args:
        crop: (S, S, 3) RGB, uint8 or float in [0, 255].
        heatmap: (h, w) map.
        alpha: opacity of the hottest value.
        cmap: matplotlib colormap name.
        vmin, vmax: value range mapped to the colormap.

    Returns:
        (S, S, 3) uint8 RGB.
    """
    import cv2
    from matplotlib import colormaps

    img = np.asarray(crop, np.float32)
    hm = np.asarray(heatmap, np.float32)
    if hm.ndim != 2:
        raise ValueError(f"overlay_heatmap: heatmap must be 2-D (h, w), got shape {hm.shape}")
    hm = np.nan_to_num(hm)
    if hm.shape != img.shape[:2]:
        hm = cv2.resize(hm, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    lo = float(hm.min()) if vmin is None else float(vmin)
    hi = float(hm.max()) if vmax is None else float(vmax)
    v = np.clip((hm - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(hm)
    colour = colormaps[cmap](v)[..., :3] * 255.0
    w = (alpha * v)[..., None]
    return np.clip(img * (1.0 - w) + colour * w, 0, 255).astype(np.uint8)


def map_to_crop(xy, map_shape, crop_size: int) -> np.ndarray:
    """Map-cell coordinates (x, y) to crop pixels (cell centres, same convention as the decoders)."""
    h, w = map_shape[:2]
    xy = np.asarray(xy, np.float64)
    return np.stack([(xy[..., 0] + 0.5) * crop_size / w - 0.5, (xy[..., 1] + 0.5) * crop_size / h - 0.5], -1)


def _argmax_xy(hm) -> np.ndarray:
    r, c = np.unravel_index(int(np.argmax(hm)), hm.shape)
    return np.array([c, r], np.float64)


def _new_figure(rows: int, cols: int, panel: float = 2.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel * cols, panel * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _panel(ax, image, title: str, point=None, color: str = "white", fontsize: float = 9):
    from matplotlib import patheffects

    ax.imshow(image)
    if point is not None and np.all(np.isfinite(point)):
        ax.plot([point[0]], [point[1]], marker="+", color=color, markersize=14, markeredgewidth=2.5,
                path_effects=[patheffects.withStroke(linewidth=5, foreground="black")])
    ax.set_title(title, fontsize=fontsize)
    ax.set_axis_off()


def figure_to_array(fig) -> np.ndarray:
    """Render a Figure with Agg and return it as an (H, W, 3) uint8 RGB array.

    Args:
        fig: a matplotlib Figure.

    Returns:
        (H, W, 3) uint8.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig_or_image, path, dpi: int = 120) -> Path:
    """Write a Figure (or an RGB uint8 array) as an image file; parent folders are created.

    Figures that show dataset pixels belong in an ignored folder such as
    ``figures/`` (see ``.gitignore``); plots without dataset pixels (PCK
    curves) may go into ``docs/``.

    Args:
        fig_or_image: matplotlib Figure or (H, W, 3) uint8 RGB array.
        path: output file (``.png`` recommended).
        dpi: resolution for figures.

    Returns:
        The written path.
    """
    import cv2

    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig_or_image, np.ndarray):
        img = np.asarray(fig_or_image)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"save_figure: an image must be (H, W, 3) RGB, got shape {img.shape}")
        if not cv2.imwrite(os.fspath(path), cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2BGR)):
            raise ValueError(f"save_figure: could not write {path} (unsupported extension?)")
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig_or_image)
        fig_or_image.savefig(path, dpi=dpi)
    return path


# ---------------------------------------------------------------------------
# Per-family figures
# ---------------------------------------------------------------------------


def stage_heatmaps_figure(model, crop, joint: str | int, joints: Sequence[str | int] | None = None,
                          alpha: float = 0.6, cmap: str = "jet"):
    """The intermediate maps of a heatmap model for one crop, in the style of its paper's figure.

    Dispatches on the model's family:

    - ``cpm``: one panel per stage, ``stage_1 .. stage_T``, each showing the
      belief map of ``joint`` overlaid on the crop. All panels share one colour
      scale (0 to the largest value over the stages) so the sharpening is
      visible; titles give each stage's peak value; ``+`` marks the argmax.
      T axes.
    - ``part_heatmap``: two rows, one column per joint (``joint`` first, then
      ``joints`` or :data:`DEFAULT_EXTRA_JOINTS`, at most
      :data:`MAX_JOINTS`): the detection part map (sigmoid of the logits,
      scale [0, 1]) above the regression heatmap (clamped at 0). 2 x J axes.
    - ``softargmax``: the part map of ``joint`` and its ``N_c`` context maps
      (final block), each as its spatial softmax with the soft-argmax location
      marked; titles give the map's probability ``sigmoid(max logit)``.
      1 + N_c axes.

    Args:
        model: a keras_pose model (with its config attached, e.g. from
            ``build_model`` or ``keras_pose.zoo.load``).
        crop: (S, S, 3) RGB crop of the model's input size, in [0, 255]
            (:func:`crop_for_model`).
        joint: joint name (``"r_wrist"``) or index.
        joints: part heatmap regression only: the other joints to show.
        alpha: heatmap opacity.
        cmap: matplotlib colormap.

    Returns:
        A matplotlib Figure (one image per axis).

    Raises:
        ValueError: for DeepPose (no heatmaps), or a crop of the wrong size.
        KeyError: unknown joint name.
    """
    family = model_family(model)
    skeleton = model_skeleton(model)
    j = joint_index(skeleton, joint)
    if family == "deeppose":
        raise ValueError(f"model {model.name!r} is a DeepPose model: it regresses joint coordinates directly and has "
                         "no heatmaps or belief maps to show; use keras_pose.viz.saliency_figure (keras-pose "
                         "visualize --kind saliency|gradcam) or --kind skeleton instead")
    check_crop(model, crop)
    out = predict_crop(model, crop)
    crop = np.asarray(crop)
    if family == "cpm":
        return _cpm_figure(model, out, crop, skeleton, j, alpha, cmap)
    if family == "part_heatmap":
        others = DEFAULT_EXTRA_JOINTS if joints is None else joints
        idx = [j]
        for o in others:
            if isinstance(o, str) and o not in skeleton.joint_names and joints is None:
                continue
            k = joint_index(skeleton, o)
            if k not in idx:
                idx.append(k)
        return _part_heatmap_figure(model, out, crop, skeleton, idx[:MAX_JOINTS], alpha, cmap)
    if family == "softargmax":
        return _softargmax_figure(model, out, crop, skeleton, j, alpha, cmap)
    raise ValueError(f"stage_heatmaps_figure: unsupported family {family!r}")


def _cpm_figure(model, out, crop, skeleton, j, alpha, cmap):
    stages = sorted((k for k in out if k.startswith("stage_")), key=lambda k: int(k.split("_")[1]))
    maps = [out[k][..., j] for k in stages]
    vmax = max(float(np.max(m)) for m in maps)
    fig, axes = _new_figure(1, len(stages))
    s = crop.shape[0]
    for ax, name, m in zip(axes[0], stages, maps):
        _panel(ax, overlay_heatmap(crop, np.maximum(m, 0), alpha, cmap, 0.0, max(vmax, 1e-6)),
               f"{name.replace('_', ' ')} (peak {float(np.max(m)):.2f})", map_to_crop(_argmax_xy(m), m.shape, s))
    fig.suptitle(f"CPM belief maps of {skeleton.joint_names[j]} by stage ({model.name})", fontsize=10)
    return fig


def _part_heatmap_figure(model, out, crop, skeleton, idx, alpha, cmap):
    det = 1.0 / (1.0 + np.exp(-out["detection"].astype(np.float64)))
    reg = np.maximum(out["regression"], 0.0)
    fig, axes = _new_figure(2, len(idx))
    s = crop.shape[0]
    for col, k in enumerate(idx):
        name = skeleton.joint_names[k]
        d, r = det[..., k], reg[..., k]
        _panel(axes[0, col], overlay_heatmap(crop, d, alpha, cmap, 0.0, 1.0),
               f"detection: {name} (max {d.max():.2f})", map_to_crop(_argmax_xy(d), d.shape, s))
        _panel(axes[1, col], overlay_heatmap(crop, r, alpha, cmap, 0.0, max(float(r.max()), 1e-6)),
               f"regression: {name} (max {r.max():.2f})",
               map_to_crop(_argmax_xy(r), r.shape, s) if r.max() > 0 else None)
    fig.suptitle(f"Part detection (sigmoid) vs regression heatmaps ({model.name})", fontsize=10)
    return fig


def _softargmax_figure(model, out, crop, skeleton, j, alpha, cmap):
    from keras_pose.layers.softargmax import soft_argmax, spatial_softmax
    from keras_pose.models.common import model_config

    try:
        cfg = model_config(model)
        ramp = cfg.get("ramp", "linspace")
    except ValueError:
        ramp = "linspace"
    hm = out["heatmaps"].astype(np.float32)
    n = skeleton.num_joints
    nc = (hm.shape[-1] - n) // n
    if hm.shape[-1] != n * (1 + nc):
        raise ValueError(f"heatmaps of model {model.name!r} have {hm.shape[-1]} channels; expected N * (1 + N_c) "
                         f"with N = {n}")
    channels = [j] + [n + j * nc + i for i in range(nc)]
    logits = hm[None][..., channels]
    prob = np.asarray(spatial_softmax(logits))[0]
    xy = np.asarray(soft_argmax(logits, ramp))[0]  # (M, 2) normalised, corner convention
    s = crop.shape[0]
    fig, axes = _new_figure(1, len(channels))
    name = skeleton.joint_names[j]
    uniform = 1.0 / (prob.shape[0] * prob.shape[1])
    for i, ax in enumerate(axes[0]):
        p = 1.0 / (1.0 + np.exp(-float(logits[0, ..., i].max())))
        title = f"part map: {name}" if i == 0 else f"context {i}: {name}"
        # Cold at or below the uniform level 1 / (h w): a flat (undecided) map shows nothing.
        vmax = max(float(prob[..., i].max()), 2.0 * uniform)
        _panel(ax, overlay_heatmap(crop, prob[..., i], alpha, cmap, uniform, vmax), f"{title} (p {p:.2f})",
               xy[i] * s - 0.5)
    fig.suptitle(f"Soft-argmax part and context maps, final block ({model.name})", fontsize=10)
    return fig


__all__ = ["DEFAULT_EXTRA_JOINTS", "DEFAULT_JOINT", "MAX_JOINTS", "check_crop", "crop_for_model", "figure_to_array",
           "joint_index", "map_to_crop", "model_family", "model_input_size", "model_outputs", "model_skeleton",
           "overlay_heatmap", "predict_crop", "save_figure", "stage_heatmaps_figure"]
