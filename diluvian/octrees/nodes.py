"""Octree nodes: branches, dense leaves and uniform nodes (see :mod:`diluvian.octrees`)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "BranchNode",
    "LeafNode",
    "Node",
    "UniformBranchNode",
    "UniformLeafNode",
    "UniformNode",
]


class Node:
    """A node of an :class:`OctreeVolume`.

    Attributes
    ----------
    parent : BranchNode or None
        Parent node, ``None`` for the root.
    slot : int
        Index of this node in its parent's ``children``.
    level : int
        Height above the leaves: 0 for leaf-level nodes.
    start, stop : tuple of int
        Z, Y, X box ``[start, stop)`` of the node, clipped to the volume bounds.
    """

    __slots__ = ("level", "parent", "slot", "start", "stop")

    def __init__(self, parent, slot, level, start, stop):
        self.parent = parent
        self.slot = slot
        self.level = level
        self.start = start
        self.stop = stop

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` of this node clipped to the volume bounds, as arrays."""
        return np.array(self.start), np.array(self.stop)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Clipped shape of the node in voxels."""
        return tuple(b - a for a, b in zip(self.start, self.stop))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level}, start={self.start}, stop={self.stop})"


class BranchNode(Node):
    """An inner node with eight children (``None`` for those outside the bounds).

    Child ``i`` covers the octant whose Z, Y, X offsets are the bits
    ``(i >> 2) & 1``, ``(i >> 1) & 1`` and ``i & 1``.
    """

    __slots__ = ("children",)

    def __init__(self, parent, slot, level, start, stop):
        super().__init__(parent, slot, level, start, stop)
        self.children: list[Node | None] = [None] * 8


class LeafNode(Node):
    """A leaf-level node holding dense data of its clipped shape."""

    __slots__ = ("data",)

    def __init__(self, parent, slot, level, start, stop, data: np.ndarray):
        super().__init__(parent, slot, level, start, stop)
        self.data = data


class UniformNode(Node):
    """A node whose voxels all hold ``value``; nothing is allocated for it."""

    __slots__ = ("value",)

    def __init__(self, parent, slot, level, start, stop, value):
        super().__init__(parent, slot, level, start, stop)
        self.value = value


class UniformBranchNode(UniformNode):
    """A uniform node above leaf level."""

    __slots__ = ()


class UniformLeafNode(UniformNode):
    """A uniform node at leaf level."""

    __slots__ = ()


class _UnpopulatedNode(Node):
    """A node whose data the populator has not yet provided."""

    __slots__ = ()


def _same_value(a, b) -> bool:
    return bool(a == b) or (a != a and b != b)  # NaN equals NaN here
