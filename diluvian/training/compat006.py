"""diluvian 0.0.6's training names kept beside today's: thin doors onto :mod:`diluvian.training`.

:class:`DataGenerator` and :class:`MovingTrainingGenerator` iterate over
today's :class:`~diluvian.training.TrainingData` and
:class:`~diluvian.training.MovingTrainer`; the callbacks are small Keras
callbacks (Keras is imported only when one is made).
"""

from __future__ import annotations

import numpy as np

from ..util import DiluvianError
from .data import TrainingData

__all__ = [
    "DataGenerator",
    "EarlyAbort",
    "EarlyAbortException",
    "GeneratorReset",
    "GeneratorSubvolumeMetric",
    "MovingTrainingGenerator",
    "build_training_gen",
    "build_validation_gen",
    "get_output_margin",
    "patch_prediction_copy",
]


class EarlyAbortException(DiluvianError):
    """Training was aborted by :class:`EarlyAbort` (0.0.6's exception)."""


def get_output_margin(model_config) -> np.ndarray:
    """Z, Y, X voxels between the input and output FOV on each side."""
    return (np.asarray(model_config.input_fov_shape, dtype=np.int64)
            - np.asarray(model_config.output_fov_shape, dtype=np.int64)) // 2


def patch_prediction_copy(model):
    """Returns ``model``: 0.0.6 patched Keras to copy predictions; Keras 3 always does."""
    return model


class DataGenerator:
    """Batches of :class:`~diluvian.training.TrainingData`, epoch by epoch (0.0.6's name).

    ``len(gen)`` and ``steps_per_epoch`` are the batches per epoch;
    ``gen[i]`` is batch ``i`` of the current epoch and iterating yields
    batches forever, moving to the next epoch after each
    ``steps_per_epoch`` (or at :meth:`on_epoch_end`). :meth:`reset` returns
    to epoch 0, so the same batches come again.
    """

    def __init__(self, data: TrainingData):
        self.data = data
        self.epoch = 0
        self._index = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.data.batch(index, self.epoch)

    def __iter__(self):
        return self

    def __next__(self):
        if self._index >= len(self):
            self.on_epoch_end()
        batch = self[self._index]
        self._index += 1
        return batch

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._index = 0

    def reset(self) -> None:
        self.epoch = 0
        self._index = 0


def build_training_gen(volumes, config=None) -> DataGenerator:
    """The training batches of ``volumes`` as configured (``training_size`` per volume)."""
    config = _config(config)
    return DataGenerator(TrainingData(volumes, config, stream="training", augment=True))


def build_validation_gen(volumes, config=None) -> DataGenerator:
    """The validation batches of ``volumes`` (``validation_size`` per volume)."""
    config = _config(config)
    data = TrainingData(volumes, config, stream="validation",
                        augment=bool(config.training.augment_validation),
                        num_samples=config.training.validation_size * len(volumes))
    return DataGenerator(data)


def _config(config):
    if config is None:
        from ..config import CONFIG

        return CONFIG
    return config


class MovingTrainingGenerator:
    """Moving-training batches ``((images, masks), targets)`` of a
    :class:`~diluvian.training.MovingTrainer` (0.0.6's name), forever."""

    def __init__(self, trainer):
        self.trainer = trainer

    def __iter__(self):
        return self

    def __next__(self):
        _, inputs, targets = self.trainer.next_batch()
        return inputs, targets


def _callback_base():
    import keras

    return keras.callbacks.Callback


def EarlyAbort(threshold: float, epoch: int, monitor: str = "val_loss"):  # noqa: N802
    """Keras callback: after ``epoch`` (1-based) stop training unless ``monitor`` < ``threshold``.

    Stopping sets ``model.stop_training`` and records ``aborted``; 0.0.6
    users catching :class:`EarlyAbortException` may call ``check()``.
    """

    class _EarlyAbort(_callback_base()):
        def __init__(self):
            super().__init__()
            self.threshold, self.epoch, self.monitor = float(threshold), int(epoch), monitor
            self.aborted = False

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if epoch + 1 == self.epoch and not (value is not None and value < self.threshold):
                self.aborted = True
                self.model.stop_training = True

        def check(self):
            if self.aborted:
                raise EarlyAbortException(f"{self.monitor} not below {self.threshold} after "
                                          f"epoch {self.epoch}")

    return _EarlyAbort()


def GeneratorReset(generator):  # noqa: N802
    """Keras callback resetting a generator (``reset()``) at each epoch's end."""

    class _GeneratorReset(_callback_base()):
        def on_epoch_end(self, epoch, logs=None):
            generator.reset()

    return _GeneratorReset()


def GeneratorSubvolumeMetric(metric, generator, name: str = "subv_metric",  # noqa: N802
                             threshold: bool = True, t: float = 0.5):
    """Keras callback: ``logs[name]`` = mean ``metric(true, pred)`` over one epoch of ``generator``.

    ``generator`` is a :class:`DataGenerator` (its targets are compared,
    thresholded at ``t`` when ``threshold``, with the model's predictions).
    """

    class _SubvolumeMetric(_callback_base()):
        def on_epoch_end(self, epoch, logs=None):
            values = []
            for i in range(len(generator)):
                (images, masks), targets = generator[i][:2]
                pred = np.asarray(self.model.predict_on_batch([images, masks]))
                y = np.asarray(targets)
                if threshold:
                    y, pred = y > t, pred > t
                values.extend(metric(a, b) for a, b in zip(y, pred))
            if logs is not None:
                logs[name] = float(np.mean(values))

    return _SubvolumeMetric()
