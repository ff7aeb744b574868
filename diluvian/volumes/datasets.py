"""Dataset TOML files, :func:`load_volumes` and :func:`partition_volumes`.

A dataset file lists volumes as ``[[dataset]]`` entries::

    [[dataset]]
    name = "Sample A"
    hdf5_file = "sample_A_20160501.hdf"      # relative to this TOML file
    image_dataset = "volumes/raw"
    label_dataset = "volumes/labels/neuron_ids"
    # mask_dataset = "volumes/labels/mask"
    # resolution = [40, 4, 4]                # else the datasets' attribute
    # download_url = "https://..."           # fetched into the cache if missing
    # download_md5 = "..."

Each entry names exactly one source: ``hdf5_file``, ``zarr_file`` or
``n5_file`` (with ``image_dataset``/``label_dataset``/``mask_dataset`` paths
inside the container, and for OME-Zarr an optional ``scale_level``),
``image_stack_dir`` (a folder of PNG/TIFF Z slices, with optional
``label_stack_dir``/``mask_stack_dir`` and a required ``resolution``), or
``catmaid_stack_info`` (a JSON file of a CATMAID stack's info, with an optional
``tile_source`` table of tile source parameters).
"""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from ..util import DiluvianError
from .base import Volume

logger = logging.getLogger(__name__)

__all__ = ["DATASET_KEYS", "load_volumes", "partition_volumes", "prepared_volumes",
           "volumes_from_toml"]

SOURCE_KEYS = ("hdf5_file", "zarr_file", "n5_file", "image_stack_dir", "catmaid_stack_info")
#: Every key a ``[[dataset]]`` entry may have.
DATASET_KEYS = (
    "name", *SOURCE_KEYS, "image_dataset", "label_dataset", "mask_dataset", "resolution",
    "download_url", "download_md5", "scale_level", "label_stack_dir", "mask_stack_dir",
    "tile_source",
)


def _fail(filename, name, message) -> DiluvianError:
    where = f"[[dataset]] {name!r}" if name is not None else "[[dataset]]"
    return DiluvianError(f"{filename}: {where}: {message}")


