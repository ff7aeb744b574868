"""Ground-truth skeletons and the expected run length (ERL) of a segmentation.

A :class:`Skeleton` is a graph: nodes at physical Z, Y, X positions in nm and
undirected edges between them, whose lengths are the Euclidean distances of
their ends. Skeletons are read from SWC files (one object per file) or traced
from ground-truth labels with kimimaro (TEASAR).

Expected run length, as defined for flood-filling networks (Januszewski et
al. 2018) and in funlib's ``evaluate_expected_run_length``; the rules here
are stated exactly:

* Each node takes the predicted segment of the voxel it lies in (nearest
  voxel centre: voxel ``i`` is centred at ``offset + i * resolution`` nm).
  Nodes outside the prediction fall in segment 0, the background.
* A predicted segment is **merged** when it holds nodes of two or more
  skeletons. Only non-background segments count: the background (unfilled
  voxels) is never one segment, so it is never merged.
* An edge is **correct** when both its ends lie in the same non-background
  segment and that segment is not merged. Every other edge is cut: a split
  edge (ends in different segments, or an end in the background) and every
  edge inside a merged segment. A cut edge's length counts towards the
  skeleton's length ``L_s`` but towards no fragment.
* The correct edges split each skeleton into error-free fragments (connected
  components; a node without a correct edge is a fragment of length 0). A
  fragment's length ``l_f`` is the sum of its edges' lengths.
* ``ERL = sum_s (L_s / L) * sum_{f in s} l_f**2 / L_s = sum_f l_f**2 / L`` with
  ``L`` the total length of all skeletons: the expected length of the
  error-free fragment around a point drawn uniformly along all skeletons.
* ``erl_max_nm`` is the ERL of the ground truth against itself (each node in
  its own skeleton's segment): ``sum_s L_s**2 / L`` for connected skeletons,
  the best any segmentation can score.
* A skeleton is **split** when its nodes lie in two or more non-background
  segments, and **merged** when one of its nodes lies in a merged segment.

For example a straight skeleton of 11 nodes and 10 edges of 1 nm, whose
first 6 nodes are in one segment and last 5 in another, loses the edge
between nodes 6 and 7: fragments of 5 and 4 nm, ERL ``(25 + 16) / 10 = 4.1``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from .util import DiluvianError, atomic_output

__all__ = ["Skeleton", "SkeletonSource", "expected_run_length", "format_rows", "node_segments",
           "read_swc", "read_swc_folder", "skeleton_figures", "skeletons_from_labels",
           "write_swc"]

logger = logging.getLogger(__name__)

#: kimimaro TEASAR parameters (lengths in nm) for ground-truth skeletons.
TEASAR_PARAMS = {"scale": 1.5, "const": 300.0, "pdrf_scale": 100000, "pdrf_exponent": 4,
                 "soma_acceptance_threshold": 3500, "soma_detection_threshold": 750,
                 "soma_invalidation_const": 300, "soma_invalidation_scale": 2}


@dataclass(frozen=True)
class Skeleton:
    """One object's skeleton: node positions and undirected edges.

    Attributes
    ----------
    nodes_nm : ndarray of float64, shape (n, 3)
        Z, Y, X node positions in nm.
    edges : ndarray of int64, shape (m, 2)
        Pairs of node indices.
    name : str
        Where the skeleton came from (an SWC file's stem, a label id).
    radii_nm : ndarray of float64, shape (n,), optional
        Node radii in nm (SWC's radius column; zeros when unknown).
    """

    nodes_nm: np.ndarray
    edges: np.ndarray
    name: str = ""
    radii_nm: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self):
        nodes = np.asarray(self.nodes_nm, dtype=np.float64).reshape(-1, 3)
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if edges.size and (edges.min() < 0 or edges.max() >= len(nodes)):
            raise ValueError(f"skeleton {self.name!r}: edges refer to nodes outside 0.."
                             f"{len(nodes) - 1}")
        radii = (np.zeros(len(nodes)) if self.radii_nm is None
                 else np.asarray(self.radii_nm, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "nodes_nm", nodes)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "radii_nm", radii)

    @property
    def edge_lengths_nm(self) -> np.ndarray:
        """Length of each edge in nm."""
        ends = self.nodes_nm[self.edges]
        return np.linalg.norm(ends[:, 0] - ends[:, 1], axis=1)

    @property
    def length_nm(self) -> float:
        """Total length of the edges in nm."""
        return float(self.edge_lengths_nm.sum())


# ------------------------------------------------------------------- SWC
def _parse_swc_line(path, number: int, line: str) -> tuple[int, float, float, float, float, int]:
    fields = line.split()
    expected = "7 columns 'id type x y z radius parent' (numbers, id and parent integers)"
    if len(fields) != 7:
        raise DiluvianError(f"{path}:{number}: expected {expected}, got {line.strip()!r}")
    try:
        node, parent = int(fields[0]), int(fields[6])
        x, y, z, radius = (float(v) for v in fields[2:6])
        int(float(fields[1]))
    except ValueError:
        raise DiluvianError(
            f"{path}:{number}: expected {expected}, got {line.strip()!r}") from None
    if not all(np.isfinite((x, y, z, radius))):
        raise DiluvianError(f"{path}:{number}: expected finite coordinates, got "
                            f"{line.strip()!r}")
    return node, x, y, z, radius, parent


def read_swc(path: str | os.PathLike) -> Skeleton:
    """Read one SWC file (``id type x y z radius parent``, x, y, z and radius in nm).

    Blank lines and lines starting with ``#`` are skipped; a negative parent
    marks a root.

    Raises
    ------
    DiluvianError
        Naming the file and line when a line is malformed, an id repeats or
        a parent is not a node of the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DiluvianError(f"{path}: expected an SWC text file, got undecodable bytes") from None
    rows, lines_of = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = _parse_swc_line(path, number, line)
        if row[0] in lines_of:
            raise DiluvianError(f"{path}:{number}: expected unique node ids, id {row[0]} "
                                f"repeats line {lines_of[row[0]]}")
        lines_of[row[0]] = number
        rows.append(row)
    index = {row[0]: i for i, row in enumerate(rows)}
    edges = []
    for i, row in enumerate(rows):
        parent = row[5]
        if parent < 0:
            continue
        if parent not in index:
            raise DiluvianError(f"{path}:{lines_of[row[0]]}: expected the parent id to be a "
                                f"node of the file or -1, got {parent}")
        edges.append((index[parent], i))
    table = np.asarray([row[1:5] for row in rows], dtype=np.float64).reshape(-1, 4)
    return Skeleton(table[:, 2::-1], np.asarray(edges, np.int64).reshape(-1, 2),
                    name=path.stem, radii_nm=table[:, 3])


def _parents(skeleton: Skeleton) -> np.ndarray:
    """Parent of each node in a breadth-first spanning forest (-1 for roots)."""
    n = len(skeleton.nodes_nm)
    graph = scipy.sparse.coo_array(
        (np.ones(len(skeleton.edges)), (skeleton.edges[:, 0], skeleton.edges[:, 1])),
        shape=(n, n)).tocsr()
    parents = np.full(n, -1, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    for root in range(n):
        if seen[root]:
            continue
        order, pred = scipy.sparse.csgraph.breadth_first_order(
            graph, root, directed=False, return_predecessors=True)
        seen[order] = True
        parents[order] = pred[order]
        parents[root] = -1
    return parents


def write_swc(skeleton: Skeleton, path: str | os.PathLike) -> None:
    """Write a skeleton as SWC (ids from 1, type 0, x y z radius in nm), atomically.

    Edges become parent links of a breadth-first spanning forest, so an edge
    closing a cycle is not written.
    """
    parents = _parents(skeleton)
    lines = [f"# diluvian skeleton {skeleton.name}".rstrip(),
             "# id type x y z radius parent (nm)"]
    for i, ((z, y, x), radius, parent) in enumerate(
            zip(skeleton.nodes_nm, skeleton.radii_nm, parents)):
        lines.append(f"{i + 1} 0 {x:.6g} {y:.6g} {z:.6g} {radius:.6g} "
                     f"{parent + 1 if parent >= 0 else -1}")
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_swc_folder(folder: str | os.PathLike) -> list[Skeleton]:
    """Read every ``*.swc`` file of a folder (sorted by name), one skeleton each.

    Raises
    ------
    DiluvianError
        If the folder is missing, not a folder, or holds no SWC file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DiluvianError(f"{folder}: skeleton folder not found (expected a folder of "
                            "SWC files)")
    if not folder.is_dir():
        raise DiluvianError(f"{folder}: expected a folder of SWC files, got a file")
    files = sorted(folder.glob("*.swc"))
    if not files:
        raise DiluvianError(f"{folder}: expected SWC files (*.swc), found none")
    return [read_swc(f) for f in files]


# ---------------------------------------------------------------- kimimaro
def skeletons_from_labels(
    labels: np.ndarray,
    resolution: Sequence[float],
    *,
    dust_threshold_vox: int = 1000,
    teasar_params: dict | None = None,
    background_label: int = 0,
    progress: bool = False,
) -> list[Skeleton]:
    """Trace one skeleton per ground-truth object with kimimaro (TEASAR).

    Parameters
    ----------
    labels : ndarray of int, ZYX
        Ground-truth labels; ``background_label`` voxels are not traced.
    resolution : sequence of 3 float
        nm per voxel, Z, Y, X (kimimaro's anisotropy).
    dust_threshold_vox : int
        Objects with fewer voxels are skipped.
    teasar_params : dict, optional
        Overrides of :data:`TEASAR_PARAMS` (lengths in nm).
    background_label : int
        The ground truth's background.
    progress : bool
        Show kimimaro's progress bar.

    Returns
    -------
    list of Skeleton
        Named by label id, sorted by it; node positions are voxel centres
        ``index * resolution`` nm.
    """
    import kimimaro

    labels = np.asarray(labels)
    if background_label != 0:
        labels = np.where(labels == background_label, 0, labels)
    resolution = np.asarray(resolution, dtype=np.float64).reshape(3)
    params = {**TEASAR_PARAMS, **(teasar_params or {})}
    # kimimaro reads array axis 0 as x: hand it the X, Y, Z transpose (no copy).
    traced = kimimaro.skeletonize(
        np.asfortranarray(labels.T), teasar_params=params,
        anisotropy=tuple(resolution[::-1].tolist()), dust_threshold=int(dust_threshold_vox),
        progress=progress, fix_branching=True, fix_borders=True, parallel=1)
    return [Skeleton(np.asarray(s.vertices, np.float64)[:, ::-1], s.edges, name=str(label),
                     radii_nm=getattr(s, "radius", None))
            for label, s in sorted(traced.items())]


# --------------------------------------------------------------------- ERL
def node_segments(
    nodes_nm: np.ndarray,
    pred: np.ndarray,
    resolution: Sequence[float],
    *,
    offset_nm: Sequence[float] = (0, 0, 0),
    factors: Sequence[int] = (1, 1, 1),
) -> tuple[np.ndarray, int]:
    """Predicted segment of each node, and how many nodes lie outside ``pred``.

    ``nodes_nm`` (Z, Y, X nm) fall in the voxel of the ground-truth grid
    (``resolution``, ``offset_nm``) whose centre is nearest; ``pred`` is on a
    grid ``factors`` times coarser. Nodes outside ``pred`` get segment 0.
    """
    nodes_nm = np.asarray(nodes_nm, dtype=np.float64).reshape(-1, 3)
    index = np.rint((nodes_nm - np.asarray(offset_nm, np.float64))
                    / np.asarray(resolution, np.float64)).astype(np.int64)
    index //= np.asarray(factors, dtype=np.int64)
    inside = np.all((index >= 0) & (index < np.asarray(pred.shape)), axis=1)
    segments = np.zeros(len(index), dtype=np.int64)
    if inside.any():
        segments[inside] = np.asarray(pred[tuple(index[inside].T)], dtype=np.int64)
    return segments, int((~inside).sum())


def expected_run_length(skeletons: Sequence[Skeleton], segments: Sequence[np.ndarray]) -> dict:
    """ERL and error counts of skeletons whose nodes lie in the given segments.

    Parameters
    ----------
    skeletons : sequence of Skeleton
    segments : sequence of ndarray of int
        Predicted segment of each node of each skeleton (0: background).

    Returns
    -------
    dict
        ``erl_nm``, ``skeleton_length_nm``, ``skeletons``, ``skeletons_split``,
        ``skeletons_merged`` and ``merged_segments`` (see the module notes);
        ``erl_nm`` is NaN when the skeletons have no length.

    Examples
    --------
    >>> line = Skeleton([[0, 0, x] for x in range(11)], [[i, i + 1] for i in range(10)])
    >>> expected_run_length([line], [np.array([1] * 6 + [2] * 5)])["erl_nm"]
    4.1
    """
    if len(skeletons) != len(segments):
        raise ValueError(f"{len(skeletons)} skeletons but {len(segments)} segment arrays")
    sizes = [len(s.nodes_nm) for s in skeletons]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    owner = np.repeat(np.arange(len(skeletons)), sizes)
    seg = np.concatenate([np.asarray(s, np.int64).reshape(-1) for s in segments] or
                         [np.zeros(0, np.int64)])
    if len(seg) != starts[-1]:
        raise ValueError("each segment array must have one entry per skeleton node")
    edges = np.concatenate([s.edges + start for s, start in zip(skeletons, starts)] or
                           [np.zeros((0, 2), np.int64)])
    lengths = np.concatenate([s.edge_lengths_nm for s in skeletons] or [np.zeros(0)])
    # Merged segments: non-background segments holding nodes of two or more skeletons.
    pairs = np.unique(np.stack([seg, owner], axis=1)[seg != 0], axis=0)
    seg_ids, owners_per_seg = np.unique(pairs[:, 0], return_counts=True)
    merged = seg_ids[owners_per_seg > 1]
    a, b = seg[edges[:, 0]], seg[edges[:, 1]]
    correct = (a == b) & (a != 0) & ~np.isin(a, merged)
    n = len(seg)
    graph = scipy.sparse.coo_array(
        (np.ones(int(correct.sum())), (edges[correct, 0], edges[correct, 1])), shape=(n, n))
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    fragment = np.bincount(component[edges[correct, 0]], weights=lengths[correct],
                           minlength=max(n, 1))
    total = float(lengths.sum())
    split = np.bincount(pairs[:, 1], minlength=len(skeletons)) > 1
    in_merged = np.bincount(owner[np.isin(seg, merged)], minlength=len(skeletons)) > 0
    return {
        "erl_nm": float(fragment @ fragment / total) if total > 0 else float("nan"),
        "skeleton_length_nm": total,
        "skeletons": len(skeletons),
        "skeletons_split": int(split.sum()),
        "skeletons_merged": int(in_merged.sum()),
        "merged_segments": int(len(merged)),
    }


@dataclass(frozen=True)
class SkeletonSource:
    """Where ``diluvian evaluate --skeletons`` takes ground-truth skeletons from.

    Attributes
    ----------
    swc_folder : str, optional
        A folder of SWC files (nm); ``None``: trace the ground-truth labels
        with kimimaro.
    offset_nm : tuple of 3 float
        Z, Y, X position in nm of the ground truth's voxel 0 in the SWC
        coordinates (traced skeletons are in the ground truth's own frame).
    dust_threshold_vox : int
        kimimaro skips ground-truth objects with fewer voxels.
    """

    swc_folder: str | None = None
    offset_nm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    dust_threshold_vox: int = 1000

    def load(self, gt: np.ndarray, resolution) -> list[Skeleton]:
        """The skeletons: read from ``swc_folder`` or traced from ``gt``."""
        if self.swc_folder is not None:
            return read_swc_folder(self.swc_folder)
        logger.info("tracing ground-truth skeletons with kimimaro")
        return skeletons_from_labels(gt, resolution, dust_threshold_vox=self.dust_threshold_vox,
                                     progress=True)


def format_rows(figures: dict) -> list[str]:
    """Lines of ``diluvian evaluate``'s table for the skeleton figures."""
    return [f"{'ERL (nm)':<20} {figures['erl_nm']:>10.1f}",
            f"{'ERL max (nm)':<20} {figures['erl_max_nm']:>10.1f}",
            f"{'skeletons split':<20} {figures['skeletons_split']:>10d}",
            f"{'skeletons merged':<20} {figures['skeletons_merged']:>10d}",
            f"{'skeletons':<20} {figures['skeletons']:>10d}",
            f"{'skeleton length (nm)':<20} {figures['skeleton_length_nm']:>10.0f}"]


def skeleton_figures(source: SkeletonSource, gt: np.ndarray, pred: np.ndarray,
                     gt_resolution, pred_resolution=None) -> dict:
    """ERL figures of a prediction: ``erl_nm``, ``erl_max_nm``, splits and merges.

    The skeletons come from ``source``; ``pred`` may be on a grid a whole
    multiple coarser than the ground truth's (``pred_resolution``).
    """
    gt_res = np.asarray(gt_resolution, dtype=np.float64)
    pred_res = gt_res if pred_resolution is None else np.asarray(pred_resolution, np.float64)
    factors = np.maximum(np.rint(pred_res / gt_res), 1).astype(np.int64)
    skeletons = source.load(gt, gt_res)
    offset = source.offset_nm if source.swc_folder is not None else (0, 0, 0)
    segments, outside = [], 0
    for s in skeletons:
        seg, out = node_segments(s.nodes_nm, pred, gt_res, offset_nm=offset, factors=factors)
        segments.append(seg)
        outside += out
    if outside:
        logger.warning("%d skeleton nodes lie outside the prediction (counted as background)",
                       outside)
    figures = expected_run_length(skeletons, segments)
    own = [np.full(len(s.nodes_nm), i + 1) for i, s in enumerate(skeletons)]
    figures["erl_max_nm"] = expected_run_length(skeletons, own)["erl_nm"]
    figures["skeleton_nodes_outside"] = outside
    return figures
