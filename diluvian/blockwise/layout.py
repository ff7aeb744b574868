"""Block layout: cutting a volume into block cores with clipped overlap margins.

Pure numpy, no Dask or zarr. A block's *core* tiles the volume exactly (the
last block along an axis may be smaller); its *outer* box is the core grown by
``block_overlap`` voxels on each side, clipped to the volume. Every block has
a *slot* of shape ``block_shape + 2 * block_overlap`` in the scratch array,
where its outer box is stored at the position it would have if it were not
clipped, so that reading any box of a block's outer region from the scratch
array is a plain slice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..geometry import Box
from ..util import DiluvianError

__all__ = [
    "Block",
    "BlockLayout",
    "FACE_OFFSETS",
    "FORWARD_OFFSETS",
    "box_intersection",
    "box_slices",
]

#: The 13 neighbour offsets with a positive first nonzero component: each
#: unordered pair of 26-neighbouring blocks appears once as (block, block + offset).
FORWARD_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    o for o in itertools.product((-1, 0, 1), repeat=3)
    if o != (0, 0, 0) and next(v for v in o if v != 0) > 0)

#: The 3 of :data:`FORWARD_OFFSETS` that cross one face: the neighbour pairs
#: that reconciliation compares.
FACE_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    o for o in FORWARD_OFFSETS if sum(map(abs, o)) == 1)


def box_slices(lo, hi) -> tuple[slice, ...]:
    """Slices of the box ``[lo, hi)`` (``Box(lo, hi).to_slices()``)."""
    return Box(lo, hi).to_slices()


def box_intersection(lo_a, hi_a, lo_b, hi_b) -> tuple[np.ndarray, np.ndarray] | None:
    """``(lo, hi)`` of the intersection of two boxes, ``None`` when it is empty.

    See :meth:`diluvian.geometry.Box.intersect`.
    """
    box = Box(lo_a, hi_a).intersect(Box(lo_b, hi_b))
    return None if box is None else (box.lo, box.hi)


@dataclass(frozen=True)
class Block:
    """One block of a :class:`BlockLayout` (all boxes ``[lo, hi)`` in voxels, Z, Y, X).

    Attributes
    ----------
    index : tuple of int
        Grid position of the block.
    number : int
        Row-major number of the block in the grid (its IDs carry it in the
        high 32 bits, see :meth:`BlockLayout.global_id_offset`).
    core_lo, core_hi : tuple of int
        The block core: cores tile the volume exactly.
    outer_lo, outer_hi : tuple of int
        The core with its overlap margin, clipped to the volume: the box that
        is filled.
    """

    index: tuple[int, int, int]
    number: int
    core_lo: tuple[int, int, int]
    core_hi: tuple[int, int, int]
    outer_lo: tuple[int, int, int]
    outer_hi: tuple[int, int, int]

    @property
    def core(self) -> Box:
        """The block core as a :class:`~diluvian.geometry.Box`."""
        return Box(self.core_lo, self.core_hi)

    @property
    def outer(self) -> Box:
        """The outer box (core with its clipped margin) as a :class:`~diluvian.geometry.Box`."""
        return Box(self.outer_lo, self.outer_hi)

    @property
    def key(self) -> str:
        """``'z_y_x'`` grid index, used in the store's attributes."""
        return "_".join(str(i) for i in self.index)