def _read(filename: Path) -> list[dict[str, Any]]:
    try:
        with open(filename, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise DiluvianError(f"{filename}: dataset file not found") from None
    except IsADirectoryError:
        raise DiluvianError(f"{filename}: is a directory, expected a dataset TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DiluvianError(f"{filename}: malformed TOML: {exc}") from None
    for key in doc:
        if key != "dataset":
            raise DiluvianError(f"{filename}: unknown key {key!r}; expected [[dataset]] entries")
    entries = doc.get("dataset", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DiluvianError(f"{filename}: 'dataset' must be an array of tables ([[dataset]])")
    return entries


def _check_entry(filename, entry: dict) -> None:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(filename, None, "lacks a 'name' string")
    for key in entry:
        if key not in DATASET_KEYS:
            close = difflib.get_close_matches(key, DATASET_KEYS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else (
                f"; valid keys: {', '.join(DATASET_KEYS)}")
            raise _fail(filename, name, f"unknown key {key!r}{hint}")
    sources = [k for k in SOURCE_KEYS if k in entry]
    if len(sources) != 1:
        raise _fail(filename, name, "needs exactly one of " + ", ".join(SOURCE_KEYS)
                    + (f", got {', '.join(sources)}" if sources else ""))
    res = entry.get("resolution")
    if res is not None and not (isinstance(res, list) and len(res) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in res)):
        raise _fail(filename, name, f"resolution = {res!r} is invalid: expected 3 positive "
                    "numbers (nm per voxel, Z, Y, X)")
    for key in ("image_dataset", "label_dataset", "mask_dataset", "download_url",
                "download_md5"):
        if key in entry and not isinstance(entry[key], str):
            raise _fail(filename, name, f"{key} = {entry[key]!r} is invalid: expected a string")


def _resolve(filename: Path, entry: dict, key: str) -> Path:
    path = Path(entry[key]).expanduser()
    return path if path.is_absolute() else filename.parent / path


def _open_entry(filename: Path, entry: dict) -> Volume:
    name = entry["name"]
    res = entry.get("resolution")
    datasets = {k: entry.get(k) for k in ("image_dataset", "label_dataset", "mask_dataset")}
    source = next(k for k in SOURCE_KEYS if k in entry)
    path = _resolve(filename, entry, source)
    if not path.exists() and "download_url" in entry:
        from .download import cache_dir, download_file

        path = cache_dir("datasets") / Path(entry[source]).name
        download_file(entry["download_url"], path, md5=entry.get("download_md5"))
    if not path.exists():
        raise _fail(filename, name, f"{source} {str(path)!r} does not exist")
    if source in ("hdf5_file", "zarr_file", "n5_file") and datasets["image_dataset"] is None \
            and datasets["label_dataset"] is None:
        raise _fail(filename, name, "needs image_dataset and/or label_dataset")
    if source == "hdf5_file":
        from .hdf5 import HDF5Volume

        return HDF5Volume(path, resolution=res, **datasets)
    if source in ("zarr_file", "n5_file"):
        from .chunked import N5Volume, ZarrVolume

        klass = ZarrVolume if source == "zarr_file" else N5Volume
        return klass(path, resolution=res, scale_level=entry.get("scale_level"), **datasets)
    if source == "image_stack_dir":
        from .stacks import ImageFolderVolume

        if res is None:
            raise _fail(filename, name, "an image_stack_dir needs a resolution")
        extra = {k: _resolve(filename, entry, k) for k in ("label_stack_dir", "mask_stack_dir")
                 if k in entry}
        return ImageFolderVolume.from_directory(
            path, res, label_dir=extra.get("label_stack_dir"),
            mask_dir=extra.get("mask_stack_dir"))
    import json

    from .tiles import ImageStackVolume

    stack_info = json.loads(path.read_text())
    return ImageStackVolume.from_catmaid_stack(stack_info, entry.get("tile_source"))


def volumes_from_toml(filename) -> dict[str, Volume]:
    """Open the volumes of one dataset TOML file (lazily), ``{name: volume}``.

    Raises
    ------
    DiluvianError
        For a missing file or dataset, mismatched data shapes or an unknown
        key, naming the TOML file and the dataset entry.
    """
    filename = Path(filename)
    volumes: dict[str, Volume] = {}
    for entry in _read(filename):
        _check_entry(filename, entry)
        name = entry["name"]
        try:
            volumes[name] = _open_entry(filename, entry)
        except DiluvianError as exc:
            msg = str(exc)
            if msg.startswith(str(filename)):
                raise
            raise _fail(filename, name, msg) from None
        _check_data(filename, name, volumes[name])
    return volumes


def _check_data(filename, name: str, volume: Volume) -> None:
    """Refuse float labels; warn on float images outside [0, 1] (sampled sections)."""
    labels = getattr(volume, "label_data", None)
    dtype = getattr(labels, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "iub":
        raise _fail(filename, name, f"label_dataset has dtype {np.dtype(dtype)}: labels must be "
                    "integers (body ids)")
    image = getattr(volume, "image_data", None)
    dtype = getattr(image, "dtype", None)
    if dtype is None or np.dtype(dtype).kind != "f" or not len(image.shape) or not image.shape[0]:
        return
    n = int(image.shape[0])
    picks = sorted({0, n // 2, n - 1})
    try:
        sample = np.stack([np.asarray(image[z]) for z in picks])
    except Exception:  # noqa: BLE001 - only a warning; reading errors surface later
        return
    lo, hi = float(np.nanmin(sample)), float(np.nanmax(sample))
    if lo < 0.0 or hi > 1.0:
        logger.warning("%s: dataset %r: %s image has values from %g to %g, but float images "
                       "are expected in [0, 1] (integer images are divided by their range); "
                       "rescale it or store it as uint8", filename, name, np.dtype(dtype), lo,
                       hi)


def load_volumes(volume_files, in_memory: bool, name_regex: str | None = None,
                 config=None) -> dict[str, Volume]:
    """Load the volumes of dataset TOML files, or the built-in synthetic dataset.

    Parameters
    ----------
    volume_files : list of str or path-like
        Dataset TOML files; a later entry with the same name replaces an
        earlier one. Empty: the built-in synthetic EM dataset
        (:mod:`diluvian.volumes.synthetic`).
    in_memory : bool
        Read all data into memory (else read lazily from disk).
    name_regex : str, optional
        Keep only volumes whose name matches (``re.search``).
    config : Config, optional
        Unused for now; accepted for a uniform signature.

    Returns
    -------
    dict
        ``{name: volume}`` in file order.
    """
    del config
    if not volume_files:
        from .synthetic import load_synthetic_volumes

        volumes = load_synthetic_volumes(in_memory=False)
    else:
        volumes = {}
        for filename in volume_files:
            volumes.update(volumes_from_toml(filename))
    if name_regex is not None:
        try:
            pattern = re.compile(name_regex)
        except re.error as exc:
            raise DiluvianError(f"volume name regex {name_regex!r} is invalid: {exc}") from None
        volumes = {k: v for k, v in volumes.items() if pattern.search(k)}
    if in_memory:
        volumes = {k: v.to_memory_volume() for k, v in volumes.items()}
    return volumes


def _match(table: dict, name: str, key: str, source: str):
    for regex, value in table.items():
        try:
            if re.search(regex, name):
                return value
        except re.error as exc:
            raise DiluvianError(f"{source}: [training] {key} regex {regex!r} is invalid: "
                                f"{exc}") from None
    return None


def partition_volumes(volumes: dict[str, Volume], downsample: bool = True,
                      config=None) -> tuple[dict[str, Volume], dict[str, Volume]]:
    """Split each volume into its training and validation partitions.

    Uses ``[training] partitions``, ``training_partition`` and
    ``validation_partition``: the first regex matching a volume's name
    applies. A volume matching no ``partitions`` regex is used whole for both.

    Parameters
    ----------
    volumes : dict
        ``{name: volume}``.
    downsample : bool
        Downsample each volume to ``[volume] resolution`` first (with
        ``[volume] label_downsampling``).
    config : Config, optional
        Defaults to :data:`diluvian.config.CONFIG`.

    Returns
    -------
    training_volumes, validation_volumes : dict
        ``{name: view}`` each.
    """
    if config is None:
        from ..config import CONFIG

        config = CONFIG
    training, validation = {}, {}
    tc = config.training
    for name, volume in volumes.items():
        if downsample:
            volume = volume.downsample(config.volume.resolution,
                                       label_mode=config.volume.label_downsampling)
        parts = _match(tc.partitions, name, "partitions", "config")
        if parts is None:
            training[name] = validation[name] = volume
            continue
        for key, out in (("training_partition", training),
                         ("validation_partition", validation)):
            index = _match(getattr(tc, key), name, key, "config")
            if index is None:
                raise DiluvianError(f"config: [training] {key} has no regex matching volume "
                                    f"{name!r}")
            try:
                out[name] = volume.partition(np.asarray(parts), np.asarray(index))
            except DiluvianError as exc:
                raise DiluvianError(f"config: [training] partitions of volume {name!r}: "
                                    f"{exc}") from None
    return training, validation


def prepared_volumes(volumes: dict[str, Volume], partition: bool, config) -> dict[str, Volume]:
    """The volumes a fill segments: validation partitions or downsampled, each at least one FOV.

    With ``partition`` the validation partition of each volume
    (:func:`partition_volumes`); otherwise each volume, downsampled to
    ``[volume] resolution`` when the configuration sets it.

    Raises
    ------
    DiluvianError
        For a volume smaller than ``[model] input_fov_shape``.
    """
    downsample = config.explicitly_set("volume.resolution")
    if partition:
        volumes = partition_volumes(volumes, downsample=downsample, config=config)[1]
    elif downsample:
        volumes = {k: v.downsample(config.volume.resolution,
                                   label_mode=config.volume.label_downsampling)
                   for k, v in volumes.items()}
    fov = np.asarray(config.model.input_fov_shape)
    for name, volume in volumes.items():
        if np.any(np.asarray(volume.shape) < fov):
            raise DiluvianError(f"volume {name!r} of shape {list(map(int, volume.shape))} is "
                                f"smaller than [model] input_fov_shape {fov.tolist()}")
    return volumes
