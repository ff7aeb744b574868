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
    tree : OctreeVolume or None
        The octree holding the node (set when the octree creates it).
    """

    __slots__ = ("level", "parent", "slot", "start", "stop", "tree")

    def __init__(self, parent, slot, level, start, stop):
        self.parent = parent
        self.slot = slot
        self.level = level
        self.start = start
        self.stop = stop
        self.tree = None

    # diluvian 0.0.6's node API ------------------------------------------------
    def count_leaves(self) -> int:
        """Number of dense leaf nodes in this subtree (uniform nodes are not counted)."""
        return 0

    def get_intersection(self, bounds) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` of this node's box intersected with ``bounds``."""
        lo = np.maximum(np.asarray(bounds[0], dtype=np.int64), self.start)
        hi = np.minimum(np.asarray(bounds[1], dtype=np.int64), self.stop)
        return lo, np.maximum(hi, lo)

    def get_size(self) -> np.ndarray:
        """Z, Y, X size of this node's (clipped) box."""
        return np.array(self.shape, dtype=np.int64)

    def get_volume(self) -> np.ndarray:
        """The dense data of this node's box (read through its octree)."""
        return self.tree._get_box(self.start, self.stop)

    def replace(self, replacement: Node | None = None) -> Node | None:
        """Put ``replacement`` in this node's place in its octree; returns it."""
        return self.tree.replace_child(self, replacement)

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

    ``children[i][j][k]`` (as in diluvian 0.0.6) covers the octant at Z, Y, X
    offsets ``i``, ``j``, ``k`` (0 or 1); its flat ``slot`` is
    ``i << 2 | j << 1 | k`` (see :meth:`child`, :meth:`iter_children`).
    """

    __slots__ = ("children",)

    def __init__(self, parent, slot, level, start, stop):
        super().__init__(parent, slot, level, start, stop)
        self.children: list = [[[None, None], [None, None]], [[None, None], [None, None]]]

    def child(self, slot: int) -> Node | None:
        """The child in flat ``slot`` (0-7)."""
        return self.children[slot >> 2][(slot >> 1) & 1][slot & 1]

    def set_child(self, slot: int, node: Node | None) -> None:
        self.children[slot >> 2][(slot >> 1) & 1][slot & 1] = node

    def iter_children(self):
        """The eight children (``None`` included) in slot order."""
        for plane in self.children:
            for row in plane:
                yield from row

    # diluvian 0.0.6's branch API ---------------------------------------------
    def count_leaves(self) -> int:
        return sum(c.count_leaves() for c in self.iter_children() if c is not None)

    def get_child_bounds(self, i: int, j: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` of octant ``[i][j][k]`` clipped to the volume bounds."""
        ext = np.array(self.tree.leaf_shape, dtype=np.int64) << (self.level - 1)
        start = np.array(self.start, dtype=np.int64) + np.array([i, j, k]) * ext
        return start, np.minimum(start + ext, self.tree.bounds[1])

    def get_children_mask(self, key) -> np.ndarray:
        """2x2x2 bool: which octants meet the box ``key`` (``(start, stop)`` arrays)."""
        mask = np.zeros((2, 2, 2), dtype=bool)
        for i in range(2):
            for j in range(2):
                for k in range(2):
                    lo, hi = self.get_child_bounds(i, j, k)
                    mask[i, j, k] = bool(np.all(np.maximum(lo, key[0]) < np.minimum(hi, key[1])))
        return mask

    def populate_child(self, i: int, j: int, k: int) -> Node | None:
        """Octant ``[i][j][k]``, read from the octree's populator if it was not yet."""
        child = self.children[i][j][k]
        if child is None or child.level > 0:
            return child
        return self.tree._dense_leaf(child)

    def iter_leaves(self):
        """Yield the dense leaves below this branch, in slot order."""
        for c in self.iter_children():
            if isinstance(c, LeafNode):
                yield c
            elif isinstance(c, BranchNode):
                yield from c.iter_leaves()

    def replace_child(self, child: Node, replacement: Node | None) -> Node | None:
        """Put ``replacement`` in ``child``'s place (see :meth:`Node.replace`)."""
        if self.child(child.slot) is not child:
            raise ValueError(f"{child!r} is not a child of {self!r}")
        return self.tree.replace_child(child, replacement)

    def map_copy(self, copy_parent, leaf_map, uniform_map) -> BranchNode:
        """A copy of this subtree for the octree of ``copy_parent`` (a branch or an octree).

        ``leaf_map`` maps dense leaf data and ``uniform_map`` uniform values,
        as :meth:`OctreeVolume.map_copy`.
        """
        if isinstance(copy_parent, Node):
            return copy_parent.tree._clone(self, copy_parent, leaf_map, uniform_map)
        return copy_parent._clone(self, None, leaf_map, uniform_map)


class LeafNode(Node):
    """A leaf-level node holding dense data of its clipped shape."""

    __slots__ = ("data",)

    def __init__(self, parent, slot, level, start, stop, data: np.ndarray):
        super().__init__(parent, slot, level, start, stop)
        self.data = data

    def count_leaves(self) -> int:
        return 1

    def get_volume(self) -> np.ndarray:
        return self.data


class UniformNode(Node):
    """A node whose voxels all hold ``value``; nothing is allocated for it."""

    __slots__ = ("value",)

    def __init__(self, parent, slot, level, start, stop, value):
        super().__init__(parent, slot, level, start, stop)
        self.value = value

    def get_volume(self) -> np.ndarray:
        return np.full(self.shape, self.value, dtype=np.asarray(self.value).dtype)


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
