"""Flood filling of single regions: the move queue, mask bookkeeping and batching.

A :class:`Region` holds one object being flood filled: an image volume, a
probability mask (dense numpy or block-sparse octree), the seed and the move
queue. Filling runs in steps that never touch the network:

1. :meth:`Region.next_requests` pops queued FOV positions and returns
   :class:`FovRequest` objects carrying the input image and mask blocks;
2. something predicts the output FOV for each request (a Keras model, any
   callable ``predictor(images, masks) -> probs``; see :func:`as_predictor`);
3. :meth:`Region.apply` writes each prediction with the anti-merge bias,
   checks the six move planes and queues new positions.

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
from .region import Region

__all__ = [
    "EarlyFillTermination",
    "FovRequest",
    "Predictor",
    "Region",
    "as_predictor",
    "fill_regions",
    "iter_fill_regions",
    "mask_to_output_target",
    "predict_requests",
]
