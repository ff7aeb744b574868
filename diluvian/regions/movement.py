"""Movement policies: which FOV centres a region visits, and in what order.

A policy is a class (as Google FFN's ``movement.py``): it owns the region's
move queue (a heap of ``(key, insertion counter, item)``, lowest key first),
the set of items queued and the set of lattice positions visited, and the
rules that fill them:

* :meth:`MovePolicy.first_item` - the seed's queue entry (dequeued first);
* :meth:`MovePolicy.locate` - lattice position and FOV centre of an entry;
* :meth:`MovePolicy.recheck` - whether a dequeued move is still worth
  predicting (``[model] move_recheck``);
* :meth:`MovePolicy.enqueue_from_block` - the moves a predicted mask block
  queues;
* :meth:`MovePolicy.priority` and :meth:`MovePolicy.take_certain`
  (``skip_certain``), shared by both policies;
* :meth:`MovePolicy.certain_vox`, :meth:`MovePolicy.inset_key`,
  :meth:`MovePolicy.inset_seen` and :meth:`MovePolicy.inset_duplicate` -
  FOVs moved inward from the faces (``[fill] inset_fovs``): the lattice
  predicts each moved centre once, face-max one FOV per lattice cell.

:class:`~diluvian.regions.Region` builds the policy named by ``[model]
move_policy`` from :data:`MOVE_POLICIES` and hands it every move; another
policy is added with :func:`register_move_policy`, without touching
``Region``. A policy reads from its region only ``mask``, ``shape``,
``seed_vox``, ``move_step``, ``t_move``, ``v_false``, ``move_priority``,
``rng`` and the geometry helpers ``block_offset``, ``face_slices``,
``vox_in_bounds``, ``pos_in_bounds`` and ``vox_to_cell``.
"""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from ..util import DiluvianError
from .blocks import MOVES, box_slices, clip_box, face_argmaxima, face_maxima, read_mask_block

if TYPE_CHECKING:
    from .region import Region

__all__ = [
    "MOVE_POLICIES",
    "FaceMaxPolicy",
    "LatticePolicy",
    "MovePolicy",
    "move_policy_class",
    "register_move_policy",
]

Vox = tuple[int, int, int]


