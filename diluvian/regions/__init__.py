"""Flood filling of single regions: the move queue, mask bookkeeping and batching.

A :class:`Region` holds one object being flood filled: an image volume, a
probability mask (dense numpy or block-sparse octree), the seed and the move
queue. Filling runs in steps that never touch the network:

1. :meth:`Region.next_requests` pops queued FOV positions and returns
   :class:`FovRequest` objects carrying the input image and mask blocks;
2. something predicts the output FOV for each request (a Keras model, any
   callable ``predictor(images, masks) -> probs``; see :func:`as_predictor`);
3. :meth:`Region.apply` writes each prediction with the anti-merge bias and
   hands it to the region's move policy, which queues new positions.

Movement is a class per policy (:mod:`diluvian.regions.movement`):
:class:`LatticePolicy` (diluvian's lattice anchored at the seed) and
:class:`FaceMaxPolicy` (Google FFN's moves to each face's maximum), each
owning its queue, queued and visited sets and its rules; ``[model]
move_policy`` names one in :data:`MOVE_POLICIES`, and
:func:`register_move_policy` adds another without touching :class:`Region`.

:meth:`Region.fill` drives one region this way; :func:`fill_regions` and
:func:`iter_fill_regions` drive many at once, sending their FOVs to the model
in full batches. Nothing here imports Keras or TensorFlow.
"""

from .compat006 import EarlyFillTermination, mask_to_output_target
from .engine import (
    FovRequest,
    Predictor,
    as_predictor,
    fill_regions,
    iter_fill_regions,
    predict_requests,
)
from .movement import (
    MOVE_POLICIES,
    FaceMaxPolicy,
    LatticePolicy,
    MovePolicy,
    register_move_policy,
)
from .region import Region

__all__ = [
    "MOVE_POLICIES",
    "EarlyFillTermination",
    "FaceMaxPolicy",
    "FovRequest",
    "LatticePolicy",
    "MovePolicy",
    "Predictor",
    "Region",
    "as_predictor",
    "fill_regions",
    "iter_fill_regions",
    "mask_to_output_target",
    "register_move_policy",
    "predict_requests",
]
