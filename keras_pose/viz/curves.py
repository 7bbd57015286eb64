"""PCK curves of several models and our per-group PCK beside the papers' LSP numbers.

- :func:`pck_results` runs models on a dataset (LSP test split for the CLI)
  through :func:`keras_pose.evaluation.evaluate_model`, giving for each model
  ``(pred, gt, mask, normalizer)`` in original image pixels.
- :func:`pck_curves_figure` turns such a dict into PCK-vs-threshold curves
  (:func:`keras_pose.metrics.pdj_curve` + :func:`keras_pose.metrics.plot_pck_curves`).
- :func:`paper_comparison_table` puts our per-group PCK@0.2 beside the rows
  of :data:`PAPER_LSP_PCK`.

PCK curves contain no dataset pixels and may be written to ``docs/``.

Example:
    >>> from keras_pose.viz import pck_curves_figure, paper_comparison_table
    >>> fig = pck_curves_figure({"cpm_lsp": (pred, gt, mask, None)})       # doctest: +SKIP
    >>> paper_comparison_table({"cpm_lsp": per_joint})                     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from keras_pose import metrics
from keras_pose.skeletons import LSP14, Skeleton

_GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


@dataclasses.dataclass(frozen=True)
class PaperResult:
    """One published LSP PCK@0.2 row (person-centric, torso = left shoulder to right hip), in percent.

    Args:
        name: row label.
        family: keras_pose family it corresponds to.
        training_data: what the authors trained on.
        groups: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle (NaN where not published).
        total: the published total.
        source: where the numbers come from (paper table, via ``docs/paper_specs.md``).
    """

    name: str
    family: str
    training_data: str
    groups: tuple
    total: float
    source: str


_NA = (float("nan"),) * 7

#: The papers' LSP PCK@0.2 rows, copied from ``/work/shared/docs/paper_specs.md`` sections 2.6
#: (CPM), 3.7 (part heatmap regression) and 4.6 (soft-argmax). DeepPose reports LSP only as
#: PCP and PDJ curves (spec 1.5), so it has no row here.
PAPER_LSP_PCK: tuple[PaperResult, ...] = (
    PaperResult("CPM (paper)", "cpm", "LSP + LSPET", _NA, 84.32,
                "Wei et al. CVPR 2016, text (spec 2.6); per-joint values not published"),
    PaperResult("CPM (paper, +MPII)", "cpm", "LSP + LSPET + MPII", (97.8, 92.5, 87.0, 83.9, 91.5, 90.8, 89.9), 90.5,
                "Luvizon et al. 2019 Table 2, citing CPM (spec 2.6)"),
    PaperResult("Part heatmap regression, residual (paper)", "part_heatmap", "MPII, fine-tuned on LSP",
                (96.3, 92.2, 88.2, 85.2, 92.2, 91.5, 88.6), 90.7, "Bulat & Tzimiropoulos ECCV 2016 Table 7 (spec 3.7)"),
    PaperResult("Part heatmap regression, VGG (paper)", "part_heatmap", "MPII, fine-tuned on LSP",
                (94.8, 86.6, 79.5, 73.5, 88.1, 83.2, 78.5), 83.5, "Bulat & Tzimiropoulos ECCV 2016 Table 7 (spec 3.7)"),
    PaperResult("Soft-argmax (paper)", "softargmax", "MPII, fine-tuned on LSP",
                (97.5, 93.3, 87.6, 84.6, 92.8, 92.0, 90.0), 91.1, "Luvizon et al. C&G 2019 Table 2 (spec 4.6)"),
)


# ---------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------


def _unpack(name, value, skeleton):
    if not isinstance(value, (tuple, list)) or len(value) not in (3, 4):
        length = len(value) if hasattr(value, "__len__") else "?"
        raise ValueError(f"results[{name!r}] must be (pred, gt, mask, normalizer) (normalizer may be None for the "
                         f"torso size); got {type(value).__name__} of length {length}")
    pred, gt, mask = value[:3]
    norm = value[3] if len(value) == 4 else None
    gt = np.asarray(gt, np.float64)
    if norm is None:
        norm = metrics.torso_sizes(gt, skeleton)
    return np.asarray(pred, np.float64), gt, None if mask is None else np.asarray(mask, bool), norm


def pck_curves_figure(results: Mapping[str, tuple], skeleton: Skeleton = LSP14, thresholds=metrics.PDJ_THRESHOLDS,
                      title: str = "PCK on LSP test (torso-normalised)", mark: float | None = 0.2):
    """PCK against the normalised distance threshold, one line per model (legend gives the AUC).

    Args:
        results: model name -> ``(pred, gt, mask, normalizer)``: predictions
            and ground truth (N, K, 2) in the same pixels, ``mask`` bool (N, K)
            annotated joints (or None), ``normalizer`` (N,) per-sample lengths,
            or None for the torso size of ``gt`` (PCK as the LSP papers use it).
        skeleton: joint order (torso joints for the default normaliser).
        thresholds: increasing thresholds (default 0 .. 0.5 by 0.01).
        title: axes title.
        mark: draw a dotted vertical line at this threshold (None: no line).

    Returns:
        A matplotlib Figure with one axis.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty mapping name -> (pred, gt, mask, normalizer)")
    curves = {}
    for name, value in results.items():
        pred, gt, mask, norm = _unpack(name, value, skeleton)
        t, rates, _ = metrics.pdj_curve(pred, gt, mask, norm, thresholds)
        curves[name] = (t, rates)
    fig = metrics.plot_pck_curves(curves, title=title)
    if mark is not None:
        ax = fig.axes[0]
        ax.axvline(float(mark), color="grey", linestyle=":", linewidth=1)
    return fig


