"""Blockwise dense filling on Dask distributed, with a resumable zarr store.

Passes over the blocks of a :class:`~diluvian.blockwise.layout.BlockLayout`,
each a set of Dask tasks that read and write only one block's worth of data:

1. **seed thresholds** (``sobel`` seeds only): the whole volume's Otsu
   thresholds from per-block histograms, so that every block makes the
   whole volume's seeds (:mod:`diluvian.blockwise.seeds`).
2. **fill**: each block's outer box (core + margin) is read from the volume
   and densely filled by :class:`diluvian.fill.engine.DenseFill`; its
   labels, made globally unique as ``block_number << 32 | local_id``, are
   written to the block's slot of the scratch array ``blocks``. As soon as
   it lands the client sets the block's flag in the small ``finished`` array
   (one byte per block) and its counters in ``block_stats``, both O(1)
   writes, so a rerun skips it; Dask ``retries`` redo a block whose worker
   died.
3. **reconcile**: for each block and each forward face neighbour, the objects
   of the two blocks in the intersection of their outer boxes are matched by
   the overlap rule (:mod:`diluvian.blockwise.reconcile`); the client joins
   the matches with union-find and numbers the objects present in some core
   ``1..N`` (0 is background).
4. **relabel**: each block core is mapped to global IDs and written to the
   final ``labels`` array (chunk = block core, so writes never collide).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fill.options import FillOptions
from ..geometry import Box
from ..postprocessing import consensus_labels
from ..predictor import MemoPredictor
from ..util import DiluvianError, make_rng
from .layout import BlockLayout
from .reconcile import consecutive_ids, overlap_matches
from .seeds import block_seeds, global_seeding, needs_levels, read_mask, sobel_levels
from .store import (
    LABELS,
    SCRATCH,
    STATE_ATTR,
    _mark_finished,
    _open,
    _open_store,
    _read_block_stats,
    _save_state,
    _store_settings,
    _sum_stats,
    finished_blocks,
    read_labels,
)
from .workers import _local_tf_threads, dask_client, run_tasks, worker_model

# The store's names are re-exported here, where they used to live.
__all__ = ["LABELS", "SCRATCH", "STATE_ATTR", "BlockwiseOptions", "BlockwiseResult",
           "dask_client", "fill_volume_blockwise", "read_labels"]

logger = logging.getLogger(__name__)

#: Options of :class:`~diluvian.fill.options.FillOptions` that may be given per fill (a
#: store records them; the other options come from the configuration).
FILL_OPTIONS = ("seed_generator", "shuffle_seeds", "ignore_mask", "bias", "move_batch_size",
                "max_moves", "remask_interval", "reject_early_termination")
#: Settings that must match for a store to be resumed.
_LAYOUT_KEYS = ("shape", "block_shape", "block_overlap")


@dataclass
class BlockwiseResult:
    """Outcome of :func:`fill_volume_blockwise`.

    Attributes
    ----------
    store : pathlib.Path
        The zarr store (``labels``: global IDs; ``blocks``: per-block labels).
    objects : int
        Global objects (IDs ``1..objects``).
    blocks : int
        Blocks in the layout.
    filled_blocks : int
        Blocks filled in this call (the others were already finished).
    merges : int
        Matched object pairs across block overlaps.
    stats : FillStats
        Counters summed over all blocks (``bodies`` counts block-local bodies).
    wall_seconds : float
    """

    store: Path
    objects: int = 0
    blocks: int = 0
    filled_blocks: int = 0
    merges: int = 0
    stats: Any = None
    wall_seconds: float = 0.0
    block_stats: dict = field(default_factory=dict, repr=False)

# --------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------


def context_box(layout: BlockLayout, block, input_fov_shape) -> tuple[np.ndarray, np.ndarray]:
    """A block's outer box grown by half an input FOV on each side, within the volume (lo, hi)."""
    box = _context(layout, block, input_fov_shape)
    return box.lo, box.hi


