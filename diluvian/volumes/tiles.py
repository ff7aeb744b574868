"""Tiled image stacks (CATMAID tile sources), as diluvian 0.0.6's :class:`ImageStackVolume`.

An :class:`ImageStackVolume` reads its image lazily: ``image_data`` is backed
by a :class:`diluvian.octrees.OctreeVolume` whose leaves are filled by
:meth:`ImageStackVolume.image_populator` from the tiles covering them, the
first time they are read. Tiles are fetched with :mod:`urllib`, so
``http(s)://`` and ``file://`` URLs both work.

Tile URLs come from a format string with the fields ``{zoom_level}``,
``{z}``, ``{row}`` and ``{col}`` (tile indices: ``row = y // tile_height``,
``col = x // tile_width`` at the zoom level). :func:`tile_format_url` builds
it for CATMAID's tile source types
(https://catmaid.readthedocs.io/en/stable/tile_sources.html):

====  ==========================================================================
type  tile URL
====  ==========================================================================
1     ``{base}{z}/{row}_{col}_{zoom_level}.{ext}``
4     ``{base}{z}/{zoom_level}/{row}_{col}.{ext}``
5     ``{base}{zoom_level}/{z}/{row}/{col}.{ext}``
7     ``{base}largeDataTileSource/{tile_width}/{tile_height}/{zoom_level}/{z}/{row}/{col}.{ext}``
9     ``{base}{z}/{row}_{col}_{zoom_level}.{ext}`` (FlixServer; same layout as 1)
====  ==========================================================================

Slices listed as missing (``missing_z``, CATMAID's ``broken_slices``) and tiles
that can not be fetched or decoded (e.g. HTTP 404) read as blank (0).
"""

from __future__ import annotations

import io
import logging
import math
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..util import DiluvianError, make_rng, to_float_image
from .base import Volume
from .subvolume import SubvolumeBounds

__all__ = ["ImageStackVolume", "tile_format_url", "tile_url"]

LOG = logging.getLogger(__name__)

_TEMPLATES = {
    1: "{{z}}/{{row}}_{{col}}_{{zoom_level}}.{ext}",
    4: "{{z}}/{{zoom_level}}/{{row}}_{{col}}.{ext}",
    5: "{{zoom_level}}/{{z}}/{{row}}/{{col}}.{ext}",
    7: "largeDataTileSource/{tw}/{th}/{{zoom_level}}/{{z}}/{{row}}/{{col}}.{ext}",
    9: "{{z}}/{{row}}_{{col}}_{{zoom_level}}.{ext}",
}
_SOURCE_KEYS = ("source_base_url", "tile_source_type", "file_extension", "tile_width",
                "tile_height", "zoom_level")


def tile_format_url(tile_source_type: int, source_base_url: str, file_extension: str = "jpg",
                    tile_width: int = 256, tile_height: int = 256) -> str:
    """The tile URL format string of a CATMAID tile source.

    A slash is added to a non-empty ``source_base_url`` that lacks one.

    Examples
    --------
    >>> tile_format_url(5, "http://h/s", "png")
    'http://h/s/{zoom_level}/{z}/{row}/{col}.png'
    """
    try:
        template = _TEMPLATES[int(tile_source_type)]
    except (KeyError, TypeError, ValueError):
        raise DiluvianError(f"CATMAID tile source type {tile_source_type} is not supported "
                            "(expected 1, 4, 5, 7 or 9)") from None
    base = str(source_base_url)
    if base and not base.endswith("/"):
        base += "/"
    base = base.replace("{", "{{").replace("}", "}}")
    return base + template.format(ext=file_extension, tw=int(tile_width), th=int(tile_height))


