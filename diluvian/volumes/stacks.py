"""Image stacks: folders of PNG/TIFF Z slices, and CATMAID tile stacks over HTTP.

Both are read lazily, slice by slice or tile by tile, through small LRU
caches. CATMAID stacks follow the tile source conventions of CATMAID
(https://catmaid.readthedocs.io/en/stable/tile_sources.html); supported tile
source types and their URLs (``row``/``col`` are tile indices):

====  ==========================================================================
type  tile URL
====  ==========================================================================
1     ``{base}{z}/{row}_{col}_{zoom}.{ext}``
4     ``{base}{z}/{zoom}/{row}_{col}.{ext}``
5     ``{base}{zoom}/{z}/{row}/{col}.{ext}``
7     ``{base}largeDataTileSource/{tile_width}/{tile_height}/{zoom}/{z}/{row}/{col}.{ext}``
9     ``{base}{z}/{row}_{col}_{zoom}.{ext}`` (FlixServer; same layout as 1)
====  ==========================================================================

Slices listed as broken in the stack info, and tiles that can not be fetched
(e.g. HTTP 404), read as blank (0).
"""

from __future__ import annotations

import io
import logging
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..util import DiluvianError
from .arrays import LazyArray
from .base import Volume

__all__ = ["CatmaidTileArray", "ImageStackVolume", "SliceStackArray", "tile_url"]

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


def tile_url(tile_source_type: int, base: str, z: int, row: int, col: int, zoom: int,
             ext: str, tile_width: int, tile_height: int) -> str:
    """URL of one CATMAID tile (see the module docstring for the formats).

    Examples
    --------
    >>> tile_url(5, "http://h/s/", 3, 1, 2, 0, "png", 256, 256)
    'http://h/s/0/3/1/2.png'
    """
    if tile_source_type in (1, 9):
        return f"{base}{z}/{row}_{col}_{zoom}.{ext}"
    if tile_source_type == 4:
        return f"{base}{z}/{zoom}/{row}_{col}.{ext}"
    if tile_source_type == 5:
        return f"{base}{zoom}/{z}/{row}/{col}.{ext}"
    if tile_source_type == 7:
        return f"{base}largeDataTileSource/{tile_width}/{tile_height}/{zoom}/{z}/{row}/{col}.{ext}"
    raise DiluvianError(f"CATMAID tile source type {tile_source_type} is not supported "
                        "(expected 1, 4, 5, 7 or 9)")


