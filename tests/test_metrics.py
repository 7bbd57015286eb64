"""Tests for keras_pose.metrics: hand-computed cases, no TensorFlow needed."""

import subprocess
import sys

import numpy as np
import pytest

from keras_pose import metrics as M
from keras_pose.skeletons import LSP14, MPII16, Skeleton

# A standing person in LSP14 order (pixels). Torso = |l_shoulder - r_hip| = |(70,50) - (45,110)| = 65.
_LSP_POSE = np.array([
    (40, 190), (42, 150), (45, 110), (65, 110), (68, 150), (70, 190),  # r_ankle .. l_ankle
    (20, 110), (25, 80), (40, 50), (70, 50), (85, 80), (90, 110),      # r_wrist .. l_wrist
    (55, 40), (55, 10),                                                 # neck, head_top
], dtype=np.float64)


def lsp_gt(n=1):
    return np.repeat(_LSP_POSE[None], n, axis=0)


def one_joint(n=1, k=1, xy=(0.0, 0.0)):
    out = np.zeros((n, k, 2))
    out[...] = xy
    return out


# --------------------------------------------------------------------------- distances / normalisers

def test_joint_distances_345():
    d = M.joint_distances([[[3.0, 4.0], [1.0, 1.0]]], [[[0.0, 0.0], [1.0, 1.0]]])
    np.testing.assert_allclose(d, [[5.0, 0.0]])


def test_torso_sizes_uses_left_shoulder_and_right_hip():
    assert LSP14.torso_indices == (9, 2)
    gt = lsp_gt(2)
    gt[1, 9] = (45, 70)  # l_shoulder straight above r_hip: torso 40
    np.testing.assert_allclose(M.torso_sizes(gt, LSP14), [65.0, 40.0])


def test_torso_sizes_without_torso_raises():
    sk = Skeleton(name="two", joint_names=("a", "b"), mirror={}, limbs=(("a", "b"),), joint_groups={})
    with pytest.raises(ValueError, match="no torso"):
        M.torso_sizes(np.zeros((1, 2, 2)), sk)


def test_head_sizes_is_0p6_diagonal():
    np.testing.assert_allclose(M.head_sizes([[0, 0, 30, 40], [10, 10, 13, 14]]), [30.0, 3.0])


# --------------------------------------------------------------------------- PCK

def test_pck_threshold_is_inclusive():
    gt = one_joint(k=3)
    pred = gt.copy()
    pred[0, 0] = (3.0, 4.0)        # 5 / 25 = 0.2 exactly -> correct
    pred[0, 1] = (3.0, 4.0001)     # just beyond -> incorrect
    pred[0, 2] = (0.0, -5.0)       # exactly at threshold in another direction -> correct
    r = M.pck(pred, gt, None, [25.0], alpha=0.2)
    assert r.correct.tolist() == [[True, False, True]]
    np.testing.assert_allclose(r.per_joint, [1.0, 0.0, 1.0])
    assert r.mean == pytest.approx(2 / 3)
    np.testing.assert_allclose(r.distances, [[0.2, np.hypot(3.0, 4.0001) / 25, 0.2]])


def test_pck_lsp_at_and_beyond_threshold():
    gt = lsp_gt(2)
    gt[:, 9] = (45, 10)  # l_shoulder 100 px above r_hip: torso 100, threshold 20 px
    pred = gt.copy()
    pred[0, 6, 0] += 20.0      # exactly at 0.2 x torso
    pred[1, 6, 0] += 20.001    # just beyond
    r = M.pck_lsp(pred, gt)
    assert r.correct[:, 6].tolist() == [True, False]
    assert r.per_joint[6] == 0.5
    assert r.mean == pytest.approx(27 / 28)


def test_masked_joints_are_excluded():
    gt = one_joint(n=2, k=2)
    pred = gt.copy()
    pred[0, 1] = (100.0, 0.0)  # wrong, but not annotated
    pred[1, 1] = (100.0, 0.0)  # wrong and annotated
    mask = np.array([[True, False], [True, True]])
    r = M.pck(pred, gt, mask, [10.0, 10.0])
    np.testing.assert_allclose(r.per_joint, [1.0, 0.0])
    assert r.mean == pytest.approx(2 / 3)
    assert not r.correct[0, 1]
    assert r.counts.tolist() == [2, 1]


