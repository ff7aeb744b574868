"""Moving training (the FFN regime): the network learns to continue its own fills.

Used by :func:`diluvian.training.train_network` when
``[model] training_subv_shape`` is larger than the input FOV. Runs in the
main loop (each step depends on the previous step's predictions); only the
reading and augmenting of new subvolumes is done ahead by worker threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..util import DiluvianError
from .data import TrainingData, soften

__all__ = ["MovingTrainer", "fit_moving"]

# --------------------------------------------------------------------------


class MovingTrainer:
    """Moving training (the FFN regime): each batch slot fills a region with the network.

    Every slot holds a :class:`~diluvian.regions.Region` over its own training
    subvolume. A step takes the next FOV of every slot (moves whose FOV
    would reach past the subvolume are skipped), trains on it with
    the slot's label as target, predicts the same batch with the updated
    network and writes those predictions back into the regions, whose moves
    give the next FOV positions. A slot whose region has no moves left gets
    a new subvolume. Subvolumes are read ahead by ``num_workers`` threads.

    Parameters
    ----------
    model : keras.Model
        A compiled model.
    data : TrainingData
        Source of the training subvolumes (``subv_shape`` the training
        subvolume shape).
    config : Config
    strategy : tf.distribute.Strategy, optional
        With more than one replica, each step's batch is split across them.
    """

    def __init__(self, model, data: TrainingData, config, strategy=None):
        self.model = model
        self.data = data
        self.config = config
        self.strategy = strategy
        self.batch_size = data.batch_size
        self.epoch = 0
        self.next_draw = 0
        self.slots: list[Any] = [None] * self.batch_size
        self.positions: list[list[tuple[int, int, int]]] = [[] for _ in range(self.batch_size)]
        workers = max(1, int(config.training.num_workers))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="diluvian-subv")
        self.pending: dict[int, Any] = {}

    def close(self) -> None:
        """Stop the read-ahead threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _subvolume(self):
        draw = self.next_draw
        self.next_draw += 1
        for k in range(draw, draw + self.batch_size):
            if k not in self.pending:
                self.pending[k] = self.pool.submit(self.data.subvolume, k, self.epoch)
        return self.pending.pop(draw).result()

    def _new_region(self, slot: int):
        from ..regions import Region

        subv = self._subvolume()
        region = Region.from_subvolume(subv, model_config=self.config.model)
        self.slots[slot] = region
        self.positions[slot] = []
        return region

    def new_epoch(self, epoch: int) -> None:
        """Start an epoch: fresh samples unless ``reset_generators``."""
        reset = self.config.training.reset_generators
        self.epoch = 0 if reset else epoch
        self.pending.clear()
        if reset or epoch == 0:
            self.next_draw = 0
            self.slots = [None] * self.batch_size
            self.positions = [[] for _ in range(self.batch_size)]

    def _inside_requests(self, region) -> list:
        """The region's next request whose input FOV lies inside its subvolume.

        Moves whose FOV would reach past the subvolume (where the image is
        padded and the label unknown) are skipped; an empty list means the
        region is exhausted.
        """
        half = self.data.input_fov_shape // 2
        shape = np.asarray(region.shape)
        while True:
            reqs = region.next_requests(1)
            if not reqs:
                return []
            lo = np.asarray(reqs[0].center_vox) - half
            if np.all(lo >= 0) and np.all(lo + self.data.input_fov_shape <= shape):
                return reqs

    def next_batch(self):
        """The requests, inputs and targets of the next step."""
        requests = []
        for slot in range(self.batch_size):
            region = self.slots[slot]
            reqs = self._inside_requests(region) if region is not None else []
            tries = 0
            while not reqs:
                tries += 1
                if tries > 100:
                    raise DiluvianError("moving training: 100 new subvolumes in a row offered "
                                        "no field of view")
                region = self._new_region(slot)
                reqs = self._inside_requests(region)
            requests.append(reqs[0])
            self.positions[slot].append(tuple(int(c) for c in reqs[0].center_vox))
        out_shape = self.data.output_fov_shape
        v_true, v_false = self.data.v_true, self.data.v_false
        images = np.stack([r.image for r in requests])[..., None]
        masks = np.stack([r.mask for r in requests])[..., None]
        targets = []
        for r in requests:
            label = np.asarray(r.region.target)
            lo = np.asarray(r.center_vox) - out_shape // 2
            box = _padded_box(label, lo, out_shape)
            targets.append(soften(box, v_true, v_false))
        return requests, (images, masks), np.stack(targets)[..., None]

    def _train(self, x, y) -> dict[str, float]:
        if self.strategy is None or self.strategy.num_replicas_in_sync <= 1:
            return self.model.train_on_batch(list(x), y, return_dict=True)
        import tensorflow as tf

        # Keras' train_on_batch would give every replica the whole batch, and
        # its train function fed by hand fails under MirroredStrategy; a
        # one-batch fit splits the batch across replicas as fit always does.
        ds = tf.data.Dataset.from_tensor_slices(((x[0], x[1]), y)).batch(len(y))
        history = self.model.fit(ds, epochs=1, verbose=0, shuffle=False)
        logs = {k: v[-1] for k, v in history.history.items()}
        return {k: float(np.asarray(v)) for k, v in logs.items()}

    def _predict(self, x) -> np.ndarray:
        if self.strategy is None or self.strategy.num_replicas_in_sync <= 1:
            return np.asarray(self.model.predict_on_batch(list(x)))[..., 0]
        # predict_on_batch under a multi-replica strategy returns one copy per replica.
        return np.asarray(self.model(list(x), training=False))[..., 0]

    def step(self) -> dict[str, float]:
        """One training step; returns the Keras logs."""
        requests, x, y = self.next_batch()
        logs = self._train(x, y)
        probs = self._predict(x)
        for request, prob in zip(requests, probs):
            request.region.apply(request, prob)
        return logs


def _padded_box(a: np.ndarray, lo, shape) -> np.ndarray:
    """``a[lo:lo + shape]``, False outside ``a``."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = lo + np.asarray(shape, dtype=np.int64)
    out = np.zeros(tuple(int(s) for s in shape), dtype=bool)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, a.shape)
    if np.any(src_hi <= src_lo):
        return out
    dst = tuple(slice(int(s - o), int(e - o)) for s, e, o in zip(src_lo, src_hi, lo))
    out[dst] = a[tuple(slice(int(s), int(e)) for s, e in zip(src_lo, src_hi))]
    return out


def fit_moving(trainer: MovingTrainer, epoch_end, epochs: int, steps: int,
               progress: bool, tensorboard_cb=None) -> None:
    """Train ``epochs`` epochs of ``steps`` moving steps; ``epoch_end(epoch, logs)`` after each.

    Stops early when ``epoch_end.stop`` becomes true; an epoch ends early
    once ``epoch_end.out_of_time`` (``[training] max_minutes``).
    """
    from tqdm.auto import tqdm

    for epoch in range(epochs):
        trainer.new_epoch(epoch)
        losses: list[float] = []
        logs: dict[str, float] = {}
        with tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                  disable=not progress) as bar:
            for _ in range(steps):
                if getattr(epoch_end, "out_of_time", False):
                    break
                step_logs = trainer.step()
                epoch_end.steps = getattr(epoch_end, "steps", 0) + 1
                losses.append(float(step_logs.get("loss", math.nan)))
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
                bar.update()
        logs["loss"] = float(np.mean(losses)) if losses else math.nan
        epoch_end(epoch, logs)
        if tensorboard_cb is not None:
            tensorboard_cb.on_epoch_end(epoch, dict(logs))
        if epoch_end.stop:
            break
