"""Views over a parent volume that never copy its data.

A view maps its own voxel coordinates to its parent's with
``local_to_parent``/``parent_to_local`` and exposes lazy ``image_data``,
``label_data`` and ``mask_data`` array-likes; stacking views composes the
coordinate maps, so ``local_coord_to_world`` always lands in the root
volume's voxel grid.
"""

from __future__ import annotations

import numpy as np

from ..util import DiluvianError
from .arrays import CroppedArray, DownsampledArray, LazyArray, block_majority
from .base import Volume

__all__ = ["DownsampledVolume", "PartitionedVolume", "SparseWrappedVolume", "VolumeView"]


class VolumeView(Volume):
    """A volume defined by a transformation of a parent volume.

    The base view is the identity; subclasses override
    :meth:`local_to_parent`, :meth:`parent_to_local` and
    :meth:`parent_mat_to_local` and pass lazy data arrays.

    Parameters
    ----------
    parent : Volume
        The volume viewed.
    resolution : sequence of 3 int, optional
        Defaults to the parent's.
    image_data, label_data, mask_data : array-like, optional
        Default to the parent's arrays.
    """

    def __init__(self, parent: Volume, resolution=None, image_data=None, label_data=None,
                 mask_data=None):
        self.parent = parent
        super().__init__(
            parent.resolution if resolution is None else resolution,
            image_data=parent.image_data if image_data is None else image_data,
            label_data=parent.label_data if label_data is None else label_data,
            mask_data=parent.mask_data if mask_data is None else mask_data,
        )

    def local_to_parent(self, a) -> np.ndarray:
        """Map a coordinate of this view to the parent's voxel grid."""
        return np.asarray(a)

    def parent_to_local(self, a) -> np.ndarray:
        """Map a parent voxel coordinate to this view's grid."""
        return np.asarray(a)

    def parent_mat_to_local(self, m) -> np.ndarray:
        """Map an array on the parent's voxel grid to this view's grid."""
        return np.asarray(m)

    def local_coord_to_world(self, a) -> np.ndarray:
        return self.parent.local_coord_to_world(self.local_to_parent(a))

    def world_coord_to_local(self, a) -> np.ndarray:
        return self.parent_to_local(self.parent.world_coord_to_local(a))

    def world_mat_to_local(self, m) -> np.ndarray:
        return self.parent_mat_to_local(self.parent.world_mat_to_local(m))


class PartitionedVolume(VolumeView):
    """One of ``prod(partitioning)`` equal parts of a parent volume.

    Each axis is split into ``partitioning[i]`` parts of ``shape[i] //
    partitioning[i]`` voxels (a remainder at the far end belongs to no part).

    Parameters
    ----------
    parent : Volume
    partitioning : sequence of 3 int
        Number of parts along Z, Y, X.
    partition_index : sequence of 3 int
        Which part along each axis.
    """

    def __init__(self, parent: Volume, partitioning, partition_index):
        self.partitioning = np.asarray(partitioning, dtype=np.int64).reshape(3)
        self.partition_index = np.asarray(partition_index, dtype=np.int64).reshape(3)
        if np.any(self.partitioning < 1):
            raise DiluvianError(f"partitioning {self.partitioning.tolist()} must be positive")
        if np.any(self.partition_index < 0) or np.any(self.partition_index >= self.partitioning):
            raise DiluvianError(
                f"partition index {self.partition_index.tolist()} is outside partitioning "
                f"{self.partitioning.tolist()}")
        part_shape = np.asarray(parent.shape, np.int64) // self.partitioning
        if np.any(part_shape < 1):
            raise DiluvianError(f"partitioning {self.partitioning.tolist()} leaves empty parts "
                                f"of a volume of shape {list(parent.shape)}")
        self.offset = self.partition_index * part_shape
        self.stop = self.offset + part_shape

        def crop(a):
            return None if a is None else CroppedArray(a, self.offset, self.stop)

        super().__init__(parent, image_data=crop(parent.image_data),
                         label_data=crop(parent.label_data), mask_data=crop(parent.mask_data))
        # Keep parent data that is None as None.
        for name in ("image_data", "label_data", "mask_data"):
            if getattr(parent, name) is None:
                setattr(self, name, None)

    def local_to_parent(self, a) -> np.ndarray:
        return np.asarray(a) + self.offset

    def parent_to_local(self, a) -> np.ndarray:
        return np.asarray(a) - self.offset

    def parent_mat_to_local(self, m) -> np.ndarray:
        return np.asarray(m)[tuple(slice(int(a), int(b)) for a, b in zip(self.offset, self.stop))]


