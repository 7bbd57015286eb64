"""Per-family training objectives: target encoding + one loss per supervised output.

An :class:`Objective` is built from a model (its family and output shapes).
``encode(batch)`` turns an augmented batch (joints in input pixels and the
``visible`` / ``annotated`` / ``in_crop`` flags) into targets; ``__call__``
computes one loss per supervised output, keyed by output name, and their
weighted total. Losses naming an output the model does not have are an error
at construction time, never a silent zip.

Which joints count (the papers' rules):
- CPM belief maps: Gaussians for joints annotated and inside the crop (occluded
  ones too); every annotated joint's map counts, background always counts.
- Part detection: discs for *visible* joints only (paper); annotated joints count.
- Part regression: Gaussians for every annotated joint inside the crop.
- Soft-argmax: coordinates of joints annotated and inside the crop; the joint
  probability target is "annotated and inside" (deephar's rule).
- DeepPose: every annotated joint, in box-normalised coordinates.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Mapping

import keras
from keras import ops

from keras_pose import losses as L
from keras_pose.codecs import box_normalize, encode_discs, encode_heatmaps, encode_normalized, image_box
from keras_pose.models.common import model_config

UNSUPERVISED = ("keypoints", "scores", "heatmaps")

#: DeepPose's ``coordinate_loss`` choices.
COORDINATE_LOSSES = {"l2": L.coordinate_l2, "elastic_net": L.elastic_net}


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One supervised output: ``loss(targets[target], outputs[name], targets[mask]) * weight``."""

    loss: Callable
    target: str
    mask: str
    weight: float = 1.0


class Objective:
    """Targets and per-output losses for one model.

    Args:
        family: model family name.
        terms: output name -> :class:`LossTerm`.
        encoders: target name -> callable(batch) -> tensor.
        output_names: the model's output names (checked against ``terms``).
    """

    def __init__(self, family: str, terms: Mapping[str, LossTerm], encoders: Mapping[str, Callable], output_names):
        self.family, self.terms, self.encoders = family, dict(terms), dict(encoders)
        unknown = sorted(set(self.terms) - set(output_names))
        if unknown:
            raise ValueError(f"{family} objective: losses for {unknown} but the model has no such outputs; "
                             f"outputs: {sorted(output_names)}")
        missing = sorted(set(output_names) - set(self.terms) - set(UNSUPERVISED))
        if missing:
            raise ValueError(f"{family} objective: outputs {missing} have no loss (and are not in {UNSUPERVISED})")
        for name, t in self.terms.items():
            for key in (t.target, t.mask):
                if key not in self.encoders:
                    raise ValueError(f"{family} objective: output {name!r} needs target {key!r}, which is not encoded")

    def with_weights(self, weights: Mapping[str, float]) -> "Objective":
        """A copy with some loss weights changed; keys are output names or regexes matching them."""
        terms = dict(self.terms)
        for key, w in weights.items():
            hits = [n for n in terms if n == key or re.fullmatch(key, n)]
            if not hits:
                raise ValueError(f"loss weight {key!r} matches no supervised output; outputs: {sorted(terms)}")
            for n in hits:
                terms[n] = dataclasses.replace(terms[n], weight=float(w))
        return Objective(self.family, terms, self.encoders, list(terms) + list(UNSUPERVISED))

    def encode(self, batch) -> dict:
        """Targets for an augmented batch (dict with joints, visible, annotated, in_crop)."""
        return {k: f(batch) for k, f in self.encoders.items()}

    def __call__(self, outputs, targets):
        """Returns ``(total, {output name: unweighted loss})``."""
        per = {}
        total = 0.0
        for name, t in self.terms.items():
            value = t.loss(targets[t.target], outputs[name], targets[t.mask])
            per[name] = value
            if t.weight:
                total = total + t.weight * value
        return total, per


def _f32(x):
    return ops.cast(x, "float32")


def _map_size(model, name):
    shape = dict(zip(model.output_names, [o.shape for o in model.outputs]))[name]
    return int(shape[1]), int(shape[2])


