"""Node bookkeeping of :class:`~diluvian.octrees.OctreeVolume`.

:class:`NodeStore` keeps an octree's nodes and its leaf-grid indices
consistent while nodes are created, replaced, split into branches, collapsed
into uniform nodes, and populated from the volume's populator. It holds no
indexing logic: :class:`~diluvian.octrees.OctreeVolume` builds reads and
writes on it.
"""

from __future__ import annotations

import numpy as np

from .nodes import (
    BranchNode,
    LeafNode,
    Node,
    UniformBranchNode,
    UniformLeafNode,
    UniformNode,
    _same_value,
    _UnpopulatedNode,
)

__all__ = ["NodeStore"]


class NodeStore:
    """Base of :class:`~diluvian.octrees.OctreeVolume`: node creation and replacement.

    Subclasses set ``leaf_shape``, ``dtype``, ``populator``, ``root``, the
    clip bounds ``_start`` and ``_stop`` (tuples), and the empty indices
    ``_leaves`` (leaf-level node by leaf grid index) and ``_dense`` (dense
    leaf data by leaf grid index) before creating nodes.
    """

    leaf_shape: tuple[int, int, int]
    dtype: np.dtype
    root: Node | None
    _start: tuple[int, int, int]
    _stop: tuple[int, int, int]
    _leaves: dict[tuple[int, int, int], Node]
    _dense: dict[tuple[int, int, int], np.ndarray]

    def _leaf_index(self, start) -> tuple[int, int, int]:
        return tuple((s - o) // ls for s, o, ls in zip(start, self._start, self.leaf_shape))

    def _make_node(self, cls, parent, slot, level, start, value=None, data=None):
        stop = tuple(min(s + ls * (1 << level), b)
                     for s, ls, b in zip(start, self.leaf_shape, self._stop))
        if cls is LeafNode:
            node = LeafNode(parent, slot, level, start, stop, data)
        elif issubclass(cls, UniformNode):
            node = cls(parent, slot, level, start, stop, value)
        else:
            node = cls(parent, slot, level, start, stop)
        node.tree = self
        if level == 0 and cls is not _UnpopulatedNode:
            idx = self._leaf_index(start)
            self._leaves[idx] = node
            if cls is LeafNode:
                self._dense[idx] = data
        return node

    def _forget(self, node: Node | None) -> None:
        """Drop ``node``'s subtree from the leaf indices."""
        if node is None:
            return
        if node.level == 0:
            idx = self._leaf_index(node.start)
            if self._leaves.get(idx) is node:
                del self._leaves[idx]
                self._dense.pop(idx, None)
        elif isinstance(node, BranchNode):
            for child in node.iter_children():
                self._forget(child)

    def _replace(self, old: Node, cls, value=None, data=None) -> Node:
        self._forget(old)
        new = self._make_node(cls, old.parent, old.slot, old.level, old.start,
                              value=value, data=data)
        if old.parent is None:
            self.root = new
        else:
            old.parent.set_child(old.slot, new)
        return new

    def _split(self, node: Node) -> BranchNode:
        """Replace a uniform or unpopulated branch-level node by a branch of the same content."""
        branch = self._replace(node, BranchNode)
        level = node.level - 1
        ext = [ls << level for ls in self.leaf_shape]
        if isinstance(node, UniformNode):
            cls = UniformLeafNode if level == 0 else UniformBranchNode
            value = node.value
        else:
            cls, value = _UnpopulatedNode, None
        for i in range(8):
            start = (node.start[0] + ((i >> 2) & 1) * ext[0],
                     node.start[1] + ((i >> 1) & 1) * ext[1],
                     node.start[2] + (i & 1) * ext[2])
            if all(s < b for s, b in zip(start, self._stop)):
                branch.set_child(i, self._make_node(cls, branch, i, level, start, value=value))
        return branch

    def _populate(self, node: Node) -> LeafNode:
        bounds = node.bounds
        data = np.asarray(self.populator(bounds))
        if data.shape != node.shape:
            raise ValueError(f"populator returned shape {data.shape} for bounds "
                             f"{bounds[0].tolist()} - {bounds[1].tolist()}; expected {node.shape}")
        return self._replace(node, LeafNode, data=np.array(data, dtype=self.dtype))

    def _dense_leaf(self, node: Node) -> LeafNode:
        """Make a leaf-level node dense, keeping its content."""
        if isinstance(node, LeafNode):
            return node
        if isinstance(node, UniformNode):
            return self._replace(node, LeafNode, data=np.full(node.shape, node.value, self.dtype))
        return self._populate(node)

    def _try_collapse(self, node: BranchNode) -> None:
        """Collapse a branch whose children are all uniform with one value."""
        value = None
        for child in node.iter_children():
            if child is None:
                continue
            if not isinstance(child, UniformNode):
                return
            if value is None:
                value = child.value
            elif not _same_value(value, child.value):
                return
        self._replace(node, UniformBranchNode, value=value)

    def _materialize_leaf(self, idx) -> LeafNode:
        """Return the dense leaf with grid index ``idx``, splitting only the path to it."""
        node = self.root
        while node.level > 0:
            if not isinstance(node, BranchNode):
                node = self._split(node)
            bit = node.level - 1
            node = node.children[(idx[0] >> bit) & 1][(idx[1] >> bit) & 1][(idx[2] >> bit) & 1]
        return self._dense_leaf(node)
