"""The predictor interface and the driver that fills many regions in full batches.

The flood-fill engine never imports Keras: a model is anything
:func:`as_predictor` can turn into ``predictor(images, masks) -> probs``,
with ``images`` and ``masks`` float32 arrays shaped ``(N, *input_fov_shape)``
(masks are probabilities, unset voxels given as ``v_false``) and ``probs``
shaped ``(N, *output_fov_shape)``.

:func:`iter_fill_regions` keeps up to ``max_active`` regions advancing
together, like FFN's batching executor: each region has at most
``moves_per_region`` FOVs in flight, and their requests are gathered into
batches of ``batch_size`` FOVs per model call; a region's predictions are
applied (in order) before it asks for its next FOVs, so every region fills
exactly as it would alone with ``move_batch_size = moves_per_region``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..predictor import Predictor, as_predictor
from ..util import DiluvianError

if TYPE_CHECKING:
    from .region import Region

__all__ = ["FovRequest", "Predictor", "as_predictor", "fill_regions", "iter_fill_regions",
           "predict_requests"]


@dataclass(eq=False, slots=True)
class FovRequest:
    """One field of view of one region waiting for a prediction.

    Attributes
    ----------
    region : Region
        The region that asked for it; pass the prediction back to
        :meth:`Region.apply`.
    position : tuple of int
        Move lattice position (Z, Y, X), relative to the seed.
    center_vox : tuple of int
        FOV centre in volume voxels (Z, Y, X).
    image : ndarray of float32
        Input FOV of the image in [0, 1), reflect- or constant-padded past
        the volume edge.
    mask : ndarray of float32
        Input FOV of the mask as probabilities, unset voxels (and voxels past
        the volume edge) as ``v_false``.
    """

    region: Region
    position: tuple[int, int, int]
    center_vox: tuple[int, int, int]
    image: np.ndarray
    mask: np.ndarray


def predict_requests(predictor: Predictor, batch: list[FovRequest]) -> np.ndarray:
    """Predict a batch of FOV requests in one model call: the only batching of FOVs.

    Used by :func:`iter_fill_regions` (sparse fills, :meth:`Region.fill`)
    and by dense filling (:class:`diluvian.fill.dense.DenseFill`).

    Returns
    -------
    ndarray of float32, shape (len(batch), *output_fov_shape)

    Raises
    ------
    DiluvianError
        If the requests' input FOV shapes differ or the model returns
        predictions of another shape.
    """
    if len(batch) == 1:
        images = batch[0].image[None]
        masks = batch[0].mask[None]
    else:
        shapes = {r.image.shape for r in batch}
        if len(shapes) > 1:
            raise DiluvianError(
                f"regions filled together must share one input FOV shape, got {sorted(shapes)}")
        images = np.stack([r.image for r in batch])
        masks = np.stack([r.mask for r in batch])
    probs = np.asarray(predictor(images, masks), dtype=np.float32)
    expected = (len(batch), *batch[0].region.output_fov_shape)
    if probs.shape != expected:
        raise DiluvianError(
            f"model returned predictions of shape {list(probs.shape)}, expected {list(expected)} "
            "(batch, *output_fov_shape)")
    return probs


def iter_fill_regions(  # noqa: PLR0913 - the documented public signature
    regions: Iterable[Region],
    model: Any,
    *,
    batch_size: int = 32,
    moves_per_region: int = 1,
    max_active: int | None = None,
    progress: bool = False,
    max_moves: int | None = None,
    stopping_callback: Callable[[Region], bool] | None = None,
    remask_interval: int | None = None,
    bias: bool = True,
) -> Iterator[Region]:
    """Fill regions together, yielding each as soon as it is finished.

    Regions are pulled lazily from ``regions`` whenever fewer than
    ``max_active`` are being filled, so a generator may decide on its next
    seed after earlier regions have been yielded and committed.

    Parameters
    ----------
    regions : iterable of Region
        Regions to fill (pulled lazily).
    model : keras.Model or callable
        The network; see :func:`as_predictor`.
    batch_size : int
        FOVs per model call. Calls are full as long as enough regions are
        active with queued moves.
    moves_per_region : int
        Queued moves one region contributes to a batch (its
        ``move_batch_size``).
    max_active : int, optional
        Regions filled at once; defaults to
        ``ceil(batch_size / moves_per_region)``.
    progress : bool
        Show a tqdm progress bar of moves.
    max_moves : int, optional
        Stop each region after this many moves.
    stopping_callback : callable, optional
        ``stopping_callback(region) -> bool``, called after each batch of a
        region's predictions has been applied (after each move when
        ``moves_per_region`` is 1); returning true stops that region.
    remask_interval : int, optional
        Every this many moves, :meth:`Region.remask` each region.
    bias : bool
        Anti-merge bias update (see :meth:`Region.add_mask`).

    Yields
    ------
    Region
        Each region, once its queue is empty or it was stopped (its
        ``early_termination`` says which).
    """
    if batch_size < 1 or moves_per_region < 1:
        raise DiluvianError(
            f"batch_size ({batch_size}) and move batch size ({moves_per_region}) must be at least 1")
    if max_active is None:
        max_active = max(1, math.ceil(batch_size / moves_per_region))
    predictor = as_predictor(model)
    pool = _RegionPool(regions, max_active)

    from tqdm.auto import tqdm

    bar = tqdm(desc="Filling", unit="move", disable=not progress, leave=False)
    try:
        while True:
            batch = yield from _gather(pool, batch_size, moves_per_region, max_moves)
            if not batch:
                if pool.exhausted and pool.n_active == 0 and not pool.ready:
                    break
                if not pool.ready and (pool.exhausted or pool.n_active >= max_active):
                    break  # pragma: no cover - defensive; nothing can make progress
                continue
            probs = predict_requests(predictor, batch)
            touched: dict[Region, None] = {}
            for request, prob in zip(batch, probs):
                request.region.apply(request, prob, bias=bias, remask_interval=remask_interval)
                touched[request.region] = None
            bar.update(len(batch))
            for region in touched:
                if stopping_callback is not None and stopping_callback(region):
                    region.stop()
                elif max_moves is not None and region.num_moves >= max_moves:
                    region.stop()
                pool.ready.append(region)
    finally:
        bar.close()


class _RegionPool:
    """Regions pulled lazily from a source: those ready for their next FOVs, and a count."""

    def __init__(self, regions: Iterable[Region], max_active: int):
        self.source = iter(regions)
        self.max_active = max_active
        self.exhausted = False
        self.ready: deque[Region] = deque()
        self.n_active = 0

    def pull(self) -> bool:
        """Start the source's next region; false when none may start or none is left."""
        if self.exhausted or self.n_active >= self.max_active:
            return False
        try:
            region = next(self.source)
        except StopIteration:
            self.exhausted = True
            return False
        self.n_active += 1
        self.ready.append(region)
        return True


