"""A typed box in voxels, Z, Y, X: :class:`Box` (``[start, stop)``).

Blockwise layouts, context boxes and intersections are boxes; the per-FOV
hot loop of the fill engine keeps plain tuples
(:func:`diluvian.regions.blocks.box_slices`, ``clip_box``) for speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Box"]


def _as_int_tuple(values, name: str) -> tuple[int, ...]:
    if isinstance(values, tuple) and all(type(v) is int for v in values):
        return values  # the common case, kept fast
    arr = np.asarray(values).reshape(-1)
    if arr.dtype.kind not in "iub" and arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"Box {name} {arr.tolist()!r} is invalid: expected integers")
    return tuple(int(v) for v in arr.tolist())


@dataclass(frozen=True)
class Box:
    """The box ``[start, stop)`` in voxels (Z, Y, X, or any number of axes).

    Parameters
    ----------
    start, stop : sequence of int
        First voxel of the box and one past its last voxel, per axis. Stored
        as tuples of ``int``; a box with ``stop <= start`` on some axis is
        empty. Boxes compare equal (and hash) by ``start`` and ``stop``.

    Examples
    --------
    >>> box = Box((0, 2, 4), (3, 6, 8))
    >>> box.shape
    (3, 4, 4)
    >>> box.to_slices()
    (slice(0, 3, None), slice(2, 6, None), slice(4, 8, None))
    >>> box.grow(2).clip((10, 10, 10))
    Box(start=(0, 0, 2), stop=(5, 8, 10))
    >>> box.intersect(Box((1, 0, 0), (2, 3, 5)))
    Box(start=(1, 2, 4), stop=(2, 3, 5))
    >>> (1, 2, 4) in box, (3, 2, 4) in box
    (True, False)
    """

    start: tuple[int, ...]
    stop: tuple[int, ...]

    def __post_init__(self):
        start, stop = _as_int_tuple(self.start, "start"), _as_int_tuple(self.stop, "stop")
        if len(start) != len(stop):
            raise ValueError(f"Box start {list(start)} and stop {list(stop)} differ in length")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "stop", stop)

    @classmethod
    def from_shape(cls, shape: Sequence[int], start: Sequence[int] | None = None) -> Box:
        """The box of ``shape`` at ``start`` (default the origin).

        Examples
        --------
        >>> Box.from_shape((2, 3, 4), start=(1, 1, 1))
        Box(start=(1, 1, 1), stop=(3, 4, 5))
        """
        start = np.zeros(len(shape), np.int64) if start is None else np.asarray(start)
        return cls(start, start + np.asarray(shape))

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.start)

    @property
    def shape(self) -> tuple[int, ...]:
        """Size per axis (0 where the box is empty along it)."""
        return tuple(max(b - a, 0) for a, b in zip(self.start, self.stop))

    @property
    def size(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def empty(self) -> bool:
        """Whether the box holds no voxel."""
        return any(b <= a for a, b in zip(self.start, self.stop))

    @property
    def lo(self) -> np.ndarray:
        """``start`` as an int64 array."""
        return np.asarray(self.start, dtype=np.int64)

    @property
    def hi(self) -> np.ndarray:
        """``stop`` as an int64 array."""
        return np.asarray(self.stop, dtype=np.int64)

    def to_slices(self) -> tuple[slice, ...]:
        """The slices selecting the box from an array."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def intersect(self, other: Box) -> Box | None:
        """The intersection with ``other``; ``None`` when it is empty.

        Examples
        --------
        >>> Box((0, 0), (2, 2)).intersect(Box((2, 0), (4, 2))) is None
        True
        """
        box = Box(np.maximum(self.lo, other.lo), np.minimum(self.hi, other.hi))
        return None if box.empty else box

    def grow(self, margin) -> Box:
        """The box grown by ``margin`` voxels (one number or one per axis) on each side.

        A negative margin shrinks it.
        """
        margin = np.broadcast_to(np.asarray(margin, dtype=np.int64), (self.ndim,))
        return Box(self.lo - margin, self.hi + margin)

    def clip(self, shape: Sequence[int]) -> Box:
        """The box clipped to a volume of ``shape`` (the box ``[0, shape)``)."""
        return Box(np.maximum(self.lo, 0), np.minimum(self.hi, np.asarray(shape, np.int64)))

    def inside(self, shape: Sequence[int]) -> bool:
        """Whether the box lies wholly within a volume of ``shape``.

        Examples
        --------
        >>> Box((0, 0), (2, 3)).inside((2, 3)), Box((-1, 0), (2, 3)).inside((2, 3))
        (True, False)
        """
        return all(a >= 0 for a in self.start) and all(
            b <= n for b, n in zip(self.stop, shape))

    def shift(self, offset) -> Box:
        """The box moved by ``offset`` voxels."""
        offset = np.asarray(offset, dtype=np.int64)
        return Box(self.lo + offset, self.hi + offset)

    def __contains__(self, point) -> bool:
        """Whether the voxel ``point`` lies in the box."""
        p = tuple(int(v) for v in np.asarray(point).reshape(-1))
        return len(p) == self.ndim and all(a <= v < b for a, v, b in zip(self.start, p,
                                                                          self.stop))