def test_never_valid_joint_is_nan_and_left_out_of_mean():
    gt = one_joint(n=2, k=3)
    pred = gt.copy()
    pred[:, 2] = (np.nan, np.nan)   # never annotated: its prediction does not matter
    mask = np.array([[True, True, False], [True, True, False]])
    r = M.pck(pred, gt, mask, 1.0)  # a scalar normaliser is broadcast
    assert np.isnan(r.per_joint[2])
    np.testing.assert_allclose(r.per_joint[:2], [1.0, 1.0])
    assert r.mean == 1.0


def test_non_finite_prediction_counts_as_incorrect():
    gt = one_joint(n=1, k=2)
    pred = gt.copy()
    pred[0, 0] = (np.nan, 0.0)
    r = M.pck(pred, gt, None, [10.0])
    assert r.correct.tolist() == [[False, True]]


def test_invalid_normaliser_raises_with_count_and_indices():
    gt = one_joint(n=4)
    with pytest.raises(ValueError, match=r"normalizer.*2 of 4 samples.*indices \[1, 3\]"):
        M.pck(gt, gt, None, [1.0, 0.0, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"2 of 4 samples.*indices \[0, 2\]"):
        M.pck(gt, gt, None, [-1.0, 1.0, np.inf, 1.0])


def test_zero_torso_raises_in_pck_lsp():
    gt = lsp_gt(3)
    gt[2, 9] = gt[2, 2]  # l_shoulder on r_hip
    with pytest.raises(ValueError, match=r"torso size.*1 of 3 samples.*indices \[2\]"):
        M.pck_lsp(gt, gt)


def test_pck_lsp_requires_annotated_torso():
    gt = lsp_gt(2)
    mask = np.ones((2, 14), bool)
    mask[1, 2] = False  # r_hip not annotated
    with pytest.raises(ValueError, match=r"torso joints.*1 of 2 samples.*\[1\]"):
        M.pck_lsp(gt, gt, mask)


def test_non_finite_ground_truth_at_annotated_joint_raises():
    gt = one_joint(n=2, k=2)
    gt[1, 0] = (np.nan, 0.0)
    with pytest.raises(ValueError, match=r"gt has non-finite.*\(1, 0\)"):
        M.pck(gt, gt, None, 1.0)
    mask = np.array([[True, True], [False, True]])
    assert M.pck(gt, gt, mask, 1.0).mean == 1.0  # fine once it is masked out


@pytest.mark.parametrize("call, arg, received", [
    (lambda: M.pck(np.zeros((2, 14)), np.zeros((2, 14)), None, 1.0), "pred", "(2, 14)"),
    (lambda: M.pck(np.zeros((2, 14, 2)), np.zeros((2, 13, 2)), None, 1.0), "gt", "(2, 13, 2)"),
    (lambda: M.pck(np.zeros((2, 14, 2)), np.zeros((2, 14, 2)), np.ones((2, 13), bool), 1.0), "mask", "(2, 13)"),
    (lambda: M.pck(np.zeros((2, 14, 2)), np.zeros((2, 14, 2)), None, np.ones(3)), "normalizer", "(3,)"),
    (lambda: M.head_sizes(np.zeros((2, 2))), "head_boxes", "(2, 2)"),
    (lambda: M.pckh(np.zeros((2, 16, 2)), np.zeros((2, 16, 2)), None, np.ones((3, 4))), "head_boxes", "(3, 4)"),
    (lambda: M.pck_lsp(np.zeros((2, 16, 2)), np.zeros((2, 16, 2))), "gt", "(2, 16, 2)"),
    (lambda: M.joint_distances(np.zeros((2, 14, 3)), np.zeros((2, 14, 3))), "pred", "(2, 14, 3)"),
    (lambda: M.pcp(np.zeros((2, 14, 2)), np.zeros((2, 14, 2)), MPII16), "gt", "(2, 14, 2)"),
    (lambda: M.curve_auc([0.0, 0.5], [1.0, 1.0, 1.0]), "rates", "(3,)"),
])
def test_wrong_shapes_raise_naming_the_argument(call, arg, received):
    with pytest.raises(ValueError) as err:
        call()
    msg = str(err.value)
    assert msg.startswith(arg + " "), msg
    assert received in msg, msg
    assert "shape" in msg, msg


def test_wrong_shape_message_gives_expected_and_received():
    with pytest.raises(ValueError, match=r"gt must have shape \(N, K, 2\) = \(2, 14, 2\) .*received \(2, 13, 2\)"):
        M.joint_distances(np.zeros((2, 14, 2)), np.zeros((2, 13, 2)))


def test_non_boolean_mask_is_rejected():
    gt = one_joint(n=1, k=2)
    with pytest.raises(TypeError, match="mask must be a boolean"):
        M.pck(gt, gt, np.ones((1, 2), int), 1.0)


# --------------------------------------------------------------------------- PCKh

def test_pckh_on_hand_made_head_box():
    box = [[0.0, 0.0, 30.0, 40.0]]  # diagonal 50 -> head size 30 -> threshold 15 px at alpha 0.5
    gt = one_joint(k=3, xy=(100.0, 100.0))
    pred = gt.copy()
    pred[0, 0, 0] += 15.0   # at threshold
    pred[0, 1, 1] += 15.5   # beyond
    pred[0, 2] += (9.0, 12.0)  # 15 px diagonally
    r = M.pckh(pred, gt, None, box)
    assert r.correct.tolist() == [[True, False, True]]
    assert r.alpha == 0.5


def test_pckh_total_excludes_pelvis_and_thorax():
    gt = np.tile(np.arange(16.0)[None, :, None], (2, 1, 2)) * 10
    pred = gt.copy()
    pred[:, MPII16.index("pelvis")] += 100.0
    pred[:, MPII16.index("thorax")] += 100.0
    r = M.pckh(pred, gt, None, [[0, 0, 30, 40]] * 2)
    assert r.mean == pytest.approx(14 / 16)
    assert M.pckh_total(r) == 1.0
    with pytest.raises(ValueError, match="16 joints"):
        M.pckh_total(r, skeleton=LSP14)


# --------------------------------------------------------------------------- PCP

def test_strict_pcp_one_endpoint_off_is_incorrect():
    gt = lsp_gt()
    pred = gt.copy()
    i_w, i_e = LSP14.index("r_wrist"), LSP14.index("r_elbow")
    forearm = np.hypot(*(gt[0, i_w] - gt[0, i_e]))
    pred[0, i_w, 0] += 0.6 * forearm  # wrist off by 0.6 L, elbow exact (loose PCP would accept: mean 0.3 L)
    r = M.pcp(pred, gt, LSP14)
    names = r.names
    limb = names.index("r_wrist-r_elbow")
    assert not r.correct[0, limb]
    assert r.correct[0, [i for i in range(len(names)) if i != limb]].all()
    assert r.mean == pytest.approx(10 / 11)
    assert r.per_limb[limb] == 0.0


def test_strict_pcp_threshold_is_inclusive():
    gt = lsp_gt(2)  # neck (55, 40) - head_top (55, 10): length 30, threshold 15 px
    pred = gt.copy()
    head = LSP14.index("head_top")
    pred[0, head, 0] += 15.0
    pred[1, head, 0] += 15.001
    r = M.pcp(pred, gt, LSP14)
    assert r.correct[:, r.names.index("neck-head_top")].tolist() == [True, False]


def test_pcp_mask_drops_limbs_with_unannotated_endpoints():
    gt = lsp_gt(2)
    pred = gt.copy()
    pred[:, LSP14.index("r_ankle")] += 100.0
    mask = np.ones((2, 14), bool)
    mask[:, LSP14.index("r_ankle")] = False
    r = M.pcp(pred, gt, LSP14, mask=mask)
    limb = r.names.index("r_ankle-r_knee")
    assert np.isnan(r.per_limb[limb])
    assert not r.valid[:, limb].any()
    assert r.mean == 1.0


def test_paper_pcp_sticks_are_derived_from_names():
    sticks = M.paper_pcp_sticks(LSP14)
    assert len(sticks) == 10
    counts = {g: sum(s.group == g for s in sticks) for g in M.PCP_GROUPS}
    assert counts == {"Torso": 1, "Upper leg": 2, "Lower leg": 2, "Upper arm": 2, "Forearm": 2, "Head": 1}
    torso = sticks[0]
    assert (set(torso.start), set(torso.end)) == ({2, 3}, {8, 9})  # mid-hips to mid-shoulders
    head = [s for s in sticks if s.group == "Head"][0]
    assert (head.start, head.end) == ((12,), (13,))
    mpii = M.paper_pcp_sticks(MPII16)
    assert [s.name for s in mpii if s.group == "Head"] == ["upper_neck-head_top"]
    assert len(mpii) == 10


def test_pcp_groups_layout_and_total():
    gt = lsp_gt(2)
    pred = gt.copy()
    pred[0, LSP14.index("r_wrist"), 0] += 100.0  # one forearm wrong in one of two samples
    g = M.pcp_groups(pred, gt)
    assert list(g) == [*M.PCP_GROUPS, "Total"]
    assert g["Forearm"] == pytest.approx(0.75)   # mean of right (0.5) and left (1.0)
    assert g["Total"] == pytest.approx(19 / 20)  # over 10 sticks x 2 samples, not the mean of the 6 groups
    assert all(g[k] == 1.0 for k in ("Torso", "Upper leg", "Lower leg", "Upper arm", "Head"))
    df = M.pcp_table({"a": g, "b": g})
    assert list(df.columns) == [*M.PCP_GROUPS, "Total"]
    assert df.loc["a", "Forearm"] == pytest.approx(75.0)


def test_pcp_torso_stick_uses_midpoints():
    gt = lsp_gt()
    pred = gt.copy()
    # Torso stick: mid-hips (55, 110) to mid-shoulders (55, 50), length 60. Moving the hips 30 px apart
    # each way leaves the midpoint, so the stick stays correct even though each hip is far off.
    pred[0, 2, 0] -= 30.0
    pred[0, 3, 0] += 30.0
    sticks = M.paper_pcp_sticks(LSP14)
    r = M.pcp(pred, gt, LSP14, sticks=sticks)
    assert r.correct[0, 0]


# --------------------------------------------------------------------------- PDJ / AUC

def test_pdj_auc_of_perfect_predictions_is_one():
    gt = lsp_gt(3)
    t, rates, per_joint = M.pdj_curve(gt, gt, None, M.torso_sizes(gt))
    assert t.shape == (51,) and rates.shape == (51,) and per_joint.shape == (51, 14)
    np.testing.assert_allclose(rates, 1.0)
    assert M.curve_auc(t, rates) == pytest.approx(1.0)
    np.testing.assert_allclose(M.curve_auc(t, per_joint), np.ones(14))


def test_pdj_auc_of_constant_error():
    gt = one_joint(n=2, k=3)
    pred = gt + np.array([1.05, 0.0])  # normalised error 0.105 everywhere (normaliser 10)
    t, rates, _ = M.pdj_curve(pred, gt, None, [10.0, 10.0])
    assert (rates[t <= 0.1] == 0).all() and (rates[t >= 0.11] == 1).all()
    # Step between 0.10 and 0.11: area = 0.39 + 0.01 / 2 = 0.395, over the span 0.5.
    assert M.curve_auc(t, rates) == pytest.approx(0.79)
    assert M.curve_auc(t, rates) == pytest.approx(1 - 0.105 / 0.5)


def test_curve_auc_of_a_ramp_is_half():
    t = np.linspace(0, 0.5, 11)
    assert M.curve_auc(t, t / 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        M.curve_auc(t[::-1], t)


# --------------------------------------------------------------------------- tables and plots

def test_results_table_layout_for_lsp14():
    per_joint = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 1.0, 1.0, 0.5, 1.0])
    df = M.results_table({"a": per_joint, "b": np.ones(14)}, LSP14)
    assert list(df.columns) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total"]
    assert list(df.index) == ["a", "b"] and df.index.name == "Model"
    expected = {"Head": (0.5 + 1.0) / 2, "Shoulder": (0.1 + 0.0) / 2, "Elbow": (0.2 + 1.0) / 2,
                "Wrist": (0.3 + 1.0) / 2, "Hip": (0.7 + 0.6) / 2, "Knee": (0.8 + 0.5) / 2,
                "Ankle": (0.9 + 0.4) / 2}
    for col, v in expected.items():
        assert df.loc["a", col] == pytest.approx(100 * v), col
    assert df.loc["a", "Total"] == pytest.approx(100 * per_joint.mean())  # mean over the 14 joints
    assert (df.loc["b"] == 100.0).all()
    # With a NaN joint the mean of joints and the mean of groups differ; Total is the mean of joints.
    per_joint[13] = np.nan  # head_top never valid: Head = neck alone
    row = M.results_table(per_joint, LSP14, name="c").loc["c"]
    assert row["Head"] == pytest.approx(50.0)
    assert row["Total"] == pytest.approx(100 * np.nanmean(per_joint))
    assert row["Total"] != pytest.approx(row.drop("Total").mean())