def tile_url(tile_source_type: int, base: str, z: int, row: int, col: int, zoom: int,
             ext: str, tile_width: int = 256, tile_height: int = 256) -> str:
    """URL of one CATMAID tile.

    Examples
    --------
    >>> tile_url(5, "http://h/s/", 3, 1, 2, 0, "png")
    'http://h/s/0/3/1/2.png'
    """
    return tile_format_url(tile_source_type, base, ext, tile_width, tile_height).format(
        zoom_level=zoom, z=z, row=row, col=col)


def _zyx(value, what: str) -> np.ndarray:
    """A ZYX vector from 0.0.6's XYZ list or CATMAID's ``{x, y, z}`` dict."""
    if isinstance(value, dict):
        try:
            value = [value["x"], value["y"], value["z"]]
        except KeyError:
            raise DiluvianError(f"CATMAID stack info {what} lacks x, y or z") from None
    arr = np.asarray(value, dtype=float)
    if arr.shape != (3,):
        raise DiluvianError(f"CATMAID stack info {what} = {value!r} is invalid: expected "
                            "3 numbers (X, Y, Z) or a table of x, y and z")
    return arr[::-1]


def _first_channel(tile: np.ndarray) -> np.ndarray:
    return tile[..., 0] if tile.ndim > 2 else tile


