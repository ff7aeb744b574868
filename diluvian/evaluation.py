"""CREMI neuron segmentation metrics: variation of information and adapted Rand error.

Every metric is computed from one sparse contingency table between the ground
truth and the prediction, built in Z slabs so that a CREMI sample
(125 x 1250 x 1250 voxels) fits in memory and takes seconds.

Conventions (as CREMI's reference implementation, ``cremi_python``):

* Ground-truth voxels labelled ``background_label`` (diluvian: 0) are ignored,
  and so are ground-truth voxels within ``border_threshold_nm`` of a label
  boundary *in the same section* (see :func:`create_border_mask`).
* Prediction labels are never ignored. For the variation of information
  label 0 (unfilled) is one segment like any other. For the adapted Rand
  error the ``"cremi"`` convention treats predicted label 0 as singletons (each
  unfilled voxel its own object) and counts voxel pairs with self-pairs
  (``n**2``), as CREMI does; the ``"skimage"`` convention treats label 0 as an
  ordinary segment and counts pairs without self-pairs (``n (n - 1)``), as
  :func:`skimage.metrics.adapted_rand_error` does.
* :func:`variation_of_information` equals
  ``skimage.metrics.variation_of_information(gt, pred, ignore_labels=[0])``
  (split first, merge second, in bits).
* The CREMI score is the geometric mean of the VOI sum and ARAND,
  ``sqrt((voi_split + voi_merge) * adapted_rand_error)``, as on the CREMI
  leaderboard.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import scipy.sparse

from .skeletons import format_rows, skeleton_figures
from .util import DiluvianError, atomic_output

__all__ = ["ContingencyTable", "adapted_rand_error", "contingency_table", "create_border_mask",
           "cremi_score", "evaluate_volume", "metrics_from_table", "upsample_to_grid",
           "variation_of_information"]

logger = logging.getLogger(__name__)

#: Voxels per slab when building tables and masks (bounds temporary memory).
_SLAB_VOXELS = 1 << 24
#: Largest dense (n_gt x n_pred) accumulator, in cells, before falling back to sorting.
_DENSE_CELLS = 1 << 25
#: Largest label value relabelled through a lookup table rather than by sorting.
_LUT_MAX_LABEL = 1 << 26


@dataclass(frozen=True)
class ContingencyTable:
    """Voxel counts of every (ground truth, prediction) label pair.

    Attributes
    ----------
    counts : scipy.sparse.csr_array of int64, shape (len(gt_labels), len(pred_labels))
        ``counts[i, j]`` is the number of evaluated voxels labelled
        ``gt_labels[i]`` in the ground truth and ``pred_labels[j]`` in the
        prediction. Ignored voxels are not counted.
    gt_labels, pred_labels : ndarray
        Sorted labels indexing rows and columns (labels that occur only in
        ignored voxels may appear with all-zero rows or columns).
    """

    counts: scipy.sparse.csr_array
    gt_labels: np.ndarray
    pred_labels: np.ndarray

    @property
    def total(self) -> int:
        """Number of evaluated voxels."""
        return int(self.counts.sum())


# ------------------------------------------------------------------ helpers
def _relabel(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(labels, lut_or_none)``: the sorted labels and, when cheap, a lookup table.

    For non-negative integer labels below ``_LUT_MAX_LABEL`` the lookup table
    maps a label value to its index in ``labels`` (linear time); otherwise the
    caller relabels by sorting.
    """
    if values.size == 0:
        return np.zeros(0, values.dtype), None
    if np.issubdtype(values.dtype, np.integer):
        lo, hi = int(values.min()), int(values.max())
        if lo >= 0 and hi < _LUT_MAX_LABEL:
            present = np.zeros(hi + 1, dtype=bool)
            for start in range(0, values.size, _SLAB_VOXELS):
                present[values[start:start + _SLAB_VOXELS]] = True
            labels = np.flatnonzero(present).astype(values.dtype)
            lut = np.cumsum(present, dtype=np.int64) - 1
            return labels, lut
    return np.unique(values), None