def test_results_table_accepts_a_pck_result_and_mpii_total_skips_pelvis_thorax():
    gt = lsp_gt(1)
    single = M.results_table(M.pck_lsp(gt, gt), LSP14, name="perfect")
    assert list(single.index) == ["perfect"] and single.loc["perfect", "Total"] == 100.0
    v = np.ones(16)
    v[[MPII16.index("pelvis"), MPII16.index("thorax")]] = 0.0
    assert M.results_table(v, MPII16).iloc[0]["Total"] == 100.0


def test_results_table_rejects_percentages_and_wrong_length():
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        M.results_table(np.full(14, 90.0), LSP14)
    with pytest.raises(ValueError, match=r"per_joint_pck.*\(14,\).*received \(16,\)"):
        M.results_table(np.ones(16), LSP14)


def test_table_to_markdown():
    import pandas as pd

    df = pd.DataFrame({"Head": [97.84, np.nan], "Total": [90.5, 88.25]},
                      index=pd.Index(["cpm", "a|b"], name="Model"))
    assert M.table_to_markdown(df, digits=1) == (
        "| Model | Head | Total |\n"
        "|:--|--:|--:|\n"
        "| cpm | 97.8 | 90.5 |\n"
        "| a\\|b | - | 88.2 |"
    )


def test_plot_pck_curves_returns_figure_with_one_line_per_model():
    from matplotlib.figure import Figure

    t = np.linspace(0, 0.5, 51)
    fig = M.plot_pck_curves({"perfect": (t, np.ones_like(t)), "ramp": (t, t / 0.5, None)}, title="LSP")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["perfect (AUC 100.0)", "ramp (AUC 50.0)"]
    assert ax.get_lines()[0].get_ydata().max() == 100.0  # percent
    assert ax.get_title() == "LSP"

    fig2 = Figure()
    ax2 = fig2.add_subplot()
    assert M.plot_pck_curves({"x": (t, t)}, ax=ax2) is fig2


