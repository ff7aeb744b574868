"""Block-sparse 3-D arrays: an octree of dense leaves with uniform nodes collapsed.

:class:`OctreeVolume` behaves like a Z, Y, X numpy array that only stores what
was written (or read through its populator). The tree's root covers a cube of
``leaf_shape * 2**depth`` voxels whose corner is the start of the clip
``bounds``; nodes wholly outside the bounds are ``None`` and leaves straddling
the upper bound store only their clipped part. A node is one of

- :class:`BranchNode`: eight children (``None`` where outside the bounds);
- :class:`LeafNode`: a dense ``ndarray`` of (clipped) ``leaf_shape``;
- :class:`UniformBranchNode`, :class:`UniformLeafNode` (both
  :class:`UniformNode`): every voxel has one value, nothing is allocated.

Nodes not yet read from a populator are internal placeholders. Assigning a
scalar to a box covering a whole node collapses that node to a uniform node
(and a branch whose children all become uniform with one value collapses
too); writing inside a uniform node splits only the nodes on the path to the
written leaves.

Indices are absolute voxel coordinates in ``[bounds[0], bounds[1])``: there
is no negative wrap-around (``vol[-1]`` is out of bounds). Use
:meth:`OctreeVolume.get_volume` for a 0-based, numpy-like view.
"""
from .nodes import (
    BranchNode,
    LeafNode,
    Node,
    UniformBranchNode,
    UniformLeafNode,
    UniformNode,
)
from .view import OctreeView
from .volume import OctreeVolume

__all__ = [
    "BranchNode",
    "LeafNode",
    "Node",
    "OctreeView",
    "OctreeVolume",
    "UniformBranchNode",
    "UniformLeafNode",
    "UniformNode",
]