def pck_results(models: Mapping[str, object], dataset, limit: int | None = None, padding: float = 1.25,
                batch_size: int = 16, flip: bool = False) -> tuple[dict, dict]:
    """Run models on a dataset and collect what :func:`pck_curves_figure` and :func:`paper_comparison_table` need.

    Args:
        models: name -> Keras model (or a zoo name / preset folder, loaded with
            :func:`keras_pose.zoo.load`).
        dataset: a :class:`~keras_pose.data.records.PoseDataset` (e.g. ``read_lsp(root, "test")``).
        limit: only the first ``limit`` records.
        padding, batch_size, flip: as in :func:`keras_pose.evaluation.evaluate_model`.

    Returns:
        ``(results, per_joint)``: ``results[name] = (pred, gt, mask, torso)``
        in original image pixels, and ``per_joint[name]`` = (K,) PCK@0.2
        fractions.
    """
    from keras_pose import zoo
    from keras_pose.evaluation import evaluate_model

    if limit is not None:
        dataset = dataset[:limit]
    arrays = dataset.arrays()
    gt, mask = arrays["joints"], arrays["annotated"]
    torso = metrics.torso_sizes(gt, dataset.skeleton)
    results, per_joint = {}, {}
    for name, model in models.items():
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            model = zoo.load(model, cascade=True)  # a DeepPose cascade is scored whole
        res = evaluate_model(model, dataset, padding=padding, batch_size=batch_size, flip=flip)
        results[name] = (res["keypoints"], gt, mask, torso)
        per_joint[name] = np.asarray(res["per_joint"]) / 100.0
    return results, per_joint


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------


