"""Running one model on several devices: a replica per GPU, fed from one batch queue."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..util import DiluvianError

__all__ = ["MultiDevicePredictor", "fill_devices", "make_parallel", "replicate_for_devices"]

log = logging.getLogger(__name__)


def fill_devices(num_gpus: int, device_type: str = "GPU") -> list[str]:
    """Names of the devices a fill with ``num_gpus`` should use.

    ``CUDA_VISIBLE_DEVICES`` set by the user already limits what TensorFlow
    sees; of those, the first ``num_gpus`` are used. One or no GPU: ``[]``
    (the model runs where TensorFlow places it).

    Raises
    ------
    DiluvianError
        If more GPUs are asked for than TensorFlow sees.
    """
    if num_gpus <= 1:
        return []
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices(device_type)]
    if len(devices) < num_gpus:
        raise DiluvianError(
            f"[training] num_gpus = {num_gpus} but TensorFlow sees {len(devices)} "
            f"{device_type} device(s) {devices} (check CUDA_VISIBLE_DEVICES)")
    return devices[:num_gpus]


def replicate_for_devices(model, devices: list[str]) -> list:
    """One copy of ``model`` (same weights and dtype policy) placed on each device."""
    import keras
    import tensorflow as tf

    weights = model.get_weights()
    replicas = []
    for device in devices:
        with tf.device(device):
            clone = keras.models.clone_model(model)
            clone.set_weights(weights)
        replicas.append(clone)
    return replicas


class MultiDevicePredictor:
    """``predictor(images, masks)`` that splits each batch across model replicas.

    Every model call of a fill (``move_batch_size`` FOVs) is cut into as many
    contiguous parts as there are devices; the parts are predicted at the same
    time, each by its device's replica, and put back together in order, so
    results equal those of one replica on the whole batch.

    Parameters
    ----------
    model : keras.Model
        The model to replicate.
    devices : list of str
        TensorFlow device names, e.g. ``['/device:GPU:0', '/device:GPU:1']``.
    """

    def __init__(self, model, devices: list[str]):
        if not devices:
            raise DiluvianError("MultiDevicePredictor needs at least one device")
        self.devices = list(devices)
        self.replicas = replicate_for_devices(model, self.devices)
        self._pool = ThreadPoolExecutor(max_workers=len(self.devices),
                                        thread_name_prefix="diluvian-device")
        log.info("filling with %d model replicas on %s", len(self.devices), self.devices)

    def _run(self, k: int, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        from ..predictor import as_predictor

        with tf.device(self.devices[k]):
            return as_predictor(self.replicas[k])(images, masks)

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        parts = [p for p in np.array_split(np.arange(len(images)), len(self.devices)) if len(p)]
        if len(parts) == 1:
            return self._run(0, images, masks)
        futures = [self._pool.submit(self._run, k, images[p[0]:p[-1] + 1], masks[p[0]:p[-1] + 1])
                   for k, p in enumerate(parts)]
        return np.concatenate([f.result() for f in futures])

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=True)


def make_parallel(model, gpus: int | None = None):
    """A data-parallel copy of ``model`` over ``gpus`` GPUs (diluvian 0.0.6's name).

    Built on today's ``tf.distribute.MirroredStrategy``: the copy (same
    weights, and compiled like ``model`` if it was) splits every training
    and prediction batch across the GPUs. With ``gpus`` (default: every GPU
    TensorFlow sees) of one or none, ``model`` itself is returned.
    """
    import keras
    import tensorflow as tf

    if gpus is None:
        gpus = len(tf.config.list_logical_devices("GPU"))
    if int(gpus) <= 1:
        return model
    strategy = tf.distribute.MirroredStrategy(devices=fill_devices(int(gpus)))
    with strategy.scope():
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        if getattr(model, "optimizer", None) is not None and getattr(model, "loss", None):
            optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
            clone.compile(optimizer=optimizer, loss=model.loss)
    return clone
