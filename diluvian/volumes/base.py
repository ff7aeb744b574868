"""The :class:`Volume` base class: image, label and mask data at a resolution.

A volume holds up to three co-registered ZYX array-likes (``image_data``,
``label_data``, ``mask_data``) and a resolution in nm per voxel. It hands out
:class:`~diluvian.volumes.subvolume.Subvolume` boxes for training and
filling, and builds lazy views (:meth:`Volume.partition`,
:meth:`Volume.downsample`, :meth:`Volume.sparse_wrapper`) that never copy the
data.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

import numpy as np

from ..util import DiluvianError, get_nonzero_aabb, make_rng, to_float_image
from .arrays import read_box
from .subvolume import Subvolume, SubvolumeBounds

__all__ = ["DimOrder", "NdarrayVolume", "Volume"]


class DimOrder(enum.IntEnum):
    """Index of each axis in ZYX arrays."""

    Z = 0
    Y = 1
    X = 2


def _resolution(value) -> np.ndarray:
    res = np.asarray(value)
    if res.shape != (3,) or np.any(res <= 0):
        raise DiluvianError(f"resolution {np.asarray(value).tolist()!r} is invalid: expected "
                            "3 positive numbers (nm per voxel, Z, Y, X)")
    return np.rint(res).astype(np.int64) if np.allclose(res, np.rint(res)) else res


class Volume:
    """A ZYX volume of image data with optional labels and mask.

    Parameters
    ----------
    resolution : sequence of 3 numbers
        nm per voxel, Z, Y, X.
    image_data, label_data, mask_data : array-like, optional
        Co-registered ZYX data: raw image (e.g. ``uint8``), integer object
        labels (0 is background) and a boolean mask of where seeds and
        training boxes may be placed. Any object with ``shape``, ``dtype``,
        ``ndim`` and slicing to numpy works (numpy, h5py, zarr, lazy views).

    Attributes
    ----------
    resolution : ndarray of int
        nm per voxel, Z, Y, X.
    """

    #: Maximum tries to draw a seed inside the mask before giving up.
    MAX_SEED_TRIES = 10_000

    def __init__(self, resolution, image_data=None, label_data=None, mask_data=None):
        self.resolution = _resolution(resolution)
        self.image_data = image_data
        self.label_data = label_data
        self.mask_data = mask_data
        shapes = {name: tuple(getattr(self, name).shape)
                  for name in ("image_data", "label_data", "mask_data")
                  if getattr(self, name) is not None}
        if len(set(shapes.values())) > 1:
            raise DiluvianError("volume data shapes differ: " + ", ".join(
                f"{k} {list(v)}" for k, v in shapes.items()))
        if any(len(v) != 3 for v in shapes.values()):
            raise DiluvianError("volume data must be 3-dimensional (Z, Y, X): " + ", ".join(
                f"{k} {list(v)}" for k, v in shapes.items()))
        self._mask_bounds = None

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int, int]:
        """ZYX shape in voxels."""
        for data in (self.image_data, self.label_data, self.mask_data):
            if data is not None:
                return tuple(int(v) for v in data.shape)
        raise DiluvianError(f"{type(self).__name__} has no data")

    @property
    def mask_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` of the nonzero part of the mask (the whole volume without one)."""
        if self._mask_bounds is None:
            if self.mask_data is None:
                self._mask_bounds = (np.zeros(3, np.int64), np.array(self.shape, np.int64))
            else:
                lo, hi = get_nonzero_aabb(np.asarray(self.mask_data[...]))
                self._mask_bounds = (np.array(lo, np.int64), np.array(hi, np.int64))
        return self._mask_bounds

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} shape={list(self.shape)} "
                f"resolution={self.resolution.tolist()} labels={self.label_data is not None} "
                f"mask={self.mask_data is not None}>")

    def __eq__(self, other: object) -> bool:
        """Volumes are equal when resolution and all data arrays are equal."""
        if not isinstance(other, Volume):
            return NotImplemented
        if not np.array_equal(self.resolution, other.resolution) or self.shape != other.shape:
            return False
        for name in ("image_data", "label_data", "mask_data"):
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None):
                return False
            if a is not None and not np.array_equal(np.asarray(a[...]), np.asarray(b[...])):
                return False
        return True

    __hash__ = object.__hash__

    # ------------------------------------------------------------ coordinates
    def local_coord_to_world(self, a) -> np.ndarray:
        """Map a voxel coordinate of this volume to the root volume's voxel grid."""
        return np.asarray(a)

    def world_coord_to_local(self, a) -> np.ndarray:
        """Map a root-volume voxel coordinate to this volume's grid."""
        return np.asarray(a)

    def world_mat_to_local(self, m) -> np.ndarray:
        """Map an array on the root volume's voxel grid to this volume's grid."""
        return np.asarray(m)

    # ------------------------------------------------------------------ views
    def partition(self, partitioning, partition_index):
        """A lazy view of one of ``prod(partitioning)`` equal parts of this volume.

        Parameters
        ----------
        partitioning : sequence of 3 int
            Number of parts along Z, Y, X.
        partition_index : sequence of 3 int
            Index of the part along each axis.
        """
        from .views import PartitionedVolume

        return PartitionedVolume(self, partitioning, partition_index)

    def downsample(self, resolution, label_mode: str = "majority"):
        """A lazy view at a coarser ``resolution`` (returns ``self`` when unchanged).

        Parameters
        ----------
        resolution : sequence of 3 int
            Target nm per voxel; each axis must be an integer multiple of this
            volume's resolution.
        label_mode : str
            ``'majority'`` or ``'conjunction'``; see :class:`DownsampledVolume`.
        """
        resolution = np.asarray(resolution)
        if np.array_equal(resolution, self.resolution):
            return self
        from .views import DownsampledVolume

        return DownsampledVolume(self, resolution=resolution, label_mode=label_mode)

    def sparse_wrapper(self, *args, **kwargs):
        """A view caching this volume's data in lazily populated octrees.

        See :class:`~diluvian.volumes.views.SparseWrappedVolume` for arguments.
        """
        from .views import SparseWrappedVolume

        return SparseWrappedVolume(self, *args, **kwargs)

    # ------------------------------------------------------------- subvolumes
    def get_subvolume(self, bounds: SubvolumeBounds) -> Subvolume:
        """Read the image (and label mask) of one box.

        Parts of the box outside the volume read as 0 (image and labels).

        Parameters
        ----------
        bounds : SubvolumeBounds
            The box, seed (relative to ``start``; default the centre),
            ``label_id`` (default: the label at the seed) and ``label_margin``
            (the label mask is cropped by it on each side).

        Returns
        -------
        Subvolume
            Float32 image in [0, 1); boolean mask of ``label == label_id``, or
            ``None`` (with ``label_id`` ``None``) when there are no labels.
        """
        if self.image_data is None:
            raise DiluvianError(f"{type(self).__name__} has no image data to read")
        start, stop = bounds.start, bounds.stop
        seed = bounds.seed_or_center
        image = to_float_image(read_box(self.image_data, start, stop))
        label_mask = None
        label_id = bounds.label_id
        if self.label_data is not None:
            margin = np.zeros(3, np.int64) if bounds.label_margin is None else bounds.label_margin
            if label_id is None:
                label_id = int(read_box(self.label_data, start + seed, start + seed + 1)[0, 0, 0])
            labels = read_box(self.label_data, start + margin, stop - margin)
            label_mask = labels == label_id
        else:
            label_id = None
        return Subvolume(image, label_mask, seed, label_id)

    def _draw_seed(self, rng: np.random.Generator, shape: np.ndarray,
                   mask_arr: np.ndarray | None) -> np.ndarray:
        vol_shape = np.array(self.shape, np.int64)
        half = shape // 2
        lo_m, hi_m = self.mask_bounds
        # Seeds whose box fits inside the volume and lie in the mask's bounding box.
        lo = np.maximum(half, lo_m)
        hi = np.minimum(vol_shape - (shape - half), hi_m - 1)
        if np.any(hi < lo):
            raise DiluvianError(
                f"subvolume shape {shape.tolist()} does not fit the volume of shape "
                f"{list(self.shape)} (mask bounds {lo_m.tolist()}-{hi_m.tolist()})")
        for _ in range(self.MAX_SEED_TRIES):
            ctr = rng.integers(lo, hi + 1)
            if mask_arr is None or mask_arr[tuple(ctr - lo_m)]:
                return ctr
        raise DiluvianError(f"could not place a subvolume of shape {shape.tolist()} with its "
                            f"seed inside the mask after {self.MAX_SEED_TRIES} tries")

    def subvolume_bounds_generator(self, shape=None, label_margin=None,
                                   rng: np.random.Generator | None = None,
                                   config=None) -> Iterator[SubvolumeBounds]:
        """Endless random :class:`SubvolumeBounds` with the seed at the centre.

        Parameters
        ----------
        shape : sequence of 3 int, optional
            Box shape; defaults to ``config.model.input_fov_shape``.
        label_margin : sequence of 3 int, optional
            Passed on to every bounds.
        rng : numpy.random.Generator, optional
            Source of every random choice; defaults to a stream of
            ``config.random_seed``.
        config : Config, optional
            Defaults to :data:`diluvian.config.CONFIG`.

        Yields
        ------
        SubvolumeBounds
            Boxes inside the volume whose centre lies in the mask (if any),
            with ``label_id`` set to the label at the centre (if labelled).
        """
        if shape is None or rng is None:
            from ..config import CONFIG

            config = CONFIG if config is None else config
        shape = np.asarray(config.model.input_fov_shape if shape is None else shape, np.int64)
        if rng is None:
            rng = make_rng(config.random_seed, "subvolume_bounds", type(self).__name__)
        half = shape // 2
        mask_arr = None
        if self.mask_data is not None:
            lo_m, hi_m = self.mask_bounds
            mask_arr = np.asarray(self.mask_data[tuple(
                slice(int(a), int(b)) for a, b in zip(lo_m, hi_m))]).astype(bool)
        while True:
            ctr = self._draw_seed(rng, shape, mask_arr)
            start = ctr - half
            label_id = None
            if self.label_data is not None:
                label_id = int(np.asarray(self.label_data[tuple(
                    slice(int(c), int(c) + 1) for c in ctr)]).ravel()[0])
            yield SubvolumeBounds(start, start + shape, seed=half, label_id=label_id,
                                  label_margin=label_margin)

    def subvolume_generator(self, bounds_generator=None, **kwargs) -> Iterator[Subvolume]:
        """Subvolumes for each bounds of ``bounds_generator``.

        Parameters
        ----------
        bounds_generator : iterable of SubvolumeBounds, optional
            Defaults to ``self.subvolume_bounds_generator(**kwargs)``.
        """
        if bounds_generator is None:
            bounds_generator = self.subvolume_bounds_generator(**kwargs)
        elif kwargs:
            raise TypeError("pass either bounds_generator or keyword arguments, not both")
        for bounds in bounds_generator:
            yield self.get_subvolume(bounds)

    def to_memory_volume(self) -> NdarrayVolume:
        """An :class:`NdarrayVolume` holding all of this volume's data in memory."""
        def load(a):
            return None if a is None else np.asarray(a[...])

        return NdarrayVolume(self.resolution, image_data=load(self.image_data),
                             label_data=load(self.label_data), mask_data=load(self.mask_data))


class NdarrayVolume(Volume):
    """A :class:`Volume` whose data are in-memory numpy arrays.

    Parameters are as for :class:`Volume`; data are converted with
    :func:`numpy.asarray` (masks to ``bool``).
    """

    def __init__(self, resolution, image_data=None, label_data=None, mask_data=None):
        super().__init__(
            resolution,
            image_data=None if image_data is None else np.asarray(image_data),
            label_data=None if label_data is None else np.asarray(label_data),
            mask_data=None if mask_data is None else np.asarray(mask_data, dtype=bool),
        )
