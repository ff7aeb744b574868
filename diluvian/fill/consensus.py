"""``diluvian consensus``: fill twice in different seed orders, keep what both agree on.

A flood fill's result depends on the order of its seeds: a body that merges
two objects in one order is often filled correctly from a seed in the other
object in another order. As Google FFN's consensus segmentation, the volume
is filled twice and every object is split where the two fills disagree:

1. the first fill is exactly ``diluvian fill``'s (seed order from the stream
   ``make_rng(random_seed, "fill_seeds", volume)``);
2. the second fill uses another stream (``..., volume, "consensus"``), so the
   seeds are visited in another random order;
3. :func:`consensus_labels` keeps the voxels labelled in both fills, gives
   each face-connected piece of each pair of labels ``(a, b)`` one new id,
   and drops pieces smaller than ``[fill] min_body_size`` voxels.

A merge made by only one of the fills is split; a merge made by both
survives. The result has only splits that one of the fills has too, or
pieces of them.
"""

from __future__ import annotations

import logging

import numpy as np

from ..util import DiluvianError, make_rng
from .command import prepared_volumes
from .dense import fill_volume_with_model
from .state import segmentation_paths, write_segmentation

__all__ = ["consensus_fill", "consensus_labels", "consensus_volumes_with_model"]

logger = logging.getLogger(__name__)

#: Keywords of :func:`diluvian.fill.fill_volume_with_model` a consensus fill passes on.
FILL_OPTIONS = ("seed_generator", "ignore_mask", "bias", "move_batch_size", "max_moves",
                "remask_interval", "reject_early_termination", "progress")


