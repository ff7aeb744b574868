"""The :class:`OctreeVolume` sparse array (see :mod:`diluvian.octrees`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .keys import check_point as _check_point
from .keys import fancy_points as _fancy_points
from .keys import fast_box as _fast_box
from .keys import group_points as _group_points
from .keys import parse_key as _parse_key
from .keys import segments as _segments
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
from .tree import NodeStore
from .view import OctreeView

__all__ = ["OctreeVolume"]


class OctreeVolume(NodeStore):
    """A sparse Z, Y, X array stored as an octree of dense leaves.

    Parameters
    ----------
    leaf_shape : sequence of int
        Z, Y, X shape of the dense leaves (e.g. ``(32, 32, 32)``). Larger
        leaves make box copies faster and sparsity coarser.
    bounds : pair of sequence of int
        ``(start, stop)`` Z, Y, X voxel box the volume covers; indices are
        absolute coordinates in this box.
    dtype : dtype-like
        Data type of the stored values.
    populator : callable, optional
        ``populator(bounds) -> ndarray`` called with ``(start, stop)`` arrays
        of a leaf's clipped box the first time that leaf is read (or partly
        written); must return data of that shape. Used as a lazy cache of a
        larger data source.
    fill_value : scalar, optional
        Value of voxels never written when there is no populator (default
        0; region masks use ``np.nan`` for "unset").

    Examples
    --------
    >>> vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (10, 10, 10)), np.uint8)
    >>> vol[2:5, 3, 0:2] = 7
    >>> vol[2:5, 3, 0:3].tolist()
    [[7, 7, 0], [7, 7, 0], [7, 7, 0]]
    >>> int(vol[4, 3, 1])
    7
    """

    def __init__(
        self,
        leaf_shape: Sequence[int],
        bounds: tuple[Sequence[int], Sequence[int]],
        dtype,
        populator: Callable[[tuple[np.ndarray, np.ndarray]], np.ndarray] | None = None,
        fill_value=0,
    ):
        self.leaf_shape = tuple(int(s) for s in leaf_shape)
        start = tuple(int(s) for s in bounds[0])
        stop = tuple(int(s) for s in bounds[1])
        if len(self.leaf_shape) != 3 or len(start) != 3 or len(stop) != 3:
            raise ValueError(f"leaf_shape and bounds must be Z, Y, X triples, got "
                             f"{leaf_shape!r} and {bounds!r}")
        if min(self.leaf_shape) < 1 or any(b <= a for a, b in zip(start, stop)):
            raise ValueError(f"leaf_shape {self.leaf_shape} must be positive and bounds "
                             f"{start} - {stop} non-empty")
        self.bounds = (np.array(start, dtype=np.int64), np.array(stop, dtype=np.int64))
        self._start = start
        self._stop = stop
        self._axes = tuple(zip(start, self.leaf_shape, stop))
        self.dtype = np.dtype(dtype)
        self.populator = populator
        self.fill_value = self.dtype.type(fill_value)
        n_leaves = max(math.ceil((b - a) / s) for a, b, s in zip(start, stop, self.leaf_shape))
        self.depth = max(0, math.ceil(math.log2(n_leaves))) if n_leaves > 1 else 0
        #: leaf-level nodes (dense or uniform) by leaf grid index
        self._leaves: dict[tuple[int, int, int], Node] = {}
        #: dense leaf data by leaf grid index
        self._dense: dict[tuple[int, int, int], np.ndarray] = {}
        self.root: Node | None = None
        self.root = self._make_node(
            UniformLeafNode if populator is None and self.depth == 0
            else UniformBranchNode if populator is None else _UnpopulatedNode,
            None, 0, self.depth, start, value=self.fill_value)

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int, int]:
        """Z, Y, X shape of the clip bounds."""
        return tuple(b - a for a, b in zip(self._start, self._stop))

    def __repr__(self) -> str:
        return (f"OctreeVolume(leaf_shape={self.leaf_shape}, bounds=({list(self._start)}, "
                f"{list(self._stop)}), dtype={self.dtype}, fullness={self.fullness():.3g})")

    # ------------------------------------------------------------------ reads
    def __getitem__(self, key):
        """Read a box; as in diluvian 0.0.6 an integer index keeps its axis (length 1).

        ``vol[7:9, 4:6, 4]`` has shape ``(2, 2, 1)`` and ``vol[z, y, x]`` shape
        ``(1, 1, 1)``. Integer arrays (all of one shape) select points and
        return an array of that shape.
        """
        if type(key) is tuple and len(key) == 3:
            z, y, x = key
            if type(z) is int and type(y) is int and type(x) is int:
                return np.full((1, 1, 1), self._get_point(z, y, x), dtype=self.dtype)
            box = _fast_box(key, self._start, self._stop)
            if box is not None:
                return self._get_box(*box)
        box = _parse_key(key, self._start, self._stop)
        if box is None:
            return self._get_points(key)
        return self._get_box(box[0], box[1])

    def get_checked_np_key(self, key) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` int64 arrays of a box key (slices and integers), bounds-checked.

        Raises
        ------
        IndexError
            For a key outside the bounds or one that is not a box.
        """
        box = _parse_key(key, self._start, self._stop)
        if box is None:
            raise IndexError(f"{key!r} is not a box of slices and integers")
        return np.array(box[0], dtype=np.int64), np.array(box[1], dtype=np.int64)

    @property
    def root_node(self) -> Node:
        """The root node (diluvian 0.0.6's name of ``root``)."""
        return self.root

    @root_node.setter
    def root_node(self, node: Node) -> None:
        self.replace_child(self.root, node)

    def replace_child(self, child: Node, replacement: Node | None) -> Node | None:
        """Put ``replacement`` (or ``None``: no data) where node ``child`` is in this tree.

        The replacement takes ``child``'s place, level and box, and its
        subtree joins this octree's indices. Returns the replacement.
        """
        self._forget(child)
        if replacement is not None:
            replacement.parent, replacement.slot = child.parent, child.slot
            replacement.level, replacement.start, replacement.stop = (
                child.level, child.start, child.stop)
            self._adopt(replacement)
        if child.parent is None:
            self.root = replacement
        else:
            child.parent.set_child(child.slot, replacement)
        return replacement

    def _adopt(self, node: Node) -> None:
        """Register ``node``'s subtree in this tree's indices."""
        node.tree = self
        if isinstance(node, BranchNode):
            for child in node.iter_children():
                if child is not None:
                    self._adopt(child)
        elif node.level == 0 and not isinstance(node, _UnpopulatedNode):
            idx = self._leaf_index(node.start)
            self._leaves[idx] = node
            if isinstance(node, LeafNode):
                self._dense[idx] = node.data

    def _get_point(self, z, y, x):
        oz, oy, ox = self._start
        lz, ly, lx = self.leaf_shape
        data = self._dense.get(((z - oz) // lz, (y - oy) // ly, (x - ox) // lx))
        if data is not None:  # a negative offset gives a negative index: never a hit
            return data[(z - oz) % lz, (y - oy) % ly, (x - ox) % lx]
        _check_point((z, y, x), self._start, self._stop)
        return self._get_box((z, y, x), (z + 1, y + 1, x + 1))[0, 0, 0]

    def _get_box(self, start, stop) -> np.ndarray:
        shape = tuple(e - s for s, e in zip(start, stop))
        if 0 in shape:
            return np.empty(shape, dtype=self.dtype)
        segz, segy, segx = _segments(start, stop, self._axes)
        if len(segz) == 1 and len(segy) == 1 and len(segx) == 1:
            node = self._dense.get((segz[0][0], segy[0][0], segx[0][0]))
            if node is not None:
                return node[segz[0][1], segy[0][1], segx[0][1]].copy()
        leaves = self._leaves
        nodes = []
        for iz, lz, vz, _ in segz:
            for iy, ly, vy, _ in segy:
                for ix, lx, vx, _ in segx:
                    node = leaves.get((iz, iy, ix))
                    if node is None:
                        return self._get_tree(start, stop)
                    nodes.append((node, (lz, ly, lx), (vz, vy, vx)))
        out = np.empty(shape, dtype=self.dtype)
        for node, lsl, vsl in nodes:
            if isinstance(node, LeafNode):
                out[vsl] = node.data[lsl]
            else:
                out[vsl] = node.value
        return out

    def _get_tree(self, start, stop) -> np.ndarray:
        out = np.empty(tuple(e - s for s, e in zip(start, stop)), dtype=self.dtype)
        self._get_rec(self.root, start, stop, out)
        return out

    def _get_rec(self, node, start, stop, out) -> None:
        lo = tuple(max(a, b) for a, b in zip(start, node.start))
        hi = tuple(min(a, b) for a, b in zip(stop, node.stop))
        if any(a >= b for a, b in zip(lo, hi)):
            return
        osl = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
        if isinstance(node, UniformNode):
            out[osl] = node.value
        elif isinstance(node, _UnpopulatedNode) and node.level == 0:
            node = self._populate(node)
        elif isinstance(node, _UnpopulatedNode):
            node = self._split(node)
        if isinstance(node, LeafNode):
            out[osl] = node.data[tuple(slice(a - s, b - s)
                                       for a, b, s in zip(lo, hi, node.start))]
        elif isinstance(node, BranchNode):
            for child in node.iter_children():
                if child is not None:
                    self._get_rec(child, start, stop, out)

    def _get_points(self, key) -> np.ndarray:
        pts = _fancy_points(key, self._start, self._stop)
        order, local, groups = _group_points(
            [p.ravel() for p in pts], self._start, self._stop, self.leaf_shape)
        got = np.empty(order.shape, dtype=self.dtype)
        for idx, a, b in groups:
            node = self._leaves.get(idx)
            sel = tuple(c[a:b] for c in local)
            if node is None:
                lo = [int(c.min()) for c in sel]
                hi = [int(c.max()) + 1 for c in sel]
                base = self._leaf_start(idx)
                block = self._get_box(tuple(b + a for a, b in zip(lo, base)),
                                      tuple(b + a for a, b in zip(hi, base)))
                got[a:b] = block[tuple(c - a for c, a in zip(sel, lo))]
            elif isinstance(node, LeafNode):
                got[a:b] = node.data[sel]
            else:
                got[a:b] = node.value
        out = np.empty_like(got)
        out[order] = got
        return out.reshape(pts[0].shape)

    def _leaf_start(self, idx):
        return tuple(o + i * ls for o, i, ls in zip(self._start, idx, self.leaf_shape))


    # ------------------------------------------------------------------ writes
    def __setitem__(self, key, value) -> None:
        if type(key) is tuple and len(key) == 3:
            z, y, x = key
            if type(z) is int and type(y) is int and type(x) is int:
                oz, oy, ox = self._start
                lz, ly, lx = self.leaf_shape
                data = self._dense.get(((z - oz) // lz, (y - oy) // ly, (x - ox) // lx))
                if data is not None:  # a negative offset gives a negative index: never a hit
                    data[(z - oz) % lz, (y - oy) % ly, (x - ox) % lx] = value
                    return
                self._set_point((z, y, x), value)
                return
            box = _fast_box(key, self._start, self._stop)
            if box is not None:
                start, stop = box
                if type(value) is np.ndarray and value.shape == tuple(
                        e - s for s, e in zip(start, stop)):
                    self._set_box(start, stop, value, scalar=False)
                    return
                if type(value) in (float, int, bool) or isinstance(value, np.generic):
                    self._set_box(start, stop, self.dtype.type(value), scalar=True)
                    return
        box = _parse_key(key, self._start, self._stop)
        if box is None:
            self._set_points(key, value)
            return
        start, stop, squeeze = box
        shape = tuple(e - s for s, e in zip(start, stop))
        if np.ndim(value) == 0:
            self._set_box(start, stop, self.dtype.type(value), scalar=True)
            return
        value = np.asarray(value)
        if value.shape != shape and squeeze and value.ndim == 3 - len(squeeze):
            # numpy-style values without the integer-indexed axes.
            value = np.broadcast_to(
                value, [n for i, n in enumerate(shape) if i not in squeeze]).reshape(shape)
        elif value.shape != shape:
            value = np.broadcast_to(value, shape)
        self._set_box(start, stop, value, scalar=False)

    def _set_point(self, point, value) -> None:
        point = _check_point(point, self._start, self._stop)
        leaf = self._materialize_leaf(self._leaf_index(point))
        leaf.data[tuple(p - s for p, s in zip(point, leaf.start))] = value

    def _set_box(self, start, stop, value, scalar: bool) -> None:
        if any(e <= s for s, e in zip(start, stop)):
            return
        segz, segy, segx = _segments(start, stop, self._axes)
        dense = self._dense
        if len(segz) == 1 and len(segy) == 1 and len(segx) == 1:
            (iz, lz, vz, cz), (iy, ly, vy, cy), (ix, lx, vx, cx) = segz[0], segy[0], segx[0]
            data = dense.get((iz, iy, ix))
            if data is not None and not (scalar and cz and cy and cx):
                data[lz, ly, lx] = value if scalar else value[vz, vy, vx]
                return
        elif len(segz) * len(segy) * len(segx) <= 64:
            todo = []
            for iz, lz, vz, cz in segz:
                for iy, ly, vy, cy in segy:
                    for ix, lx, vx, cx in segx:
                        data = dense.get((iz, iy, ix))
                        if data is None or (scalar and cz and cy and cx):
                            break
                        todo.append((data, (lz, ly, lx), (vz, vy, vx)))
                    else:
                        continue
                    break
                else:
                    continue
                break
            else:
                if scalar:
                    for data, lsl, _ in todo:
                        data[lsl] = value
                else:
                    for data, lsl, vsl in todo:
                        data[lsl] = value[vsl]
                return
        self._set_rec(self.root, start, stop, value, scalar)

    def _set_rec(self, node, start, stop, value, scalar) -> None:
        lo = tuple(max(a, b) for a, b in zip(start, node.start))
        hi = tuple(min(a, b) for a, b in zip(stop, node.stop))
        if any(a >= b for a, b in zip(lo, hi)):
            return
        if scalar and isinstance(node, UniformNode) and _same_value(node.value, value):
            return
        covers = lo == node.start and hi == node.stop
        if covers and scalar:
            self._replace(node, UniformLeafNode if node.level == 0 else UniformBranchNode,
                          value=value)
            return
        vsl = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
        if node.level == 0:
            if covers and not isinstance(node, LeafNode):
                self._replace(node, LeafNode, data=np.array(value[vsl], dtype=self.dtype))
                return
            node = self._dense_leaf(node)
            node.data[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, node.start))] = (
                value if scalar else value[vsl])
            return
        if not isinstance(node, BranchNode):
            node = self._split(node)
        for child in list(node.iter_children()):
            if child is not None:
                self._set_rec(child, start, stop, value, scalar)
        if scalar:
            self._try_collapse(node)

    def _set_points(self, key, value) -> None:
        pts = _fancy_points(key, self._start, self._stop)
        values = np.broadcast_to(np.asarray(value, dtype=self.dtype), pts[0].shape).ravel()
        order, local, groups = _group_points(
            [p.ravel() for p in pts], self._start, self._stop, self.leaf_shape)
        values = values[order]
        for idx, a, b in groups:
            data = self._dense.get(idx)
            if data is None:
                data = self._materialize_leaf(idx).data
            data[local[0][a:b], local[1][a:b], local[2][a:b]] = values[a:b]

    # ------------------------------------------------------------------ whole-tree
    def iter_leaves(self) -> Iterator[LeafNode]:
        """Yield the dense leaves (in tree order); uniform and unpopulated nodes are skipped."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, LeafNode):
                yield node
            elif isinstance(node, BranchNode):
                stack.extend(c for c in reversed(list(node.iter_children())) if c is not None)

    def get_leaf_bounds(self) -> list[np.ndarray] | None:
        """``[start, stop]``: the box of all dense leaves, clipped to the bounds (0.0.6).

        ``None`` when there are no dense leaves.
        """
        if not self._dense:
            return None
        leaves = [self._leaves[idx] for idx in self._dense]
        return [np.min([leaf.start for leaf in leaves], axis=0).astype(np.int64),
                np.max([leaf.stop for leaf in leaves], axis=0).astype(np.int64)]

    def iter_leaf_bounds(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(start, stop)`` of each dense leaf, clipped to the volume bounds."""
        for leaf in self.iter_leaves():
            yield leaf.bounds

    def iter_nodes(self) -> Iterator[Node]:
        """Yield every node of the tree, parents before children."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            if isinstance(node, BranchNode):
                stack.extend(c for c in reversed(list(node.iter_children())) if c is not None)

    def fullness(self) -> float:
        """Dense leaves per leaf-shaped cell covering the clip bounds (as 0.0.6).

        The cells are ``ceil(shape / leaf_shape)`` per axis; uniform nodes do
        not count. See :meth:`stored_fraction` for the share of voxels.
        """
        cells = math.prod(math.ceil(n / s) for n, s in zip(self.shape, self.leaf_shape))
        return len(self._dense) / cells

    def stored_fraction(self) -> float:
        """Fraction of the clip bounds' voxels that are stored densely."""
        stored = sum(data.size for data in self._dense.values())
        return stored / math.prod(self.shape)

    def nbytes(self) -> int:
        """Bytes held by dense leaves."""
        return sum(data.nbytes for data in self._dense.values())

    def map_copy(
        self,
        dtype,
        leaf_map: Callable[[np.ndarray], np.ndarray],
        uniform_map: Callable[[object], object],
    ) -> OctreeVolume:
        """Return a copy with ``leaf_map`` applied to dense leaves and ``uniform_map`` to uniform values.

        The copy has the same tree: uniform nodes stay uniform. Nodes not yet
        populated stay lazy, with a populator that applies ``leaf_map`` to
        this volume's populator.

        Parameters
        ----------
        dtype : dtype-like
            Data type of the copy.
        leaf_map : callable
            ``ndarray -> ndarray`` of the same shape, for dense leaf data.
        uniform_map : callable
            ``scalar -> scalar``, for uniform node values and the fill value.
        """
        populator = None
        if self.populator is not None:
            source = self.populator

            def populator(bounds):
                return leaf_map(np.asarray(source(bounds), dtype=self.dtype))

        copy = OctreeVolume(self.leaf_shape, self.bounds, dtype, populator=populator,
                            fill_value=uniform_map(self.fill_value))
        copy._leaves.clear()
        copy._dense.clear()
        copy.root = copy._clone(self.root, None, leaf_map, uniform_map)
        return copy

    def _clone(self, node, parent, leaf_map, uniform_map):
        """A copy of ``node``'s subtree (of any octree) registered in this octree."""
        if node is None:
            return None
        if isinstance(node, BranchNode):
            new = BranchNode(parent, node.slot, node.level, node.start, node.stop)
            new.tree = self
            for i, child in enumerate(node.iter_children()):
                new.set_child(i, self._clone(child, new, leaf_map, uniform_map))
            return new
        if isinstance(node, LeafNode):
            data = np.asarray(leaf_map(node.data), dtype=self.dtype)
            if data.shape != node.shape:
                raise ValueError(f"leaf_map changed a leaf's shape from {node.shape} "
                                 f"to {data.shape}")
            return self._make_node(LeafNode, parent, node.slot, node.level, node.start,
                                   data=np.array(data, copy=True))
        if isinstance(node, UniformNode):
            return self._make_node(type(node), parent, node.slot, node.level, node.start,
                                   value=self.dtype.type(uniform_map(node.value)))
        return self._make_node(_UnpopulatedNode, parent, node.slot, node.level, node.start)

    def __array__(self, dtype=None, copy=None):
        """Dense copy of the whole bounds (only sensible for small bounds)."""
        out = self._get_box(self._start, self._stop)
        return out if dtype is None else out.astype(dtype)

    def get_volume(self) -> OctreeVolume:
        """This volume itself (diluvian 0.0.6's accessor of a node's or volume's data)."""
        return self

    def view(self) -> OctreeView:
        """A 0-based, numpy-like view of the whole bounds (reads and writes go to this tree)."""
        return OctreeView(self)
