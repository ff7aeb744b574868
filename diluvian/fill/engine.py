"""Filling one volume: seed order, scheduling of concurrent regions, in-order commits."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..util import DiluvianError, Interrupted, face_margins, make_rng, to_float_image, voxel_hash
from .state import FillState, FillStats

__all__ = ["fill_volume_with_model"]

#: How many waiting seeds are examined for one that is not deferred.
DEFER_LOOKAHEAD = 64
#: Dense masks of all concurrent regions above this many bytes use octrees.
DENSE_MASK_BUDGET_BYTES = 2 * 1024**3


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _check_seeds(seeds, shape) -> np.ndarray:
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if seeds.ndim != 2 or seeds.shape[1] != 3:
        raise DiluvianError(f"seeds must be an (N, 3) array of Z, Y, X voxels, got shape "
                            f"{list(seeds.shape)}")
    outside = np.any((seeds < 0) | (seeds >= np.asarray(shape)), axis=1)
    if outside.any():
        raise DiluvianError(f"seed {seeds[np.argmax(outside)].tolist()} lies outside the volume "
                            f"of shape {list(shape)}")
    return seeds


def _volume_arrays(volume, ignore_mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Float image and (optional) boolean seed mask of a volume."""
    if volume.image_data is None:
        raise DiluvianError(f"{volume!r} has no image data to fill")
    shape = tuple(int(s) for s in volume.image_data.shape)
    if len(shape) != 3 or min(shape) < 1:
        raise DiluvianError(f"{volume!r} is empty (shape {list(shape)}): nothing to fill")
    image = to_float_image(np.asarray(volume.image_data[...]))
    mask = None
    if not ignore_mask and getattr(volume, "mask_data", None) is not None:
        mask = np.asarray(volume.mask_data[...]).astype(bool)
    return image, mask


def _generate_seeds(name: str, image: np.ndarray, resolution, mask) -> np.ndarray:
    try:
        from ..preprocessing import make_seeds
    except ImportError as exc:  # pragma: no cover - preprocessing is part of the package
        raise DiluvianError(f"seed generator {name!r} is not available: {exc}") from None
    return np.asarray(make_seeds(name, image, resolution, mask=mask), dtype=np.int64)


def _order_seeds(seeds: np.ndarray, shuffle: bool, rng: np.random.Generator,
                 origin=(0, 0, 0)) -> np.ndarray:
    """Seeds sorted by a hash of their global position keyed from ``rng``.

    A random order that is a property of each voxel, not of the volume: a
    crop or block (``origin`` = its first voxel's global position) visits the
    seeds it shares with the whole volume in the same relative order.
    """
    if not shuffle or len(seeds) < 2:
        return seeds
    key = int(rng.integers(1 << 63))
    order = np.argsort(voxel_hash(seeds + np.asarray(origin, dtype=np.int64), key), kind="stable")
    return seeds[order]


