"""CREMI metrics: hand-computed cases, skimage agreement, border masks, volumes."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error as sk_arand
from skimage.metrics import variation_of_information as sk_voi

import diluvian.evaluation as evaluation
from diluvian.evaluation import (
    adapted_rand_error,
    contingency_table,
    create_border_mask,
    cremi_score,
    evaluate_arrays,
    evaluate_volume,
    metrics_from_table,
    upsample_to_grid,
    variation_of_information,
)
from diluvian.util import DiluvianError


def perturb(gt: np.ndarray, rng: np.random.Generator, n_merges=3, n_splits=3, unfilled=True):
    """A prediction made from ``gt`` by merges, splits, relabelling and unfilled voxels."""
    pred = gt.astype(np.uint64).copy()
    labels = np.unique(gt)
    labels = labels[labels != 0]
    merges = rng.choice(labels, size=(n_merges, 2), replace=False)
    for a, b in merges:
        pred[pred == b] = a
    fresh = int(gt.max()) + 1
    for label in rng.choice(labels, size=n_splits, replace=False):
        zz, yy, xx = np.nonzero(gt == label)
        cut = np.median(xx)
        sel = xx > cut
        pred[zz[sel], yy[sel], xx[sel]] = fresh
        fresh += 1
    # Relabel every prediction id so labels never line up with the truth by value.
    values, inverse = np.unique(pred, return_inverse=True)
    new_ids = rng.permutation(len(values)).astype(np.uint64) + 1000
    pred = new_ids[inverse].reshape(pred.shape)
    if unfilled:
        pred[:2] = 0  # two unfilled sections
    return pred


def skimage_figures(gt, pred):
    split, merge = sk_voi(gt, pred, ignore_labels=[0])
    arand = sk_arand(gt, pred, ignore_labels=[0])[0]
    return split, merge, arand


# ------------------------------------------------------------- hand-computed
def test_perfect_prediction_scores_zero():
    gt = np.repeat(np.arange(1, 5), 8).reshape(2, 4, 4)
    pred = gt * 7 + 3  # same partition, different ids
    figures = evaluate_arrays(gt, pred, (10, 10, 10), border_threshold=0)
    assert figures["voi_split"] == 0.0
    assert figures["voi_merge"] == 0.0
    assert figures["adapted_rand_error"] == 0.0
    assert figures["cremi_score"] == 0.0


def test_merging_two_equal_objects_gives_one_bit_merge():
    gt = np.array([1, 1, 1, 2, 2, 2])
    split, merge = variation_of_information(gt, np.full(6, 9))
    assert split == 0.0
    assert merge == pytest.approx(1.0, abs=1e-12)


def test_splitting_one_of_two_equal_objects_in_half_gives_half_bit_split():
    gt = np.array([1, 1, 2, 2])
    split, merge = variation_of_information(gt, np.array([5, 6, 7, 7]))
    assert split == pytest.approx(0.5, abs=1e-12)
    assert merge == 0.0


def test_ground_truth_background_is_ignored_but_prediction_zero_is_a_segment():
    gt = np.array([0, 0, 1, 1, 2, 2])
    split, merge = variation_of_information(gt, np.array([4, 5, 0, 0, 0, 0]))
    assert split == 0.0
    assert merge == pytest.approx(1.0)


def test_cremi_convention_counts_unfilled_voxels_as_singletons():
    gt = np.array([1, 1, 1, 1])
    pred = np.zeros(4, np.int64)
    # pairs with self-pairs: sum_a = 16, sum_b = sum_ab = 4 singletons -> F = 8 / 20
    assert adapted_rand_error(gt, pred, convention="cremi") == pytest.approx(0.6)
    assert adapted_rand_error(gt, pred, convention="skimage") == 0.0


def test_cremi_convention_matches_pair_count_formula():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 6, size=500)
    pred = rng.integers(1, 5, size=500)
    keep = gt != 0
    joint = np.histogram2d(gt[keep], pred[keep], bins=(np.arange(8), np.arange(7)))[0]
    sum_ab = (joint**2).sum()
    sum_a = (joint.sum(1) ** 2).sum()
    sum_b = (joint.sum(0) ** 2).sum()
    expected = 1 - 2 * sum_ab / (sum_a + sum_b)
    assert adapted_rand_error(gt, pred) == pytest.approx(expected, abs=1e-12)


def test_cremi_score_is_geometric_mean_of_voi_sum_and_arand():
    assert cremi_score(0.5, 1.5, 0.08) == pytest.approx(math.sqrt(2.0 * 0.08))


def test_no_evaluated_voxel_gives_nan():
    figures = metrics_from_table(contingency_table(np.zeros(4, int), np.ones(4, int)))
    assert math.isnan(figures["voi_split"]) and math.isnan(figures["adapted_rand_error"])


# ------------------------------------------------------------ vs skimage
def test_matches_skimage_on_random_labels():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 20, size=(6, 7, 8))
    pred = rng.integers(0, 15, size=(6, 7, 8))
    split, merge, arand = skimage_figures(gt, pred)
    assert variation_of_information(gt, pred) == pytest.approx((split, merge), abs=1e-9)
    assert adapted_rand_error(gt, pred, convention="skimage") == pytest.approx(arand, abs=1e-9)


def test_large_label_ids_and_sparse_accumulation_give_same_table(monkeypatch):
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 30, size=(5, 20, 20)).astype(np.uint64)
    pred = rng.integers(0, 40, size=(5, 20, 20)).astype(np.uint64)
    reference = metrics_from_table(contingency_table(gt, pred))
    monkeypatch.setattr(evaluation, "_DENSE_CELLS", 0)
    monkeypatch.setattr(evaluation, "_SLAB_VOXELS", 97)
    # Map every non-zero id to a distinct id above 2**60 (0 stays background/unfilled).
    big = np.concatenate([[0], rng.choice(2**20, size=40, replace=False) + 2**60]).astype(np.uint64)
    shifted = metrics_from_table(contingency_table(big[gt], big[pred]))
    assert shifted == pytest.approx(reference, abs=1e-12)


@pytest.mark.real_data
def test_matches_skimage_on_perturbed_fib25_crop(fib25_path):
    import h5py

    with h5py.File(fib25_path, "r") as f:
        gt = f["volumes/labels/neuron_ids"][:64, :64, :64]
    pred = perturb(gt, np.random.default_rng(7))
    split, merge, arand = skimage_figures(gt, pred)
    assert split > 0.05 and merge > 0.05  # the perturbation really splits and merges
    figures = metrics_from_table(contingency_table(gt, pred), convention="skimage")
    assert figures["voi_split"] == pytest.approx(split, abs=1e-6)
    assert figures["voi_merge"] == pytest.approx(merge, abs=1e-6)
    assert figures["adapted_rand_error"] == pytest.approx(arand, abs=1e-6)


@pytest.mark.slow
@pytest.mark.real_data
def test_matches_skimage_on_perturbed_full_fib25(fib25_path):
    import h5py

    with h5py.File(fib25_path, "r") as f:
        gt = f["volumes/labels/neuron_ids"][:]
    pred = perturb(gt, np.random.default_rng(11), n_merges=10, n_splits=10)
    split, merge, arand = skimage_figures(gt, pred)
    figures = metrics_from_table(contingency_table(gt, pred), convention="skimage")
    assert figures["voi_split"] == pytest.approx(split, abs=1e-6)
    assert figures["voi_merge"] == pytest.approx(merge, abs=1e-6)
    assert figures["adapted_rand_error"] == pytest.approx(arand, abs=1e-6)


# ------------------------------------------------------------ border mask
def test_border_mask_uses_anisotropic_in_plane_resolution():
    gt = np.ones((1, 11, 11), np.int64)
    gt[:, 6:, :] = 2  # boundary between rows 5 and 6 (a change along Y)
    mask = create_border_mask(gt, (40, 4, 8), 8.0)
    # 4 nm per row: rows within 8 nm of a boundary pixel (rows 5, 6) are masked.
    assert mask[0, :, 3].nonzero()[0].tolist() == [3, 4, 5, 6, 7, 8]
    gt = np.ones((1, 11, 11), np.int64)
    gt[:, :, 6:] = 2  # a change along X, 8 nm per column
    mask = create_border_mask(gt, (40, 4, 8), 8.0)
    assert mask[0, 3, :].nonzero()[0].tolist() == [4, 5, 6, 7]


def test_border_mask_ignores_label_changes_between_sections():
    gt = np.ones((4, 5, 5), np.int64)
    gt[2:] = 2
    assert not create_border_mask(gt, (10, 10, 10), 25.0).any()


def test_border_mask_always_masks_background_and_nothing_else_at_zero_threshold():
    gt = np.ones((1, 4, 4), np.int64)
    gt[0, 0, 0] = 0
    gt[0, 2:, 2:] = 3
    mask = create_border_mask(gt, (40, 4, 4), 0.0)
    assert mask.sum() == 1 and mask[0, 0, 0]


def test_border_threshold_removes_boundary_voxels_from_evaluation():
    gt = np.ones((2, 10, 10), np.int64)
    gt[:, :, 5:] = 2
    pred = gt.copy()
    pred[:, :, 5] = 1  # a boundary disagreement only
    assert evaluate_arrays(gt, pred, (40, 4, 4), border_threshold=0)["voi_merge"] > 0
    figures = evaluate_arrays(gt, pred, (40, 4, 4), border_threshold=4.0)
    assert figures["voi_merge"] == 0.0 and figures["adapted_rand_error"] == 0.0
    assert figures["evaluated_voxels"] == 2 * 10 * 6


# ------------------------------------------------------------ resampling
def test_coarser_prediction_is_upsampled_to_ground_truth_grid():
    gt = np.repeat(np.repeat(np.arange(1, 7).reshape(1, 2, 3), 2, axis=1), 3, axis=2)
    gt = np.repeat(gt, 2, axis=0)  # shape (2, 4, 9), constant on 1x2x3 blocks
    coarse = np.arange(1, 7).reshape(1, 2, 3) + 50
    up = upsample_to_grid(coarse[:, :, :], (20, 8, 12), (10, 4, 4), gt.shape)
    assert up.shape == gt.shape
    np.testing.assert_array_equal(up - 50, gt)
    figures = evaluate_arrays(gt, coarse, (10, 4, 4), (20, 8, 12), border_threshold=0)
    assert figures["voi_sum"] == 0.0


def test_finer_prediction_is_refused():
    with pytest.raises(DiluvianError, match="integer multiple"):
        upsample_to_grid(np.zeros((2, 2, 2)), (5, 5, 5), (10, 10, 10), (1, 1, 1))


# ------------------------------------------------------------ volumes
def stand_in(labels, resolution=(10, 10, 10)):
    return types.SimpleNamespace(resolution=np.asarray(resolution), label_data=labels,
                                 image_data=None, mask_data=None)


def test_evaluate_volume_prints_table_and_writes_json(tmp_path, capsys):
    gt = np.ones((3, 8, 8), np.uint64)
    gt[:, :, 4:] = 2
    pred = np.full_like(gt, 5)
    out = tmp_path / "figures.json"
    result = evaluate_volume({"gt": stand_in(gt), "pred": stand_in(pred)}, "gt", "pred",
                             border_threshold=0.0, json_file=str(out))
    printed = capsys.readouterr().out
    assert "VOI merge" in printed and "CREMI score" in printed
    saved = json.loads(out.read_text())
    assert saved["voi_merge"] == pytest.approx(1.0)
    assert saved == result


def test_evaluate_volume_unknown_name_lists_available_volumes():
    volumes = {"alpha": stand_in(np.ones((2, 2, 2))), "beta": stand_in(np.ones((2, 2, 2)))}
    with pytest.raises(DiluvianError, match="'gamma'.*alpha, beta"):
        evaluate_volume(volumes, "alpha", "gamma")


def test_evaluate_volume_partition_uses_validation_partitions(monkeypatch):
    import diluvian.volumes

    gt = np.ones((4, 6, 6), np.uint64)
    pred = gt.copy()
    pred[:2] = 9  # disagreement only in the training half
    calls = {}

    def fake_partition_volumes(volumes, downsample=True, config=None):
        calls["downsample"] = downsample
        validation = {k: stand_in(v.label_data[2:]) for k, v in volumes.items()}
        return {}, validation

    monkeypatch.setattr(diluvian.volumes, "partition_volumes", fake_partition_volumes,
                        raising=False)
    volumes = {"gt": stand_in(gt), "pred": stand_in(pred)}
    assert evaluate_volume(volumes, "gt", "pred", border_threshold=0)["voi_split"] > 0
    result = evaluate_volume(volumes, "gt", "pred", partition=True, border_threshold=0)
    assert calls["downsample"] is False
    assert result["voi_sum"] == 0.0 and result["evaluated_voxels"] == 2 * 36
