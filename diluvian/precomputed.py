"""Export of label volumes to neuroglancer *precomputed* segmentation (raw encoding).

A precomputed volume is a folder with an ``info`` JSON file and one folder of
chunk files per scale; each chunk ``[begin, end)`` is a file named
``xBegin-xEnd_yBegin-yEnd_zBegin-zEnd`` holding the voxels little-endian in
``[x, y, z]`` Fortran order, i.e. exactly the bytes of a C-order Z, Y, X
numpy array. Any static file server (or ``gs://``/``s3://`` bucket) then
serves it to neuroglancer as ``precomputed://URL``; no running Python
process is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .util import DiluvianError, atomic_output

__all__ = ["chunk_name", "export_precomputed", "read_precomputed_chunk"]

#: Default chunk shape (Z, Y, X voxels) of exported volumes.
CHUNK_SHAPE = (64, 64, 64)


def chunk_name(lo, hi) -> str:
    """File name of the chunk ``[lo, hi)`` (Z, Y, X): ``'x0-x1_y0-y1_z0-z1'``."""
    return "_".join(f"{int(lo[a])}-{int(hi[a])}" for a in (2, 1, 0))


def _scale_key(resolution) -> str:
    return "_".join(f"{v:g}" for v in np.asarray(resolution, dtype=float)[::-1])


def export_precomputed(labels, out_dir, resolution=None, chunk_shape=CHUNK_SHAPE,
                       progress: bool = True) -> Path:
    """Write a label volume as a neuroglancer precomputed segmentation, chunk by chunk.

    Parameters
    ----------
    labels : str, path-like or array-like
        A blockwise fill zarr store (its ``labels`` array and ``resolution``
        attribute), a zarr array path, or any sliceable ZYX integer array.
    out_dir : str or path-like
        Output folder (created); its ``info`` file is written last,
        atomically, so an interrupted export is never mistaken for a whole one.
    resolution : sequence of 3 numbers, optional
        nm per voxel, Z, Y, X; default the array's ``resolution`` attribute.
    chunk_shape : sequence of 3 int
        Chunk shape (Z, Y, X voxels).
    progress : bool
        Show a progress bar of chunks.

    Returns
    -------
    pathlib.Path
        ``out_dir``; open it in neuroglancer as ``precomputed://`` + its URL.

    Raises
    ------
    DiluvianError
        If the store can not be opened, or no resolution is known.
    """
    from tqdm.auto import tqdm

    array = labels
    if isinstance(labels, (str, Path)):
        import zarr

        try:
            node = zarr.open(str(labels), mode="r")
        except Exception as exc:  # zarr raises several types for a missing store
            raise DiluvianError(f"{labels}: can not open as a zarr store: {exc}") from None
        array = node["labels"] if isinstance(node, zarr.Group) else node
    if resolution is None:
        attrs = getattr(array, "attrs", {})
        if "resolution" not in attrs:
            raise DiluvianError(f"{labels!r}: no resolution given and none in the metadata")
        resolution = attrs["resolution"]
    resolution = np.asarray(resolution, dtype=float)
    shape = tuple(int(s) for s in array.shape)
    if len(shape) != 3 or resolution.shape != (3,):
        raise DiluvianError(f"export needs a 3D volume and 3 resolutions, got shape "
                            f"{list(shape)} and resolution {resolution.tolist()}")
    chunk = tuple(max(1, min(int(c), s)) for c, s in zip(chunk_shape, shape))
    out = Path(out_dir)
    key = _scale_key(resolution)
    (out / key).mkdir(parents=True, exist_ok=True)
    grid = [range(0, s, c) for s, c in zip(shape, chunk)]
    n = int(np.prod([len(g) for g in grid]))
    with tqdm(total=n, desc="Export chunks", unit="chunk", disable=not progress) as bar:
        for z in grid[0]:
            for y in grid[1]:
                for x in grid[2]:
                    lo = (z, y, x)
                    hi = tuple(min(a + c, s) for a, c, s in zip(lo, chunk, shape))
                    data = np.asarray(array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
                    data = np.ascontiguousarray(data.astype("<u8"))
                    (out / key / chunk_name(lo, hi)).write_bytes(data.tobytes())
                    bar.update(1)
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
    with atomic_output(out / "info", suffix=".json") as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return out


def read_precomputed_chunk(out_dir, lo, hi) -> np.ndarray:
    """Read back the raw-encoded chunk ``[lo, hi)`` (Z, Y, X) of an exported volume."""
    out = Path(out_dir)
    info = json.loads((out / "info").read_text())
    scale = info["scales"][0]
    shape = tuple(int(b) - int(a) for a, b in zip(lo, hi))
    data = np.frombuffer((out / scale["key"] / chunk_name(lo, hi)).read_bytes(),
                         dtype="<" + {"uint64": "u8", "uint32": "u4"}[info["data_type"]])
    return data.reshape(shape)
