"""Dense filling of one volume: :func:`fill_volume_with_model`, over :class:`DenseFill`.

The function keeps its documented keyword signature; it builds one
:class:`~diluvian.fill.options.FillOptions` and runs a
:class:`~diluvian.fill.engine.DenseFill`, where the rules live.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .engine import DenseFill
from .options import FillOptions
from .state import FillState, FillStats

__all__ = ["fill_volume_with_model"]


def fill_volume_with_model(  # noqa: PLR0913 - the documented public signature
    model,
    volume,
    *,
    seeds=None,
    seed_generator: str = "sobel",
    shuffle_seeds: bool = True,
    ignore_mask: bool = False,
    rng: np.random.Generator | None = None,
    seed_origin=(0, 0, 0),
    context=None,
    background_label_id: int = 0,
    bias: bool = True,
    move_batch_size: int = 1,
    max_moves: int | None = None,
    max_bodies: int | None = None,
    remask_interval: int | None = None,
    reject_early_termination: bool = False,
    resume: FillState | None = None,
    checkpoint_interval: int | None = None,
    checkpoint_seconds: float | None = None,
    checkpoint: Callable[[FillState], None] | None = None,
    sparse_mask: bool | None = None,
    fill_batches: bool = False,
    skip_committed: bool | None = None,
    full_context: bool | None = None,
    stop_weak_seed: bool | None = None,
    skip_certain: bool | None = None,
    inset_fovs: bool | None = None,
    progress: bool = True,
    config=None,
) -> tuple[np.ndarray, FillStats]:
    """Densely segment one volume by flood filling from every seed.

    Parameters
    ----------
    model : keras.Model or callable
        The network, or ``predictor(images, masks) -> probs`` (see
        :func:`diluvian.regions.as_predictor`); inputs follow
        ``config.model.input_fov_shape``.
    volume : diluvian.volumes.Volume
        Volume with image data (read whole into memory).
    seeds : array-like of int, shape (N, 3), optional
        Seed voxels (Z, Y, X); default: generated with ``seed_generator``.
    seed_generator : str
        Name for :func:`diluvian.preprocessing.make_seeds` (``'sobel'`` or
        ``'grid'``).
    shuffle_seeds : bool
        Process seeds in a random order (from ``rng``).
    ignore_mask : bool
        Do not restrict generated seeds to the volume's mask.
    rng : numpy.random.Generator, optional
        Stream for shuffling; default ``make_rng(config.random_seed, 'fill_seeds')``.
        Shuffled seeds are sorted by a hash of their position keyed from it
        (:func:`diluvian.util.voxel_hash`), so the order is the same for any
        crop or block of the volume.
    seed_origin : sequence of int
        Global Z, Y, X of the volume's first voxel, for that hash: a block of
        a larger volume then visits its seeds in the whole volume's order.
    context : array-like of int, optional
        Voxels at the volume's faces (three per axis, or rows before and
        after each axis) that only give image context: no seed starts and no
        FOV is centred there, but FOVs centred nearby see real image instead
        of padding. Blockwise fills read each block with half an input FOV
        of context around it. Bodies may still reach into it.
    background_label_id : int
        Label written for voxels of no body; body ids skip it.
    bias : bool
        Anti-merge bias update of region masks.
    move_batch_size : int
        FOVs per model call; as many regions are filled at once.
    max_moves : int, optional
        Stop each region after this many moves.
    max_bodies : int, optional
        Stop after committing this many bodies in this call (resumable).
    remask_interval : int, optional
        Every this many moves, keep only the seeded component of a region.
    reject_early_termination : bool
        Discard regions stopped by ``max_moves`` with moves still queued.
    resume : FillState, optional
        State of an earlier, unfinished fill to continue (see
        :func:`read_fill_checkpoint`); ``seeds`` are then taken from it.
    checkpoint_interval : int, optional
        Call ``checkpoint`` every this many committed bodies (default
        ``config.fill.checkpoint_interval``).
    checkpoint_seconds : float, optional
        Also call ``checkpoint`` when a seed has been resolved and this many
        seconds have passed since the last checkpoint (default
        ``config.fill.checkpoint_seconds``): a killed fill loses at most
        about this much work. Regions still filling at a checkpoint are not
        saved; a resume restarts them from their seeds, with the same result.
    checkpoint : callable, optional
        ``checkpoint(state)``, also called when SIGINT/SIGTERM arrives, before
        :class:`KeyboardInterrupt` is raised.
    sparse_mask : bool, optional
        Keep region masks in octrees; default: only for volumes where dense
        masks of all concurrent regions would exceed 2 GiB.
    fill_batches : bool
        Also advance paused regions (those overlapping an earlier region
        still filling) when the batch would otherwise not be full. Useful on
        a GPU, where a full batch costs little more than one FOV; on a CPU
        it only adds evaluations that are likely thrown away. Results are
        the same either way.
    skip_committed : bool, optional
        Do not predict FOVs centred on a voxel of an already committed body
        (default ``config.fill.skip_committed``). Such evaluations mostly
        re-predict an object that is finished; skipping them saves
        evaluations. With ``move_batch_size`` 1 regions fill one after the
        other and the result is deterministic; with larger batches, which
        bodies a region sees depends on the batch size.
    full_context : bool, optional
        Keep FOV centres of seeds and moves half an input FOV away from the
        volume faces, so every prediction sees real image context, as Google
        FFN does (default ``config.fill.full_context``); seeds nearer a face
        are skipped. Voxels near the faces are still predicted by FOVs
        centred further in.
    stop_weak_seed : bool, optional
        Stop a region once a prediction puts its seed voxel below ``t_move``
        (default ``config.fill.stop_weak_seed``; see
        :class:`~diluvian.regions.Region`).
    skip_certain : bool, optional
        Do not predict moves whose neighbourhood the region has already
        decided; read their moves from the mask (default
        ``config.fill.skip_certain``; see :class:`~diluvian.regions.Region`).
    inset_fovs : bool, optional
        Centre no FOV nearer a volume face than half an input FOV: a seed or
        move there is predicted from the nearest centre inside instead
        (default ``config.fill.inset_fovs``). Every prediction sees real
        image, as with ``full_context``, but objects at the faces are still
        seeded and filled, and FOVs that would walk along a face share a few
        centres inside, which saves most evaluations near the faces.
    progress : bool
        Show a progress bar of seeds (postfix: bodies, labelled fraction, moves/s).
    config : Config, optional
        ``[fill]``, ``[postprocessing]`` and ``[model]`` settings for the
        options not given; defaults to :data:`diluvian.config.CONFIG`.

    Returns
    -------
    labels : ndarray of uint64
        Body ids, ``background_label_id`` elsewhere.
    stats : FillStats
        Counters; ``stats.complete`` is false if stopped by ``max_bodies``.

    Raises
    ------
    DiluvianError
        For an empty volume, seeds outside it, or a resume state of another
        shape.
    diluvian.util.Interrupted
        (a KeyboardInterrupt) on SIGINT/SIGTERM, after ``checkpoint`` was called.
    """
    if config is None:
        from ..config import CONFIG as config
    options = FillOptions.from_config(
        config, seed_generator=seed_generator, shuffle_seeds=shuffle_seeds,
        ignore_mask=ignore_mask, background_label_id=background_label_id, bias=bias,
        move_batch_size=move_batch_size, max_moves=max_moves, max_bodies=max_bodies,
        remask_interval=remask_interval, reject_early_termination=reject_early_termination,
        checkpoint_interval=checkpoint_interval, checkpoint_seconds=checkpoint_seconds,
        sparse_mask=sparse_mask, fill_batches=fill_batches, skip_committed=skip_committed,
        full_context=full_context, stop_weak_seed=stop_weak_seed, skip_certain=skip_certain,
        inset_fovs=inset_fovs)
    fill = DenseFill(model, volume, options, context=context, checkpoint=checkpoint,
                     progress=progress)
    return fill.run(seeds, rng=rng, seed_origin=seed_origin, resume=resume)
