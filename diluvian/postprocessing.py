"""Segmentation processing after flood filling: components, closing, consensus, skeletons.

A :class:`Body` is a boolean Z, Y, X mask of one filled object together with
the seed it was filled from. Connected components use face connectivity (6
neighbours in 3-D). Skeletons are traced with kimimaro (TEASAR) and written as
SWC in world coordinates (nm, x y z columns).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .util import DiluvianError, atomic_output

__all__ = ["Body", "binary_closing", "consensus_labels", "largest_component", "seeded_component",
           "skeleton_to_swc", "skeletonize_component"]

logger = logging.getLogger(__name__)


def binary_closing(mask: np.ndarray, closing_shape: Sequence[int] | None) -> np.ndarray:
    """Morphological closing of ``mask`` with a box of ``closing_shape`` voxels (Z, Y, X).

    The mask is padded before closing so that voxels at the array border are
    not eroded away. ``None`` (or a box of ones) returns the mask unchanged.

    Examples
    --------
    >>> m = np.zeros((1, 1, 7), bool); m[0, 0, [1, 2, 4, 5]] = True
    >>> binary_closing(m, (1, 1, 3)).astype(int).tolist()
    [[[0, 1, 1, 1, 1, 1, 0]]]
    """
    mask = np.asarray(mask, dtype=bool)
    if closing_shape is None:
        return mask.copy()
    shape = tuple(int(s) for s in closing_shape)
    if len(shape) != mask.ndim or min(shape) < 1:
        raise DiluvianError(f"closing_shape = {list(shape)} is invalid: expected {mask.ndim} "
                            f"positive voxel sizes")
    if max(shape) == 1:
        return mask.copy()
    pad = [(s, s) for s in shape]
    closed = ndimage.binary_closing(np.pad(mask, pad), structure=np.ones(shape, dtype=bool))
    return closed[tuple(slice(s, -s) for s in shape)]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest face-connected component of ``mask`` (all False if empty)."""
    labels, n = ndimage.label(np.asarray(mask, dtype=bool))
    if n == 0:
        return np.zeros(labels.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def seeded_component(mask: np.ndarray, seed: Sequence[int]) -> np.ndarray:
    """Boolean mask of the face-connected component of ``mask`` containing ``seed``.

    All False when the seed voxel is not in the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    seed = tuple(int(s) for s in seed)
    if not mask[seed]:
        return np.zeros(mask.shape, dtype=bool)
    labels, _ = ndimage.label(mask)
    return labels == labels[seed]


class Body:
    """One segmented object: a boolean Z, Y, X mask and the seed it grew from.

    Parameters
    ----------
    mask : array-like of bool
        Z, Y, X mask of the object (any array-like; converted to ``bool``).
    seed : sequence of int
        Z, Y, X voxel of the seed, in the mask's coordinates.

    Examples
    --------
    >>> m = np.zeros((3, 3, 5), bool); m[1, 1, 0:2] = m[1, 1, 3:5] = True
    >>> body = Body(m, (1, 1, 0))
    >>> body.is_seed_in_mask(), int(body.get_seeded_component().sum())
    (True, 2)
    >>> int(body.get_seeded_component(closing_shape=(1, 1, 3)).sum())
    5
    """

    def __init__(self, mask, seed: Sequence[int]):
        self.mask = np.asarray(mask, dtype=bool)
        if self.mask.ndim != 3:
            raise ValueError(f"a body mask must be Z, Y, X (3-D), got shape {self.mask.shape}")
        self.seed = np.asarray(seed, dtype=np.int64).reshape(3)
        if np.any(self.seed < 0) or np.any(self.seed >= self.mask.shape):
            raise ValueError(f"seed {self.seed.tolist()} is outside the mask of shape "
                             f"{self.mask.shape}")

    def is_seed_in_mask(self) -> bool:
        """Whether the seed voxel is set in the mask."""
        return bool(self.mask[tuple(self.seed)])

    def get_largest_component(self, closing_shape: Sequence[int] | None = None) -> np.ndarray:
        """Boolean mask of the largest connected component, after optional closing.

        Parameters
        ----------
        closing_shape : sequence of int, optional
            Z, Y, X voxel shape of the box for morphological closing first.
        """
        return largest_component(binary_closing(self.mask, closing_shape))

    def get_seeded_component(self, closing_shape: Sequence[int] | None = None) -> np.ndarray:
        """Boolean mask of the connected component containing the seed, after optional closing.

        All False when the seed is not in the (closed) mask.

        Parameters
        ----------
        closing_shape : sequence of int, optional
            Z, Y, X voxel shape of the box for morphological closing first.
        """
        return seeded_component(binary_closing(self.mask, closing_shape), self.seed)

    def to_skeleton(self, resolution: Sequence[float] = (1, 1, 1),
                    offset_vox: Sequence[int] = (0, 0, 0), teasar_params: dict | None = None):
        """Skeletonise the mask with kimimaro; vertices are X, Y, Z world coordinates in nm.

        Parameters
        ----------
        resolution : sequence of float
            Z, Y, X nm per voxel.
        offset_vox : sequence of int
            Z, Y, X voxel position of the mask's origin in the world volume.
        teasar_params : dict, optional
            kimimaro TEASAR parameters (lengths in nm) overriding kimimaro's
            defaults (``scale`` 1.5, ``const`` 300 nm: spurs shorter than
            about ``scale * radius + const`` are not traced).

        Returns
        -------
        osteoid.Skeleton or None
            ``None`` when the mask is empty.
        """
        import kimimaro

        resolution = np.asarray(resolution, dtype=np.float64).reshape(3)
        offset_vox = np.asarray(offset_vox, dtype=np.float64).reshape(3)
        params = {"scale": 1.5, "const": 300.0, "pdrf_scale": 100000,
                  "pdrf_exponent": 4, "soma_acceptance_threshold": 3500,
                  "soma_detection_threshold": 750, "soma_invalidation_const": 300,
                  "soma_invalidation_scale": 2}
        params.update(teasar_params or {})
        # kimimaro treats array axis 0 as x: hand it the X, Y, Z transpose.
        labels = np.ascontiguousarray(self.mask.T, dtype=np.uint8)
        skeletons = kimimaro.skeletonize(
            labels, teasar_params=params, anisotropy=tuple(resolution[::-1].tolist()),
            dust_threshold=0, progress=False, fix_branching=True, fix_borders=True, parallel=1)
        if not skeletons:
            return None
        skeleton = skeletons[1]
        skeleton.vertices = (skeleton.vertices.astype(np.float64)
                             + (offset_vox * resolution)[::-1]).astype(np.float32)
        return skeleton

    def to_swc(self, filename: str | os.PathLike, resolution: Sequence[float] = (1, 1, 1),
               offset_vox: Sequence[int] = (0, 0, 0), teasar_params: dict | None = None) -> None:
        """Write a skeleton of the mask as an SWC file in world coordinates.

        Columns are ``id type x y z radius parent`` with x, y, z and radius in
        nm (physical X, Y, Z, from ``resolution`` and ``offset_vox``), parent
        ``-1`` for roots. An empty mask writes a file with only comments. The
        file is written atomically.

        Parameters
        ----------
        filename : str or path-like
            Output SWC file.
        resolution : sequence of float
            Z, Y, X nm per voxel.
        offset_vox : sequence of int
            Z, Y, X voxel position of the mask's origin in the world volume.
        teasar_params : dict, optional
            kimimaro TEASAR parameters, see :meth:`to_skeleton`.
        """
        skeleton = self.to_skeleton(resolution, offset_vox, teasar_params)
        seed_nm = ((self.seed + np.asarray(offset_vox)) * np.asarray(resolution))[::-1]
        header = (f"# diluvian body skeleton; seed (x, y, z nm) "
                  f"{' '.join(f'{c:g}' for c in seed_nm)}\n")
        if skeleton is None:
            logger.warning("body mask is empty: writing an SWC without nodes to %s", filename)
            text = header
        else:
            text = header + skeleton_to_swc(skeleton)
        with atomic_output(filename) as tmp:
            tmp.write_text(text)


def consensus_labels(a: np.ndarray, b: np.ndarray, min_size: int = 0,
                     connected: bool = True) -> np.ndarray:
    """Split two label volumes wherever they disagree: their intersection, relabelled.

    Parameters
    ----------
    a, b : ndarray of int, same shape (at most 3 dimensions)
        Two segmentations of one volume, 0 for background.
    min_size : int
        Pieces with fewer voxels become background.
    connected : bool
        Split each piece into its face-connected components (as FFN's
        consensus does), so that an object never has parts that do not touch;
        ``False`` keeps a pair's voxels one object even where they are apart.

    Returns
    -------
    ndarray of uint64
        Each pair ``(a, b)`` of non-zero labels that share a voxel becomes one
        object (one per connected component when ``connected``); ids are 1,
        2, ... in the order of each piece's first voxel (C order). Voxels
        either volume leaves as background stay 0.

    Examples
    --------
    >>> a = np.array([1, 1, 1, 1, 0, 2])
    >>> b = np.array([5, 5, 6, 6, 6, 6])
    >>> consensus_labels(a, b).tolist()
    [1, 1, 2, 2, 0, 3]
    >>> consensus_labels(a, b, min_size=2).tolist()
    [1, 1, 2, 2, 0, 0]
    >>> consensus_labels([1, 0, 1], [2, 2, 2]).tolist()
    [1, 0, 2]
    >>> consensus_labels([1, 0, 1], [2, 2, 2], connected=False).tolist()
    [1, 0, 1]
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise DiluvianError(f"consensus of label volumes of shapes {list(a.shape)} and "
                            f"{list(b.shape)}: expected the same shape")
    if a.ndim > 3:
        raise DiluvianError(f"consensus of {a.ndim}-dimensional label volumes: expected at "
                            "most 3 dimensions")
    out = np.zeros(a.shape, dtype=np.uint64)
    where = np.flatnonzero((a != 0) & (b != 0))
    if where.size == 0:
        return out
    a_index = np.unique(a.ravel()[where], return_inverse=True)[1].reshape(-1)
    b_index = np.unique(b.ravel()[where], return_inverse=True)[1].reshape(-1)
    keys = a_index.astype(np.int64) * (int(b_index.max()) + 1) + b_index
    if connected:
        import cc3d

        pairs = np.zeros(a.shape, dtype=np.uint64)
        pairs.ravel()[where] = np.unique(keys, return_inverse=True)[1].reshape(-1) + 1
        cube = pairs.reshape((1,) * (3 - pairs.ndim) + pairs.shape)
        keys = cc3d.connected_components(cube, connectivity=6).ravel()[where]
    _, first, piece, sizes = np.unique(keys, return_index=True, return_inverse=True,
                                       return_counts=True)
    kept = np.flatnonzero(sizes >= max(int(min_size), 1))
    # New ids 1, 2, ... in the order of each kept piece's first voxel; dropped pieces 0.
    new_id = np.zeros(len(sizes), dtype=np.uint64)
    new_id[kept[np.argsort(first[kept], kind="stable")]] = np.arange(1, len(kept) + 1)
    out.ravel()[where] = new_id[piece.reshape(-1)]
    return out


def skeletonize_component(component, resolution: Sequence[float] = (1, 1, 1),
                          offset_vox: Sequence[int] = (0, 0, 0), teasar_params: dict | None = None):
    """Skeleton of a boolean component mask (diluvian 0.0.6's name); see :meth:`Body.to_skeleton`.

    Returns an ``osteoid.Skeleton`` in nm (X, Y, Z vertices), or ``None``
    for an empty mask.
    """
    component = np.asarray(component, dtype=bool)
    points = np.argwhere(component)
    seed = points[0] if len(points) else np.zeros(3, dtype=np.int64)
    return Body(component, seed).to_skeleton(resolution, offset_vox, teasar_params)


def skeleton_to_swc(skeleton, offset: Sequence[float] | None = None,
                    resolution: Sequence[float] | None = None) -> str:
    """SWC text (``id type x y z radius parent``) of a skeleton (diluvian 0.0.6's name).

    ``offset`` (Z, Y, X voxels, times ``resolution`` in nm per voxel) is
    added to the vertex positions first, for skeletons made in a crop.
    """
    if offset is not None:
        res = np.ones(3) if resolution is None else np.asarray(resolution, dtype=np.float64)
        shift = (np.asarray(offset, dtype=np.float64) * res)[::-1]
        skeleton = skeleton.clone()
        skeleton.vertices = (skeleton.vertices.astype(np.float64) + shift).astype(np.float32)
    return skeleton.to_swc()