def _gather(pool: _RegionPool, batch_size: int, moves_per_region: int,
            max_moves: int | None) -> Generator[Region, None, list[FovRequest]]:
    """Collect up to ``batch_size`` FOV requests; yield each region found finished on the way.

    Returns the batch (``batch = yield from _gather(...)``). A region is
    yielded before the next one is pulled from the source, so a lazy source
    sees earlier regions finished (and committed) first.
    """
    batch: list[FovRequest] = []
    while len(batch) < batch_size:
        if not pool.ready and not pool.pull():
            break
        region = pool.ready.popleft()
        n = min(moves_per_region, batch_size - len(batch))
        if max_moves is not None:
            n = min(n, max_moves - region.num_moves)
            if n <= 0:
                region.stop()
        requests = region.next_requests(n) if n > 0 else []
        if not requests:
            pool.n_active -= 1
            yield region
            continue
        batch.extend(requests)
    return batch


def fill_regions(regions: Iterable[Region], model: Any, **kwargs) -> list[Region]:
    """Fill regions together in full batches; see :func:`iter_fill_regions`.

    Returns
    -------
    list of Region
        The regions, in the order they were given, each filled exactly as
        :meth:`Region.fill` would with ``move_batch_size = moves_per_region``.
    """
    regions = list(regions)
    for _ in iter_fill_regions(regions, model, **kwargs):
        pass
    return regions
