"""``diluvian fill`` in blockwise mode: one zarr store, HDF5 and dataset TOML per volume."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np

from ..fill.state import check_output_name, segmentation_paths
from ..util import DiluvianError, atomic_output
from ..volumes.datasets import prepared_volumes
from .layout import BlockLayout
from .run import BlockwiseOptions, blockwise_options, fill_volume_blockwise
from .store import LABELS
from .workers import dask_client

__all__ = ["fill_volumes_blockwise", "store_path", "write_store_hdf5"]

logger = logging.getLogger(__name__)


def store_path(filename: str, volume_name: str) -> Path:
    """``OUT.zarr`` beside ``OUT.hdf5`` for a volume (``{volume}`` substituted)."""
    return Path(str(filename).replace("{volume}", volume_name) + ".zarr")


def write_store_hdf5(store, hdf5_path, toml_path, volume_name: str, image=None,
                     background_label_id: int = 0) -> None:
    """Copy a blockwise store's labels (and ``image``) to HDF5 + dataset TOML, block by block.

    The layout is that of :func:`diluvian.fill.write_segmentation` (CREMI
    paths, ``resolution`` attributes, TOML entry named
    :func:`diluvian.fill.dataset_name` of the volume); memory stays bounded by
    one block core.

    Parameters
    ----------
    store : path-like
        Blockwise zarr store.
    hdf5_path, toml_path : path-like
    volume_name : str
    image : array-like, optional
        The volume's image data, copied to ``volumes/raw``.
    background_label_id : int
        Written for label 0.
    """
    import h5py
    import tomli_w
    import zarr

    from ..fill.state import dataset_name
    from ..volumes.hdf5 import DATASET_PATHS

    IMAGE_PATH, LABEL_PATH = DATASET_PATHS["image_data"], DATASET_PATHS["label_data"]  # noqa: N806

    hdf5_path, toml_path = Path(hdf5_path), Path(toml_path)
    labels = zarr.open_group(str(store), mode="r")[LABELS]
    resolution = np.asarray(labels.attrs["resolution"], dtype=np.float64)
    layout = BlockLayout(labels.shape, labels.chunks, (0, 0, 0))
    chunks = tuple(min(s, c) for s, c in zip(labels.shape, (32, 64, 64)))
    with atomic_output(hdf5_path, suffix=".hdf5") as tmp, h5py.File(tmp, "w") as f:
        out = f.create_dataset(LABEL_PATH, shape=labels.shape, dtype=np.uint64, chunks=chunks,
                               compression="gzip", compression_opts=1)
        out.attrs["resolution"] = resolution
        raw = None
        if image is not None:
            raw = f.create_dataset(IMAGE_PATH, shape=labels.shape, dtype=image.dtype,
                                   chunks=chunks, compression="gzip", compression_opts=1)
            raw.attrs["resolution"] = resolution
        for block in layout:
            sl = block.core.to_slices()
            data = np.asarray(labels[sl])
            if background_label_id != 0:
                data[data == 0] = background_label_id
            out[sl] = data
            if raw is not None:
                raw[sl] = np.asarray(image[sl])
    try:
        rel = hdf5_path.resolve().relative_to(toml_path.resolve().parent)
    except ValueError:
        rel = hdf5_path.resolve()
    entry = {"name": dataset_name(volume_name), "hdf5_file": str(rel),
             "label_dataset": LABEL_PATH,
             "resolution": [int(v) if float(v).is_integer() else float(v) for v in resolution]}
    if image is not None:
        entry["image_dataset"] = IMAGE_PATH
    with atomic_output(toml_path, suffix=".toml") as tmp:
        tmp.write_text(tomli_w.dumps({"dataset": [entry]}))


def fill_volumes_blockwise(model_file, volumes: dict, filename: str,
                           options: BlockwiseOptions | None = None, *, partition: bool = False,
                           viewer: bool = False, background_label_id: int = 0, config=None,
                           **keywords) -> dict:
    """``diluvian fill`` with a block shape: fill each volume blockwise on Dask.

    Each volume gets ``OUT.zarr`` (the resumable blockwise store: rerunning
    the same command continues it), ``OUT.hdf5`` and ``OUT.toml``. One Dask
    client serves all volumes.

    Parameters
    ----------
    model_file : str or path-like
    volumes : dict
        ``{name: Volume}``.
    filename : str
        Output base name, as :func:`diluvian.fill.fill_volumes_with_model`'s.
    options : BlockwiseOptions, optional
        Block, reconciliation, Dask and fill settings (``seed_stream`` is set
        to each volume's name). ``keywords`` amend it as
        :func:`blockwise_options` says: ``block_shape=...``, ``workers=...``,
        ``seed_generator=...``, ``consensus=True`` (every block filled in
        two seed orders and reduced to their consensus, ``diluvian consensus
        --block-shape``).
    partition, viewer, background_label_id, config
        As :func:`diluvian.fill.fill_volumes_with_model`.

    Returns
    -------
    dict
        ``{volume name: FillStats}`` (summed over blocks; ``bodies`` is the
        number of global objects).

    Raises
    ------
    DiluvianError
        As :func:`fill_volume_blockwise`, and for no volumes, several volumes
        without ``{volume}`` in ``filename``, or no model file.
    """
    if config is None:
        from ..config import CONFIG as config
    config = copy.deepcopy(config)
    opts = blockwise_options(options, **keywords)
    check_output_name(volumes, filename)
    if model_file is None:
        raise DiluvianError("filling needs a trained model file (-m MODEL_FILE)")
    from ..network import apply_model_settings, read_model_settings

    apply_model_settings(config, read_model_settings(model_file), source=str(model_file))
    all_stats = {}
    with dask_client(opts.scheduler, opts.workers, processes=opts.processes,
                     progress=opts.progress) as client:
        for name, volume in prepared_volumes(volumes, partition, config).items():
            hdf5_path, toml_path = segmentation_paths(filename, name)
            result = fill_volume_blockwise(
                model_file, volume, store_path(filename, name),
                dataclasses.replace(opts, seed_stream=(name,)), client=client, config=config)
            write_store_hdf5(result.store, hdf5_path, toml_path, name, volume.image_data,
                             background_label_id=background_label_id)
            stats = result.stats
            stats.bodies = result.objects
            all_stats[name] = stats
            logger.info("%s: %d objects from %d blocks -> %s", name, result.objects,
                        result.blocks, hdf5_path)
            if viewer:
                _show(name, volume, result.store)
    return all_stats


def _show(name, volume, store) -> None:
    from ..viewer import WrappedViewer
    from .store import read_labels

    viewer = WrappedViewer(voxel_size=np.asarray(volume.resolution).tolist())
    viewer.add(np.asarray(volume.image_data[...]), name=f"{name} image")
    viewer.add(read_labels(store), name=f"{name} segmentation", kind="segmentation")
    viewer.print_view_prompt()
