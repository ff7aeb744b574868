"""Export of label volumes to neuroglancer *precomputed* segmentation (raw encoding).

A precomputed volume is a folder with an ``info`` JSON file and one folder of
chunk files per scale; each chunk ``[begin, end)`` is a file named
``xBegin-xEnd_yBegin-yEnd_zBegin-zEnd`` holding the voxels little-endian in
``[x, y, z]`` Fortran order, i.e. exactly the bytes of a C-order Z, Y, X
numpy array. Any static file server (or ``gs://``/``s3://`` bucket) then
serves it to neuroglancer as ``precomputed://URL``; no running Python
process is needed.

:func:`export_precomputed` reads the labels chunk by chunk (memory stays
bounded by one chunk) from a blockwise fill zarr store, a ``diluvian fill``
HDF5 file or dataset TOML (see :func:`open_labels`), or any array, and is
what ``diluvian export-precomputed`` runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .util import DiluvianError

__all__ = [
    "chunk_name",
    "export_precomputed",
    "open_labels",
    "read_precomputed",
    "read_precomputed_chunk",
]

#: Default chunk shape (Z, Y, X voxels) of exported volumes.
CHUNK_SHAPE = (64, 64, 64)
#: Label array of a blockwise fill zarr store.
ZARR_LABELS = "labels"
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def chunk_name(lo, hi) -> str:
    """File name of the chunk ``[lo, hi)`` (Z, Y, X): ``'x0-x1_y0-y1_z0-z1'``."""
    return "_".join(f"{int(lo[a])}-{int(hi[a])}" for a in (2, 1, 0))


def _scale_key(resolution) -> str:
    return "_".join(f"{v:g}" for v in np.asarray(resolution, dtype=float)[::-1])


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------


def _attr_resolution(array):
    attrs = getattr(array, "attrs", None)
    if attrs is not None and "resolution" in attrs:
        return np.asarray(attrs["resolution"], dtype=float)
    return None


def _open_zarr(path: Path, dataset: str | None):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a foreign folder
        raise DiluvianError(f"{path}: can not open as a zarr store: {exc}") from None
    if isinstance(node, zarr.Group):
        from .blockwise.store import STATE_ATTR

        state = node.attrs.get(STATE_ATTR)
        if isinstance(state, dict) and not state.get("complete", False):
            raise DiluvianError(f"{path}: the blockwise fill in this store is not finished; run "
                                "the same 'diluvian fill' command again to complete it")
        name = ZARR_LABELS if dataset is None else dataset
        try:
            node = node[name]
        except KeyError:
            arrays = sorted(k for k, _ in node.arrays())
            raise DiluvianError(f"{path}: no array {name!r} in the zarr store; expected one of "
                                f"{', '.join(arrays) or '(none)'} (--dataset)") from None
        if not isinstance(node, zarr.Array):
            raise DiluvianError(f"{path}: {name!r} is a zarr group, expected an array "
                                "(--dataset)")
    elif dataset is not None:
        raise DiluvianError(f"{path}: is a zarr array, not a store with a dataset {dataset!r}")
    return node


def _open_hdf5(path: Path, dataset: str | None, stack: contextlib.ExitStack):
    import h5py

    from .volumes.hdf5 import DATASET_PATHS

    try:
        f = stack.enter_context(h5py.File(path, "r"))
    except OSError as exc:
        raise DiluvianError(f"{path}: can not open as HDF5: {exc}") from None
    name = DATASET_PATHS["label_data"] if dataset is None else dataset
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DiluvianError(f"{path}: {name!r} is not a dataset in the file; give the label "
                            "dataset's path (--dataset)")
    return obj


def _open_toml(path: Path, dataset: str | None, volume: str | None):
    from .volumes.datasets import volumes_from_toml

    if dataset is not None:
        raise DiluvianError(f"{path}: a dataset TOML names its label_dataset; --dataset "
                            f"{dataset!r} applies only to HDF5 files and zarr stores")
    volumes = volumes_from_toml(path)
    if volume is None:
        if len(volumes) != 1:
            raise DiluvianError(f"{path}: holds {len(volumes)} datasets "
                                f"({', '.join(volumes) or 'none'}); choose one with --volume")
        volume = next(iter(volumes))
    if volume not in volumes:
        raise DiluvianError(f"{path}: no [[dataset]] named {volume!r}; expected one of "
                            f"{', '.join(volumes)}")
    vol = volumes[volume]
    if vol.label_data is None:
        raise DiluvianError(f"{path}: [[dataset]] {volume!r} has no label_dataset to export")
    return vol.label_data, np.asarray(vol.resolution, dtype=float)


@contextlib.contextmanager
def open_labels(source, dataset: str | None = None,
                volume: str | None = None) -> Iterator[tuple[object, np.ndarray | None]]:
    """Open a label volume for reading chunk by chunk.

    Parameters
    ----------
    source : str or path-like
        One of

        - a blockwise fill zarr store (``OUT.zarr``): its ``labels`` array,
          refused while the fill is unfinished; or any zarr array or store;
        - an HDF5 file (``.h5``, ``.hdf5``, ...), e.g. the ``OUT.hdf5`` of
          ``diluvian fill``: its ``volumes/labels/neuron_ids`` dataset;
        - a dataset TOML (``.toml``), e.g. the ``OUT.toml`` of
          ``diluvian fill``: the ``label_dataset`` of its entry.
    dataset : str, optional
        Path of the label array inside a zarr store or HDF5 file.
    volume : str, optional
        ``[[dataset]]`` name, for a dataset TOML with several entries.

    Yields
    ------
    (array, resolution)
        A sliceable Z, Y, X array and its ``resolution`` (nm per voxel,
        Z, Y, X; ``None`` when the source has none). Files are closed on exit.

    Raises
    ------
    DiluvianError
        For a missing or unreadable source, a missing dataset, an unfinished
        blockwise fill, or an ambiguous dataset TOML.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DiluvianError(f"{path}: does not exist; expected a blockwise fill zarr store, an "
                            "HDF5 file or a dataset TOML")
    with contextlib.ExitStack() as stack:
        if path.is_dir():
            array = _open_zarr(path, dataset)
            resolution = _attr_resolution(array)
        elif path.suffix.lower() == ".toml":
            array, resolution = _open_toml(path, dataset, volume)
        elif path.suffix.lower() in _HDF5_SUFFIXES or _is_hdf5(path):
            array = _open_hdf5(path, dataset, stack)
            resolution = _attr_resolution(array)
        else:
            raise DiluvianError(f"{path}: is neither a zarr store (folder), an HDF5 file nor a "
                                "dataset TOML (.toml)")
        yield array, resolution


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def _check_output(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink():
        if not any(out.iterdir()):
            return
        if overwrite and (out / "info").is_file():
            return
        if overwrite:
            raise DiluvianError(f"{out}: exists and is not a precomputed volume (no info file); "
                                "refusing to replace it")
        raise DiluvianError(f"{out}: already exists; remove it, choose another output or "
                            "overwrite it (--overwrite)")
    raise DiluvianError(f"{out}: exists and is not a folder")


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` folder to ``out``, replacing an old export when allowed."""
    _check_output(out, overwrite)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _write_chunks(array, root: Path, shape, chunk, progress: bool) -> None:
    from tqdm.auto import tqdm

    grid = [range(0, s, c) for s, c in zip(shape, chunk)]
    n = int(np.prod([len(g) for g in grid]))
    with tqdm(total=n, desc="Export chunks", unit="chunk", disable=not progress) as bar:
        for z in grid[0]:
            for y in grid[1]:
                for x in grid[2]:
                    lo = (z, y, x)
                    hi = tuple(min(a + c, s) for a, c, s in zip(lo, chunk, shape))
                    data = np.asarray(array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
                    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
                        raise DiluvianError(f"labels have dtype {data.dtype}; a segmentation "
                                            "needs integer labels")
                    if np.issubdtype(data.dtype, np.signedinteger) and data.size \
                            and data.min() < 0:
                        raise DiluvianError(f"label {int(data.min())} in the box {list(lo)} - "
                                            f"{list(hi)}: segmentation IDs must be >= 0")
                    data = np.ascontiguousarray(data.astype("<u8"))
                    (root / chunk_name(lo, hi)).write_bytes(data.tobytes())
                    bar.update(1)


def export_precomputed(labels, out_dir, resolution=None, chunk_shape=CHUNK_SHAPE,
                       progress: bool = True, *, dataset: str | None = None,
                       volume: str | None = None, overwrite: bool = False) -> Path:
    """Write a label volume as a neuroglancer precomputed segmentation, chunk by chunk.

    The folder is written under a temporary name beside ``out_dir`` and
    renamed when complete, so an interrupted export never leaves a partial
    volume under ``out_dir``.

    Parameters
    ----------
    labels : str, path-like or array-like
        A blockwise fill zarr store, an HDF5 file or a dataset TOML (see
        :func:`open_labels`), or any sliceable Z, Y, X integer array (its
        ``attrs['resolution']`` is used if it has one).
    out_dir : str or path-like
        Output folder; must not exist (or be empty) unless ``overwrite``.
    resolution : sequence of 3 numbers, optional
        nm per voxel, Z, Y, X; default the source's ``resolution``.
    chunk_shape : sequence of 3 int
        Chunk shape (Z, Y, X voxels); clipped to the volume shape.
    progress : bool
        Show a progress bar of chunks.
    dataset, volume : str, optional
        Passed to :func:`open_labels` when ``labels`` is a path.
    overwrite : bool
        Replace an existing precomputed folder (one with an ``info`` file) at
        ``out_dir``.

    Returns
    -------
    pathlib.Path
        ``out_dir``; open it in neuroglancer as ``precomputed://`` + its URL.

    Raises
    ------
    DiluvianError
        If the source can not be opened, no resolution is known, the labels
        are not 3-D non-negative integers, the chunk shape or resolution is
        invalid, or ``out_dir`` exists.
    """
    if isinstance(labels, (str, os.PathLike)):
        with open_labels(labels, dataset=dataset, volume=volume) as (array, source_res):
            return _export(array, source_res, str(labels), out_dir, resolution, chunk_shape,
                           progress, overwrite)
    return _export(labels, _attr_resolution(labels), "labels", out_dir, resolution,
                   chunk_shape, progress, overwrite)


def _export(array, source_res, where: str, out_dir, resolution, chunk_shape, progress: bool,
            overwrite: bool) -> Path:
    if resolution is None:
        if source_res is None:
            raise DiluvianError(f"{where}: no resolution given and none in the metadata "
                                "(--resolution Z Y X)")
        resolution = source_res
    resolution = np.asarray(resolution, dtype=float)
    shape = tuple(int(s) for s in array.shape)
    if len(shape) != 3 or resolution.shape != (3,):
        raise DiluvianError(f"{where}: export needs a 3D volume and 3 resolutions, got shape "
                            f"{list(shape)} and resolution {resolution.ravel().tolist()}")
    if not np.all(np.isfinite(resolution) & (resolution > 0)):
        raise DiluvianError(f"resolution {resolution.tolist()}: expected 3 positive numbers "
                            "(nm per voxel, Z, Y, X)")
    chunk_shape = [int(c) for c in np.asarray(chunk_shape).ravel()]
    if len(chunk_shape) != 3 or min(chunk_shape) < 1:
        raise DiluvianError(f"chunk size {chunk_shape}: expected 3 positive voxel counts "
                            "(Z, Y, X)")
    if min(shape) < 1:
        raise DiluvianError(f"{where}: the label volume is empty (shape {list(shape)})")
    chunk = tuple(min(c, s) for c, s in zip(chunk_shape, shape))
    out = Path(out_dir).expanduser()
    _check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    key = _scale_key(resolution)
    try:
        (tmp / key).mkdir(parents=True)
        _write_chunks(array, tmp / key, shape, chunk, progress)
        res = [int(v) if float(v).is_integer() else float(v) for v in resolution[::-1]]
        info = {
            "@type": "neuroglancer_multiscale_volume",
            "type": "segmentation",
            "data_type": "uint64",
            "num_channels": 1,
            "scales": [{
                "key": key,
                "size": list(shape[::-1]),
                "resolution": res,
                "voxel_offset": [0, 0, 0],
                "chunk_sizes": [list(chunk[::-1])],
                "encoding": "raw",
            }],
        }
        (tmp / "info").write_text(json.dumps(info, indent=1))
        _move_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# --------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------


def _scale(out: Path) -> tuple[dict, np.dtype]:
    try:
        info = json.loads((out / "info").read_text())
        scale = info["scales"][0]
        dtype = np.dtype("<" + {"uint64": "u8", "uint32": "u4"}[info["data_type"]])
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DiluvianError(f"{out}: not a precomputed volume with a readable info file "
                            f"({exc})") from None
    if scale.get("encoding") != "raw":
        raise DiluvianError(f"{out}: encoding {scale.get('encoding')!r}; only 'raw' is read")
    return scale, dtype


def read_precomputed_chunk(out_dir, lo, hi) -> np.ndarray:
    """Read back the raw-encoded chunk ``[lo, hi)`` (Z, Y, X) of an exported volume."""
    out = Path(out_dir)
    scale, dtype = _scale(out)
    shape = tuple(int(b) - int(a) for a, b in zip(lo, hi))
    data = np.frombuffer((out / scale["key"] / chunk_name(lo, hi)).read_bytes(), dtype=dtype)
    return data.reshape(shape)


def read_precomputed(out_dir) -> np.ndarray:
    """Read a whole raw-encoded precomputed volume (first scale) as a Z, Y, X array.

    Only sensible for small volumes; used to check exports.
    """
    out = Path(out_dir)
    scale, dtype = _scale(out)
    shape = tuple(int(s) for s in scale["size"][::-1])
    chunk = tuple(int(c) for c in scale["chunk_sizes"][0][::-1])
    offset = tuple(int(o) for o in scale.get("voxel_offset", [0, 0, 0])[::-1])
    volume = np.zeros(shape, dtype=dtype)
    for index in np.ndindex(*(-(-s // c) for s, c in zip(shape, chunk))):
        lo = tuple(i * c for i, c in zip(index, chunk))
        hi = tuple(min(a + c, s) for a, c, s in zip(lo, chunk, shape))
        name = chunk_name([a + o for a, o in zip(lo, offset)],
                          [b + o for b, o in zip(hi, offset)])
        data = np.frombuffer((out / scale["key"] / name).read_bytes(), dtype=dtype)
        volume[tuple(slice(a, b) for a, b in zip(lo, hi))] = data.reshape(
            tuple(b - a for a, b in zip(lo, hi)))
    return volume
