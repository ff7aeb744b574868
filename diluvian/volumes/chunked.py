"""Chunked containers: Zarr (incl. OME-Zarr multiscales, via zarr) and N5.

zarr-python 3 no longer reads N5, so :class:`N5Volume` uses a small
built-in reader of the N5 format (raw, gzip, bzip2, xz and blosc blocks);
:func:`write_n5_dataset` writes N5 datasets (used by the tests and handy for
exporting).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import struct
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..util import DiluvianError
from .arrays import CroppedArray, LazyArray
from .base import Volume

__all__ = ["N5Array", "N5Volume", "ZarrVolume", "write_n5_dataset"]


def _multiscales(attrs) -> list | None:
    attrs = dict(attrs)
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        attrs = attrs["ome"]
    ms = attrs.get("multiscales")
    return ms if isinstance(ms, list) and ms else None


def _ome_level(group, path: str, level: int | None, where: str):
    """The array and ZYX resolution of one OME-Zarr multiscale level."""
    ms = _multiscales(group.attrs)[0]
    datasets = ms.get("datasets", [])
    level = 0 if level is None else int(level)
    if not 0 <= level < len(datasets):
        raise DiluvianError(f"{where}: {path!r} has {len(datasets)} scale levels, "
                            f"scale_level {level} does not exist")
    ds = datasets[level]
    resolution = None
    for transform in ds.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            resolution = np.asarray(transform["scale"], dtype=float)[-3:]
    return group[ds["path"]], resolution


class ZarrVolume(Volume):
    """A volume backed by arrays of a Zarr store (v2 or v3), read lazily.

    Parameters
    ----------
    store : str or path-like
        Path of the Zarr store (folder).
    image_dataset, label_dataset, mask_dataset : str, optional
        Paths inside the store: an array, or an OME-Zarr multiscale group.
    resolution : sequence of 3 numbers, optional
        nm per voxel ZYX; defaults to the OME-Zarr scale of the chosen level,
        else the arrays' ``resolution`` attribute.
    scale_level : int, optional
        OME-Zarr multiscale level (0, the finest, by default).
    """

    def __init__(self, store, image_dataset=None, label_dataset=None, mask_dataset=None,
                 resolution=None, scale_level=None):
        import zarr

        self.store = str(store)
        self.paths = (image_dataset, label_dataset, mask_dataset)
        self.scale_level = scale_level
        try:
            root = zarr.open(self.store, mode="r")
        except Exception as exc:  # zarr raises several types for a missing/bad store
            raise DiluvianError(f"{self.store}: can not open as a Zarr store: {exc}") from None
        arrays, found_res = [], None
        for what, path in zip(("image_dataset", "label_dataset", "mask_dataset"), self.paths):
            if path is None:
                arrays.append(None)
                continue
            try:
                node = root[path]
            except KeyError:
                raise DiluvianError(f"{self.store}: {what} {path!r} is not in the store") from None
            if isinstance(node, zarr.Group):
                if _multiscales(node.attrs) is None:
                    raise DiluvianError(f"{self.store}: {what} {path!r} is a group without "
                                        "OME-Zarr 'multiscales' metadata")
                node, level_res = _ome_level(node, path, scale_level, self.store)
            else:
                level_res = np.asarray(node.attrs["resolution"]) \
                    if "resolution" in node.attrs else None
            if found_res is None and level_res is not None:
                found_res = level_res
            arrays.append(node)
        if resolution is None:
            resolution = found_res
        if resolution is None:
            raise DiluvianError(f"{self.store}: no resolution given and none in the metadata")
        super().__init__(resolution, *arrays)


# --------------------------------------------------------------------------- N5


def _n5_attrs(path: Path) -> dict:
    f = path / "attributes.json"
    try:
        return json.loads(f.read_text()) if f.exists() else {}
    except json.JSONDecodeError as exc:
        raise DiluvianError(f"{f}: malformed JSON: {exc}") from None


def _decompress(data: bytes, compression: dict) -> bytes:
    kind = compression.get("type", "raw")
    if kind == "raw":
        return data
    if kind == "gzip":
        return zlib.decompress(data) if compression.get("useZlib") else gzip.decompress(data)
    if kind == "bzip2":
        return bz2.decompress(data)
    if kind == "xz":
        return lzma.decompress(data)
    if kind == "blosc":
        from numcodecs import Blosc

        return bytes(Blosc().decode(data))
    raise DiluvianError(f"N5 compression {kind!r} is not supported")


class N5Array(LazyArray):
    """A lazily read N5 dataset, indexed ZYX (N5 stores dimensions XYZ).

    Parameters
    ----------
    path : path-like
        Dataset folder (holding ``attributes.json`` and the blocks).
    cache_blocks : int
        Number of decoded blocks kept in memory.
    """

    def __init__(self, path, cache_blocks: int = 256):
        self.path = Path(path)
        attrs = _n5_attrs(self.path)
        if "dimensions" not in attrs:
            raise DiluvianError(f"{self.path}: is not an N5 dataset (no 'dimensions' attribute)")
        self.attrs = attrs
        self.shape = tuple(int(v) for v in attrs["dimensions"][::-1])
        self.block = np.array(attrs["blockSize"][::-1], np.int64)
        compression = attrs.get("compression")
        if compression is None:
            compression = {"type": attrs.get("compressionType", "raw")}
        self.compression = compression
        self._cache: OrderedDict = OrderedDict()
        self._cache_blocks = cache_blocks
        self.dtype = np.dtype(attrs["dataType"])

    def _block(self, idx: tuple[int, ...]) -> np.ndarray | None:
        if idx in self._cache:
            self._cache.move_to_end(idx)
            return self._cache[idx]
        f = self.path.joinpath(*(str(i) for i in idx[::-1]))
        if not f.exists():
            out = None
        else:
            raw = f.read_bytes()
            mode, ndim = struct.unpack(">HH", raw[:4])
            dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
            offset = 4 + 4 * ndim + (4 if mode == 1 else 0)
            data = _decompress(raw[offset:], self.compression)
            count = int(np.prod(dims))
            out = np.frombuffer(data, dtype=self.dtype.newbyteorder(">"), count=count)
            out = out.reshape(dims[::-1]).astype(self.dtype)
        self._cache[idx] = out
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return out

    def _read(self, start, stop):
        out = np.zeros(tuple((stop - start).tolist()), self.dtype)
        first = start // self.block
        last = (stop - 1) // self.block
        for bz in range(first[0], last[0] + 1):
            for by in range(first[1], last[1] + 1):
                for bx in range(first[2], last[2] + 1):
                    idx = (bz, by, bx)
                    data = self._block(idx)
                    if data is None:
                        continue
                    origin = np.array(idx) * self.block
                    lo = np.maximum(start, origin)
                    hi = np.minimum(stop, origin + np.array(data.shape))
                    if np.any(hi <= lo):
                        continue
                    out[tuple(slice(a, b) for a, b in zip(lo - start, hi - start))] = \
                        data[tuple(slice(a, b) for a, b in zip(lo - origin, hi - origin))]
        return out


def write_n5_dataset(container, dataset: str, data: np.ndarray, block_size=(16, 64, 64),
                     compression: str = "gzip", resolution=None) -> None:
    """Write a ZYX array as an N5 dataset (blocks ``raw`` or ``gzip``).

    Parameters
    ----------
    container : path-like
        N5 container folder (created).
    dataset : str
        Dataset path inside the container.
    data : ndarray
    block_size : sequence of 3 int
        ZYX block shape.
    compression : str
        ``'raw'`` or ``'gzip'``.
    resolution : sequence of 3 numbers, optional
        Stored (XYZ, as N5 tools expect) in the ``resolution`` attribute.
    """
    container = Path(container)
    container.mkdir(parents=True, exist_ok=True)
    (container / "attributes.json").write_text(json.dumps({"n5": "2.5.1"}))
    path = container / dataset
    path.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data)
    block = np.asarray(block_size, np.int64)
    attrs = {"dimensions": list(data.shape[::-1]), "blockSize": block[::-1].tolist(),
             "dataType": data.dtype.name, "compression": {"type": compression}}
    if resolution is not None:
        attrs["resolution"] = np.asarray(resolution).tolist()[::-1]
    (path / "attributes.json").write_text(json.dumps(attrs))
    nblocks = -(-np.asarray(data.shape) // block)
    for idx in np.ndindex(*nblocks):
        lo = np.array(idx) * block
        chunk = data[tuple(slice(a, b) for a, b in zip(lo, lo + block))]
        header = struct.pack(">HH", 0, 3) + struct.pack(">3I", *chunk.shape[::-1])
        payload = np.ascontiguousarray(chunk).astype(chunk.dtype.newbyteorder(">")).tobytes()
        if compression == "gzip":
            payload = gzip.compress(payload)
        f = path.joinpath(*(str(i) for i in idx[::-1]))
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(header + payload)


class N5Volume(Volume):
    """A volume backed by datasets of an N5 container, read lazily.

    Takes diluvian 0.0.6's arguments, ``N5Volume(root_path, datasets,
    bounds=None, resolution=None, translation=None)``, or the dataset paths
    by keyword (as the dataset TOML key ``n5_file`` does).

    Parameters
    ----------
    root_path : str or path-like
        N5 container folder.
    datasets : dict or str, optional
        0.0.6's map of ``'image'``, ``'label'`` (or ``'labels'``) and
        ``'mask'`` to dataset paths, each a string or a table with a
        ``'path'`` (its other keys, e.g. ``dtype``, are ignored); a string is
        the image dataset's path.
    bounds : sequence of 3 int, optional
        ZYX shape of the volume in voxels; data beyond it are cut off and
        missing data within it read as 0. Default: the datasets' shape.
    resolution : sequence of 3 numbers, optional
        nm per voxel ZYX; defaults to the dataset's ``resolution`` or
        ``pixelResolution`` attribute (stored XYZ), times the level's
        ``downsamplingFactors``.
    translation : sequence of 3 numbers, optional
        ZYX position of voxel (0, 0, 0) in project space, nm (default 0).
    image_dataset, label_dataset, mask_dataset : str, optional (keyword)
        Dataset paths. A multiscale group (holding ``s0``, ``s1``, ...) is
        read at ``scale_level``.
    scale_level : int, optional (keyword)
        Level of a multiscale group (default 0).
    """

    def __init__(self, root_path, datasets=None, bounds=None, resolution=None,
                 translation=None, *, image_dataset=None, label_dataset=None,
                 mask_dataset=None, scale_level=None):
        self.root_path = self.container = Path(root_path)
        if not self.container.is_dir():
            raise DiluvianError(f"{self.container}: N5 container not found")
        paths = _n5_dataset_paths(self.container, datasets)
        for what, path in zip(("image", "label", "mask"),
                              (image_dataset, label_dataset, mask_dataset)):
            if path is not None:
                paths[what] = path
        if all(p is None for p in paths.values()):
            raise DiluvianError(f"{self.container}: N5Volume needs at least one dataset")
        self.datasets = paths
        arrays, found_res = [], None
        for what, path in paths.items():
            if path is None:
                arrays.append(None)
                continue
            folder = self.container / path
            if not folder.is_dir():
                raise DiluvianError(f"{self.container}: {what} dataset {path!r} is not in "
                                    "the container")
            group_attrs = _n5_attrs(folder)
            if "dimensions" not in group_attrs and (folder / "s0").is_dir():
                level = 0 if scale_level is None else int(scale_level)
                folder = folder / f"s{level}"
                if not folder.is_dir():
                    raise DiluvianError(f"{self.container}: {what} dataset {path!r} has no "
                                        f"scale level s{level}")
            array = N5Array(folder)
            res = _n5_resolution(array.attrs, group_attrs)
            if found_res is None and res is not None:
                found_res = res
            if bounds is not None:
                array = CroppedArray(array, np.zeros(3, np.int64), np.asarray(bounds, np.int64))
            arrays.append(array)
        if resolution is None:
            resolution = found_res
        if resolution is None:
            raise DiluvianError(f"{self.container}: no resolution given and none in the "
                                "attributes")
        self.translation = np.zeros(3) if translation is None else np.asarray(translation)
        super().__init__(resolution, *arrays)
        self.bounds = np.array(self.shape, np.int64)

    @staticmethod
    def from_toml(filename) -> dict[str, N5Volume]:
        """The volumes of a TOML file's ``[[N5Volume]]`` tables, ``{title: volume}``.

        Each table has ``title``, ``root_path`` (relative paths are tried
        next to the TOML file first), ``datasets`` and optional ``bounds``,
        ``resolution`` and ``translation`` (ZYX, as the constructor takes).
        """
        import tomllib

        filename = Path(filename)
        try:
            with open(filename, "rb") as f:
                tables = tomllib.load(f).get("N5Volume", [])
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DiluvianError(f"{filename}: can not read TOML: {exc}") from None
        volumes = {}
        for table in tables:
            title = table.get("title")
            if not isinstance(title, str) or "root_path" not in table:
                raise DiluvianError(f"{filename}: an [[N5Volume]] needs 'title' and 'root_path'")
            root = Path(table["root_path"]).expanduser()
            if not root.is_absolute() and (filename.parent / root).is_dir():
                root = filename.parent / root
            try:
                volumes[title] = N5Volume(root, table.get("datasets"), table.get("bounds"),
                                          table.get("resolution"), table.get("translation"))
            except DiluvianError as exc:
                raise DiluvianError(f"{filename}: [[N5Volume]] {title!r}: {exc}") from None
        return volumes

    def world_coord_to_real(self, a) -> np.ndarray:
        """Voxel coordinate (ZYX) to project space, nm."""
        return np.multiply(a, self.resolution) + self.translation

    def real_coord_to_world(self, a) -> np.ndarray:
        """Project space (nm, ZYX) to the voxel holding it (floor)."""
        return np.floor_divide(np.asarray(a) - self.translation,
                               self.resolution).astype(np.int64)


def _n5_dataset_paths(container: Path, datasets) -> dict:
    paths = {"image": None, "label": None, "mask": None}
    if datasets is None:
        return paths
    if isinstance(datasets, (str, Path)):
        paths["image"] = str(datasets)
        return paths
    if not isinstance(datasets, dict):
        raise DiluvianError(f"{container}: N5Volume datasets must be a table of image, label "
                            f"and mask dataset paths, got {datasets!r}")
    for key, value in datasets.items():
        what = {"labels": "label"}.get(key, key)
        if what not in paths:
            raise DiluvianError(f"{container}: unknown N5Volume dataset {key!r}; expected "
                                "image, label (or labels) and mask")
        if isinstance(value, dict):
            value = value.get("path")
        if not isinstance(value, str):
            raise DiluvianError(f"{container}: N5Volume dataset {key!r} needs a path string")
        paths[what] = value
    return paths


def _n5_resolution(attrs: dict, group_attrs: dict):
    for source in (attrs, group_attrs):
        res = source.get("resolution")
        if res is None and isinstance(source.get("pixelResolution"), dict):
            res = source["pixelResolution"].get("dimensions")
        if res is not None:
            res = np.asarray(res, dtype=float)[::-1]
            factors = attrs.get("downsamplingFactors")
            if factors is not None and source is group_attrs:
                res = res * np.asarray(factors, dtype=float)[::-1]
            return res
    return None