def _move_margin(context, input_fov_shape) -> np.ndarray | None:
    """Margins (before, after each axis) that seeds and FOV centres keep from the faces.

    ``context`` voxels at the faces only give image context; with an
    ``input_fov_shape`` (``full_context``) FOVs also stay inside the volume.
    """
    margin = face_margins((0, 0, 0) if context is None else context, "context")
    if input_fov_shape is not None:
        margin = np.maximum(margin, [int(s) // 2 for s in input_fov_shape])
    return margin if margin.any() else None


def _region_prob_at(region, vox) -> float:
    """Mask probability of a region at a voxel (NaN where never predicted)."""
    z, y, x = (int(v) for v in vox)
    # The region's private bounds lists avoid building arrays on this hot path.
    lo = getattr(region, "_bbox_lo", None)
    hi = getattr(region, "_bbox_hi", None)
    if lo is None or hi is None:
        lo, hi = region.mask_bounds
    if not (lo[0] <= z < hi[0] and lo[1] <= y < hi[1] and lo[2] <= x < hi[2]):
        return math.nan
    if isinstance(region.mask, np.ndarray):
        return float(region.mask[z, y, x])
    return float(np.asarray(region.mask[z:z + 1, y:y + 1, x:x + 1]).ravel()[0])


def _body_of_region(region, closing_shape) -> tuple[np.ndarray, np.ndarray]:
    """``(start, mask)``: the post-processed body of a filled region, cropped to its bounds."""
    from ..postprocessing import Body

    lo, hi = region.mask_bounds
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    final = np.asarray(region.mask[sl]) >= region.t_final
    body = Body(final, region.seed_vox - lo).get_seeded_component(closing_shape=closing_shape)
    if not body.any():
        return lo, body
    # Shrink to the body's own box.
    nz = [np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    blo = np.array([n[0] for n in nz])
    bhi = np.array([n[-1] + 1 for n in nz])
    return lo + blo, body[tuple(slice(int(a), int(b)) for a, b in zip(blo, bhi))]


class _CountingPredictor:
    """Wraps a predictor to count calls, FOVs and time spent in the model."""

    def __init__(self, predictor, stats: FillStats):
        self.predictor = predictor
        self.stats = stats

    def __call__(self, images, masks):
        start = time.perf_counter()
        out = self.predictor(images, masks)
        self.stats.predict_seconds += time.perf_counter() - start
        self.stats.predict_calls += 1
        return out


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[dict]:
    """Turn SIGINT/SIGTERM into a flag (main thread only), restoring handlers afterwards."""
    flag = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------
# Filling one volume
# --------------------------------------------------------------------------


def fill_volume_with_model(
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
    progress : bool
        Show a progress bar of seeds (postfix: bodies, labelled fraction, moves/s).
    config : Config, optional
        Defaults to :data:`diluvian.config.CONFIG`.

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
    from ..regions import Region, as_predictor

    if config is None:
        from ..config import CONFIG as config
    if move_batch_size < 1:
        raise DiluvianError(f"move batch size {move_batch_size} must be at least 1")
    image, seed_mask = _volume_arrays(volume, ignore_mask)
    shape = image.shape
    if checkpoint_interval is None:
        checkpoint_interval = int(config.fill.checkpoint_interval)
    if checkpoint_seconds is None:
        checkpoint_seconds = float(getattr(config.fill, "checkpoint_seconds", 300.0))
    min_body_size = int(config.fill.min_body_size)
    closing_shape = config.postprocessing.closing_shape
    t_final = float(config.model.t_final_value)
    if skip_committed is None:
        skip_committed = bool(getattr(config.fill, "skip_committed", False))
    if full_context is None:
        full_context = bool(getattr(config.fill, "full_context", False))
    if stop_weak_seed is None:
        stop_weak_seed = bool(getattr(config.fill, "stop_weak_seed", False))
    if skip_certain is None:
        skip_certain = bool(getattr(config.fill, "skip_certain", False))
    move_margin = _move_margin(context, config.model.input_fov_shape if full_context else None)

    order_rng = rng if rng is not None else make_rng(config.random_seed, "fill_seeds")
    if resume is not None:
        state = resume
        if tuple(state.labels.shape) != shape:
            raise DiluvianError(f"resume labels have shape {list(state.labels.shape)} but the "
                                f"volume has shape {list(shape)}")
        if state.seeds is None:
            state.seeds = _generate_seeds(seed_generator, image, volume.resolution, seed_mask)
            state.seeds = _order_seeds(state.seeds, shuffle_seeds, order_rng, seed_origin)
        state.seeds = _check_seeds(state.seeds, shape)
        state.stats.seeds = len(state.seeds)
    else:
        if seeds is None:
            seeds = _generate_seeds(seed_generator, image, volume.resolution, seed_mask)
        seeds = _check_seeds(seeds, shape)
        seeds = _order_seeds(seeds, shuffle_seeds, order_rng, seed_origin)
        state = FillState(labels=np.zeros(shape, dtype=np.uint64),
                          excluded=np.zeros(shape, dtype=bool), seeds=seeds,
                          stats=FillStats(seeds=len(seeds)))
    stats = state.stats
    stats.predict_calls, stats.predict_seconds, stats.wall_seconds = 0, 0.0, 0.0
    labels, excluded, seed_list = state.labels, state.excluded, state.seeds
    if state.next_id == background_label_id:
        state.next_id += 1

    max_active = max(2, 3 * move_batch_size)
    if sparse_mask is None:
        sparse_mask = image.size * 4 * max_active > DENSE_MASK_BUDGET_BYTES
    predictor = _CountingPredictor(as_predictor(model), stats)
    t_start = time.perf_counter()

    # Seeds not yet started, in order; regions filling; results waiting to commit.
    waiting: list[int] = list(range(state.next_seed, len(seed_list)))
    active: dict[int, Any] = {}
    results: dict[int, tuple[str, Any]] = {}
    bodies_this_run = 0
    since_checkpoint = 0

    def covered(vox) -> bool:
        z, y, x = (int(v) for v in vox)
        return bool(labels[z, y, x] != 0 or excluded[z, y, x])

    def inside(region, vox) -> bool:
        return _region_prob_at(region, vox) >= t_final

    def off_faces(vox) -> bool:
        """Whether a seed may start here (outside ``context`` and, with ``full_context``,
        with its FOV inside the volume)."""
        return move_margin is None or all(lo <= int(v) < n - hi for v, lo, hi, n in
                                          zip(vox, move_margin[0], move_margin[1], shape))

    def admit() -> bool:
        """Start the region of the first waiting seed not deferred; false if none."""
        k = looked = 0
        while k < len(waiting) and looked < DEFER_LOOKAHEAD:
            i = waiting[k]
            vox = seed_list[i]
            if covered(vox) or not off_faces(vox):
                results[i] = ("skip", None)
                waiting.pop(k)
                continue
            if any(j < i and inside(r, vox) for j, r in active.items()):
                looked += 1
                k += 1
                continue
            waiting.pop(k)
            active[i] = Region(image, seed_vox=vox, sparse_mask=sparse_mask,
                               model_config=config.model,
                               blocked=labels if skip_committed else None,
                               move_margin=move_margin, stop_weak_seed=stop_weak_seed,
                               skip_certain=skip_certain)
            return True
        return False

    def paused_regions(order) -> set[int]:
        """Regions overlapping an earlier active one wait until it is committed."""
        paused = set()
        for n, j in enumerate(order):
            rj = active[j]
            for i in order[:n]:
                ri = active[i]
                if inside(ri, rj.seed_vox) or inside(rj, ri.seed_vox):
                    paused.add(j)
                    break
        return paused

    def finish(i: int) -> None:
        region = active.pop(i)
        stats.moves += region.num_moves
        stats.blocked_moves += region.num_blocked
        stats.weak_seeds += int(region.seed_weak)
        stats.certain_moves += region.num_certain
        if region.stopped and covered(region.seed_vox):
            stats.wasted_moves += region.num_moves
            results[i] = ("cancelled", None)
        elif region.early_termination and reject_early_termination:
            results[i] = ("early", None)
        else:
            lo, body = _body_of_region(region, closing_shape)
            results[i] = ("body", (lo, body, region.num_moves))

    def commit(i: int, kind: str, payload) -> None:
        nonlocal bodies_this_run, since_checkpoint
        z, y, x = (int(v) for v in seed_list[i])
        if kind == "skip" or kind == "cancelled" or covered(seed_list[i]):
            if kind == "skip":
                stats.skipped_seeds += 1
            else:
                stats.cancelled_regions += 1
                if kind == "body":
                    stats.wasted_moves += payload[2]
            return
        if kind == "early":
            stats.rejected_early += 1
            excluded[z, y, x] = True
            return
        lo, body, _ = payload
        sl = tuple(slice(int(a), int(a) + s) for a, s in zip(lo, body.shape))
        view = labels[sl]
        free = body & (view == 0) & ~excluded[sl]
        n_free = int(free.sum())
        stats.overlap_voxels += int(body.sum()) - n_free
        if n_free == 0 or n_free < min_body_size:
            excluded[sl] |= body
            excluded[z, y, x] = True
            stats.rejected_small += 1
            return
        view[free] = state.next_id
        state.next_id += 1
        if state.next_id == background_label_id:
            state.next_id += 1
        stats.bodies += 1
        stats.labelled_voxels += n_free
        bodies_this_run += 1
        since_checkpoint += 1
        # Cancel regions still filling whose seed is now covered.
        for region in active.values():
            if covered(region.seed_vox):
                region.stop()

    from tqdm.auto import tqdm

    bar = tqdm(total=len(seed_list), initial=state.next_seed, desc="Seeds", unit="seed",
               disable=not progress, dynamic_ncols=True)

    last_refresh = 0.0
    saved = {"time": time.monotonic(), "seed": state.next_seed}

    def save() -> None:
        nonlocal since_checkpoint
        since_checkpoint = 0
        _snapshot(checkpoint, state, t_start)
        saved["time"], saved["seed"] = time.monotonic(), state.next_seed

    def advance() -> bool:
        """Commit results in seed order; return true when ``max_bodies`` is reached."""
        nonlocal last_refresh
        while state.next_seed in results:
            i = state.next_seed
            kind, payload = results.pop(i)
            commit(i, kind, payload)
            state.next_seed += 1
            stats.seeds_done = state.next_seed
            bar.update(1)
            if checkpoint is not None and checkpoint_interval and \
                    since_checkpoint >= checkpoint_interval:
                save()
            if max_bodies is not None and bodies_this_run >= max_bodies:
                return True
        if (checkpoint is not None and checkpoint_seconds and state.next_seed > saved["seed"]
                and time.monotonic() - saved["time"] >= checkpoint_seconds):
            save()
        now = time.perf_counter()
        if now - last_refresh >= 1.0:
            # Also between commits: a large first body can take minutes.
            last_refresh = now
            moves = stats.moves + sum(r.num_moves for r in active.values())
            elapsed = now - t_start
            bar.set_postfix(bodies=stats.bodies,
                            labelled=f"{stats.labelled_voxels / labels.size:.1%}",
                            moves_s=f"{moves / elapsed if elapsed > 0 else 0.0:.1f}")
        return False

    interrupted = None
    try:
        with _interrupt_flag() as flag:
            finished = advance()
            while not finished:
                if flag["signal"] is not None:
                    interrupted = flag["signal"]
                    break
                order = sorted(active)
                paused = paused_regions(order)
                while (len(active) - len(paused) < move_batch_size and len(active) < max_active
                       and admit()):
                    pass
                order = sorted(active)
                batch = []
                done = []
                candidates = [i for i in order if i not in paused]
                if fill_batches:
                    candidates += [i for i in order if i in paused]
                for i in candidates:
                    requests = active[i].next_requests(1)
                    if not requests:
                        done.append(i)
                        continue
                    batch.extend(requests)
                    if len(batch) >= move_batch_size:
                        break
                if batch:
                    probs = _predict_batch(predictor, batch)
                    for request, prob in zip(batch, probs):
                        region = request.region
                        region.apply(request, prob, bias=bias, remask_interval=remask_interval)
                        if max_moves is not None and region.num_moves >= max_moves:
                            region.stop()
                for i in done:
                    finish(i)
                finished = advance()
                if not active and not waiting:
                    break
            if interrupted is None and flag["signal"] is not None:
                interrupted = flag["signal"]
    finally:
        bar.close()
    stats.complete = state.next_seed >= len(seed_list)
    stats.wall_seconds = time.perf_counter() - t_start
    if interrupted is not None:
        if checkpoint is not None:
            checkpoint(state)
        raise Interrupted(interrupted, f"filling interrupted by signal {interrupted}")
    if checkpoint is not None:
        checkpoint(state)
    out = labels.copy()
    if background_label_id != 0:
        out[labels == 0] = background_label_id
    return out, stats


def _predict_batch(predictor, batch) -> np.ndarray:
    images = np.stack([r.image for r in batch])
    masks = np.stack([r.mask for r in batch])
    probs = np.asarray(predictor(images, masks), dtype=np.float32)
    expected = (len(batch), *batch[0].region.output_fov_shape)
    if probs.shape != expected:
        raise DiluvianError(f"the model returned predictions of shape {list(probs.shape)}, "
                            f"expected {list(expected)} (batch, *output_fov_shape)")
    return probs


def _snapshot(checkpoint, state: FillState, t_start: float) -> None:
    state.stats.wall_seconds = time.perf_counter() - t_start
    state.stats.complete = state.next_seed >= len(state.seeds)
    checkpoint(state)


