"""Training subvolume centres drawn as Google FFN draws them: evenly by fill fraction.

The *fill fraction* of a voxel is the fraction of the input field of view
centred on it that belongs to the voxel's own object. Objects that nearly
fill the FOV (a thick axon) and those that barely enter it (a thin process
near a membrane) are rare or common depending on the tissue; FFN partitions
the training voxels into bins of this fraction and draws each example from
a bin chosen uniformly, so every kind of situation is learnt as often
(Januszewski et al. 2018, "partition volumes" and coordinate sampling).
``[training] sampling = "fill_fraction"`` does the same; diluvian 0.0.6's
``"uniform"`` draws any voxel.

The fractions of a volume are computed once (one box filter per object,
over the object's bounding box grown by half a FOV) and cached in memory per
volume, labels and FOV.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..util import DiluvianError

__all__ = ["FillFractionSampler", "fill_fractions"]


def fill_fractions(labels: np.ndarray, fov_shape: Sequence[int]) -> np.ndarray:
    """Fraction of the ``fov_shape`` box around each voxel filled by the voxel's object.

    Voxels of label 0 (background) get 0. The box is clipped at the volume
    faces but the fraction is always of the whole box, so objects leaving
    the volume count as filling less.

    Examples
    --------
    >>> labels = np.zeros((1, 4, 4), np.uint8); labels[0, :2, :] = 1
    >>> fill_fractions(labels, (1, 3, 3))[0, 0].round(3).tolist()
    [0.222, 0.333, 0.333, 0.222]
    """
    labels = np.asarray(labels)
    fov = np.asarray(fov_shape, dtype=np.int64)
    if labels.ndim != 3 or fov.shape != (3,) or np.any(fov < 1):
        raise DiluvianError(f"fill fractions need 3D labels and a 3D FOV, got {labels.shape} "
                            f"and {fov.tolist()}")
    half = fov // 2
    out = np.zeros(labels.shape, dtype=np.float32)
    ids, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape).astype(np.int32, copy=False)
    boxes = ndimage.find_objects(inverse + 1)
    for index, box in enumerate(boxes):
        if box is None or ids[index] == 0:
            continue
        grown = tuple(slice(max(0, s.start - int(h)), min(n, s.stop + int(h)))
                      for s, h, n in zip(box, half, labels.shape))
        mask = inverse[grown] == index
        counts = ndimage.uniform_filter(mask.astype(np.float32), size=tuple(int(f) for f in fov),
                                        mode="constant", cval=0.0)
        out[grown][mask] = counts[mask]
    return out


_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_LOCK = threading.Lock()


def _cached_fractions(labels: np.ndarray, fov_shape) -> np.ndarray:
    digest = hashlib.blake2b(np.ascontiguousarray(labels).view(np.uint8), digest_size=16)
    key = (digest.hexdigest(), labels.shape, str(labels.dtype), tuple(int(f) for f in fov_shape))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        hit = fill_fractions(labels, fov_shape)
        with _CACHE_LOCK:
            _CACHE[key] = hit
    return hit


class FillFractionSampler:
    """Draws subvolume centres of one volume evenly across fill-fraction bins.

    Parameters
    ----------
    labels : ndarray
        The volume's labels (Z, Y, X).
    fov_shape : sequence of 3 int
        The input FOV whose fill fraction bins the centres.
    subv_shape : sequence of 3 int
        The subvolume drawn around each centre: centres lie where it fits
        inside the volume.
    bins : sequence of float
        Increasing bin edges in (0, 1]; centres below the first edge (and
        background) are never drawn.

    Attributes
    ----------
    counts : ndarray of int
        Candidate centres per bin (``len(bins)`` bins, the last one up to 1).
    """

    def __init__(self, labels: np.ndarray, fov_shape, subv_shape, bins: Sequence[float]):
        labels = np.asarray(labels)
        self.shape = np.asarray(labels.shape, dtype=np.int64)
        subv = np.asarray(subv_shape, dtype=np.int64)
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 1 or np.any(np.diff(edges) <= 0) \
                or edges[0] <= 0 or edges[-1] > 1:
            raise DiluvianError(f"[training] sampling_bins = {edges.tolist()} must be "
                                "increasing fractions in (0, 1]")
        fractions = _cached_fractions(labels, fov_shape)
        lo = subv // 2
        hi = self.shape - (subv - subv // 2)
        if np.any(hi < lo):
            raise DiluvianError(f"training subvolume {subv.tolist()} does not fit in a volume "
                                f"of shape {self.shape.tolist()}")
        inner = fractions[tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))]
        which = np.digitize(inner, edges) - 1  # -1: below the first edge
        self.offset = lo
        self.inner_shape = np.asarray(inner.shape, dtype=np.int64)
        flat = which.ravel()
        order = np.argsort(flat, kind="stable")
        starts = np.searchsorted(flat[order], np.arange(len(edges) + 1))
        self._bins = [order[starts[b]:starts[b + 1]] for b in range(len(edges))]
        self.counts = np.array([len(b) for b in self._bins], dtype=np.int64)
        if not self.counts.any():
            raise DiluvianError("no training centre reaches the first [training] sampling_bins "
                                f"edge {edges[0]}: is the volume labelled?")

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One centre (Z, Y, X voxel of the volume): a uniform bin, then a uniform voxel in it."""
        occupied = np.flatnonzero(self.counts)
        b = int(occupied[rng.integers(len(occupied))])
        flat = int(self._bins[b][rng.integers(self.counts[b])])
        return self.offset + np.asarray(np.unravel_index(flat, tuple(self.inner_shape)))
