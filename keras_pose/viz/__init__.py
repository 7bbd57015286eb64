"""Visualisation: skeletons on images, heatmaps per stage, saliency, PCK curves.

- :func:`draw_skeleton`: limbs and joints (with scores) on an image.
- :func:`stage_heatmaps_figure`: CPM belief maps per stage, part detection vs
  regression maps, soft-argmax part and context maps.
- :func:`saliency_figure` / :func:`saliency_map`: saliency, SmoothGrad,
  Grad-CAM and Grad-CAM++ for one joint (tf-keras-vis).
- :func:`pck_curves_figure`, :func:`paper_comparison_table`: PCK curves of
  several models and our PCK beside the papers' LSP numbers.
- :func:`reliability_figure`: do per-joint scores tell correct joints from
  wrong ones (from the reports of ``keras-pose evaluate``)?

Figures are ``matplotlib.figure.Figure`` objects made without pyplot (Agg;
nothing is shown); :func:`save_figure` writes them, :func:`figure_to_array`
renders them to RGB.
"""

from keras_pose.viz.curves import (PAPER_LSP_PCK, paper_comparison_table, pck_curves_figure, pck_results,
                                   reliability_figure)
from keras_pose.viz.heatmaps import (crop_for_model, figure_to_array, joint_index, model_family, model_skeleton,
                                     overlay_heatmap, save_figure, stage_heatmaps_figure)
from keras_pose.viz.saliency import default_gradcam_layer, saliency_figure, saliency_map
from keras_pose.viz.skeleton import draw_skeleton

__all__ = ["PAPER_LSP_PCK", "crop_for_model", "default_gradcam_layer", "draw_skeleton", "figure_to_array",
           "joint_index", "model_family", "model_skeleton", "overlay_heatmap", "paper_comparison_table",
           "pck_curves_figure", "pck_results", "reliability_figure", "save_figure", "saliency_figure", "saliency_map",
           "stage_heatmaps_figure"]
