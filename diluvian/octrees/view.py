"""A 0-based, numpy-like view of an :class:`~diluvian.octrees.OctreeVolume`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .volume import OctreeVolume

__all__ = ["OctreeView"]

_Int = (int, np.integer)


class OctreeView:
    """A dense-array-like view of an :class:`OctreeVolume`, indexed from 0 like numpy.

    Supports ``shape``, ``dtype``, ``ndim``, basic slicing with negative
    indices (step 1), ``np.asarray(view)`` (dense copy: only for small
    bounds), and assignment.
    """

    def __init__(self, octree: OctreeVolume):
        self.octree = octree
        self.shape = octree.shape
        self.dtype = octree.dtype
        self.ndim = 3

    def _shift(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (3 - len(key))
        out = []
        for k, n, o in zip(key, self.shape, self.octree._start):
            if isinstance(k, slice):
                a, b, step = k.indices(n)
                if step != 1:
                    raise IndexError("octree views take slices with step 1")
                out.append(slice(a + o, max(a, b) + o))
            elif isinstance(k, _Int):
                k = int(k)
                if not -n <= k < n:
                    raise IndexError(f"index {k} is out of bounds for axis of size {n}")
                out.append(k % n + o)
            else:
                k = np.asarray(k)
                out.append(np.where(k < 0, k + n, k) + o)
        return tuple(out)

    def __getitem__(self, key):
        shifted = self._shift(key)
        out = self.octree[shifted]
        ints = [i for i, k in enumerate(shifted) if isinstance(k, int)]
        if not ints or len(ints) < 3 and any(isinstance(k, np.ndarray) for k in shifted):
            return out
        out = out.reshape([n for i, n in enumerate(out.shape) if i not in ints])  # numpy-like
        return out[()] if out.ndim == 0 else out

    def __setitem__(self, key, value):
        self.octree[self._shift(key)] = value

    def __array__(self, dtype=None, copy=None):
        out = self.octree[:, :, :]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]
