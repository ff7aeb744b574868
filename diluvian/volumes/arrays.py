"""Lazy array-likes: read a box of a parent array only when sliced.

Every volume exposes ``image_data``, ``label_data`` and ``mask_data`` as
array-likes with ``shape``, ``dtype``, ``ndim`` and basic slicing that returns
numpy arrays. Views (crops, downsampling, sparse caches) implement them with
:class:`LazyArray` subclasses that only define ``_read(start, stop)``, so a
view never copies its parent.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CroppedArray",
    "DownsampledArray",
    "LazyArray",
    "block_majority",
    "read_box",
]


def _normalize_key(key, shape) -> tuple[np.ndarray, np.ndarray, list, list[bool]]:
    """Split a basic index into a box ``[start, stop)``, per-axis steps and dropped axes."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:i] + fill + key[i + 1:]
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for an array of {len(shape)} dimensions")
    key = key + (slice(None),) * (len(shape) - len(key))
    start, stop, steps, drop = [], [], [], []
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            r = range(*k.indices(n))
            if len(r) == 0:
                start.append(0)
                stop.append(0)
            else:
                start.append(min(r[0], r[-1]))
                stop.append(max(r[0], r[-1]) + 1)
            steps.append(r.step)
            drop.append(False)
        elif isinstance(k, (int, np.integer)):
            i = int(k)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {int(k)} is out of bounds for axis of size {n}")
            start.append(i)
            stop.append(i + 1)
            steps.append(1)
            drop.append(True)
        else:
            raise TypeError(f"lazy arrays support only integer and slice indices, got {k!r}")
    return np.array(start, dtype=np.int64), np.array(stop, dtype=np.int64), steps, drop


class LazyArray:
    """Base of array-likes that read a box of data on demand.

    Subclasses set ``shape`` and ``dtype`` and implement ``_read(start, stop)``
    returning the numpy array of the box ``[start, stop)`` (ZYX, in bounds).
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _read_slices(self, key: tuple[slice, ...]) -> np.ndarray:
        """Read an in-bounds box given as unit-step slices with explicit ends."""
        return self._read(np.array([k.start for k in key], np.int64),
                          np.array([k.stop for k in key], np.int64))

    def __getitem__(self, key) -> np.ndarray:
        if type(key) is tuple and len(key) == len(self.shape) and all(
                type(k) is slice and k.step in (None, 1) and k.start is not None
                and k.stop is not None and 0 <= k.start < k.stop <= n
                for k, n in zip(key, self.shape)):
            # Fast path for the common case: a plain in-bounds box.
            return np.asarray(self._read_slices(key))
        start, stop, steps, drop = _normalize_key(key, self.shape)
        if np.any(stop <= start):
            out = np.zeros(tuple(max(0, int(b - a)) for a, b in zip(start, stop)), self.dtype)
        else:
            out = np.asarray(self._read(start, stop))
        if any(s != 1 for s in steps):
            out = out[tuple(slice(None, None, s) for s in steps)]
        if any(drop):
            out = out[tuple(0 if d else slice(None) for d in drop)]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} shape={self.shape} dtype={self.dtype}>"


def read_box(array, start, stop, fill=0) -> np.ndarray:
    """Read ``array[start:stop]`` (ZYX), padding parts outside the array with ``fill``."""
    start = np.asarray(start, dtype=np.int64)
    stop = np.asarray(stop, dtype=np.int64)
    shape = np.asarray(array.shape, dtype=np.int64)
    lo = np.clip(start, 0, shape)
    hi = np.clip(stop, 0, shape)
    inner = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    if np.array_equal(lo, start) and np.array_equal(hi, stop):
        return np.asarray(array[inner])
    out = np.full(tuple((stop - start).tolist()), fill, dtype=array.dtype)
    if np.all(hi > lo):
        dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))
        out[dst] = np.asarray(array[inner])
    return out


class CroppedArray(LazyArray):
    """The box ``[start, stop)`` of a parent array-like, read lazily."""

    def __init__(self, parent, start, stop):
        self.parent = parent
        self.offset = np.asarray(start, dtype=np.int64)
        self.shape = tuple(int(v) for v in np.asarray(stop) - self.offset)
        self.dtype = np.dtype(parent.dtype)
        self._offsets = tuple(int(v) for v in self.offset)
        self._inside = all(o >= 0 and o + n <= p for o, n, p in zip(
            self._offsets, self.shape, parent.shape))

    def _read(self, start, stop):
        return read_box(self.parent, start + self.offset, stop + self.offset)

    def _read_slices(self, key):
        if self._inside:
            return self.parent[tuple(
                slice(k.start + o, k.stop + o) for k, o in zip(key, self._offsets))]
        return super()._read_slices(key)


def block_majority(blocks: np.ndarray) -> np.ndarray:
    """Most frequent value along the last axis (ties: the smallest value).

    Examples
    --------
    >>> block_majority(np.array([[3, 1, 3, 2], [5, 5, 4, 4]])).tolist()
    [3, 4]
    """
    s = np.sort(blocks, axis=-1)
    n = s.shape[-1]
    new_run = np.ones(s.shape, dtype=bool)
    new_run[..., 1:] = s[..., 1:] != s[..., :-1]
    idx = np.broadcast_to(np.arange(n), s.shape)
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0), axis=-1)
    run_len = idx - run_start + 1
    best = np.argmax(run_len, axis=-1)
    return np.take_along_axis(s, best[..., None], axis=-1)[..., 0]


class DownsampledArray(LazyArray):
    """A parent array-like reduced over ``scale``-shaped blocks, lazily.

    Parameters
    ----------
    parent : array-like
        ZYX data.
    scale : sequence of int
        Block shape per axis; the result has shape ``parent.shape // scale``.
    mode : str
        ``'mean'`` (float32 mean of :func:`~diluvian.util.to_float_image`,
        for images), ``'majority'`` (most frequent value), ``'conjunction'``
        (the value where all sub-voxels agree, else 0) or ``'all'`` (boolean
        and, for masks).
    """

    MODES = ("mean", "majority", "conjunction", "all")

    def __init__(self, parent, scale, mode: str):
        if mode not in self.MODES:
            raise ValueError(f"unknown downsampling mode {mode!r}")
        self.parent = parent
        self.scale = np.asarray(scale, dtype=np.int64)
        self.mode = mode
        self.shape = tuple(int(v) for v in np.asarray(parent.shape) // self.scale)
        if mode == "mean":
            self.dtype = np.dtype(np.float32)
        elif mode == "all":
            self.dtype = np.dtype(bool)
        else:
            self.dtype = np.dtype(parent.dtype)

    def _read(self, start, stop):
        from ..util import to_float_image

        data = np.asarray(self.parent[tuple(
            slice(int(a * s), int(b * s)) for a, b, s in zip(start, stop, self.scale))])
        n = stop - start
        sz, sy, sx = (int(v) for v in self.scale)
        blocks = data.reshape(n[0], sz, n[1], sy, n[2], sx)
        if self.mode == "mean":
            return to_float_image(blocks).mean(axis=(1, 3, 5), dtype=np.float32)
        if self.mode == "all":
            return blocks.astype(bool).all(axis=(1, 3, 5))
        blocks = blocks.transpose(0, 2, 4, 1, 3, 5).reshape(*n, sz * sy * sx)
        if self.mode == "conjunction":
            first = blocks[..., 0]
            agree = np.all(blocks == first[..., None], axis=-1)
            return np.where(agree, first, 0).astype(self.dtype)
        return block_majority(blocks)
