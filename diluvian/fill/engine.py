"""The dense fill engine: :class:`DenseFill`, whose methods are the rules of filling a volume.

Seed order, admission of seeds, pausing of overlapping regions, cancelling,
finishing a region into a body, committing bodies in seed order and
checkpointing are each one method; the state they share is the object's.
Every FOV goes to the model through :func:`diluvian.regions.predict_requests`,
the one batching function of the flood fill engine.
See :mod:`diluvian.fill` for the rules themselves.
"""

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
from .options import FillOptions
from .state import FillState, FillStats

__all__ = ["DenseFill"]

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


class DenseFill:
    """Densely segment one volume by flood filling from every seed.

    Each rule of :mod:`diluvian.fill` is a method: :meth:`admit` (seed
    admission), :meth:`paused_regions`, :meth:`step` (one model call),
    :meth:`finish` (a region becomes a body, or is cancelled or rejected),
    :meth:`cancel_covered`,
    :meth:`commit` (in seed order), :meth:`advance` and :meth:`save`
    (checkpoints and resume).

    Parameters
    ----------
    model : keras.Model or callable
        The network, or ``predictor(images, masks) -> probs``.
    volume : diluvian.volumes.Volume
        Volume with image data (read whole into memory).
    options : FillOptions
    context : array-like of int, optional
        Voxels at the volume's faces that only give image context (see
        :func:`diluvian.fill.fill_volume_with_model`).
    checkpoint : callable, optional
        ``checkpoint(state)``; also called on SIGINT/SIGTERM and at the end.
    progress : bool
        Show a progress bar of seeds.

    Raises
    ------
    DiluvianError
        For a volume without image data or an empty one.
    """

    def __init__(self, model, volume, options: FillOptions, *, context=None,
                 checkpoint: Callable[[FillState], None] | None = None, progress: bool = True):
        self.model = model
        self.volume = volume
        self.options = options
        self.checkpoint = checkpoint
        self.progress = progress
        self.image, self.seed_mask = _volume_arrays(volume, options.ignore_mask)
        self.shape = self.image.shape
        in_shape = options.input_fov_shape
        self.move_margin = _move_margin(context, in_shape if options.full_context else None)
        self.inset_margin = _move_margin(context, in_shape) if options.inset_fovs else None
        self.t_final = options.t_final
        self.max_active = max(2, 3 * options.move_batch_size)
        self.sparse_mask = options.sparse_mask
        if self.sparse_mask is None:
            self.sparse_mask = self.image.size * 4 * self.max_active > DENSE_MASK_BUDGET_BYTES
        # FOV centres outside [lo, hi] read padding past a face (evals_near_face).
        self._face_lo = tuple(s // 2 for s in in_shape)
        self._face_hi = tuple(n - s + s // 2 for n, s in zip(self.shape, in_shape))

    # ------------------------------------------------------------------
    # Setting up and running
    # ------------------------------------------------------------------

    def initial_state(self, seeds=None, rng: np.random.Generator | None = None,
                      seed_origin=(0, 0, 0), resume: FillState | None = None) -> FillState:
        """The fill state to start from: ``resume``, or a new one of ordered ``seeds``."""
        opts = self.options
        order_rng = rng if rng is not None else make_rng(opts.random_seed, "fill_seeds")
        if resume is not None:
            state = resume
            if tuple(state.labels.shape) != self.shape:
                raise DiluvianError(f"resume labels have shape {list(state.labels.shape)} but "
                                    f"the volume has shape {list(self.shape)}")
            if state.seeds is None:
                state.seeds = self._generate_seeds()
                state.seeds = _order_seeds(state.seeds, opts.shuffle_seeds, order_rng,
                                           seed_origin)
            state.seeds = _check_seeds(state.seeds, self.shape)
            state.stats.seeds = len(state.seeds)
        else:
            if seeds is None:
                seeds = self._generate_seeds()
            seeds = _check_seeds(seeds, self.shape)
            seeds = _order_seeds(seeds, opts.shuffle_seeds, order_rng, seed_origin)
            state = FillState(labels=np.zeros(self.shape, dtype=np.uint64),
                              excluded=np.zeros(self.shape, dtype=bool), seeds=seeds,
                              stats=FillStats(seeds=len(seeds)))
        state.stats.predict_calls, state.stats.predict_seconds = 0, 0.0
        state.stats.wall_seconds = 0.0
        if state.next_id == opts.background_label_id:
            state.next_id += 1
        return state

    def _generate_seeds(self) -> np.ndarray:
        return _generate_seeds(self.options.seed_generator, self.image, self.volume.resolution,
                               self.seed_mask)

    def run(self, seeds=None, *, rng: np.random.Generator | None = None, seed_origin=(0, 0, 0),
            resume: FillState | None = None) -> tuple[np.ndarray, FillStats]:
        """Fill the volume; see :func:`diluvian.fill.fill_volume_with_model` for the arguments.

        Returns
        -------
        labels : ndarray of uint64
        stats : FillStats
        """
        from tqdm.auto import tqdm

        from ..regions import as_predictor

        self.state = state = self.initial_state(seeds, rng, seed_origin, resume)
        self.stats = state.stats
        self.labels, self.excluded, self.seed_list = state.labels, state.excluded, state.seeds
        self.predictor = _CountingPredictor(as_predictor(self.model), self.stats)
        self.t_start = time.perf_counter()
        # Seeds not yet started, in order; regions filling; results waiting to commit.
        self.waiting: list[int] = list(range(state.next_seed, len(self.seed_list)))
        self.active: dict[int, Any] = {}
        self.results: dict[int, tuple[str, Any]] = {}
        self.cells: dict[Any, set] = {}  # lattice cells each active region has predicted
        self.bodies_this_run = self.since_checkpoint = 0
        self.last_refresh = 0.0
        self.saved_time, self.saved_seed = time.monotonic(), state.next_seed
        self.bar = tqdm(total=len(self.seed_list), initial=state.next_seed, desc="Seeds",
                        unit="seed", disable=not self.progress, dynamic_ncols=True)
        interrupted = None
        try:
            with _interrupt_flag() as flag:
                finished = self.advance()
                while not finished:
                    if flag["signal"] is not None:
                        interrupted = flag["signal"]
                        break
                    self.step()
                    finished = self.advance()
                    if not self.active and not self.waiting:
                        break
                if interrupted is None and flag["signal"] is not None:
                    interrupted = flag["signal"]
        finally:
            self.bar.close()
        return self._end(interrupted)

    def _end(self, interrupted) -> tuple[np.ndarray, FillStats]:
        state, stats = self.state, self.stats
        stats.complete = state.next_seed >= len(self.seed_list)
        stats.wall_seconds = time.perf_counter() - self.t_start
        if self.checkpoint is not None:
            self.checkpoint(state)
        if interrupted is not None:
            raise Interrupted(interrupted, f"filling interrupted by signal {interrupted}")
        out = self.labels.copy()
        if self.options.background_label_id != 0:
            out[self.labels == 0] = self.options.background_label_id
        return out, stats

    # ------------------------------------------------------------------
    # The rules
    # ------------------------------------------------------------------

    def covered(self, vox) -> bool:
        """Whether a voxel lies in a committed or rejected body."""
        z, y, x = (int(v) for v in vox)
        return bool(self.labels[z, y, x] != 0 or self.excluded[z, y, x])

    def inside(self, region, vox) -> bool:
        """Whether a voxel is in a region's current body (mask at least ``t_final``)."""
        return _region_prob_at(region, vox) >= self.t_final

    def off_faces(self, vox) -> bool:
        """Whether a seed may start here (outside ``context`` and, with ``full_context``,
        with its FOV inside the volume)."""
        margin = self.move_margin
        return margin is None or all(lo <= int(v) < n - hi for v, lo, hi, n in
                                     zip(vox, margin[0], margin[1], self.shape))

    def admit(self) -> bool:
        """Start the region of the first waiting seed not deferred; false if none.

        A seed in a committed or rejected body, or too near a face, is
        skipped; one inside the body of an earlier region still filling is
        deferred (up to :data:`DEFER_LOOKAHEAD` of them are passed over).
        """
        from ..regions import Region

        waiting, opts = self.waiting, self.options
        k = looked = 0
        while k < len(waiting) and looked < DEFER_LOOKAHEAD:
            i = waiting[k]
            vox = self.seed_list[i]
            if self.covered(vox) or not self.off_faces(vox):
                self.results[i] = ("skip", None)
                waiting.pop(k)
                continue
            if any(j < i and self.inside(r, vox) for j, r in self.active.items()):
                looked += 1
                k += 1
                continue
            waiting.pop(k)
            self.active[i] = Region(self.image, seed_vox=vox, sparse_mask=self.sparse_mask,
                                    model_config=opts.model_config,
                                    blocked=self.labels if opts.skip_committed else None,
                                    move_margin=self.move_margin,
                                    stop_weak_seed=opts.stop_weak_seed,
                                    skip_certain=opts.skip_certain,
                                    inset_margin=self.inset_margin)
            return True
        return False

    def paused_regions(self, order) -> set[int]:
        """Regions overlapping an earlier active one wait until it is committed."""
        active = self.active
        paused = set()
        for n, j in enumerate(order):
            rj = active[j]
            for i in order[:n]:
                ri = active[i]
                if self.inside(ri, rj.seed_vox) or self.inside(rj, ri.seed_vox):
                    paused.add(j)
                    break
        return paused

    def step(self) -> None:
        """Admit seeds, predict one batch of FOVs and finish the regions that are done."""
        active, batch_size = self.active, self.options.move_batch_size
        paused = self.paused_regions(sorted(active))
        while (len(active) - len(paused) < batch_size and len(active) < self.max_active
               and self.admit()):
            pass
        order = sorted(active)
        candidates = [i for i in order if i not in paused]
        if self.options.fill_batches:
            candidates += [i for i in order if i in paused]
        batch, done = [], []
        for i in candidates:
            requests = active[i].next_requests(1)
            if not requests:
                done.append(i)
                continue
            batch.extend(requests)
            if len(batch) >= batch_size:
                break
        if batch:
            self.predict(batch)
        for i in done:
            self.finish(i)

    def predict(self, batch) -> None:
        """One model call for ``batch`` (FOV requests); apply each prediction to its region."""
        from ..regions import predict_requests

        opts = self.options
        self.count_evaluations(batch)
        probs = predict_requests(self.predictor, batch)
        for request, prob in zip(batch, probs):
            region = request.region
            region.apply(request, prob, bias=opts.bias, remask_interval=opts.remask_interval)
            if opts.max_moves is not None and region.num_moves >= opts.max_moves:
                region.stop()

    def count_evaluations(self, batch) -> None:
        """Count where the evaluations of a batch go (``evals_*`` of :class:`FillStats`)."""
        stats, labels, lo, hi = self.stats, self.labels, self._face_lo, self._face_hi
        for request in batch:
            centre = request.center_vox
            if any(c < a or c > b for c, a, b in zip(centre, lo, hi)):
                stats.evals_near_face += 1
            if labels[tuple(int(c) for c in centre)] != 0:
                stats.evals_in_committed += 1
            cell = request.region.vox_to_cell(centre)
            seen = self.cells.setdefault(request.region, set())
            if cell in seen:
                stats.evals_revisit += 1
            else:
                seen.add(cell)

    def finish(self, i: int) -> None:
        """Turn a region that is done into a result: cancelled, rejected early, or a body."""
        region = self.active.pop(i)
        self.cells.pop(region, None)
        stats = self.stats
        stats.moves += region.num_moves
        stats.blocked_moves += region.num_blocked
        stats.weak_seeds += int(region.seed_weak)
        stats.certain_moves += region.num_certain
        stats.single_fov_seeds += int(region.num_moves == 1)
        if region.stopped and self.covered(region.seed_vox):
            stats.wasted_moves += region.num_moves
            stats.evals_cancelled += region.num_moves
            self.results[i] = ("cancelled", None)
        elif region.early_termination and self.options.reject_early_termination:
            self.results[i] = ("early", region.num_moves)
        else:
            lo, body = _body_of_region(region, self.options.closing_shape)
            self.results[i] = ("body", (lo, body, region.num_moves))

    def commit(self, i: int, kind: str, payload) -> None:
        """Resolve seed ``i`` (in seed order): skip it, reject its body, or label the body."""
        stats, labels, excluded = self.stats, self.labels, self.excluded
        z, y, x = (int(v) for v in self.seed_list[i])
        if kind == "skip" or kind == "cancelled" or self.covered(self.seed_list[i]):
            if kind == "skip":
                stats.skipped_seeds += 1
            else:
                stats.cancelled_regions += 1
                if kind == "body":
                    stats.wasted_moves += payload[2]
                    stats.evals_cancelled += payload[2]
            return
        if kind == "early":
            stats.rejected_early += 1
            stats.evals_rejected += payload
            excluded[z, y, x] = True
            return
        lo, body, evaluations = payload
        sl = tuple(slice(int(a), int(a) + s) for a, s in zip(lo, body.shape))
        view = labels[sl]
        free = body & (view == 0) & ~excluded[sl]
        n_free = int(free.sum())
        stats.overlap_voxels += int(body.sum()) - n_free
        if n_free == 0 or n_free < self.options.min_body_size:
            excluded[sl] |= body
            excluded[z, y, x] = True
            stats.rejected_small += 1
            stats.evals_rejected += evaluations
            return
        self._label(view, free, n_free)

    def _label(self, view, free, n_free: int) -> None:
        """Give a committed body the next id and cancel the regions whose seed it covers."""
        state, stats = self.state, self.stats
        view[free] = state.next_id
        state.next_id += 1
        if state.next_id == self.options.background_label_id:
            state.next_id += 1
        stats.bodies += 1
        stats.labelled_voxels += n_free
        self.bodies_this_run += 1
        self.since_checkpoint += 1
        self.cancel_covered()

    def cancel_covered(self) -> None:
        """Stop the regions still filling whose seed a committed body now covers."""
        for region in self.active.values():
            if self.covered(region.seed_vox):
                region.stop()

    # ------------------------------------------------------------------
    # Checkpoints and progress
    # ------------------------------------------------------------------

    def save(self) -> None:
        """Call ``checkpoint`` with the state (committed bodies only)."""
        self.since_checkpoint = 0
        _snapshot(self.checkpoint, self.state, self.t_start)
        self.saved_time, self.saved_seed = time.monotonic(), self.state.next_seed

    def advance(self) -> bool:
        """Commit results in seed order; return true when ``max_bodies`` is reached."""
        state, opts = self.state, self.options
        saving = self.checkpoint is not None
        while state.next_seed in self.results:
            i = state.next_seed
            kind, payload = self.results.pop(i)
            self.commit(i, kind, payload)
            state.next_seed += 1
            self.stats.seeds_done = state.next_seed
            self.bar.update(1)
            if saving and opts.checkpoint_interval and \
                    self.since_checkpoint >= opts.checkpoint_interval:
                self.save()
            if opts.max_bodies is not None and self.bodies_this_run >= opts.max_bodies:
                return True
        if (saving and opts.checkpoint_seconds and state.next_seed > self.saved_seed
                and time.monotonic() - self.saved_time >= opts.checkpoint_seconds):
            self.save()
        self._refresh_bar()
        return False

    def _refresh_bar(self) -> None:
        now = time.perf_counter()
        if now - self.last_refresh < 1.0:
            return
        # Also between commits: a large first body can take minutes.
        self.last_refresh = now
        stats = self.stats
        moves = stats.moves + sum(r.num_moves for r in self.active.values())
        elapsed = now - self.t_start
        self.bar.set_postfix(bodies=stats.bodies,
                             labelled=f"{stats.labelled_voxels / self.labels.size:.1%}",
                             moves_s=f"{moves / elapsed if elapsed > 0 else 0.0:.1f}")


def _snapshot(checkpoint, state: FillState, t_start: float) -> None:
    state.stats.wall_seconds = time.perf_counter() - t_start
    state.stats.complete = state.next_seed >= len(state.seeds)
    checkpoint(state)