def consensus_labels(a: np.ndarray, b: np.ndarray, min_size: int = 0,
                     connected: bool = True) -> np.ndarray:
    """Split two label volumes wherever they disagree: their intersection, relabelled.

    Parameters
    ----------
    a, b : ndarray of int, same shape (at most 3 dimensions)
        Two segmentations of one volume, 0 for background.
    min_size : int
        Pieces with fewer voxels become background.
    connected : bool
        Split each piece into its face-connected components (as FFN's
        consensus does), so that an object never has parts that do not touch;
        ``False`` keeps a pair's voxels one object even where they are apart.

    Returns
    -------
    ndarray of uint64
        Each pair ``(a, b)`` of non-zero labels that share a voxel becomes one
        object (one per connected component when ``connected``); ids are 1,
        2, ... in the order of each piece's first voxel (C order). Voxels
        either volume leaves as background stay 0.

    Examples
    --------
    >>> a = np.array([1, 1, 1, 1, 0, 2])
    >>> b = np.array([5, 5, 6, 6, 6, 6])
    >>> consensus_labels(a, b).tolist()
    [1, 1, 2, 2, 0, 3]
    >>> consensus_labels(a, b, min_size=2).tolist()
    [1, 1, 2, 2, 0, 0]
    >>> consensus_labels([1, 0, 1], [2, 2, 2]).tolist()
    [1, 0, 2]
    >>> consensus_labels([1, 0, 1], [2, 2, 2], connected=False).tolist()
    [1, 0, 1]
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise DiluvianError(f"consensus of label volumes of shapes {list(a.shape)} and "
                            f"{list(b.shape)}: expected the same shape")
    if a.ndim > 3:
        raise DiluvianError(f"consensus of {a.ndim}-dimensional label volumes: expected at "
                            "most 3 dimensions")
    out = np.zeros(a.shape, dtype=np.uint64)
    where = np.flatnonzero((a != 0) & (b != 0))
    if where.size == 0:
        return out
    a_index = np.unique(a.ravel()[where], return_inverse=True)[1].reshape(-1)
    b_index = np.unique(b.ravel()[where], return_inverse=True)[1].reshape(-1)
    keys = a_index.astype(np.int64) * (int(b_index.max()) + 1) + b_index
    if connected:
        import cc3d

        pairs = np.zeros(a.shape, dtype=np.uint64)
        pairs.ravel()[where] = np.unique(keys, return_inverse=True)[1].reshape(-1) + 1
        cube = pairs.reshape((1,) * (3 - pairs.ndim) + pairs.shape)
        keys = cc3d.connected_components(cube, connectivity=6).ravel()[where]
    _, first, piece, sizes = np.unique(keys, return_index=True, return_inverse=True,
                                       return_counts=True)
    kept = np.flatnonzero(sizes >= max(int(min_size), 1))
    # New ids 1, 2, ... in the order of each kept piece's first voxel; dropped pieces 0.
    new_id = np.zeros(len(sizes), dtype=np.uint64)
    new_id[kept[np.argsort(first[kept], kind="stable")]] = np.arange(1, len(kept) + 1)
    out.ravel()[where] = new_id[piece.reshape(-1)]
    return out


def consensus_fill(model, volume, *, name: str = "", options: dict | None = None, config=None):
    """Fill ``volume`` twice in different seed orders and combine the fills.

    Parameters
    ----------
    model : keras.Model or callable
        As for :func:`diluvian.fill.fill_volume_with_model`.
    volume : diluvian.volumes.Volume
    name : str
        The volume's name, which keys the seed order streams.
    options : dict, optional
        Keywords for :func:`~diluvian.fill.fill_volume_with_model` (those in
        :data:`FILL_OPTIONS`).
    config : Config, optional
        ``random_seed`` and ``[fill] min_body_size`` are used.

    Returns
    -------
    labels : ndarray of uint64
        :func:`consensus_labels` of the two fills.
    fills : tuple of (ndarray, FillStats)
        Each fill's labels and statistics.
    """
    if config is None:
        from ..config import CONFIG as config
    options = dict(options or {})
    unknown = sorted(set(options) - set(FILL_OPTIONS))
    if unknown:
        raise ValueError(f"consensus fill options {unknown} are unknown: expected "
                         f"{list(FILL_OPTIONS)}")
    fills = []
    for stream in ((name,), (name, "consensus")):
        rng = make_rng(config.random_seed, "fill_seeds", *stream)
        fills.append(fill_volume_with_model(model, volume, shuffle_seeds=True, rng=rng,
                                            config=config, **options))
    labels = consensus_labels(fills[0][0], fills[1][0], int(config.fill.min_body_size))
    return labels, tuple(fills)


def consensus_volumes_with_model(model_file, volumes: dict, filename: str, *,
                                 partition: bool = False, options: dict | None = None,
                                 config=None) -> dict:
    """``diluvian consensus``: a consensus fill of each volume, written as ``fill`` writes.

    Each volume gives ``FILENAME.hdf5`` (CREMI layout, with the image) and
    ``FILENAME.toml`` (``{volume}`` substituted), without a resumable state.
    ``partition`` fills only the validation partitions, as ``fill`` does;
    ``options`` go to :func:`consensus_fill`.

    Returns
    -------
    dict
        Per volume name: ``bodies`` of the consensus and ``fill_bodies`` of
        each fill.
    """
    from ..network import MultiDevicePredictor, fill_devices
    from .command import load_fill_model

    if config is None:
        from ..config import CONFIG as config
    model = load_fill_model(model_file, config)
    devices = fill_devices(int(config.training.num_gpus))
    if devices:
        model = MultiDevicePredictor(model, devices)
    summary = {}
    for name, volume in prepared_volumes(volumes, partition, config).items():
        hdf5_path, toml_path = segmentation_paths(filename, name)
        labels, fills = consensus_fill(model, volume, name=name, options=options, config=config)
        raw = np.asarray(volume.image_data[...]) if volume.image_data is not None else None
        write_segmentation(hdf5_path, toml_path, name, labels, raw, volume.resolution)
        counts = [int(f[1].bodies) for f in fills]
        bodies = int(len(np.unique(labels[labels != 0])))
        summary[name] = {"bodies": bodies, "fill_bodies": counts}
        print(f"{name}: {bodies} bodies, the consensus of fills of {counts[0]} and "
              f"{counts[1]} bodies -> {hdf5_path}")
    return summary
