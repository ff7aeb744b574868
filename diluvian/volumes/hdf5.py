"""HDF5 volumes (CREMI layout) read lazily with h5py."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..util import DiluvianError, atomic_output
from .base import NdarrayVolume, Volume

__all__ = ["DATASET_PATHS", "HDF5Volume"]

#: Where :meth:`HDF5Volume.write_file` stores each keyword (CREMI layout).
DATASET_PATHS = {
    "image_data": "volumes/raw",
    "label_data": "volumes/labels/neuron_ids",
    "mask_data": "volumes/labels/mask",
}

#: Raw chunk cache per open file (bytes); large enough for random FOV reads.
CHUNK_CACHE_BYTES = 64 * 1024 * 1024


def _open(filename) -> h5py.File:
    try:
        return h5py.File(filename, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007)
    except FileNotFoundError:
        raise DiluvianError(f"{filename}: HDF5 file not found") from None
    except OSError as exc:
        raise DiluvianError(f"{filename}: can not open as HDF5: {exc}") from None


def _dataset(f: h5py.File, filename, path: str | None, what: str):
    if path is None:
        return None
    obj = f.get(path)
    if not isinstance(obj, h5py.Dataset):
        raise DiluvianError(f"{filename}: {what} {path!r} is not a dataset in the file")
    return obj


class HDF5Volume(Volume):
    """A volume backed by datasets of an HDF5 file, read lazily.

    Parameters
    ----------
    orig_file : str or path-like
        HDF5 file name.
    image_dataset, label_dataset, mask_dataset : str, optional
        Paths of the datasets in the file (e.g. ``'volumes/raw'``).
    resolution : sequence of 3 numbers, optional
        nm per voxel ZYX; defaults to the image (else label) dataset's
        ``resolution`` attribute.
    mask_bounds : pair of sequence of 3 int, optional
        ``(start, stop)`` of the mask's nonzero part, if known (as 0.0.6),
        so that it need not be computed by reading the whole mask.

    Notes
    -----
    The file stays open read-only; a pickled volume (e.g. sent to a worker
    process) reopens it by name.
    """

    def __init__(self, orig_file, image_dataset: str | None = None,
                 label_dataset: str | None = None, mask_dataset: str | None = None,
                 resolution=None, mask_bounds=None):
        self.orig_file = str(orig_file)
        self._mask_bounds_arg = None if mask_bounds is None else [
            np.asarray(b, dtype=np.int64).tolist() for b in mask_bounds]
        self.image_dataset = image_dataset
        self.label_dataset = label_dataset
        self.mask_dataset = mask_dataset
        self._resolution_arg = None if resolution is None else np.asarray(resolution).tolist()
        self._open()

    def _open(self) -> None:
        f = _open(self.orig_file)
        self.file = f
        image = _dataset(f, self.orig_file, self.image_dataset, "image_dataset")
        label = _dataset(f, self.orig_file, self.label_dataset, "label_dataset")
        mask = _dataset(f, self.orig_file, self.mask_dataset, "mask_dataset")
        resolution = self._resolution_arg
        if resolution is None:
            for ds in (image, label, mask):
                if ds is not None and "resolution" in ds.attrs:
                    resolution = np.asarray(ds.attrs["resolution"])
                    break
        if resolution is None:
            raise DiluvianError(f"{self.orig_file}: no resolution given and the datasets have "
                                "no 'resolution' attribute")
        super().__init__(resolution, image_data=image, label_data=label, mask_data=mask)
        if self._mask_bounds_arg is not None:
            self._mask_bounds = tuple(np.array(b, np.int64) for b in self._mask_bounds_arg)

    def __getstate__(self):
        return {"orig_file": self.orig_file, "image_dataset": self.image_dataset,
                "label_dataset": self.label_dataset, "mask_dataset": self.mask_dataset,
                "_resolution_arg": self._resolution_arg,
                "_mask_bounds_arg": self._mask_bounds_arg}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def __repr__(self) -> str:
        return f"<HDF5Volume {self.orig_file} shape={list(self.shape)} " \
               f"resolution={self.resolution.tolist()}>"

    def close(self) -> None:
        """Close the HDF5 file (the volume can not be read afterwards)."""
        self.file.close()

    def to_memory_volume(self) -> NdarrayVolume:
        """Read all data into an :class:`NdarrayVolume`."""
        return super().to_memory_volume()

    @staticmethod
    def write_file(filename, resolution, **datasets) -> None:
        """Write arrays to an HDF5 file in the CREMI layout, atomically.

        Parameters
        ----------
        filename : str or path-like
        resolution : sequence of 3 numbers
            nm per voxel ZYX, stored as each dataset's ``resolution``
            attribute.
        **datasets : array-like
            ``image_data``, ``label_data`` and/or ``mask_data`` (stored at
            :data:`DATASET_PATHS`), or any other keyword, stored under that
            name as a dataset path. Arrays are chunked and gzip-compressed.
        """
        resolution = np.asarray(resolution, dtype=np.float64)
        with atomic_output(filename, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
            for key, data in datasets.items():
                if data is None:
                    continue
                data = np.asarray(data)
                path = DATASET_PATHS.get(key, key)
                if data.dtype == bool:
                    data = data.astype(np.uint8)
                chunks = tuple(min(s, c) for s, c in zip(data.shape, (16, 64, 64))) \
                    if data.ndim == 3 and data.size else None
                ds = f.create_dataset(path, data=data, chunks=chunks,
                                      compression="gzip" if chunks else None,
                                      compression_opts=1 if chunks else None)
                ds.attrs["resolution"] = resolution

    @staticmethod
    def from_toml(filename) -> dict[str, Volume]:
        """Volumes of the ``[[dataset]]`` entries of a dataset TOML file (lazily read).

        See :func:`diluvian.volumes.load_volumes` for the format.
        """
        from .datasets import volumes_from_toml

        return volumes_from_toml(Path(filename))
