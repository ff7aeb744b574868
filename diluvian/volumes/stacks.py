"""Local image stacks: folders of PNG/TIFF/JPEG Z slices (:class:`ImageFolderVolume`).

Slices are read lazily, one file per Z slice, through a small LRU cache.
Tiled image stacks served by URL (CATMAID tile sources) are diluvian 0.0.6's
:class:`~diluvian.volumes.ImageStackVolume`, in :mod:`diluvian.volumes.tiles`.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..util import DiluvianError
from .arrays import LazyArray
from .base import Volume

__all__ = ["ImageFolderVolume", "SliceStackArray"]

LOG = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def _read_image(path_or_bytes) -> np.ndarray:
    name = str(path_or_bytes) if not isinstance(path_or_bytes, bytes) else ""
    if name.lower().endswith((".tif", ".tiff")):
        import tifffile

        return np.asarray(tifffile.imread(name))
    from PIL import Image

    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        if im.mode not in ("L", "I", "I;16", "F", "1"):
            im = im.convert("L")
        return np.asarray(im)


class SliceStackArray(LazyArray):
    """A ZYX array read lazily from one image file per Z slice.

    Parameters
    ----------
    files : list of path-like
        Slice files in Z order (all the same YX shape).
    cache_slices : int
        Number of decoded slices kept in memory.
    """

    def __init__(self, files, cache_slices: int = 64):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise DiluvianError("an image stack needs at least one slice file")
        first = _read_image(self.files[0])
        if first.ndim != 2:
            raise DiluvianError(f"{self.files[0]}: expected a single-channel 2-D image, got "
                                f"shape {list(first.shape)}")
        self.shape = (len(self.files), *first.shape)
        self.dtype = first.dtype
        self._cache: OrderedDict = OrderedDict({0: first})
        self._cache_slices = cache_slices

    def _slice(self, z: int) -> np.ndarray:
        if z in self._cache:
            self._cache.move_to_end(z)
            return self._cache[z]
        data = _read_image(self.files[z])
        if data.shape != self.shape[1:]:
            raise DiluvianError(f"{self.files[z]}: slice shape {list(data.shape)} differs from "
                                f"the first slice's {list(self.shape[1:])}")
        self._cache[z] = data
        if len(self._cache) > self._cache_slices:
            self._cache.popitem(last=False)
        return data

    def _read(self, start, stop):
        ys, xs = slice(int(start[1]), int(stop[1])), slice(int(start[2]), int(stop[2]))
        return np.stack([self._slice(z)[ys, xs] for z in range(int(start[0]), int(stop[0]))])


class ImageFolderVolume(Volume):
    """A volume of image slices: folders of PNG/TIFF/JPEG files, one per Z slice.

    Build one with :meth:`from_directory` (the dataset TOML key
    ``image_stack_dir``). For diluvian 0.0.6's tiled stacks (CATMAID tile
    sources) see :class:`~diluvian.volumes.ImageStackVolume`.

    Parameters
    ----------
    resolution : sequence of 3 numbers
        nm per voxel ZYX.
    image_data, label_data, mask_data : array-like, optional
    translation : sequence of 3 numbers, optional
        Position of voxel (0, 0, 0) in nm (project space), ZYX.
    """

    def __init__(self, resolution, image_data=None, label_data=None, mask_data=None,
                 translation=None):
        super().__init__(resolution, image_data=image_data, label_data=label_data,
                         mask_data=mask_data)
        self.translation = np.zeros(3) if translation is None else np.asarray(translation, float)

    @classmethod
    def from_directory(cls, image_dir, resolution, label_dir=None, mask_dir=None,
                       pattern: str = "*") -> ImageFolderVolume:
        """A volume from folders of Z slice images (sorted by file name).

        Parameters
        ----------
        image_dir : path-like
            Folder of PNG/TIFF/JPEG slices.
        resolution : sequence of 3 numbers
        label_dir, mask_dir : path-like, optional
            Folders of label / mask slices, one per image slice.
        pattern : str
            Glob selecting the slice files.
        """
        def stack(folder):
            if folder is None:
                return None
            folder = Path(folder)
            if not folder.is_dir():
                raise DiluvianError(f"{folder}: image stack folder not found")
            files = sorted(f for f in folder.glob(pattern) if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DiluvianError(f"{folder}: no PNG, TIFF or JPEG slices found")
            return SliceStackArray(files)

        return cls(resolution, image_data=stack(image_dir), label_data=stack(label_dir),
                   mask_data=stack(mask_dir))

    def world_coord_to_real(self, a) -> np.ndarray:
        """Voxel coordinate (ZYX) to project space in nm."""
        return np.asarray(a) * self.resolution + self.translation

    def real_coord_to_world(self, a) -> np.ndarray:
        """Project-space nm (ZYX) to the voxel holding it (floor)."""
        return np.floor_divide(np.asarray(a) - self.translation,
                               self.resolution).astype(np.int64)
