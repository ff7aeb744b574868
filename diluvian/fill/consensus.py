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

from ..postprocessing import consensus_labels
from ..predictor import MemoPredictor
from ..util import make_rng
from ..volumes.datasets import prepared_volumes
from .dense import fill_volume_with_model
from .state import segmentation_paths, write_segmentation

__all__ = ["consensus_fill", "consensus_labels", "consensus_volumes_with_model"]

logger = logging.getLogger(__name__)

#: Keywords of :func:`diluvian.fill.fill_volume_with_model` a consensus fill passes on.
FILL_OPTIONS = ("seed_generator", "ignore_mask", "bias", "move_batch_size", "max_moves",
                "remask_interval", "reject_early_termination", "progress")


def consensus_fill(model, volume, *, name: str = "", options: dict | None = None, config=None,
                   reuse_bytes: int = 1 << 30):
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
    reuse_bytes : int
        Memory for predictions the second fill may reuse
        (:class:`diluvian.predictor.MemoPredictor`): a field of view whose
        image and mask inputs the first fill already evaluated is not
        evaluated again. 0 evaluates every field of view.

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
    memo = MemoPredictor(model, reuse_bytes) if reuse_bytes > 0 else model
    fills = []
    for stream in ((name,), (name, "consensus")):
        rng = make_rng(config.random_seed, "fill_seeds", *stream)
        fills.append(fill_volume_with_model(memo, volume, shuffle_seeds=True, rng=rng,
                                            config=config, **options))
    if reuse_bytes > 0:
        logger.info("consensus of %s: %d network evaluations, %d fields of view reused", name,
                    memo.misses, memo.hits)
    labels = consensus_labels(fills[0][0], fills[1][0], int(config.fill.min_body_size))
    return labels, tuple(fills)


def consensus_volumes_with_model(model_file, volumes: dict, filename: str, *,
                                 partition: bool = False, options: dict | None = None,
                                 config=None, blockwise: dict | None = None) -> dict:
    """``diluvian consensus``: a consensus fill of each volume, written as ``fill`` writes.

    Each volume gives ``FILENAME.hdf5`` (CREMI layout, with the image) and
    ``FILENAME.toml`` (``{volume}`` substituted), without a resumable state.
    ``partition`` fills only the validation partitions, as ``fill`` does;
    ``options`` go to :func:`consensus_fill`.

    With a block shape (``blockwise={"block_shape": ...}``, which may also
    give ``block_overlap``, ``scheduler`` and ``workers``, or ``[fill]
    block_shape``) each volume is filled blockwise on Dask, as ``fill
    --block-shape`` does, every block in both seed orders and reduced to
    their consensus before the blocks are reconciled; the resumable store
    ``FILENAME.zarr`` is written too.

    Returns
    -------
    dict
        Per volume name: ``bodies`` of the consensus and, single-process,
        ``fill_bodies`` of each fill.
    """
    if config is None:
        from ..config import CONFIG as config
    blockwise = dict(blockwise or {})
    if blockwise.get("block_shape") is not None or config.fill.block_shape is not None:
        from ..blockwise import fill_volumes_blockwise

        stats = fill_volumes_blockwise(model_file, volumes, filename, partition=partition,
                                       config=config, consensus=True, **blockwise,
                                       **(options or {}))
        for name, s in stats.items():
            print(f"{name}: {s.bodies} bodies, the blockwise consensus of two seed orders")
        return {name: {"bodies": int(s.bodies)} for name, s in stats.items()}
    return _consensus_single(model_file, volumes, filename, partition, options, config)


def _consensus_single(model_file, volumes: dict, filename: str, partition: bool,
                      options: dict | None, config) -> dict:
    from ..network import MultiDevicePredictor, fill_devices
    from .command import load_fill_model

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