def test_metrics_do_not_import_tensorflow():
    code = "import sys, keras_pose.metrics; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- #
# Per-joint confidence
# --------------------------------------------------------------------------- #

def test_score_auroc_hand_computed_ties_and_chance():
    from keras_pose.metrics import score_auroc

    # correct: 0.9, 0.3; wrong: 0.1, 0.8 -> pairs won 1 + 1 + 1 + 0 of 4
    assert score_auroc([[0.9, 0.1, 0.8, 0.3]], [[1, 0, 0, 1]]) == pytest.approx(0.75)
    assert score_auroc([0.9, 0.8, 0.2], [1, 1, 0]) == pytest.approx(1.0)
    assert score_auroc([0.1, 0.2, 0.9], [1, 1, 0]) == pytest.approx(0.0)
    assert score_auroc([1.0, 1.0, 1.0, 1.0], [1, 0, 1, 0]) == pytest.approx(0.5)  # a constant score is chance
    # the mask drops the entry that would make it perfect
    assert score_auroc([0.9, 0.1, 0.95], [1, 0, 0], mask=[True, True, False]) == pytest.approx(1.0)
    assert np.isnan(score_auroc([0.2, 0.3], [1, 1]))
    with pytest.raises(ValueError, match="same shape"):
        score_auroc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="non-finite"):
        score_auroc([np.nan, 0.2], [1, 0])


