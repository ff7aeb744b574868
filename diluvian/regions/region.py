"""The :class:`Region`: one object being flood filled from a seed.

Coordinates are voxel indices Z, Y, X in the image volume. Which FOV
centres a region visits is decided by its move policy
(:mod:`diluvian.regions.movement`, named by ``[model] move_policy``). Every
move has a *lattice position* ``pos``: with ``"lattice"`` (diluvian's) FOV
centres lie on the *move lattice*, ``vox = seed_vox + pos * move_step`` (the
seed is position ``(0, 0, 0)``); with ``"face_max"`` (Google FFN's) a move
goes to the voxel of highest probability on the move-check face, and ``pos``
is the lattice *cell* of the centre, ``round((vox - seed_vox) /
move_step)``: each cell is predicted at most once.

A block of shape ``S`` centred on ``vox`` starts at
``vox - input_fov_shape // 2 + (input_fov_shape - S) // 2`` (for ``S`` no
larger than the input FOV), which is where a network that centre-crops its
input FOV to its output FOV (extra voxel of an odd difference removed from
the end) puts its output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..util import DiluvianError
from .blocks import (
    MOVES,
    box_slices,
    centre_limits,
    clip_box,
    face_maxima,
    move_check_faces,
    read_image_block,
    read_mask_block,
)
from .compat006 import RegionCompatMixin
from .engine import FovRequest
from .movement import MovePolicy, move_policy_class
from .results import RegionFillMixin

__all__ = ["Region"]

_MOVE_ARRAYS = tuple(np.array(m, dtype=np.int64) for m in MOVES)
_SEED_POS = (0, 0, 0)


class _MoveDelta:
    """``Region.MOVE_DELTA``: the move step of the default config on the class, own step on instances."""

    def __get__(self, obj, objtype=None) -> np.ndarray:
        if obj is None:
            from ..config import CONFIG

            return CONFIG.model.move_step.copy()
        return obj.move_step.copy()


class Region(RegionFillMixin, RegionCompatMixin):
    """A region being flood filled in an image volume from a seed voxel.

    Parameters
    ----------
    image : array-like
        Image volume, Z, Y, X: a numpy array, an h5py dataset or any lazy
        view with ``shape``, ``dtype`` and slicing by three slices. Blocks
        are converted with :func:`diluvian.util.to_float_image`.
    target : array-like of bool, optional
        Ground truth mask of the seeded object, for
        :meth:`prediction_metric`. A smaller target (as a
        :class:`~diluvian.volumes.subvolume.Subvolume` label mask with a
        margin) is centred in the image and padded with false.
    seed_vox : sequence of int, optional
        Seed voxel; defaults to the volume centre.
    mask : array-like of float32, optional
        Initial probability mask (NaN = unset), written to in place: a numpy
        array, or a block-sparse volume with numpy-style slicing when
        ``sparse_mask`` is true. Defaults to an empty (all-unset) mask.
    sparse_mask : bool
        Keep the mask in a :class:`diluvian.octrees.OctreeVolume`, so a
        large volume costs memory only where filled.
    block_padding : {'reflect', 'constant'}, optional
        How image blocks reaching past the volume edge are padded
        (default ``'reflect'``); mask blocks are padded with ``v_false``.
    model_config : diluvian.config.ModelConfig, optional
        FOV shapes, move step, thresholds and move policy (a name registered
        in :data:`diluvian.regions.movement.MOVE_POLICIES`); defaults to
        ``diluvian.config.CONFIG.model``.
    rng : numpy.random.Generator, optional
        Random stream for ``move_priority = 'random'``; defaults to a fixed
        stream so fills are reproducible.
    blocked : array-like, optional
        Same shape as ``image``; a move whose FOV centre voxel is nonzero
        here is not predicted (dense filling passes the labels of bodies
        already committed, so a region does not spend evaluations inside
        another object). Read at the time each move is dequeued.
    move_margin : sequence of int, optional
        FOV centres of moves (not the seed) stay at least this many voxels
        from the volume faces, per axis, so every prediction sees real image
        context (Google FFN's rule, with half the input FOV). Default 0.
        Shape (2, 3) gives the margins before and after each axis apart.
    inset_margin : sequence of int, optional
        FOV centres (the seed's included) nearer a volume face than this
        are moved inward to this margin instead of being dropped, so every
        prediction sees real image while objects at the faces are still
        filled (``[fill] inset_fovs`` gives half the input FOV). Same forms
        as ``move_margin``; default none. The recheck then asks about the
        centre moved to; see the move policy for how moved FOVs are
        predicted once.
    stop_weak_seed : bool
        Stop filling as soon as a prediction leaves the seed voxel below
        ``t_move``: the region has lost its own seed, and further moves would
        fill whatever object it drifted into (Google FFN's "seed got too
        weak" rule). ``seed_weak`` tells whether this happened.
    skip_certain : bool
        Do not predict a move whose cube of one move step around its centre
        is already decided: every voxel set and at least ``t_move`` or at
        most ``1 - t_move``. Its moves are read from the current mask
        instead, as if the prediction had confirmed it (saves most
        evaluations inside large objects). ``num_certain`` counts them.

    Attributes
    ----------
    mask : ndarray or OctreeVolume
        Probability mask, float32, NaN where never predicted.
    seed_vox : ndarray of int
        Seed voxel.
    move_step : ndarray of int
        Lattice step in voxels (also ``MOVE_DELTA``).
    policy : diluvian.regions.movement.MovePolicy
        The move policy, owner of the move queue and the visited positions.
    num_moves : int
        Predictions applied so far.
    num_skipped : int
        Dequeued moves skipped by the recheck.
    num_blocked : int
        Dequeued moves skipped because their centre lies in ``blocked``.
    num_certain : int
        Dequeued moves not predicted because ``skip_certain`` found their
        neighbourhood decided.
    stopped, early_termination : bool
        Whether filling was stopped (by ``max_moves`` or a callback), and
        whether moves were still queued when it was.
    """

    #: Move step in voxels: ``output_fov_shape // output_fov_move_fraction``
    #: of this region's model config (of ``CONFIG.model`` on the class).
    MOVE_DELTA = _MoveDelta()

    def __init__(
        self,
        image,
        target=None,
        seed_vox=None,
        mask=None,
        sparse_mask: bool = False,
        block_padding: str | None = None,
        *,
        model_config=None,
        rng: np.random.Generator | None = None,
        blocked=None,
        move_margin=None,
        stop_weak_seed: bool = False,
        skip_certain: bool = False,
        inset_margin=None,
    ):
        if model_config is None:
            from ..config import CONFIG

            model_config = CONFIG.model
        shape = tuple(int(s) for s in image.shape)
        if len(shape) != 3:
            raise DiluvianError(f"region image must be 3D (Z, Y, X), got shape {list(shape)}")
        self.image = image
        self.shape = shape
        policy_class = self._read_model_config(model_config)
        self.block_padding = "reflect" if block_padding is None else block_padding
        if self.block_padding not in ("reflect", "constant"):
            raise DiluvianError(
                f"block_padding = {block_padding!r} is invalid: expected 'reflect' or 'constant'")
        self.rng = rng if rng is not None else np.random.default_rng(0)
        if blocked is not None and tuple(int(s) for s in blocked.shape) != shape:
            raise DiluvianError(f"blocked voxels shape {list(blocked.shape)} differs from image "
                                f"shape {list(shape)}")
        self.blocked = blocked
        (self.move_margin, self._centre_lo, self._centre_hi, self.inset_margin,
         self._inset) = centre_limits(shape, move_margin, inset_margin)
        self.stop_weak_seed = bool(stop_weak_seed)
        self.seed_weak = False
        self.skip_certain = bool(skip_certain)

        seed = np.array(shape) // 2 if seed_vox is None else np.asarray(seed_vox)
        seed = seed.astype(np.int64).reshape(3)
        if np.any(seed < 0) or np.any(seed >= shape):
            raise DiluvianError(
                f"seed voxel {seed.tolist()} lies outside the volume of shape {list(shape)}")
        self.seed_vox = seed
        self._seed = tuple(int(s) for s in seed)

        self.target = None if target is None else self._fit_target(target)
        self.sparse_mask = bool(sparse_mask)
        self._init_mask(mask)

        # Geometry precomputed once, as Python ints.
        self._in_half = tuple(s // 2 for s in self.input_fov_shape)
        self._face_cache: dict[tuple[int, ...], list[tuple[slice, ...]]] = {}  # (*shape, thickness)

        self.policy: MovePolicy = policy_class(self)  # queues the seed
        self._in_flight = 0
        self.num_moves = 0
        self.num_skipped = 0
        self.num_blocked = 0
        self.num_certain = 0
        self.stopped = False
        self.early_termination = False
        self.last_center_vox: tuple[int, int, int] | None = None

    def _read_model_config(self, model_config):
        """FOVs, thresholds and move settings of ``model_config``; the move policy class."""
        self.model_config = model_config
        self.input_fov_shape = tuple(int(s) for s in model_config.input_fov_shape)
        self.output_fov_shape = tuple(int(s) for s in model_config.output_fov_shape)
        self.move_step = np.asarray(model_config.move_step, dtype=np.int64).copy()
        self._step = tuple(int(s) for s in self.move_step)
        self.v_true = float(model_config.v_true)
        self.v_false = float(model_config.v_false)
        self.t_move = float(model_config.t_move)
        self.t_final = float(model_config.t_final_value)
        self.move_check_thickness = int(model_config.move_check_thickness)
        self.move_priority = str(model_config.move_priority)
        if self.move_priority not in ("descending", "proximity", "random"):
            raise DiluvianError(
                f"move_priority = {self.move_priority!r} is invalid: expected 'descending', "
                "'proximity' or 'random'")
        self.move_recheck = bool(model_config.move_recheck)
        self.move_policy = str(getattr(model_config, "move_policy", "lattice"))
        return move_policy_class(self.move_policy)

    def _init_mask(self, mask) -> None:
        """The region's mask (empty, or ``mask``), its bounding box, and the seed set to v_true."""
        shape = self.shape
        if mask is None:
            self.mask = self._empty_mask()
            self._bbox_lo = list(self._seed)
            self._bbox_hi = [s + 1 for s in self._seed]
        else:
            if tuple(int(s) for s in mask.shape) != shape:
                raise DiluvianError(
                    f"region mask shape {list(mask.shape)} differs from image shape {list(shape)}")
            if not self.sparse_mask:
                mask = np.asarray(mask)
                if mask.dtype != np.float32:
                    mask = mask.astype(np.float32)
            self.mask = mask
            self._bbox_lo = [0, 0, 0]
            self._bbox_hi = list(shape)
        seed_sl = box_slices(self._seed, [s + 1 for s in self._seed])
        self.mask[seed_sl] = np.full((1, 1, 1), self.v_true, dtype=np.float32)

    # ------------------------------------------------------------------
    # Construction helpers
    # ------------------------------------------------------------------

    def _fit_target(self, target):
        tshape = tuple(int(s) for s in target.shape)
        if tshape == self.shape:
            return target
        if len(tshape) != 3 or any(t > s for t, s in zip(tshape, self.shape)):
            raise DiluvianError(
                f"region target shape {list(tshape)} does not fit image shape {list(self.shape)}")
        margin = [(s - t) // 2 for s, t in zip(self.shape, tshape)]
        out = np.zeros(self.shape, dtype=bool)
        out[box_slices(margin, [m + t for m, t in zip(margin, tshape)])] = np.asarray(target, bool)
        return out

    def _empty_mask(self):
        if not self.sparse_mask:
            return np.full(self.shape, np.nan, dtype=np.float32)
        from ..octrees import OctreeVolume

        leaf_shape = np.maximum(np.asarray(self.input_fov_shape), 16)
        bounds = (np.zeros(3, dtype=np.int64), np.asarray(self.shape, dtype=np.int64))
        return OctreeVolume(leaf_shape, bounds, np.float32, fill_value=np.nan)

    @classmethod
    def from_subvolume(cls, subvolume, **kwargs) -> Region:
        """Region of a :class:`~diluvian.volumes.subvolume.Subvolume`: its image, label mask as target and seed."""
        return cls(subvolume.image, target=subvolume.label_mask, seed_vox=subvolume.seed, **kwargs)

    @classmethod
    def from_subvolume_generator(cls, generator: Iterable, **kwargs) -> Iterator[Region]:
        """Lazily map :meth:`from_subvolume` over an iterable of subvolumes."""
        return (cls.from_subvolume(s, **kwargs) for s in generator)

    def unfilled_copy(self) -> Region:
        """A new region with the same image, target, seed and settings and an empty mask."""
        return type(self)(
            self.image, target=self.target, seed_vox=self.seed_vox, sparse_mask=self.sparse_mask,
            block_padding=self.block_padding, model_config=self.model_config, rng=self.rng,
            blocked=self.blocked, move_margin=self.move_margin,
            stop_weak_seed=self.stop_weak_seed, skip_certain=self.skip_certain,
            inset_margin=self.inset_margin)

    def __repr__(self) -> str:
        return (f"Region(shape={list(self.shape)}, seed_vox={self.seed_vox.tolist()}, "
                f"moves={self.num_moves}, queued={len(self.policy.queue)})")

    # ------------------------------------------------------------------
    # Geometry
    # ------------------------------------------------------------------

    def vox_to_pos(self, vox) -> np.ndarray:
        """Move lattice position of a voxel on the lattice (``(vox - seed) // move_step``)."""
        return (np.asarray(vox, dtype=np.int64) - self.seed_vox) // self.move_step

    def pos_to_vox(self, pos) -> np.ndarray:
        """Voxel of a move lattice position (``seed + pos * move_step``)."""
        return self.seed_vox + np.asarray(pos, dtype=np.int64) * self.move_step

    def vox_to_cell(self, vox) -> tuple[int, int, int]:
        """Lattice cell of a voxel: ``round((vox - seed) / move_step)``, halves rounded up."""
        return tuple((int(v) - s + d // 2) // d for v, s, d in zip(vox, self._seed, self._step))

    def inset_vox(self, vox) -> tuple[int, int, int]:
        """``vox`` moved inward to ``inset_margin`` from the faces (as is without one)."""
        if self._inset is None:
            return tuple(int(v) for v in vox)
        return tuple(min(max(int(v), lo), hi) for v, (lo, hi) in zip(vox, self._inset))

    def vox_in_bounds(self, vox) -> bool:
        """Whether an FOV centre voxel lies inside the volume, less ``move_margin``."""
        return all(lo <= int(v) < hi for v, lo, hi in zip(vox, self._centre_lo, self._centre_hi))

    def pos_in_bounds(self, pos) -> bool:
        """Whether the FOV centre of a lattice position lies inside the volume (less ``move_margin``)."""
        return self.vox_in_bounds([s + int(p) * d for s, p, d in zip(self._seed, pos, self._step)])

    def block_offset(self, shape) -> tuple[int, ...]:
        """Offset of the start of a block of ``shape`` from its centre voxel (negative or zero)."""
        return tuple(-(h - (i - s) // 2) if s <= i else -(s // 2)
                     for h, i, s in zip(self._in_half, self.input_fov_shape, shape))

    def get_block_bounds(self, vox, shape, offset=None) -> tuple[np.ndarray, np.ndarray]:
        """Voxel bounds ``(start, stop)`` of a block of ``shape`` centred on ``vox``.

        Parameters
        ----------
        vox : sequence of int
            Centre voxel.
        shape : sequence of int
            Block shape.
        offset : sequence of int, optional
            Added to both bounds (e.g. to move into another frame).
        """
        shape = tuple(int(s) for s in shape)
        start = np.asarray(vox, dtype=np.int64) + np.array(self.block_offset(shape))
        if offset is not None:
            start = start + np.asarray(offset, dtype=np.int64)
        return start, start + np.array(shape)

    def face_slices(self, shape) -> list[tuple[slice, ...]]:
        """The six move-check face slices of a block of ``shape``, in ``MOVES`` order.

        Cached per block shape and thickness, so that changing
        ``move_check_thickness`` on a region takes effect at the next check.
        """
        key = (*(int(s) for s in shape), int(self.move_check_thickness))
        faces = self._face_cache.get(key)
        if faces is not None:
            return faces
        shape = key[:3]
        centre = [-o for o in self.block_offset(shape)]
        faces = move_check_faces(shape, centre, self._step, key[3])
        self._face_cache[key] = faces
        return faces

    # ------------------------------------------------------------------
    # Mask access
    # ------------------------------------------------------------------

    @property
    def mask_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` voxel box holding every mask value written so far."""
        return np.array(self._bbox_lo), np.array(self._bbox_hi)

    def add_mask(self, mask_block, vox, bias: bool = True) -> np.ndarray:
        """Write a predicted mask block centred on ``vox`` into the region mask.

        With the anti-merge ``bias`` a voxel that is at most 0.5 can only
        decrease: the prediction is written where the voxel is unset, above
        0.5, or where the prediction is lower. Without it the prediction
        overwrites the mask. Parts of the block past the volume edge are
        dropped.

        Returns
        -------
        ndarray of float32
            The block's mask values after the update (``v_false`` past the
            volume edge).
        """
        mask_block = np.asarray(mask_block, dtype=np.float32)
        shape = mask_block.shape
        lo = [int(v) + o for v, o in zip(vox, self.block_offset(shape))]
        hi = [a + s for a, s in zip(lo, shape)]
        clo, chi, inside = clip_box(lo, hi, self.shape)
        if inside:
            dst, src = box_slices(lo, hi), (slice(None),) * 3
        else:
            if any(b <= a for a, b in zip(clo, chi)):
                return np.full(shape, self.v_false, dtype=np.float32)
            dst = box_slices(clo, chi)
            src = box_slices([c - a for c, a in zip(clo, lo)], [c - a for c, a in zip(chi, lo)])
        new = mask_block[src]
        if bias:
            # A view of a dense mask is updated in place; a sparse block is a copy.
            dense = isinstance(self.mask, np.ndarray)
            current = self.mask[dst] if dense else np.array(self.mask[dst], dtype=np.float32)
            # Write where unset or above 0.5 (NaN fails ``<= 0.5``), or lower.
            write = ~(current <= 0.5)
            write |= new < current
            np.copyto(current, new, where=write)
            new = current
            if not dense:
                self.mask[dst] = new
        else:
            self.mask[dst] = new
        for a in range(3):
            if clo[a] < self._bbox_lo[a]:
                self._bbox_lo[a] = clo[a]
            if chi[a] > self._bbox_hi[a]:
                self._bbox_hi[a] = chi[a]
        if inside:
            return new
        out = np.full(shape, self.v_false, dtype=np.float32)
        out[src] = new
        return out

    # ------------------------------------------------------------------
    # Moves
    # ------------------------------------------------------------------

    def _face_maxima(self, mask_block: np.ndarray) -> list[float]:
        return face_maxima(mask_block, self.face_slices(mask_block.shape), self.v_false)

    def get_moves(self, mask_block) -> list[dict[str, Any]]:
        """Maximum probability on each of the six move-check faces of a block.

        The block (the mask, as in diluvian 0.0.6) is centred on an FOV
        centre. The face for a move along +axis is a slab of
        ``2 * move_check_thickness - 1`` voxels centred on the plane at
        ``MOVE_DELTA`` from the centre along that axis, spanning the whole
        face (``±MOVE_DELTA``) along the other two; faces are clamped into
        the block. ``move_check_thickness`` is read at every call. A move is
        queued when its ``v`` is at least ``t_move``; the fill engine checks
        the same faces.

        Returns
        -------
        list of dict
            ``{'move': unit vector (ndarray), 'v': float}`` for +Z, -Z, +Y,
            -Y, +X, -X.
        """
        values = self._face_maxima(np.asarray(mask_block, dtype=np.float32))
        return [{"move": m.copy(), "v": v} for m, v in zip(_MOVE_ARRAYS, values)]

    def check_move_neighborhood(self, mask_block) -> bool:
        """Whether any voxel within one move step of the block's centre is at least ``t_move``."""
        mask_block = np.asarray(mask_block)
        centre = [-o for o in self.block_offset(mask_block.shape)]
        lo = [max(c - s, 0) for c, s in zip(centre, self._step)]
        hi = [c + s + 1 for c, s in zip(centre, self._step)]
        return bool(np.any(mask_block[box_slices(lo, hi)] >= self.t_move))

    @property
    def queue_size(self) -> int:
        """Moves queued (some may still be skipped by the recheck)."""
        return len(self.policy.queue)

    def queued_moves(self) -> list[tuple[tuple[int, int, int], float]]:
        """Queued ``(position, priority key)`` pairs in the order they will be dequeued.

        Lower keys come first (``-v`` for ``'descending'``, ``-v / L1`` for
        ``'proximity'``, a uniform draw for ``'random'``); ties keep
        insertion order. A ``'face_max'`` queue holds FOV centre voxels.
        """
        return self.policy.queued_moves()

    @property
    def visited(self) -> set[tuple[int, int, int]]:
        """Lattice positions predicted (or handed out for prediction) so far."""
        return set(self.policy.visited)

    @property
    def done(self) -> bool:
        """Whether no more moves will be handed out and none are waiting for a prediction."""
        return self._in_flight == 0 and (self.stopped or not self.policy.queue)

    def stop(self) -> None:
        """Stop filling: no further moves are handed out."""
        if not self.stopped:
            self.stopped = True
            self.early_termination = bool(self.policy.queue)

    # ------------------------------------------------------------------
    # Step API
    # ------------------------------------------------------------------

    def next_requests(self, max_n: int = 1) -> list[FovRequest]:
        """Dequeue up to ``max_n`` moves and return their FOV requests.

        Moves already visited are dropped; a move (other than the seed's)
        whose centre lies in ``blocked`` is skipped; with ``move_recheck`` a
        move the policy's recheck refuses (lattice: no voxel at least
        ``t_move`` in the cube of one move step around its centre) is skipped
        (it may be queued again later); with ``skip_certain`` a decided move
        is read from the mask instead. Returned positions count as visited.
        An empty list means the region is done.
        """
        out: list[FovRequest] = []
        if self.stopped:
            return out
        policy, in_shape, half = self.policy, self.input_fov_shape, self._in_half
        queue, visited = policy.queue, policy.visited
        while len(out) < max_n and queue:
            pos, vox = policy.locate(policy.pop())
            if pos in visited:
                continue
            # The FOV is centred on ``centre``: ``vox``, or moved inward from a face.
            centre = vox if self._inset is None else self.inset_vox(vox)
            if pos != _SEED_POS:
                if self.blocked is not None and self.blocked[vox]:
                    self.num_blocked += 1
                    continue
                # As FFN: the centre of the FOV to predict must lie in the object.
                if self.move_recheck and not policy.recheck(centre):
                    self.num_skipped += 1
                    continue
                if self.skip_certain and policy.take_certain(
                        pos, policy.certain_vox(vox, centre)):
                    continue
            visited.add(pos)
            if self._inset is not None:
                key = policy.inset_key(pos, centre)
                if centre != vox and policy.inset_seen(pos, key):
                    policy.inset_duplicate(pos, vox)
                    continue
                policy.inset_done.add(key)
                vox = centre
            lo = [v - h for v, h in zip(vox, half)]
            hi = [a + s for a, s in zip(lo, in_shape)]
            out.append(FovRequest(self, pos, vox,
                                  read_image_block(self.image, lo, hi, self.block_padding),
                                  read_mask_block(self.mask, lo, hi, self.v_false)))
        self._in_flight += len(out)
        return out

    def get_next_block(self) -> FovRequest | None:
        """The next FOV request (see :meth:`next_requests`), or ``None`` when done."""
        requests = self.next_requests(1)
        return requests[0] if requests else None

    def apply(self, request: FovRequest, prediction, *, bias: bool = True,
              remask_interval: int | None = None) -> None:
        """Apply a prediction for a request: bias update, move checks, queueing.

        Parameters
        ----------
        request : FovRequest
            A request this region handed out.
        prediction : ndarray
            Output FOV probabilities, ``output_fov_shape``.
        bias : bool
            Anti-merge bias update (see :meth:`add_mask`).
        remask_interval : int, optional
            Call :meth:`remask` whenever the move count reaches a multiple
            of this.
        """
        if request.region is not self:
            raise ValueError("request belongs to another region")
        updated = self.add_mask(prediction, request.center_vox, bias=bias)
        self.policy.enqueue_from_block(request.position, request.center_vox, updated)
        self._in_flight -= 1
        self.num_moves += 1
        self.last_center_vox = request.center_vox
        if self.stop_weak_seed and not self.stopped:
            seed_value = np.asarray(self.mask[box_slices(self._seed, [s + 1 for s in self._seed])])
            if not float(seed_value.ravel()[0]) >= self.t_move:
                self.seed_weak = True
                self.stopped = True  # a natural end, not an early termination
        if remask_interval and self.num_moves % remask_interval == 0:
            self.remask()