def _indices(values: np.ndarray, labels: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    if lut is not None:
        return lut[values]
    return np.searchsorted(labels, values).astype(np.int64)


def contingency_table(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    ignore_gt: Sequence[int] = (0,),
    mask: np.ndarray | None = None,
) -> ContingencyTable:
    """Sparse contingency table of a ground truth against a prediction.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Ground-truth and predicted label arrays.
    ignore_gt : sequence of int, optional
        Ground-truth labels whose voxels are not counted (default: 0).
    mask : ndarray of bool, optional
        Only voxels where ``mask`` is true are counted.

    Returns
    -------
    ContingencyTable

    Examples
    --------
    >>> t = contingency_table(np.array([1, 1, 2, 0]), np.array([5, 6, 6, 6]))
    >>> t.counts.toarray().tolist(), t.gt_labels.tolist(), t.pred_labels.tolist()
    ([[0, 0], [1, 1], [0, 1]], [0, 1, 2], [5, 6])
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} differs from pred shape {pred.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gt.shape:
            raise ValueError(f"mask shape {mask.shape} differs from gt shape {gt.shape}")
        mask = mask.reshape(-1)
    g = gt.reshape(-1)
    p = pred.reshape(-1)
    gt_labels, gt_lut = _relabel(g)
    pred_labels, pred_lut = _relabel(p)
    n_gt, n_pred = len(gt_labels), len(pred_labels)
    ignore = np.asarray(list(ignore_gt), dtype=gt.dtype if gt.size else np.int64)

    dense = np.zeros(n_gt * n_pred, np.int64) if n_gt * n_pred <= _DENSE_CELLS else None
    sparse_keys: list[np.ndarray] = []
    sparse_counts: list[np.ndarray] = []
    for start in range(0, g.size, _SLAB_VOXELS):
        stop = start + _SLAB_VOXELS
        gs, ps = g[start:stop], p[start:stop]
        keep = np.ones(gs.shape, bool) if mask is None else mask[start:stop].copy()
        for label in ignore:
            keep &= gs != label
        if not keep.all():
            gs, ps = gs[keep], ps[keep]
        keys = _indices(gs, gt_labels, gt_lut) * n_pred + _indices(ps, pred_labels, pred_lut)
        if dense is not None:
            dense += np.bincount(keys, minlength=dense.size)
        else:
            k, c = np.unique(keys, return_counts=True)
            sparse_keys.append(k)
            sparse_counts.append(c)
    if dense is not None:
        keys = np.flatnonzero(dense)
        counts = dense[keys]
    elif sparse_keys:
        all_keys = np.concatenate(sparse_keys)
        keys, inverse = np.unique(all_keys, return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate(sparse_counts)).astype(np.int64)
    else:
        keys = counts = np.zeros(0, np.int64)
    table = scipy.sparse.csr_array(
        (counts, (keys // max(n_pred, 1), keys % max(n_pred, 1))), shape=(n_gt, n_pred))
    return ContingencyTable(table, gt_labels, pred_labels)


def _table(gt, pred, table, background_label) -> ContingencyTable:
    if table is not None:
        return table
    ignore = () if background_label is None else (background_label,)
    return contingency_table(gt, pred, ignore_gt=ignore)


# ------------------------------------------------------------------ metrics
def _voi_from_table(table: ContingencyTable) -> tuple[float, float]:
    coo = table.counts.tocoo()
    n = float(coo.data.sum())
    if n == 0:
        return math.nan, math.nan
    p_ij = coo.data / n
    p_gt = np.asarray(table.counts.sum(axis=1), dtype=np.float64).ravel() / n
    p_pred = np.asarray(table.counts.sum(axis=0), dtype=np.float64).ravel() / n
    nz = p_ij > 0
    p_ij, rows, cols = p_ij[nz], coo.row[nz], coo.col[nz]
    split = -float(np.sum(p_ij * np.log2(p_ij / p_gt[rows])))
    merge = -float(np.sum(p_ij * np.log2(p_ij / p_pred[cols])))
    return max(0.0, split), max(0.0, merge)


def variation_of_information(
    gt: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    *,
    table: ContingencyTable | None = None,
    background_label: int | None = 0,
) -> tuple[float, float]:
    """Split and merge parts of the variation of information, in bits.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Ground truth and prediction (ignored when ``table`` is given).
    table : ContingencyTable, optional
        A precomputed table (e.g. with a border mask applied).
    background_label : int or None
        Ground-truth label to ignore (``None``: ignore nothing).

    Returns
    -------
    (split, merge) : tuple of float
        ``H(pred | gt)`` (over-segmentation) and ``H(gt | pred)``
        (under-segmentation); NaN when no voxel is evaluated.

    Examples
    --------
    Merging two equal objects costs exactly one bit:

    >>> variation_of_information(np.array([1, 1, 2, 2]), np.array([7, 7, 7, 7]))
    (0.0, 1.0)
    """
    return _voi_from_table(_table(gt, pred, table, background_label))


def _arand_from_table(table: ContingencyTable, convention: str) -> float:
    if convention not in ("cremi", "skimage"):
        raise ValueError(f"convention {convention!r} is not 'cremi' or 'skimage'")
    counts = table.counts
    data = counts.data.astype(np.float64)
    n = float(data.sum())
    if n == 0:
        return math.nan
    a = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()  # ground truth sizes
    b = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()  # prediction sizes
    if convention == "skimage":
        sum_ab = data @ data - n
        sum_a = a @ a - n
        sum_b = b @ b - n
    else:
        # Predicted label 0 (unfilled) voxels are singletons; pairs include self-pairs.
        zero = np.flatnonzero(table.pred_labels == 0)
        singletons = float(b[zero].sum()) if zero.size else 0.0
        coo = counts.tocoo()
        keep = ~np.isin(coo.col, zero)
        kept = coo.data[keep].astype(np.float64)
        b_kept = b.copy()
        b_kept[zero] = 0.0
        sum_ab = kept @ kept + singletons
        sum_a = a @ a
        sum_b = b_kept @ b_kept + singletons
    if sum_a + sum_b == 0:
        return 0.0
    return float(1.0 - 2.0 * sum_ab / (sum_a + sum_b))


def adapted_rand_error(
    gt: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    *,
    table: ContingencyTable | None = None,
    background_label: int | None = 0,
    convention: str = "cremi",
) -> float:
    """Adapted Rand error: one minus the F1 score of same-object voxel pairs.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Ground truth and prediction (ignored when ``table`` is given).
    table : ContingencyTable, optional
        A precomputed table.
    background_label : int or None
        Ground-truth label to ignore (``None``: ignore nothing).
    convention : {"cremi", "skimage"}
        ``"cremi"``: predicted label 0 voxels are singletons and pairs count
        self-pairs, as CREMI. ``"skimage"``: label 0 is an ordinary segment and
        pairs exclude self-pairs, equal to
        ``skimage.metrics.adapted_rand_error(gt, pred, ignore_labels=[0])[0]``.

    Returns
    -------
    float
        0 for a perfect prediction, up to 1; NaN when no voxel is evaluated.

    Examples
    --------
    >>> adapted_rand_error(np.array([1, 1, 2, 2]), np.array([3, 3, 4, 4]))
    0.0
    """
    return _arand_from_table(_table(gt, pred, table, background_label), convention)


def cremi_score(voi_split: float, voi_merge: float, arand: float) -> float:
    """CREMI score: the geometric mean ``sqrt((voi_split + voi_merge) * arand)``.

    Examples
    --------
    >>> cremi_score(1.0, 1.0, 0.5)
    1.0
    """
    return float(math.sqrt(max(0.0, voi_split + voi_merge) * max(0.0, arand)))


def metrics_from_table(table: ContingencyTable, convention: str = "cremi") -> dict:
    """All CREMI neuron figures of one contingency table, as a JSON-ready dict."""
    split, merge = _voi_from_table(table)
    arand = _arand_from_table(table, convention)
    return {
        "voi_split": split,
        "voi_merge": merge,
        "voi_sum": split + merge,
        "adapted_rand_error": arand,
        "cremi_score": cremi_score(split, merge, arand),
        "evaluated_voxels": table.total,
    }


# ------------------------------------------------------------- border mask
def _border_mask_section(section: np.ndarray, sampling_nm, threshold_nm: float) -> np.ndarray:
    """Pixels of one section within ``threshold_nm`` of a 4-neighbour label change."""
    interior = np.ones(section.shape, bool)
    change_y = section[1:, :] != section[:-1, :]
    change_x = section[:, 1:] != section[:, :-1]
    interior[1:, :] &= ~change_y
    interior[:-1, :] &= ~change_y
    interior[:, 1:] &= ~change_x
    interior[:, :-1] &= ~change_x
    if interior.all():
        return np.zeros(section.shape, bool)
    distance = scipy.ndimage.distance_transform_edt(interior, sampling=sampling_nm)
    return distance <= threshold_nm


def create_border_mask(
    gt: np.ndarray,
    resolution,
    border_threshold_nm: float,
    *,
    background_label: int | None = 0,
) -> np.ndarray:
    """Boolean mask of ground-truth voxels to ignore near label boundaries.

    As CREMI, the mask is computed in 2D per Z section: a pixel is a boundary
    pixel when one of its four in-plane neighbours has a different label
    (array edges are not boundaries), and every pixel whose in-plane
    Euclidean distance to a boundary pixel, in nm using the Y and X
    resolution, is at most ``border_threshold_nm`` is masked (boundary
    pixels themselves included). Label changes between sections do not mask
    anything, because anisotropic EM sections are much thicker than their
    pixels. Voxels labelled ``background_label`` are masked too.

    Parameters
    ----------
    gt : ndarray of int, ZYX
        Ground-truth labels.
    resolution : sequence of 3 numbers
        nm per voxel, ZYX (only Y and X are used).
    border_threshold_nm : float
        Distance in nm; 0 or less masks nothing but the background, as CREMI
        skips the border mask for a zero threshold.
    background_label : int or None
        Ground-truth background label, always masked (``None``: none).

    Returns
    -------
    ndarray of bool
        True where the voxel is ignored.

    Examples
    --------
    >>> gt = np.array([[[1, 1, 1, 2, 2, 2]]])
    >>> create_border_mask(gt, (40, 4, 4), 4.0).astype(int).tolist()
    [[[0, 1, 1, 1, 1, 0]]]
    """
    gt = np.asarray(gt)
    if gt.ndim != 3:
        raise ValueError(f"gt must be a 3D ZYX array, got shape {gt.shape}")
    resolution = np.asarray(resolution, dtype=np.float64)
    mask = np.zeros(gt.shape, bool) if background_label is None else gt == background_label
    if border_threshold_nm > 0:
        for z in range(gt.shape[0]):
            mask[z] |= _border_mask_section(gt[z], resolution[1:], float(border_threshold_nm))
    return mask


# --------------------------------------------------------------- resampling
def upsample_to_grid(pred: np.ndarray, pred_resolution, gt_resolution, gt_shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarser prediction onto the ground-truth grid.

    Parameters
    ----------
    pred : ndarray, ZYX
        Prediction labels at ``pred_resolution``.
    pred_resolution, gt_resolution : sequence of 3 int
        nm per voxel, ZYX; each prediction resolution must be an integer
        multiple of the ground truth's.
    gt_shape : sequence of 3 int
        Shape of the ground truth grid. The result is cropped to it; where
        the upsampled prediction is smaller it keeps its own (smaller) shape.

    Raises
    ------
    DiluvianError
        If the prediction is finer or not an integer multiple.

    Examples
    --------
    >>> upsample_to_grid(np.array([[[1, 2]]]), (8, 8, 8), (4, 4, 4), (2, 2, 3))[0].tolist()
    [[1, 1, 2], [1, 1, 2]]
    """
    pred_res = np.asarray(pred_resolution, dtype=np.int64)
    gt_res = np.asarray(gt_resolution, dtype=np.int64)
    if np.any(pred_res < gt_res) or np.any(pred_res % gt_res):
        raise DiluvianError(
            f"prediction resolution {pred_res.tolist()} nm is not an integer multiple of the "
            f"ground truth resolution {gt_res.tolist()} nm")
    factors = pred_res // gt_res
    out = np.asarray(pred)
    for axis, f in enumerate(factors):
        if f > 1:
            need = -(-int(gt_shape[axis]) // int(f))
            out = np.repeat(out[(slice(None),) * axis + (slice(0, need),)], int(f), axis=axis)
    return out[tuple(slice(0, int(s)) for s in gt_shape)]


# ----------------------------------------------------------------- volumes
def _label_volume(volumes: dict, name: str, role: str):
    if name not in volumes:
        raise DiluvianError(
            f"{role} volume {name!r} is not defined; available volumes: "
            f"{', '.join(sorted(volumes)) or '(none)'}")
    volume = volumes[name]
    if getattr(volume, "label_data", None) is None:
        raise DiluvianError(f"{role} volume {name!r} has no label data")
    return volume


def _check_same_extent(gt_name, gt_volume, pred_name, pred_volume) -> None:
    """Refuse a prediction that does not cover the ground truth's extent exactly.

    A prediction at a coarser resolution (a whole multiple) covers the ground
    truth when it has ``ceil(gt_shape / factor)`` voxels on each axis.
    """
    gt_shape = np.asarray(gt_volume.label_data.shape, dtype=np.int64)
    pred_shape = np.asarray(pred_volume.label_data.shape, dtype=np.int64)
    gt_res = np.asarray(gt_volume.resolution, dtype=np.float64)
    pred_res = np.asarray(pred_volume.resolution, dtype=np.float64)
    factors = np.maximum(np.rint(pred_res / gt_res), 1).astype(np.int64)
    if gt_shape.shape != (3,) or pred_shape.shape != (3,) or np.any(
            -(-gt_shape // factors) != pred_shape):
        raise DiluvianError(
            f"prediction {pred_name!r} of shape {pred_shape.tolist()} at "
            f"{pred_res.tolist()} nm does not cover ground truth {gt_name!r} of shape "
            f"{gt_shape.tolist()} at {gt_res.tolist()} nm: expected the same extent")


def evaluate_arrays(
    gt: np.ndarray,
    pred: np.ndarray,
    gt_resolution,
    pred_resolution=None,
    *,
    border_threshold: float = 25.0,
    background_label: int | None = 0,
    convention: str = "cremi",
    progress: bool = False,
) -> dict:
    """CREMI figures of a prediction against ground truth, both plain arrays.

    The prediction is upsampled to the ground-truth grid when coarser, both
    are cropped to their common extent, and the border mask is applied
    section by section.

    Returns
    -------
    dict
        ``voi_split``, ``voi_merge``, ``voi_sum``, ``adapted_rand_error``,
        ``cremi_score`` and ``evaluated_voxels``.
    """
    gt = np.asarray(gt)
    pred_resolution = gt_resolution if pred_resolution is None else pred_resolution
    pred = upsample_to_grid(np.asarray(pred), pred_resolution, gt_resolution, gt.shape)
    common = tuple(slice(0, min(a, b)) for a, b in zip(gt.shape, pred.shape))
    gt, pred = gt[common], pred[common]
    ignore = () if background_label is None else (background_label,)
    mask = None
    if border_threshold > 0:
        from tqdm import tqdm

        mask = np.empty(gt.shape, bool)
        sampling = np.asarray(gt_resolution, dtype=np.float64)[1:]
        for z in tqdm(range(gt.shape[0]), desc="border mask", disable=not progress):
            mask[z] = ~_border_mask_section(gt[z], sampling, float(border_threshold))
    table = contingency_table(gt, pred, ignore_gt=ignore, mask=mask)
    return metrics_from_table(table, convention)


def _format_table(name: str, figures: dict) -> str:
    rows = [("VOI split", "voi_split"), ("VOI merge", "voi_merge"), ("VOI sum", "voi_sum"),
            ("Adapted Rand error", "adapted_rand_error"), ("CREMI score", "cremi_score")]
    lines = [f"{name}", f"{'metric':<20} {'value':>10}", "-" * 31]
    lines += [f"{label:<20} {figures[key]:>10.6f}" for label, key in rows]
    lines.append(f"{'evaluated voxels':<20} {figures['evaluated_voxels']:>10d}")
    if "erl_nm" in figures:
        lines += format_rows(figures)
    return "\n".join(lines)


def evaluate_volume(
    volumes: dict,
    ground_truth_name: str,
    prediction_name: str,
    partition: bool = False,
    border_threshold: float = 25.0,
    json_file: str | None = None,
    config=None,
    skeletons=None,
) -> dict:
    """Evaluate a predicted label volume against a ground truth with the CREMI metrics.

    Parameters
    ----------
    volumes : dict of str to Volume
        Volumes by name; each has ``resolution`` (ZYX nm) and ``label_data``.
    ground_truth_name, prediction_name : str
        Names of the ground truth and prediction volumes.
    partition : bool
        Evaluate only the validation partitions
        (``diluvian.volumes.partition_volumes(...)[1]``).
    border_threshold : float
        Ground-truth voxels within this many nm of a label boundary in the
        same section are ignored (CREMI's default is 25; 0 disables).
    json_file : str, optional
        Also write the figures to this JSON file (atomically).
    config : Config, optional
        Configuration (for the partitioning); defaults to ``diluvian.config.CONFIG``.
    skeletons : diluvian.skeletons.SkeletonSource, optional
        Also compute the expected run length on these ground-truth skeletons
        (:func:`diluvian.skeletons.skeleton_figures`).

    Returns
    -------
    dict
        The figures (see :func:`metrics_from_table`, and with ``skeletons``
        :func:`diluvian.skeletons.expected_run_length`'s plus ``erl_max_nm``)
        and the volume names, resolution and border threshold.

    Raises
    ------
    DiluvianError
        If a volume name is unknown or a volume has no labels.
    """
    _label_volume(volumes, ground_truth_name, "ground truth")
    _label_volume(volumes, prediction_name, "prediction")
    if partition:
        from .volumes import partition_volumes

        if config is None:
            from .config import CONFIG as config
        volumes = partition_volumes(
            {k: volumes[k] for k in (ground_truth_name, prediction_name)},
            downsample=False, config=config)[1]
    gt_volume = volumes[ground_truth_name]
    pred_volume = volumes[prediction_name]
    gt_res, pred_res = np.asarray(gt_volume.resolution), np.asarray(pred_volume.resolution)
    _check_same_extent(ground_truth_name, gt_volume, prediction_name, pred_volume)
    logger.info("loading labels of %r and %r", ground_truth_name, prediction_name)
    gt = np.asarray(gt_volume.label_data[:])
    pred = np.asarray(pred_volume.label_data[:])
    figures = evaluate_arrays(gt, pred, gt_res, pred_res, border_threshold=border_threshold,
                              progress=True)
    if skeletons is not None:
        figures.update(skeleton_figures(skeletons, gt, pred, gt_res, pred_res))
    result = {"ground_truth": ground_truth_name, "prediction": prediction_name,
              "resolution_nm": gt_res.tolist(), "border_threshold_nm": float(border_threshold),
              "partition": bool(partition), **figures}
    print(_format_table(f"{prediction_name} vs {ground_truth_name} "
                        f"(border {border_threshold:g} nm)", figures))
    if json_file is not None:
        with atomic_output(json_file) as tmp:
            tmp.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    return result
