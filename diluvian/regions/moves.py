"""Move queueing of :class:`~diluvian.regions.Region`: rechecks, priorities, both move policies.

A mixin, so that ``region.py`` keeps the region's state and step API; it
uses the region's attributes (mask, queue, thresholds, lattice geometry).
"""

from __future__ import annotations

import heapq

import numpy as np

from .blocks import MOVES, box_slices, clip_box, face_argmaxima, read_mask_block

__all__ = ["MoveQueueMixin"]


class MoveQueueMixin:
    """Checks and queueing of moves for :class:`~diluvian.regions.Region`."""

    def _recheck(self, vox) -> bool:
        if self._face_max:  # FFN: the new centre itself must still be inside the object
            return bool(np.asarray(self.mask[box_slices(vox, [v + 1 for v in vox])]).ravel()[0]
                        >= self.t_move)
        lo = [max(v - s, 0) for v, s in zip(vox, self._step)]
        hi = [min(v + s + 1, n) for v, s, n in zip(vox, self._step, self.shape)]
        return bool(np.any(np.asarray(self.mask[box_slices(lo, hi)]) >= self.t_move))

    def _take_certain(self, pos, vox) -> bool:
        """With ``skip_certain``: if the cube around ``vox`` is decided, queue its moves unpredicted."""
        lo = [v - d for v, d in zip(vox, self._step)]
        hi = [v + d + 1 for v, d in zip(vox, self._step)]
        clo, chi, _ = clip_box(lo, hi, self.shape)
        inner = np.asarray(self.mask[box_slices(clo, chi)])
        t = self.t_move
        if not np.all((inner >= t) | (inner <= 1.0 - t)):  # NaN (unset) fails both
            return False
        cube = read_mask_block(self.mask, lo, hi, self.v_false)
        self._visited.add(pos)
        self.num_certain += 1
        self._enqueue_from_block(pos, vox, cube)
        return True

    def _priority(self, pos, v: float) -> float:
        if self.move_priority == "descending":
            return -v
        if self.move_priority == "proximity":
            return -v / (abs(pos[0]) + abs(pos[1]) + abs(pos[2]))
        return float(self.rng.random())

    def _enqueue_from_block(self, pos, centre_vox, block: np.ndarray) -> None:
        """Queue the moves of a mask block centred on ``centre_vox`` (lattice ``pos``)."""
        if self._face_max:
            self._enqueue_face_max(centre_vox, block)
        else:
            self._enqueue_moves(pos, self._face_maxima(block))

    def _enqueue_face_max(self, centre_vox, block: np.ndarray) -> None:
        """Queue a move to the maximum voxel of each face at least ``t_move`` (FFN's policy)."""
        offset = self._block_start(block.shape)
        t_move = self.t_move
        for v, idx in face_argmaxima(block, self._faces(block.shape), self.v_false):
            if not v >= t_move:
                continue
            new = tuple(int(c) + o + i for c, o, i in zip(centre_vox, offset, idx))
            cell = self.vox_to_cell(new)
            if new in self._queued or cell in self._visited or not self._vox_in_bounds(new):
                continue
            key = self._priority(cell, v)
            heapq.heappush(self._queue, (key, self._counter, new))
            self._counter += 1
            self._queued.add(new)

    def _enqueue_moves(self, pos, values) -> None:
        t_move = self.t_move
        for move, v in zip(MOVES, values):
            if not v >= t_move:
                continue
            new = (pos[0] + move[0], pos[1] + move[1], pos[2] + move[2])
            if new in self._visited or new in self._queued or not self.pos_in_bounds(new):
                continue
            heapq.heappush(self._queue, (self._priority(new, v), self._counter, new))
            self._counter += 1
            self._queued.add(new)