class MovePolicy(ABC):
    """The move queue of one region and the rules that fill it.

    Parameters
    ----------
    region : Region
        The region moved; the seed's entry is queued at once.

    Attributes
    ----------
    queue : list of (float, int, tuple of int)
        Heap of ``(priority key, insertion counter, item)``; what an item is
        (a lattice position, a centre voxel) is the policy's choice.
    queued : set of tuple of int
        Items now in ``queue``.
    visited : set of tuple of int
        Lattice positions predicted (or handed out for prediction), read
        by :meth:`Region.next_requests` before a move is taken.
    """

    def __init__(self, region: Region):
        self.region = region
        self._seed: Vox = tuple(int(s) for s in region.seed_vox)
        self._step: Vox = tuple(int(s) for s in region.move_step)
        first = self.first_item()
        self.queue: list[tuple[float, int, Vox]] = [(-math.inf, 0, first)]
        self._counter = 1
        self.queued: set[Vox] = {first}
        self.visited: set[Vox] = set()
        #: Keys (:meth:`inset_key`) of the FOVs predicted when FOVs move inward.
        self.inset_done: set[Vox] = set()

    # ------------------------------------------------------------------
    # The rules of a policy
    # ------------------------------------------------------------------

    @abstractmethod
    def first_item(self) -> Vox:
        """The queue item of the first move, the FOV centred on the seed."""

    @abstractmethod
    def locate(self, item: Vox) -> tuple[Vox, Vox]:
        """``(lattice position, FOV centre voxel)`` of a queue item.

        The seed's position must be ``(0, 0, 0)``: it is never rechecked,
        blocked or skipped as certain.
        """

    @abstractmethod
    def recheck(self, vox: Vox) -> bool:
        """Whether a dequeued move centred on ``vox`` is still worth predicting."""

    @abstractmethod
    def enqueue_from_block(self, pos: Vox, centre_vox: Vox, block: np.ndarray) -> None:
        """Queue the moves of a mask block centred on ``centre_vox`` (position ``pos``)."""

    def priority(self, pos: Vox, v: float) -> float:
        """Queue key of a move to position ``pos`` whose face value is ``v`` (lower first)."""
        order = self.region.move_priority
        if order == "descending":
            return -v
        if order == "proximity":
            return -v / (abs(pos[0]) + abs(pos[1]) + abs(pos[2]))
        return float(self.region.rng.random())

    def take_certain(self, pos: Vox, vox: Vox) -> bool:
        """With ``skip_certain``: if the cube around ``vox`` is decided, queue its moves unpredicted.

        The cube spans one move step each way; decided means every voxel
        set and at least ``t_move`` or at most ``1 - t_move``. A taken move
        counts as visited and in ``region.num_certain``.
        """
        region = self.region
        lo = [v - d for v, d in zip(vox, self._step)]
        hi = [v + d + 1 for v, d in zip(vox, self._step)]
        clo, chi, _ = clip_box(lo, hi, region.shape)
        inner = np.asarray(region.mask[box_slices(clo, chi)])
        t = region.t_move
        if not np.all((inner >= t) | (inner <= 1.0 - t)):  # NaN (unset) fails both
            return False
        cube = read_mask_block(region.mask, lo, hi, region.v_false)
        self.visited.add(pos)
        region.num_certain += 1
        self.enqueue_from_block(pos, vox, cube)
        return True

    # ------------------------------------------------------------------
    # FOVs moved inward (``Region(inset_margin=...)``, ``[fill] inset_fovs``)
    # ------------------------------------------------------------------

    def certain_vox(self, vox: Vox, centre: Vox) -> Vox:
        """The voxel whose cube :meth:`take_certain` judges for a move to ``vox``
        whose FOV is centred on ``centre`` (moved inward): the move's own voxel."""
        return vox

    def inset_key(self, pos: Vox, centre: Vox) -> Vox:
        """What a FOV centred on ``centre`` covers, for predicting it once: the centre."""
        return centre

    def inset_seen(self, pos: Vox, key: Vox) -> bool:
        """Whether a FOV moved inward to ``key`` (:meth:`inset_key`) is predicted already."""
        return key in self.inset_done

    def inset_duplicate(self, pos: Vox, vox: Vox) -> None:
        """A move to ``vox`` was moved onto a FOV predicted already: go on from the mask
        around ``vox`` unpredicted (that FOV covers it)."""
        region = self.region
        block = read_mask_block(region.mask, [v - d for v, d in zip(vox, self._step)],
                                [v + d + 1 for v, d in zip(vox, self._step)], region.v_false)
        self.enqueue_from_block(pos, vox, block)

    # ------------------------------------------------------------------
    # The queue
    # ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.queue)

    def push(self, item: Vox, key: float) -> None:
        """Queue ``item`` with priority ``key`` (ties keep insertion order)."""
        heapq.heappush(self.queue, (key, self._counter, item))
        self._counter += 1
        self.queued.add(item)

    def pop(self) -> Vox:
        """Dequeue the item of lowest key (the queue must not be empty)."""
        item = heapq.heappop(self.queue)[2]
        self.queued.discard(item)
        return item

    def queued_moves(self) -> list[tuple[Vox, float]]:
        """Queued ``(item, priority key)`` pairs in the order they will be dequeued."""
        return [(item, key) for key, _, item in sorted(self.queue)]


class LatticePolicy(MovePolicy):
    """diluvian's policy: FOV centres on a lattice anchored at the seed.

    A queue item is a lattice position ``pos``, centred on ``seed_vox + pos
    * move_step``. A prediction queues the neighbour one step along each
    axis whose move-check face has a voxel of at least ``t_move`` (see
    :meth:`Region.get_moves`). The recheck asks for a voxel of at least
    ``t_move`` within one move step of the centre.
    """

    def first_item(self) -> Vox:
        return (0, 0, 0)

    def locate(self, item: Vox) -> tuple[Vox, Vox]:
        return item, tuple(s + p * d for s, p, d in zip(self._seed, item, self._step))

    def recheck(self, vox: Vox) -> bool:
        region = self.region
        lo = [max(v - s, 0) for v, s in zip(vox, self._step)]
        hi = [min(v + s + 1, n) for v, s, n in zip(vox, self._step, region.shape)]
        return bool(np.any(np.asarray(region.mask[box_slices(lo, hi)]) >= region.t_move))

    def enqueue_from_block(self, pos: Vox, centre_vox: Vox, block: np.ndarray) -> None:
        region = self.region
        values = face_maxima(block, region.face_slices(block.shape), region.v_false)
        t_move, visited, queued = region.t_move, self.visited, self.queued
        for move, v in zip(MOVES, values):
            if not v >= t_move:
                continue
            new = (pos[0] + move[0], pos[1] + move[1], pos[2] + move[2])
            if new in visited or new in queued or not region.pos_in_bounds(new):
                continue
            self.push(new, self.priority(new, v))