class DownsampledVolume(VolumeView):
    """A parent volume at a coarser resolution.

    Images are mean-pooled (the view's ``image_data`` is float32 in [0, 1));
    labels take the most frequent label of the sub-voxels (``'majority'``) or
    only the label on which all sub-voxels agree, else 0 (``'conjunction'``);
    masks are set only where all sub-voxels are.

    Parameters
    ----------
    parent : Volume
    downsample : sequence of 3 int, optional
        As diluvian 0.0.6: the number of halvings per axis, so the view's
        resolution is ``parent.resolution * 2 ** downsample``.
    resolution : sequence of 3 int, optional (keyword)
        nm per voxel instead; each axis an integer multiple of the parent's.
    label_mode : str
        ``'majority'`` or ``'conjunction'``.
    """

    def __init__(self, parent: Volume, downsample=None, *, resolution=None,
                 label_mode: str = "majority"):
        if (downsample is None) == (resolution is None):
            raise DiluvianError("DownsampledVolume takes either downsample (halvings per axis) "
                                "or resolution")
        if downsample is not None:
            resolution = np.asarray(parent.resolution) * np.exp2(
                np.asarray(downsample, dtype=np.int64)).astype(np.int64)
        resolution = np.asarray(resolution)
        if label_mode not in ("majority", "conjunction"):
            raise DiluvianError(f"label downsampling mode {label_mode!r} is invalid: expected "
                                "'majority' or 'conjunction'")
        ratio = resolution / parent.resolution
        scale = np.rint(ratio).astype(np.int64)
        if resolution.shape != (3,) or np.any(scale < 1) or not np.allclose(ratio, scale):
            raise DiluvianError(
                f"[volume] resolution {resolution.tolist()} can not be reached from data at "
                f"resolution {parent.resolution.tolist()}: expected a whole multiple of it on "
                "every axis")
        self.scale = scale
        self.label_mode = label_mode

        def down(a, mode):
            return None if a is None else DownsampledArray(a, scale, mode)

        super().__init__(parent, resolution=resolution,
                         image_data=down(parent.image_data, "mean"),
                         label_data=down(parent.label_data, label_mode),
                         mask_data=down(parent.mask_data, "all"))
        for name in ("image_data", "label_data", "mask_data"):
            if getattr(parent, name) is None:
                setattr(self, name, None)
        if any(s < 1 for s in self.shape):
            raise DiluvianError(f"downsampling shape {list(parent.shape)} by {scale.tolist()} "
                                "leaves an empty volume")

    def local_to_parent(self, a) -> np.ndarray:
        return np.asarray(a) * self.scale

    def parent_to_local(self, a) -> np.ndarray:
        return np.asarray(a) // self.scale

    def parent_mat_to_local(self, m) -> np.ndarray:
        m = np.asarray(m)
        n = np.asarray(m.shape) // self.scale
        m = m[tuple(slice(0, int(v * s)) for v, s in zip(n, self.scale))]
        sz, sy, sx = (int(v) for v in self.scale)
        blocks = m.reshape(n[0], sz, n[1], sy, n[2], sx)
        if np.issubdtype(m.dtype, np.floating):
            return blocks.mean(axis=(1, 3, 5)).astype(m.dtype)
        blocks = blocks.transpose(0, 2, 4, 1, 3, 5).reshape(*n, sz * sy * sx)
        return block_majority(blocks)


class _OctreeArray(LazyArray):
    """Array-like over a :class:`diluvian.octrees.OctreeVolume` covering ``shape``."""

    def __init__(self, octree, shape, dtype):
        self.octree = octree
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)

    def _read(self, start, stop):
        return np.asarray(self.octree[tuple(slice(int(a), int(b)) for a, b in zip(start, stop))])


def _read_box(a, bounds) -> np.ndarray:
    lo, hi = (np.asarray(b, np.int64) for b in bounds)
    return np.asarray(a[tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))])


class SparseWrappedVolume(VolumeView):
    """A view caching the parent's data in lazily populated octrees.

    Each array is an :class:`diluvian.octrees.OctreeVolume` whose leaves are
    read from the parent the first time they are touched, so repeated reads of
    a slow (lazy, remote) parent hit memory, and memory grows only with what
    was read.

    Parameters
    ----------
    parent : Volume
    image_leaf_shape, label_leaf_shape : sequence of 3 int, optional
        Octree leaf shapes; default ``DEFAULT_LEAF_SHAPE``.
    """

    DEFAULT_LEAF_SHAPE = (16, 64, 64)

    def __init__(self, parent: Volume, image_leaf_shape=None, label_leaf_shape=None):
        from ..octrees import OctreeVolume  # written separately; imported only when used

        shape = np.asarray(parent.shape, np.int64)
        bounds = (np.zeros(3, np.int64), shape)

        def wrap(a, leaf_shape, populator):
            if a is None:
                return None
            leaf = np.asarray(self.DEFAULT_LEAF_SHAPE if leaf_shape is None else leaf_shape,
                              dtype=np.int64)
            return _OctreeArray(OctreeVolume(leaf, bounds, np.dtype(a.dtype), populator=populator),
                                shape, a.dtype)

        self.image_leaf_shape = image_leaf_shape
        self.label_leaf_shape = label_leaf_shape
        super().__init__(parent,
                         image_data=wrap(parent.image_data, image_leaf_shape,
                                         self.image_populator),
                         label_data=wrap(parent.label_data, label_leaf_shape,
                                         self.label_populator),
                         mask_data=wrap(parent.mask_data, label_leaf_shape,
                                        lambda b: _read_box(parent.mask_data, b)))
        for name in ("image_data", "label_data", "mask_data"):
            if getattr(parent, name) is None:
                setattr(self, name, None)

    def image_populator(self, bounds) -> np.ndarray:
        """The parent's image in ``bounds`` (``(start, stop)``): the image octree's populator."""
        return _read_box(self.parent.image_data, bounds)

    def label_populator(self, bounds) -> np.ndarray:
        """The parent's labels in ``bounds``: the label octree's populator."""
        return _read_box(self.parent.label_data, bounds)
