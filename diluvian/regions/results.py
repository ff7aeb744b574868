"""Filling and result methods of :class:`diluvian.regions.Region` (a mixin).

Kept apart from :mod:`diluvian.regions.region`, which holds the region's
state, geometry and move queue.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..util import DiluvianError
from .blocks import box_slices
from .engine import iter_fill_regions

__all__ = ["RegionFillMixin"]


class RegionFillMixin:
    """``fill``, ``remask`` and the mask/body/metric accessors of a region."""

    # ------------------------------------------------------------------
    # Filling
    # ------------------------------------------------------------------

    def fill(
        self,
        model,
        progress: bool = False,
        move_batch_size: int = 1,
        max_moves: int | None = None,
        stopping_callback: Callable[[RegionFillMixin], bool] | None = None,
        remask_interval: int | None = None,
        bias: bool = True,
    ) -> None:
        """Flood fill this region with a model until no moves remain.

        Parameters
        ----------
        model : keras.Model or callable
            Anything with ``predict_on_batch`` (inputs
            ``[images[..., None], masks[..., None]]``), or
            ``predictor(images, masks) -> probs``; see
            :func:`diluvian.regions.as_predictor`.
        progress : bool
            Show a progress bar of moves.
        move_batch_size : int
            Queued moves predicted in one model call (applied in order).
        max_moves : int, optional
            Stop after this many moves (``early_termination`` tells whether
            moves were left).
        stopping_callback : callable, optional
            ``stopping_callback(region) -> bool`` after each model call;
            true stops filling.
        remask_interval : int, optional
            Every this many moves, keep only the seeded connected component
            (:meth:`remask`).
        bias : bool
            Anti-merge bias update; false overwrites the mask.
        """
        for _ in iter_fill_regions(
                [self], model, batch_size=move_batch_size, moves_per_region=move_batch_size,
                progress=progress, max_moves=max_moves, stopping_callback=stopping_callback,
                remask_interval=remask_interval, bias=bias):
            pass

    def fill_animation(self, filename, model, **kwargs) -> None:
        """Fill with ``model`` and write an animation of the fill; see :func:`diluvian.regions.animation.fill_animation`."""
        from .animation import fill_animation

        fill_animation(self, filename, model, **kwargs)

    # ------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------

    def remask(self) -> bool:
        """Keep only the seeded connected component of ``mask >= t_move``.

        Every voxel outside that component is clipped to just below
        ``min(t_move, t_final)``, so it neither queues moves nor belongs to
        the final body. Unset voxels stay unset.

        Returns
        -------
        bool
            False (and nothing changed) if the seed voxel is below ``t_move``.
        """
        from scipy import ndimage

        sl = box_slices(self._bbox_lo, self._bbox_hi)
        block = np.asarray(self.mask[sl])
        binary = block >= self.t_move
        seed = tuple(s - lo for s, lo in zip(self._seed, self._bbox_lo))
        if not binary[seed]:
            return False
        labels, _ = ndimage.label(binary)
        keep = labels == labels[seed]
        clip = np.nextafter(np.float32(min(self.t_move, self.t_final)), np.float32(-np.inf))
        self.mask[sl] = np.where(keep, block, np.minimum(block, clip))
        return True

    def get_mask_array(self) -> np.ndarray:
        """The mask as a dense float32 volume (NaN = unset)."""
        if not self.sparse_mask:
            return np.asarray(self.mask)
        out = np.full(self.shape, np.nan, dtype=np.float32)
        sl = box_slices(self._bbox_lo, self._bbox_hi)
        out[sl] = np.asarray(self.mask[sl])
        return out

    def get_final_mask(self) -> np.ndarray:
        """Boolean volume of ``mask >= t_final``."""
        out = np.zeros(self.shape, dtype=bool)
        sl = box_slices(self._bbox_lo, self._bbox_hi)
        out[sl] = np.asarray(self.mask[sl]) >= self.t_final
        return out

    def to_body(self):
        """The filled object as a :class:`diluvian.postprocessing.Body` (``mask >= t_final``)."""
        from ..postprocessing import Body

        return Body(self.get_final_mask(), self.seed_vox.copy())

    def prediction_metric(self, metric: Callable, threshold: bool = True, **kwargs):
        """Score the mask against the target with ``metric(target, prediction, **kwargs)``.

        Parameters
        ----------
        metric : callable
            E.g. :func:`diluvian.util.binary_f_score`.
        threshold : bool
            Compare ``mask >= t_final`` with the boolean target; otherwise
            the probabilities (unset as ``v_false``) with the target as float.
        """
        if self.target is None:
            raise DiluvianError("region has no target to compute a prediction metric against")
        target = np.asarray(self.target)
        if threshold:
            return metric(target.astype(bool), self.get_final_mask(), **kwargs)
        probs = np.nan_to_num(self.get_mask_array(), nan=self.v_false)
        return metric(target.astype(np.float32), probs, **kwargs)