class CatmaidTileArray(LazyArray):
    """A ZYX uint8 array read lazily from CATMAID image tiles over HTTP.

    Parameters
    ----------
    shape : sequence of 3 int
        ZYX shape at the chosen zoom level.
    tile_source_type : int
    base_url : str
        Source base URL (a trailing slash is added if missing).
    file_extension : str
    tile_width, tile_height : int
    zoom_level : int
    broken_slices : iterable of int
        Z indices read as blank.
    cache_tiles : int
        Number of decoded tiles kept in memory.
    timeout_s : float
        HTTP timeout per tile.
    """

    def __init__(self, shape, tile_source_type, base_url, file_extension, tile_width,
                 tile_height, zoom_level=0, broken_slices=(), cache_tiles: int = 1024,
                 timeout_s: float = 30.0):
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(np.uint8)
        self.tile_source_type = int(tile_source_type)
        tile_url(self.tile_source_type, "", 0, 0, 0, 0, "", 1, 1)  # validate type
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.file_extension = file_extension
        self.tile_shape = (int(tile_height), int(tile_width))
        self.zoom_level = int(zoom_level)
        self.broken_slices = {int(z) for z in broken_slices}
        self.timeout_s = timeout_s
        self._cache: OrderedDict = OrderedDict()
        self._cache_tiles = cache_tiles

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def _fetch(self, url: str) -> np.ndarray | None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as exc:
            LOG.info("tile %s could not be fetched (%s); reading it as blank", url, exc)
            return None
        try:
            tile = _read_image(data)
        except Exception as exc:  # Pillow raises many types for undecodable data
            LOG.warning("tile %s could not be decoded (%s); reading it as blank", url, exc)
            return None
        return tile.astype(np.uint8, copy=False)

    def tile(self, z: int, row: int, col: int) -> np.ndarray | None:
        """The decoded tile (``None`` when blank), through the tile cache."""
        key = (z, row, col)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        tile = None
        if z not in self.broken_slices:
            th, tw = self.tile_shape
            tile = self._fetch(tile_url(self.tile_source_type, self.base_url, z, row, col,
                                        self.zoom_level, self.file_extension, tw, th))
        self._cache[key] = tile
        if len(self._cache) > self._cache_tiles:
            self._cache.popitem(last=False)
        return tile

    def _read(self, start, stop):
        out = np.zeros(tuple((stop - start).tolist()), np.uint8)
        th, tw = self.tile_shape
        for z in range(int(start[0]), int(stop[0])):
            for row in range(int(start[1]) // th, (int(stop[1]) - 1) // th + 1):
                for col in range(int(start[2]) // tw, (int(stop[2]) - 1) // tw + 1):
                    tile = self.tile(z, row, col)
                    if tile is None:
                        continue
                    y0, x0 = row * th, col * tw
                    ylo, yhi = max(start[1], y0), min(stop[1], y0 + tile.shape[0])
                    xlo, xhi = max(start[2], x0), min(stop[2], x0 + tile.shape[1])
                    if yhi <= ylo or xhi <= xlo:
                        continue
                    out[z - start[0], ylo - start[1]:yhi - start[1], xlo - start[2]:xhi - start[2]] \
                        = tile[ylo - y0:yhi - y0, xlo - x0:xhi - x0]
        return out


def _xyz(d, key) -> np.ndarray:
    try:
        return np.array([d[key]["z"], d[key]["y"], d[key]["x"]], dtype=float)
    except (KeyError, TypeError):
        raise DiluvianError(f"CATMAID stack info lacks {key} with x, y and z") from None


class ImageStackVolume(Volume):
    """A volume of image slices: a folder of files or a CATMAID tile stack.

    Build one with :meth:`from_directory` or :meth:`from_catmaid_stack`.

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
                       pattern: str = "*") -> ImageStackVolume:
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

    @classmethod
    def from_catmaid_stack(cls, stack_info: dict, tile_source_parameters: dict | None = None
                           ) -> ImageStackVolume:
        """A volume reading the image tiles of a CATMAID stack.

        Parameters
        ----------
        stack_info : dict
            The stack's info as returned by CATMAID's
            ``/{project_id}/stack/{stack_id}/info``: ``dimension``,
            ``resolution`` and ``translation`` (dicts of ``x``, ``y``, ``z``),
            optional ``broken_slices`` and ``mirrors`` (each with
            ``tile_source_type``, ``image_base``, ``file_extension``,
            ``tile_width``, ``tile_height``).
        tile_source_parameters : dict, optional
            Overrides: ``source_base_url``, ``tile_source_type``,
            ``file_extension``, ``tile_width``, ``tile_height``,
            ``zoom_level`` (each level halves X and Y), ``mirror`` (index).
        """
        params = dict(tile_source_parameters or {})
        mirrors = stack_info.get("mirrors") or [{}]
        mirror = dict(mirrors[int(params.pop("mirror", 0))])
        source = {
            "source_base_url": mirror.get("image_base"),
            "tile_source_type": mirror.get("tile_source_type"),
            "file_extension": mirror.get("file_extension", "jpg"),
            "tile_width": mirror.get("tile_width", 256),
            "tile_height": mirror.get("tile_height", 256),
            "zoom_level": 0,
        }
        unknown = set(params) - set(source)
        if unknown:
            raise DiluvianError(f"unknown CATMAID tile source parameters {sorted(unknown)}; "
                                f"valid: {', '.join(source)}")
        source.update(params)
        if not source["source_base_url"] or source["tile_source_type"] is None:
            raise DiluvianError("CATMAID tile source needs source_base_url and tile_source_type")
        zoom = int(source["zoom_level"])
        scale = np.array([1, 2 ** zoom, 2 ** zoom])
        shape = _xyz(stack_info, "dimension").astype(np.int64) // scale
        resolution = _xyz(stack_info, "resolution") * scale
        translation = _xyz(stack_info, "translation") if "translation" in stack_info else None
        broken = stack_info.get("broken_slices") or {}
        image = CatmaidTileArray(shape, source["tile_source_type"], source["source_base_url"],
                                 source["file_extension"], source["tile_width"],
                                 source["tile_height"], zoom_level=zoom,
                                 broken_slices=[int(z) for z in broken])
        return cls(resolution, image_data=image, translation=translation)

    def world_coord_to_real(self, a) -> np.ndarray:
        """Voxel coordinate (ZYX) to project space in nm."""
        return np.asarray(a) * self.resolution + self.translation

    def real_coord_to_world(self, a) -> np.ndarray:
        """Project-space nm (ZYX) to the nearest voxel coordinate."""
        return np.rint((np.asarray(a) - self.translation) / self.resolution).astype(np.int64)