def test_reliability_bins_and_ece_hand_computed():
    from keras_pose.metrics import reliability

    r = reliability([0.05, 0.95, 0.95, 1.0], [0, 1, 0, 1], bins=2)
    np.testing.assert_array_equal(r["count"], [1, 3])  # 1.0 falls in the last bin
    np.testing.assert_allclose(r["mean_score"], [0.05, 2.9 / 3])
    np.testing.assert_allclose(r["accuracy"], [0.0, 2 / 3])
    assert r["ece"] == pytest.approx((0.05 + 3 * abs(2 / 3 - 2.9 / 3)) / 4)
    empty = reliability([0.2], [1], bins=4)
    assert empty["count"].tolist() == [1, 0, 0, 0] and np.isnan(empty["accuracy"][1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        reliability([1.5], [1])
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        reliability([0.5], [1], bins=0)


def test_youden_threshold_hand_computed():
    from keras_pose.metrics import youden_threshold

    # t = 0.8 keeps 2 of 3 correct and no wrong one: J = 2/3, the best
    assert youden_threshold([0.9, 0.8, 0.3, 0.2, 0.1], [1, 1, 0, 1, 0]) == pytest.approx(0.8)
    assert youden_threshold([0.2, 0.7, 0.7, 0.1], [0, 1, 1, 0]) == pytest.approx(0.7)  # equal scores, one candidate
    assert np.isnan(youden_threshold([0.4, 0.5], [0, 0]))