class FaceMaxPolicy(MovePolicy):
    """Google FFN's ``FaceMaxMovementPolicy``: FOV centres follow the object.

    A queue item is an FOV centre voxel; its position is its lattice cell,
    ``round((vox - seed) / move_step)`` (:meth:`Region.vox_to_cell`), and
    each cell is predicted at most once. A prediction queues the voxel of
    highest probability on each move-check face, if at least ``t_move``.
    The recheck asks that the centre voxel itself still be at least
    ``t_move``.
    """

    def first_item(self) -> Vox:
        return self._seed

    def locate(self, item: Vox) -> tuple[Vox, Vox]:
        return self.region.vox_to_cell(item), item

    def recheck(self, vox: Vox) -> bool:
        mask = self.region.mask
        return bool(np.asarray(mask[box_slices(vox, [v + 1 for v in vox])]).ravel()[0]
                    >= self.region.t_move)

    def certain_vox(self, vox: Vox, centre: Vox) -> Vox:
        # The FOV it would predict: near a face, several moves share it.
        return centre

    def inset_key(self, pos: Vox, centre: Vox) -> Vox:
        # One FOV per lattice cell, moved inward or not.
        return self.region.vox_to_cell(centre)

    def inset_seen(self, pos: Vox, key: Vox) -> bool:
        return key in self.inset_done or (key != pos and key in self.visited)

    def inset_duplicate(self, pos: Vox, vox: Vox) -> None:
        # The FOV predicted there queued this region's moves along the face.
        return None

    def enqueue_from_block(self, pos: Vox, centre_vox: Vox, block: np.ndarray) -> None:
        region = self.region
        offset = region.block_offset(block.shape)
        t_move, visited, queued = region.t_move, self.visited, self.queued
        for v, idx in face_argmaxima(block, region.face_slices(block.shape), region.v_false):
            if not v >= t_move:
                continue
            new = tuple(int(c) + o + i for c, o, i in zip(centre_vox, offset, idx))
            cell = region.vox_to_cell(new)
            if new in queued or cell in visited or not region.vox_in_bounds(new):
                continue
            self.push(new, self.priority(cell, v))


#: Move policies by ``[model] move_policy`` name.
MOVE_POLICIES: dict[str, type[MovePolicy]] = {"lattice": LatticePolicy, "face_max": FaceMaxPolicy}


def register_move_policy(name: str, cls: type[MovePolicy]) -> None:
    """Make ``cls`` the move policy of ``[model] move_policy = name``.

    The name becomes valid in configuration files too. Registering a name
    again replaces its policy.

    Examples
    --------
    A policy that only ever moves one lattice step along +X::

        class PlusX(LatticePolicy):
            def enqueue_from_block(self, pos, centre_vox, block):
                new = (pos[0], pos[1], pos[2] + 1)
                if new not in self.visited and self.region.pos_in_bounds(new):
                    self.push(new, 0.0)

        register_move_policy("plus_x", PlusX)
    """
    if not isinstance(name, str) or not name:
        raise DiluvianError(f"move policy name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, MovePolicy)):
        raise DiluvianError(f"move policy {name!r} must be a MovePolicy subclass, got {cls!r}")
    from ..config.sections import allow_move_policy

    MOVE_POLICIES[name] = cls
    allow_move_policy(name)


def move_policy_class(name: str) -> type[MovePolicy]:
    """The policy class registered as ``name``; a :class:`DiluvianError` naming the choices if none."""
    cls = MOVE_POLICIES.get(name)
    if cls is None:
        names = [repr(n) for n in MOVE_POLICIES]
        choices = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise DiluvianError(f"move_policy = {name!r} is invalid: expected {choices}")
    return cls