class BlockLayout:
    """Blocks of ``block_shape`` cores with ``block_overlap`` margins over a volume.

    Parameters
    ----------
    shape : sequence of 3 int
        Volume shape (Z, Y, X voxels).
    block_shape : sequence of 3 int
        Core shape of each block (voxels); positive.
    block_overlap : sequence of 3 int
        Margin added on each side of a core (voxels); non-negative.

    Raises
    ------
    DiluvianError
        For non-positive block shapes or negative overlaps.

    Examples
    --------
    >>> layout = BlockLayout((10, 20, 20), (5, 10, 10), (1, 2, 2))
    >>> layout.grid_shape
    (2, 2, 2)
    >>> b = layout.block((1, 0, 0))
    >>> b.core_lo, b.core_hi, b.outer_lo, b.outer_hi
    ((5, 0, 0), (10, 10, 10), (4, 0, 0), (10, 12, 12))
    """

    def __init__(self, shape, block_shape, block_overlap):
        self.shape = tuple(int(s) for s in shape)
        self.block_shape = tuple(int(s) for s in np.asarray(block_shape).ravel())
        self.block_overlap = tuple(int(s) for s in np.asarray(block_overlap).ravel())
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise DiluvianError(f"volume shape {list(self.shape)} must be 3 positive sizes")
        if len(self.block_shape) != 3 or min(self.block_shape) < 1:
            raise DiluvianError(f"[fill] block_shape {list(self.block_shape)} must be 3 positive "
                                "voxel counts (Z, Y, X)")
        if len(self.block_overlap) != 3 or min(self.block_overlap) < 0:
            raise DiluvianError(f"[fill] block_overlap {list(self.block_overlap)} must be 3 "
                                "non-negative voxel counts (Z, Y, X)")
        self.grid_shape = tuple(-(-s // b) for s, b in zip(self.shape, self.block_shape))
        self.slot_shape = tuple(b + 2 * o for b, o in zip(self.block_shape, self.block_overlap))
        self.scratch_shape = tuple(g * s for g, s in zip(self.grid_shape, self.slot_shape))

    def __len__(self) -> int:
        return int(np.prod(self.grid_shape))

    def __iter__(self):
        for index in np.ndindex(*self.grid_shape):
            yield self.block(index)

    def block(self, index) -> Block:
        """The :class:`Block` at grid position ``index``."""
        index = tuple(int(i) for i in index)
        if any(not 0 <= i < g for i, g in zip(index, self.grid_shape)):
            raise IndexError(f"block {list(index)} outside grid {list(self.grid_shape)}")
        start = np.asarray(index) * np.asarray(self.block_shape)
        core = Box.from_shape(self.block_shape, start).clip(self.shape)
        outer = core.grow(self.block_overlap).clip(self.shape)
        number = int(np.ravel_multi_index(index, self.grid_shape))
        return Block(index, number, core.start, core.stop, outer.start, outer.stop)

    def neighbours(self, block: Block, faces: bool = False) -> list[Block]:
        """The forward 26-neighbours of ``block`` (see :data:`FORWARD_OFFSETS`) in the grid.

        With ``faces``, only the forward neighbours across one face
        (:data:`FACE_OFFSETS`).
        """
        out = []
        for offset in FACE_OFFSETS if faces else FORWARD_OFFSETS:
            index = tuple(i + o for i, o in zip(block.index, offset))
            if all(0 <= i < g for i, g in zip(index, self.grid_shape)):
                out.append(self.block(index))
        return out

    def grown(self, lo, hi, margin) -> tuple[np.ndarray, np.ndarray]:
        """The box ``[lo, hi)`` grown by ``margin`` voxels on each side, clipped to the volume.

        Examples
        --------
        >>> lo, hi = BlockLayout((10, 20, 20), (5, 10, 10), (1, 2, 2)).grown((0, 5, 5), (5, 15, 15), 8)
        >>> lo.tolist(), hi.tolist()
        ([0, 0, 0], [10, 20, 20])
        """
        box = self.grow(Box(lo, hi), margin)
        return box.lo, box.hi

    def grow(self, box: Box, margin) -> Box:
        """``box`` grown by ``margin`` voxels on each side, clipped to the volume."""
        return box.grow(margin).clip(self.shape)

    def scratch_box(self, block: Block, lo, hi) -> tuple[slice, ...]:
        """Slices of the scratch array holding the volume box ``[lo, hi)`` of ``block``'s outer box."""
        origin = np.asarray(block.core_lo) - np.asarray(self.block_overlap)
        slot = np.asarray(block.index) * np.asarray(self.slot_shape)
        return Box(lo, hi).shift(slot - origin).to_slices()

    def slot_slices(self, block: Block) -> tuple[slice, ...]:
        """Slices of ``block``'s whole slot (one chunk) in the scratch array."""
        slot = np.asarray(block.index) * np.asarray(self.slot_shape)
        return Box.from_shape(self.slot_shape, slot).to_slices()

    @staticmethod
    def global_id_offset(block: Block) -> int:
        """IDs of ``block`` are ``number << 32 | local_id``: unique across blocks."""
        return block.number << 32