def _stride(model, name):
    return max(1, _input_size(model)[0] // _map_size(model, name)[0])


def _input_size(model):
    shape = model.input_shape if isinstance(model.input_shape, tuple) else model.input_shape[0]
    return int(shape[1]), int(shape[2])


def body_size(joints, mask):
    """(B,) larger side of the bounding box of the masked joints (pixels)."""
    m = _f32(mask)[..., None]
    big = 1e9
    lo = ops.min(joints * m + big * (1.0 - m), axis=1)
    hi = ops.max(joints * m - big * (1.0 - m), axis=1)
    side = ops.max(hi - lo, axis=-1)
    return ops.where(ops.sum(m[..., 0], axis=1) >= 2, side, 0.0)


def make_objective(model: keras.Model, sigma: float | None = None, disc_radius: float = 0.05,
                   regression_sigma: float | None = None, prob_weight: float = 1.0,
                   coordinate_loss: str = "l2", weights: Mapping[str, float] | None = None) -> Objective:
    """The paper objective for ``model``'s family.

    Args:
        model: a keras_pose model (its config says the family).
        sigma: CPM belief-map Gaussian std in input pixels (default 0.875
            cells, the paper's 7 px at stride 8).
        disc_radius: part-detection disc radius as a fraction of body size
            (0.05 = 10 px for a 200 px person, the paper).
        regression_sigma: part-regression Gaussian std in input pixels
            (default 5 px at 256 input, scaled with the input).
        prob_weight: lambda for the soft-argmax joint-probability loss.
        coordinate_loss: DeepPose's loss on the box-normalised coordinates:
            ``"l2"`` (the paper's squared L2, summed over joints) or
            ``"elastic_net"`` (L1 + squared L2 per joint, averaged over the
            annotated joints, the soft-argmax paper's loss).
        weights: output name (or regex) -> loss weight.
    """
    family = model_config(model)["family"]
    names = list(model.output_names)
    h_in, w_in = _input_size(model)
    base = {
        "mask_annotated": lambda b: _f32(b["annotated"]),
        "mask_in_crop": lambda b: _f32(b["in_crop"]),
    }
    if family == "cpm":
        stages = sorted((n for n in names if n.startswith("stage_")), key=lambda n: int(n.split("_")[1]))
        size, stride = _map_size(model, stages[0]), _stride(model, stages[0])
        s = sigma if sigma is not None else 0.875 * stride  # the paper's 7 px at stride 8, in cells
        enc = dict(base, belief=lambda b: encode_heatmaps(b["joints"], b["in_crop"], size, stride, s, background=True))
        terms = {n: LossTerm(_cpm_loss, "belief", "mask_annotated") for n in stages}
    elif family == "part_heatmap":
        dsize, dstride = _map_size(model, "detection"), _stride(model, "detection")
        rsize, rstride = _map_size(model, "regression"), _stride(model, "regression")
        rs = regression_sigma if regression_sigma is not None else 5.0 * w_in / 256.0
        rs = max(rs, 0.75 * rstride)
        enc = dict(base,
                   discs=lambda b: encode_discs(b["joints"], b["visible"], dsize, dstride,
                                                ops.maximum(disc_radius * body_size(b["joints"], b["in_crop"]),
                                                            0.75 * dstride)),
                   gauss=lambda b: encode_heatmaps(b["joints"], b["in_crop"], rsize, rstride, rs))
        terms = {"detection": LossTerm(L.sigmoid_cross_entropy_maps, "discs", "mask_annotated"),
                 "regression": LossTerm(L.heatmap_squared_error, "gauss", "mask_annotated")}
    elif family == "softargmax":
        blocks = sorted((n for n in names if n.startswith("pose_")), key=lambda n: int(n.split("_")[1]))
        enc = dict(base,
                   coords=lambda b: encode_normalized(b["joints"], (h_in, w_in)),
                   prob=lambda b: _f32(b["in_crop"])[..., None])
        terms = {}
        for n in blocks:
            k = n.split("_")[1]
            terms[n] = LossTerm(L.elastic_net, "coords", "mask_in_crop")
            terms[f"visibility_{k}"] = LossTerm(L.binary_cross_entropy, "prob", "mask_annotated", prob_weight)
    elif family == "deeppose":
        center, size = image_box((h_in, w_in))
        enc = dict(base, coords=lambda b: box_normalize(b["joints"], ops.convert_to_tensor(center, "float32"),
                                                        ops.convert_to_tensor(size, "float32")))
        if coordinate_loss not in COORDINATE_LOSSES:
            raise ValueError(f"loss.coordinate_loss: one of {sorted(COORDINATE_LOSSES)}, got {coordinate_loss!r}")
        terms = {"coords": LossTerm(COORDINATE_LOSSES[coordinate_loss], "coords", "mask_annotated")}
    else:
        raise ValueError(f"no objective for model family {family!r}")
    obj = Objective(family, terms, enc, names)
    return obj.with_weights(weights) if weights else obj


def _cpm_loss(target, pred, mask):
    """CPM belief-map loss: squared error incl. the background channel (last)."""
    return L.heatmap_squared_error(target, pred, mask, extra_channels=1)