def paper_comparison_table(per_joint_by_model: Mapping[str, object], skeleton: Skeleton = LSP14,
                           papers: Sequence[str] | None = None):
    """Our per-group PCK@0.2 beside the papers' published LSP rows.

    Args:
        per_joint_by_model: model name -> (K,) per-joint PCK fractions, or a
            :class:`~keras_pose.metrics.PCKResult` (as :func:`keras_pose.metrics.results_table`).
            May be empty (papers only).
        skeleton: the joints' skeleton; the paper rows use the LSP groups
            (Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle).
        papers: families whose paper rows to include (default: all of
            :data:`PAPER_LSP_PCK`).

    Returns:
        pandas DataFrame indexed by "Model", columns Head .. Ankle, Total (in
        percent; NaN where a paper does not publish a value), "Training data"
        and "Source". Our rows come first.
    """
    import pandas as pd

    columns = [*_GROUPS, "Total"]
    frames = []
    if per_joint_by_model:
        ours = metrics.results_table(dict(per_joint_by_model), skeleton)
        missing = [c for c in columns if c not in ours.columns]
        if missing:
            raise ValueError(f"skeleton {skeleton.name!r} lacks the groups {missing} of the papers' LSP tables")
        ours = ours[columns].copy()
        ours["Training data"] = "see the model card"
        ours["Source"] = "measured (keras_pose)"
        frames.append(ours)
    rows = {}
    for p in PAPER_LSP_PCK:
        if papers is not None and p.family not in papers:
            continue
        rows[p.name] = {**dict(zip(_GROUPS, p.groups)), "Total": p.total, "Training data": p.training_data,
                        "Source": p.source}
    if rows:
        paper = pd.DataFrame.from_dict(rows, orient="index", columns=[*columns, "Training data", "Source"])
        frames.append(paper)
    if not frames:
        raise ValueError("paper_comparison_table: nothing to show (no models and no paper rows selected)")
    df = pd.concat(frames)
    df.index.name = "Model"
    # Plain object columns: metrics.table_to_markdown tests dtypes with NumPy, which rejects pandas' StringDtype.
    for c in ("Training data", "Source"):
        df[c] = df[c].astype(object)
    return df


__all__ = ["PAPER_LSP_PCK", "PaperResult", "paper_comparison_table", "pck_curves_figure", "pck_results"]


# ---------------------------------------------------------------------------
# Per-joint confidence
# ---------------------------------------------------------------------------


def reliability_figure(confidence: Mapping[str, dict], title: str = "Per-joint score reliability (LSP test)"):
    """Reliability diagram: the fraction of joints correct at PCK@0.2 against the mean score, per score bin.

    Args:
        confidence: model name -> the ``confidence`` part of an evaluation
            report (:func:`keras_pose.evaluation.confidence_report`: ``auroc``
            and, for scores in [0, 1], ``ece`` and ``reliability`` with
            ``edges``, ``count``, ``mean_score``, ``accuracy``).
        title: the upper axes' title.

    Returns:
        A matplotlib Figure: the diagram (a perfectly calibrated score lies on
        the diagonal; the legend gives ROC AUC and ECE) above the share of
        joints in each bin.
    """
    from matplotlib.figure import Figure

    if not isinstance(confidence, Mapping) or not confidence:
        raise ValueError("confidence must be a non-empty mapping name -> report['confidence']")
    fig = Figure(figsize=(6.0, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for name, conf in confidence.items():
        rel = conf.get("reliability") if isinstance(conf, Mapping) else None
        if rel is None:
            raise ValueError(f"{name}: no reliability table (its scores are not in [0, 1], or the report predates "
                             "it: run keras-pose evaluate again)")
        edges = np.asarray(rel["edges"], float)
        mids = (edges[:-1] + edges[1:]) / 2
        acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], float)
        score = np.array([np.nan if v is None else v for v in rel["mean_score"]], float)
        count = np.asarray(rel["count"], float)
        line, = top.plot(score, acc, marker="o", label=f"{name} (AUC {conf['auroc']:.2f}, ECE {conf['ece']:.2f})")
        bottom.bar(mids, count / max(1.0, count.sum()), width=(edges[1] - edges[0]) * 0.8, alpha=0.5,
                   color=line.get_color())
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="fraction correct at PCK@0.2", title=title)
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    bottom.set(xlabel="per-joint score", ylabel="share of joints")
    fig.tight_layout()
    return fig