class ImageStackVolume(Volume):
    """diluvian 0.0.6's tiled image stack: image tiles fetched lazily from URLs.

    Parameters
    ----------
    bounds : sequence of 3 int
        ZYX shape of the stack at zoom level 0, in voxels.
    orig_resolution : sequence of 3 numbers
        ZYX nm per voxel at zoom level 0.
    translation : sequence of 3 numbers
        ZYX position of voxel (0, 0, 0) in project space, nm.
    tile_width, tile_height : int
        Tile shape in pixels.
    tile_format_url : str
        Format string of a tile's URL with the fields ``{zoom_level}``,
        ``{z}``, ``{row}`` and ``{col}`` (see :func:`tile_format_url`).
    zoom_level : int
        Zoom level read; each level halves X and Y (``resolution`` is
        ``orig_resolution * [1, 2**zoom_level, 2**zoom_level]``).
    missing_z : iterable of int, optional
        Z slices read as blank without fetching.
    image_leaf_shape : sequence of 3 int, optional
        Leaf shape of the image octree; default ``[10, tile_height, tile_width]``.

    Attributes
    ----------
    image_data
        Float32 image in [0, 1), read through an octree cache (its
        ``octree`` attribute) populated by :meth:`image_populator`.
    """

    #: Seconds to wait for one tile.
    TILE_TIMEOUT_S = 30.0

    def __init__(self, bounds, orig_resolution, translation, tile_width, tile_height,
                 tile_format_url, zoom_level=0, missing_z=None, image_leaf_shape=None):
        self.orig_bounds = np.asarray(bounds, dtype=np.int64)
        self.orig_resolution = np.asarray(orig_resolution)
        self.translation = np.zeros(3) if translation is None else np.asarray(translation)
        self.tile_width = int(tile_width)
        self.tile_height = int(tile_height)
        self.tile_format_url = str(tile_format_url)
        self.zoom_level = int(zoom_level)
        self.missing_z = frozenset(int(z) for z in (missing_z or ()))
        if image_leaf_shape is None:
            image_leaf_shape = [10, self.tile_height, self.tile_width]
        self.image_leaf_shape = [int(v) for v in image_leaf_shape]
        if self.orig_bounds.shape != (3,) or np.any(self.orig_bounds < 1):
            raise DiluvianError(f"image stack bounds {np.asarray(bounds).tolist()!r} are "
                                "invalid: expected 3 positive voxel counts (Z, Y, X)")
        if self.zoom_level < 0:
            raise DiluvianError(f"zoom_level {self.zoom_level} is invalid: expected >= 0")
        self.scale = np.array([1, 2 ** self.zoom_level, 2 ** self.zoom_level], np.int64)
        shape = self.orig_bounds // self.scale
        if np.any(shape < 1):
            raise DiluvianError(f"zoom level {self.zoom_level} leaves an empty stack of "
                                f"bounds {self.orig_bounds.tolist()}")
        super().__init__(self.orig_resolution * self.scale, image_data=self._octree(shape))

    def _octree(self, shape):
        from ..octrees import OctreeVolume
        from .views import _OctreeArray

        bounds = (np.zeros(3, np.int64), np.asarray(shape, np.int64))
        tree = OctreeVolume(self.image_leaf_shape, bounds, np.float32,
                            populator=self.image_populator)
        return _OctreeArray(tree, shape, np.float32)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["image_data"] = None  # the tile cache is rebuilt empty after unpickling
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.image_data = self._octree(self.orig_bounds // self.scale)

    def __repr__(self) -> str:
        return (f"<ImageStackVolume shape={list(self.shape)} resolution="
                f"{self.resolution.tolist()} zoom_level={self.zoom_level} "
                f"url={self.tile_format_url!r}>")

    # --------------------------------------------------------------- builders
    @staticmethod
    def from_catmaid_stack(stack_info: dict, tile_source_parameters: dict | None = None
                           ) -> ImageStackVolume:
        """A stack from CATMAID stack info and tile source parameters.

        Parameters
        ----------
        stack_info : dict
            Either diluvian 0.0.6's form, ``bounds``, ``resolution`` and
            ``translation`` as XYZ lists with optional ``broken_slices`` (a
            list of Z), or CATMAID's ``/{project}/stack/{stack}/info`` JSON:
            ``dimension``, ``resolution``, ``translation`` as ``{x, y, z}``
            tables, optional ``broken_slices`` (a table keyed by Z) and
            ``mirrors`` (each with ``tile_source_type``, ``image_base``,
            ``file_extension``, ``tile_width``, ``tile_height``).
        tile_source_parameters : dict, optional
            ``source_base_url``, ``tile_source_type``, ``file_extension``,
            ``tile_width``, ``tile_height`` (required with 0.0.6's form,
            overriding the first mirror's otherwise), optional ``zoom_level``
            and ``mirror`` (index of the mirror to read).
        """
        params = dict(tile_source_parameters or {})
        mirrors = stack_info.get("mirrors") or [{}]
        try:
            mirror = dict(mirrors[int(params.pop("mirror", 0))])
        except IndexError:
            raise DiluvianError(f"CATMAID stack info has {len(mirrors)} mirrors; mirror "
                                "index out of range") from None
        source = {"source_base_url": mirror.get("image_base"),
                  "tile_source_type": mirror.get("tile_source_type"),
                  "file_extension": mirror.get("file_extension", "jpg"),
                  "tile_width": mirror.get("tile_width", 256),
                  "tile_height": mirror.get("tile_height", 256), "zoom_level": 0}
        unknown = set(params) - set(source)
        if unknown:
            raise DiluvianError(f"unknown CATMAID tile source parameters {sorted(unknown)}; "
                                f"valid: {', '.join(_SOURCE_KEYS)}, mirror")
        source.update(params)
        if not source["source_base_url"] or source["tile_source_type"] is None:
            raise DiluvianError("CATMAID tile source needs source_base_url and tile_source_type")
        if "bounds" in stack_info:
            bounds = _zyx(stack_info["bounds"], "bounds")
        elif "dimension" in stack_info:
            bounds = _zyx(stack_info["dimension"], "dimension")
        else:
            raise DiluvianError("CATMAID stack info needs bounds (0.0.6, XYZ) or dimension")
        if "resolution" not in stack_info:
            raise DiluvianError("CATMAID stack info lacks resolution")
        resolution = _zyx(stack_info["resolution"], "resolution")
        translation = _zyx(stack_info["translation"], "translation") \
            if stack_info.get("translation") is not None else np.zeros(3)
        broken = stack_info.get("broken_slices") or ()
        url = tile_format_url(source["tile_source_type"], source["source_base_url"],
                              source["file_extension"], source["tile_width"],
                              source["tile_height"])
        return ImageStackVolume(bounds.astype(np.int64), resolution, translation,
                                source["tile_width"], source["tile_height"], url,
                                zoom_level=source["zoom_level"],
                                missing_z=[int(z) for z in broken])

    @staticmethod
    def from_toml(filename) -> dict[str, ImageStackVolume]:
        """The stacks of a TOML file's ``[[ImageStack]]`` tables, ``{title: volume}``.

        Each table has ``title``; the stack info ``bounds``, ``resolution``,
        ``translation`` (XYZ lists) and optional ``broken_slices``; and the
        tile source parameters ``source_base_url``, ``tile_source_type``,
        ``file_extension``, ``tile_width``, ``tile_height`` and optional
        ``zoom_level`` (see :meth:`from_catmaid_stack`).
        """
        filename = Path(filename)
        try:
            with open(filename, "rb") as f:
                tables = tomllib.load(f).get("ImageStack", [])
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DiluvianError(f"{filename}: can not read TOML: {exc}") from None
        volumes = {}
        for table in tables:
            table = dict(table)
            title = table.pop("title", None)
            if not isinstance(title, str):
                raise DiluvianError(f"{filename}: an [[ImageStack]] lacks a 'title' string")
            info = {k: table.pop(k) for k in ("bounds", "resolution", "translation",
                                              "broken_slices") if k in table}
            try:
                volumes[title] = ImageStackVolume.from_catmaid_stack(info, table)
            except DiluvianError as exc:
                raise DiluvianError(f"{filename}: [[ImageStack]] {title!r}: {exc}") from None
        return volumes

    # ------------------------------------------------------------ coordinates
    def local_coord_to_world(self, a) -> np.ndarray:
        """Voxel coordinate at this zoom level to zoom level 0."""
        return np.multiply(a, self.scale)

    def world_coord_to_local(self, a) -> np.ndarray:
        """Voxel coordinate at zoom level 0 to this zoom level (floor)."""
        return np.floor_divide(a, self.scale)

    def world_mat_to_local(self, m) -> np.ndarray:
        """Subsample a zoom-level-0 array to this zoom level."""
        return np.asarray(m)[:, ::int(self.scale[1]), ::int(self.scale[2])]

    def real_coord_to_world(self, a) -> np.ndarray:
        """Project space (nm, ZYX) to the zoom-level-0 voxel holding it (floor)."""
        return np.floor_divide(np.asarray(a) - self.translation,
                               self.orig_resolution).astype(np.int64)

    def world_coord_to_real(self, a) -> np.ndarray:
        """Zoom-level-0 voxel coordinate (ZYX) to project space, nm."""
        return np.multiply(a, self.orig_resolution) + self.translation

    # ------------------------------------------------------------------ views
    def at_zoom_level(self, zoom_level: int) -> ImageStackVolume:
        """This stack read at another zoom level (a new volume with its own cache)."""
        return ImageStackVolume(self.orig_bounds, self.orig_resolution, self.translation,
                                self.tile_width, self.tile_height, self.tile_format_url,
                                zoom_level=zoom_level, missing_z=self.missing_z,
                                image_leaf_shape=self.image_leaf_shape)

    def downsample(self, resolution, label_mode: str = "majority"):
        """A view at ``resolution``: power-of-2 XY factors read coarser zoom levels' tiles.

        The rest (e.g. Z) is mean-pooled by a
        :class:`~diluvian.volumes.DownsampledVolume`.
        """
        resolution = np.asarray(resolution)
        if resolution.shape == (3,) and not np.array_equal(resolution, self.resolution):
            ratio = resolution / self.resolution
            xy = min(ratio[1], ratio[2])
            if xy >= 2 and np.allclose(ratio, np.rint(ratio)):
                levels = int(math.floor(math.log2(xy) + 1e-9))
                return self.at_zoom_level(self.zoom_level + levels).downsample(
                    resolution, label_mode=label_mode)
        return super().downsample(resolution, label_mode=label_mode)

    # -------------------------------------------------------------- subvolumes
    def subvolume_bounds_generator(self, sparse_margin=None, **kwargs):
        """Random subvolume bounds; with ``sparse_margin``, 0.0.6's sparse seeds.

        Without ``sparse_margin`` this is
        :meth:`Volume.subvolume_bounds_generator` (``kwargs`` passed on).
        With it (ZYX voxels), seeds are drawn uniformly at least
        ``sparse_margin`` from the stack's edges (and inside the mask's
        bounding box, if any) without reading any data; each is yielded as a
        box of ``2 * sparse_margin + 1`` voxels centred on the seed, with
        ``seed`` the margin.
        """
        if sparse_margin is None:
            return super().subvolume_bounds_generator(**kwargs)
        rng = kwargs.pop("rng", None)
        if kwargs:
            raise TypeError("sparse_margin takes no other arguments than rng, got "
                            + ", ".join(sorted(kwargs)))
        return self._sparse_bounds(np.asarray(sparse_margin, np.int64), rng)

    def _sparse_bounds(self, margin, rng):
        if rng is None:
            from ..config import CONFIG

            rng = make_rng(CONFIG.random_seed, "sparse_subvolume_bounds", "ImageStackVolume")
        lo_m, hi_m = self.mask_bounds
        lo = np.maximum(margin, lo_m)
        hi = np.minimum(np.asarray(self.shape) - margin, hi_m)
        if np.any(hi <= lo):
            raise DiluvianError(f"sparse margin {margin.tolist()} leaves no room in a stack of "
                                f"shape {list(self.shape)}")
        while True:
            ctr = rng.integers(lo, hi)
            yield SubvolumeBounds(ctr - margin, ctr + margin + 1, seed=margin)

    # ------------------------------------------------------------------ tiles
    def _fetch_tile(self, url: str) -> np.ndarray | None:
        try:
            with urllib.request.urlopen(url, timeout=self.TILE_TIMEOUT_S) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            LOG.debug("tile %s could not be fetched (%s); reading it as blank", url, exc)
            return None
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                tile = np.asarray(im)
        except Exception as exc:  # Pillow raises many types for undecodable data
            LOG.warning("tile %s could not be decoded (%s); reading it as blank", url, exc)
            return None
        return to_float_image(_first_channel(tile))

    def image_populator(self, bounds) -> np.ndarray:
        """The float32 image in ``bounds`` (``(start, stop)``, ZYX at this zoom level).

        Fetches every tile overlapping the box; the image octree's populator.
        """
        start, stop = (np.asarray(b, np.int64) for b in bounds)
        out = np.zeros(tuple((stop - start).tolist()), np.float32)
        th, tw = self.tile_height, self.tile_width
        rows = range(int(start[1]) // th, (int(stop[1]) - 1) // th + 1)
        cols = range(int(start[2]) // tw, (int(stop[2]) - 1) // tw + 1)
        for z in range(int(start[0]), int(stop[0])):
            if z in self.missing_z:
                continue
            for row in rows:
                for col in cols:
                    url = self.tile_format_url.format(zoom_level=self.zoom_level, z=z,
                                                      row=row, col=col)
                    tile = self._fetch_tile(url)
                    if tile is None:
                        continue
                    y0, x0 = row * th, col * tw
                    ylo, yhi = max(start[1], y0), min(stop[1], y0 + tile.shape[0], y0 + th)
                    xlo, xhi = max(start[2], x0), min(stop[2], x0 + tile.shape[1], x0 + tw)
                    if yhi > ylo and xhi > xlo:
                        out[z - start[0], ylo - start[1]:yhi - start[1],
                            xlo - start[2]:xhi - start[2]] = \
                            tile[ylo - y0:yhi - y0, xlo - x0:xhi - x0]
        return out