def _context(layout: BlockLayout, block, input_fov_shape) -> Box:
    return layout.grow(block.outer, [int(s) // 2 for s in input_fov_shape])


@dataclass(frozen=True)
class BlockJob:
    """What every block fill of one blockwise run shares (sent to the workers once per task).

    Attributes
    ----------
    store : str
        The zarr store.
    layout : BlockLayout
    model : str, keras.Model or callable
        A model file (loaded once per worker) or a model / predictor.
    options : FillOptions
        The fill options of every block.
    network_config, dtype_policy
        ``[network]`` and ``[fill] dtype_policy``, to load a model file.
    tf_threads : int, optional
        TensorFlow threads of a worker's model.
    seed_stream : tuple
        Extra random stream keys of the seed order.
    seed_levels : sequence of float, optional
        The whole volume's ``sobel`` seed thresholds.
    consensus : bool
        Fill each block twice, the second time in the seed order of the
        stream ``(*seed_stream, "consensus")``, and keep the consensus of the
        two (:func:`diluvian.postprocessing.consensus_labels`), as
        ``diluvian consensus`` does for a whole volume.
    """

    store: str
    layout: BlockLayout
    model: Any
    options: FillOptions
    network_config: Any = None
    dtype_policy: str = "float32"
    tf_threads: int | None = None
    seed_stream: tuple = ()
    seed_levels: Any = None
    consensus: bool = False


def fill_block(volume, job: BlockJob, index) -> dict:
    """Densely fill one block's outer box and write it to its scratch slot (a Dask task).

    The block starts from the whole volume's seeds in its outer box
    (:func:`~diluvian.blockwise.seeds.block_seeds`; ``job.seed_levels`` are
    the ``sobel`` thresholds) where its seed generator allows, from seeds of
    its own image otherwise. Returns the block's
    :class:`~diluvian.fill.FillStats` as a dict.
    """
    from ..fill.engine import DenseFill
    from ..volumes.base import NdarrayVolume

    layout, options = job.layout, job.options
    block = layout.block(index)
    # The outer box is filled; half an input FOV around it (within the volume)
    # is read as context only, so FOVs near the block's faces see real image
    # where a single-process fill would, not padding.
    context = _context(layout, block, options.input_fov_shape)
    lo, hi = context.lo, context.hi
    box = context.to_slices()
    image = np.asarray(volume.image_data[box])
    sub = NdarrayVolume(volume.resolution, image_data=image,
                        mask_data=read_mask(volume, box, options.ignore_mask))
    seeds = None
    if global_seeding(options.seed_generator):
        seeds = block_seeds(volume, layout, index, options.seed_generator, job.seed_levels,
                            options.ignore_mask) - lo
    net = worker_model(job.model, job.network_config, job.dtype_policy, job.tf_threads)
    before = np.asarray(block.outer_lo) - lo
    after = hi - np.asarray(block.outer_hi)
    streams = [job.seed_stream] + ([(*job.seed_stream, "consensus")] if job.consensus else [])
    if job.consensus:  # the second fill reuses the first's evaluations of the same inputs
        net = MemoPredictor(net)
    fills = []
    for stream in streams:
        # One stream for every block: seeds are ordered by a hash of their global
        # position, so each block visits its seeds in the whole volume's order.
        rng = make_rng(options.random_seed, "fill_seeds", *stream)
        fill = DenseFill(net, sub, options, context=np.stack([before, after]), progress=False)
        labels, stats = fill.run(seeds, rng=rng, seed_origin=lo)
        fills.append((labels[block.outer.shift(-lo).to_slices()], stats))
    labels, stats = fills[0]
    if job.consensus:
        labels = consensus_labels(labels, fills[1][0], int(options.min_body_size))
        stats = _sum_stats({0: asdict(stats), 1: asdict(fills[1][1])})
        stats.bodies = int(labels.max()) if labels.size else 0
    # Bodies may reach into the context; count only the block's own box.
    stats.labelled_voxels = int(np.count_nonzero(labels))
    if labels.size and int(labels.max()) >= 1 << 32:
        raise DiluvianError(f"block {list(block.index)} has over 2**32 bodies; use smaller "
                            "[fill] block_shape")
    slot = np.zeros(layout.slot_shape, dtype=np.uint64)
    origin = np.asarray(block.core_lo) - np.asarray(layout.block_overlap)
    inner = block.outer.shift(-origin).to_slices()
    offset = np.uint64(layout.global_id_offset(block))
    slot[inner] = np.where(labels != 0, labels.astype(np.uint64) | offset, np.uint64(0))
    _open(job.store, SCRATCH)[layout.slot_slices(block)] = slot
    return asdict(stats)


def reconcile_block(store, layout: BlockLayout, index, threshold: float,
                    min_voxels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """IDs in a block's core and its matches with its forward face neighbours (a Dask task).

    Returns
    -------
    ids : ndarray of uint64
        Sorted nonzero IDs in the block core.
    merges : ndarray of uint64, shape (M, 2)
        Object pairs matched by :func:`~diluvian.blockwise.reconcile.overlap_matches`.
    """
    scratch = _open(store, SCRATCH, "r")
    block = layout.block(index)
    ids = np.unique(scratch[layout.scratch_box(block, block.core_lo, block.core_hi)])
    merges: list[tuple[int, int]] = []
    for other in layout.neighbours(block, faces=True):
        box = block.outer.intersect(other.outer)
        if box is None:
            continue
        mine = scratch[layout.scratch_box(block, box.lo, box.hi)]
        theirs = scratch[layout.scratch_box(other, box.lo, box.hi)]
        merges.extend(overlap_matches(mine, theirs, threshold, min_voxels))
    return ids[ids != 0], np.asarray(merges, dtype=np.uint64).reshape(-1, 2)


def relabel_block(store, layout: BlockLayout, index, keys: np.ndarray,
                  values: np.ndarray) -> None:
    """Write a block core with global IDs into the ``labels`` array (a Dask task)."""
    group_path = str(store)
    block = layout.block(index)
    core = _open(group_path, SCRATCH, "r")[layout.scratch_box(block, block.core_lo, block.core_hi)]
    out = np.zeros(core.shape, dtype=np.uint64)
    nz = core != 0
    if nz.any():
        out[nz] = values[np.searchsorted(keys, core[nz])]
    _open(group_path, LABELS)[block.core.to_slices()] = out


# --------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockwiseOptions:
    """How :func:`fill_volume_blockwise` splits, runs and reconciles a fill.

    Every field may also be given to :func:`fill_volume_blockwise` as a
    keyword. ``None`` means the ``[fill]`` setting of the configuration.

    Attributes
    ----------
    block_shape, block_overlap : sequence of 3 int, optional
        Core shape and margin (Z, Y, X voxels); default ``[fill]``
        ``block_shape`` and ``block_overlap``.
    reconcile_threshold : float, optional
        Default ``[fill] reconcile_threshold``; in ``(0, 1]``.
    reconcile_min_voxels : int, optional
        Default ``[fill] reconcile_min_voxels``; at least 1. Changing only
        the reconciliation settings of an existing store reconciles its
        finished fills again without refilling a block.
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a Dask scheduler; default a ``LocalCluster``
        with ``workers`` workers (one thread each; default: CPU cores).
    workers : int, optional
        Workers of the ``LocalCluster``.
    processes : bool
        LocalCluster workers as processes (false: threads).
    retries : int
        Dask retries of a failed block task (a worker dying loses only its block).
    tf_threads : int, optional
        TensorFlow intra- and inter-op threads of each worker's model
        (applied when a worker first loads it). Default: the workers of a
        ``LocalCluster`` share this machine's cores (cores // workers); the
        workers of a remote scheduler keep TensorFlow's own default.
    fill_options : dict, optional
        Keyword arguments of :func:`~diluvian.fill.fill_volume_with_model`
        among :data:`FILL_OPTIONS`.
    seed_stream : tuple
        Extra random stream keys (e.g. the volume name): blocks order their
        seeds with ``make_rng(random_seed, 'fill_seeds', *seed_stream)`` and
        their global positions, as a single-process fill of the whole volume
        with that stream does (see ``seed_origin`` of
        :func:`~diluvian.fill.fill_volume_with_model`).
    progress : bool
        Progress bars and the dashboard address.
    consensus : bool
        Fill every block in two seed orders and keep their consensus
        (``diluvian consensus --block-shape``; see :class:`BlockJob`). A
        store remembers it: it resumes only with the same choice.
    """

    block_shape: Any = None
    block_overlap: Any = None
    reconcile_threshold: float | None = None
    reconcile_min_voxels: int | None = None
    scheduler: str | None = None
    workers: int | None = None
    processes: bool = True
    retries: int = 2
    tf_threads: int | None = None
    fill_options: dict | None = None
    seed_stream: tuple = ()
    progress: bool = True
    consensus: bool = False


def blockwise_options(options: BlockwiseOptions | None = None, **keywords) -> BlockwiseOptions:
    """``options`` with ``keywords`` applied: :class:`BlockwiseOptions` fields, or fill options.

    A keyword among :data:`FILL_OPTIONS` (``seed_generator``,
    ``move_batch_size``, ...) goes into ``fill_options``; any other replaces the
    field of that name (``block_shape``, ``workers``, ...).

    Raises
    ------
    TypeError
        For a keyword that is neither.
    """
    options = options or BlockwiseOptions()
    fill = {k: keywords.pop(k) for k in list(keywords) if k in FILL_OPTIONS}
    if fill:
        keywords["fill_options"] = {**(options.fill_options or {}), **fill}
    return dataclasses.replace(options, **keywords)


def _block_settings(opts: BlockwiseOptions, config) -> tuple:
    """Checked block shape, overlap, reconcile threshold and minimum voxels (``[fill]`` if unset).

    Also checks ``fill_options`` and ``tf_threads``.
    """
    unknown = sorted(set(opts.fill_options or {}) - set(FILL_OPTIONS))
    if unknown:
        raise DiluvianError(f"unknown blockwise fill option(s) {', '.join(unknown)}; expected "
                            f"some of {', '.join(FILL_OPTIONS)}")
    if opts.tf_threads is not None and int(opts.tf_threads) < 1:
        raise DiluvianError(f"tf_threads = {opts.tf_threads}: expected at least 1")
    block_shape = config.fill.block_shape if opts.block_shape is None else opts.block_shape
    if block_shape is None:
        raise DiluvianError("blockwise filling needs [fill] block_shape or --block-shape")
    block_overlap = (config.fill.block_overlap if opts.block_overlap is None
                     else opts.block_overlap)
    threshold = float(config.fill.reconcile_threshold if opts.reconcile_threshold is None
                      else opts.reconcile_threshold)
    if not 0.0 < threshold <= 1.0:
        raise DiluvianError(f"[fill] reconcile_threshold = {threshold}: expected a fraction in "
                            "(0, 1]")
    min_voxels = int(config.fill.reconcile_min_voxels if opts.reconcile_min_voxels is None
                     else opts.reconcile_min_voxels)
    if min_voxels < 1:
        raise DiluvianError(f"[fill] reconcile_min_voxels = {min_voxels}: expected at least 1")
    return block_shape, block_overlap, threshold, min_voxels


def fill_volume_blockwise(model, volume, output, options: BlockwiseOptions | None = None, *,
                          client=None, config=None, **keywords) -> BlockwiseResult:
    """Densely fill a volume block by block on Dask; reconcile IDs into one zarr label array.

    Each block (core ``block_shape`` plus ``block_overlap`` on each side,
    clipped to the volume) is filled independently by
    :class:`diluvian.fill.engine.DenseFill` on a worker, which reads only
    that box of the volume (plus context). Blocks start from the whole
    volume's seeds in their box (:mod:`diluvian.blockwise.seeds`; for
    ``sobel`` seeds two quick passes over the blocks first find the whole
    volume's thresholds). Objects of neighbouring blocks are merged when, in
    the box where the two blocks' filled boxes intersect, the voxels they
    share are at least ``reconcile_threshold`` of the smaller object's voxels
    in that box and at least ``reconcile_min_voxels`` voxels (see
    :mod:`diluvian.blockwise.reconcile`); merges are
    transitive. Final IDs are ``1..N`` (0 is background), numbered by each
    object's first block.

    Parameters
    ----------
    model : str, path-like, keras.Model or callable
        A ``.keras`` model file (loaded once per worker; its settings are
        applied to the configuration), or a model / predictor
        ``predictor(images, masks) -> probs`` sent to the workers as is.
    volume : diluvian.volumes.Volume
        Volume with image data. It is sent to the workers once; file-backed
        volumes (HDF5, zarr, N5, views of them) send only their file names
        and each block task reads only its box.
    output : str or path-like
        Zarr store (folder) to create, or to resume when it exists.
    options : BlockwiseOptions, optional
        Block, reconciliation and Dask settings. ``keywords`` amend it as
        :func:`blockwise_options` says: fields of :class:`BlockwiseOptions`
        (``block_shape=...``, ``workers=...``) or fill options
        (``seed_generator=...``).
    client : dask.distributed.Client, optional
        Use this client instead (``scheduler`` and ``workers`` are then ignored).
    config : Config, optional
        Defaults to :data:`diluvian.config.CONFIG`; not modified.

    Returns
    -------
    BlockwiseResult

    Raises
    ------
    DiluvianError
        For bad block settings, unknown fill options, or an existing store
        made with other settings.
    TypeError
        For a keyword that is neither a field of :class:`BlockwiseOptions`
        nor a fill option.
    """
    if config is None:
        from ..config import CONFIG as config
    config = copy.deepcopy(config)
    t_start = time.perf_counter()
    opts = blockwise_options(options, **keywords)
    block_shape, block_overlap, threshold, min_voxels = _block_settings(opts, config)
    fill_options = dict(opts.fill_options or {})
    if isinstance(model, (str, os.PathLike)):
        from ..network import apply_model_settings, read_model_settings

        apply_model_settings(config, read_model_settings(model), source=str(model))
        model = str(Path(model).resolve())
    # Blocks write local ids (0: background) and keep no checkpoints of their own.
    block_fill = FillOptions.from_config(config, **fill_options, background_label_id=0,
                                         checkpoint_interval=0)
    if volume.image_data is None:
        raise DiluvianError(f"{volume!r} has no image data to fill")
    layout = BlockLayout(volume.shape, block_shape, block_overlap)
    path = Path(output)
    stored_options = {**fill_options, "consensus": True} if opts.consensus else fill_options
    settings = _store_settings(layout, volume.resolution, threshold, min_voxels, model,
                               stored_options, opts.seed_stream, config.random_seed)
    group, state = _open_store(path, layout, settings)
    result = BlockwiseResult(store=path, blocks=len(layout))
    if not state["complete"]:
        job = BlockJob(str(path), layout, model, block_fill, config.network,
                       str(config.fill.dtype_policy), opts.tf_threads, tuple(opts.seed_stream),
                       consensus=bool(opts.consensus))
        ctx = contextlib.nullcontext(client) if client is not None else \
            dask_client(opts.scheduler, opts.workers, processes=opts.processes,
                        progress=opts.progress)
        with ctx as c:
            tasks = _Tasks(c, uuid.uuid4().hex[:8], opts.retries, opts.progress)
            result.filled_blocks = _fill_blocks(tasks, volume, job, group, state)
            state["objects"], state["merges"] = _reconcile(tasks, job, threshold, min_voxels)
        state["complete"] = True
        _save_state(group, state)
    result.objects, result.merges = state["objects"], state["merges"]
    result.block_stats = _read_block_stats(group, layout)
    result.stats = _sum_stats(result.block_stats)
    result.wall_seconds = time.perf_counter() - t_start
    logger.info("%s: %d blocks (%d filled now), %d objects after %d merges in %.1f s", path,
                result.blocks, result.filled_blocks, result.objects, result.merges,
                result.wall_seconds)
    return result


@dataclass(frozen=True)
class _Tasks:
    """Submits Dask tasks of one run: unique keys, retries, progress bars."""

    client: Any
    run_id: str
    retries: int
    progress: bool

    def run(self, function, args_of, items, desc: str, on_done=None) -> list:
        """``function(*args_of(item))`` for each item as tasks; results in item order."""
        c = self.client
        futures = [c.submit(function, *args_of(item),
                            key=f"diluvian-{function.__name__}-{item.key}-{self.run_id}",
                            retries=self.retries, pure=False) for item in items]
        return run_tasks(c, futures, desc, self.progress, on_done)


def _fill_blocks(tasks: _Tasks, volume, job: BlockJob, group, state: dict) -> int:
    """Fill the blocks not yet finished (seed thresholds first where needed); how many."""
    layout, options = job.layout, job.options
    finished = finished_blocks(group)
    todo = [b for b in layout if not finished[b.index]]
    if not todo:
        return 0
    c = tasks.client
    if job.tf_threads is None:
        job = dataclasses.replace(job, tf_threads=_local_tf_threads(c))
    volume_f = c.scatter(volume, hash=False)
    if needs_levels(options.seed_generator) and "seed_levels" not in state:
        def on_blocks(function, *args):
            return tasks.run(function, lambda b: (volume_f, layout, b.index, *args), layout,
                             "Seed thresholds")

        levels = sobel_levels(on_blocks, volume, layout, options.ignore_mask)
        state["seed_levels"] = None if levels is None else list(levels)
        _save_state(group, state)  # a resumed fill uses the same thresholds
    job = dataclasses.replace(job, seed_levels=state.get("seed_levels"))

    def landed(i, stats):
        _mark_finished(group, todo[i].index, stats)

    tasks.run(fill_block, lambda b: (volume_f, job, b.index), todo, "Fill blocks", landed)
    return len(todo)


def _reconcile(tasks: _Tasks, job: BlockJob, threshold: float,
               min_voxels: int) -> tuple[int, int]:
    """Match objects across block overlaps and write global ids; ``(objects, merges)``."""
    layout, store = job.layout, job.store
    blocks = list(layout)
    found = tasks.run(reconcile_block,
                      lambda b: (store, layout, b.index, threshold, min_voxels), blocks,
                      "Reconcile")
    merges = np.concatenate([m for _, m in found]) if found else np.zeros((0, 2), np.uint64)
    mapping = consecutive_ids(np.concatenate([ids for ids, _ in found]), merges.tolist())
    values = {b.key: np.array([mapping[int(i)] for i in ids], dtype=np.uint64)
              for b, (ids, _) in zip(blocks, found)}
    ids_of = {b.key: ids for b, (ids, _) in zip(blocks, found)}
    tasks.run(relabel_block, lambda b: (store, layout, b.index, ids_of[b.key], values[b.key]),
              blocks, "Relabel")
    return max(mapping.values(), default=0), len(merges)
