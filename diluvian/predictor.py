"""The predictor interface between networks and the flood-fill engine.

A model is anything :func:`as_predictor` can turn into
``predictor(images, masks) -> probs``. This module imports neither Keras nor
the fill engine, so :mod:`diluvian.network` (multi-device predictors) and
:mod:`diluvian.regions` (the engine) both build on it without importing each
other; ``diluvian.regions.as_predictor`` is its documented name.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MemoPredictor", "Predictor", "as_predictor"]

#: ``predictor(images, masks) -> probs``: float32 ``(N, *input_fov)`` twice in,
#: ``(N, *output_fov)`` probabilities out.
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def as_predictor(model: Any) -> Predictor:
    """Return ``predictor(images, masks) -> probs`` for a Keras model or a callable.

    Parameters
    ----------
    model : keras.Model or callable
        Anything with ``predict_on_batch`` (duck-typed; Keras is not
        imported) taking ``[images[..., None], masks[..., None]]`` and
        returning probabilities shaped ``(N, *output_fov_shape, 1)``; or a
        callable already following the predictor interface, returned as is.

    Returns
    -------
    callable
        ``predictor(images, masks)`` with ``images`` and ``masks`` float32
        ``(N, *input_fov_shape)``, returning ``(N, *output_fov_shape)``.

    Examples
    --------
    >>> p = as_predictor(lambda images, masks: masks)
    >>> p(np.zeros((1, 3, 3, 3), np.float32), np.ones((1, 3, 3, 3), np.float32)).shape
    (1, 3, 3, 3)
    """
    predict_on_batch = getattr(model, "predict_on_batch", None)
    if predict_on_batch is not None:
        def predictor(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
            out = predict_on_batch([images[..., None], masks[..., None]])
            if isinstance(out, (list, tuple)):
                out = out[0]
            return np.asarray(out)[..., 0]

        predictor.model = model  # type: ignore[attr-defined]
        return predictor
    if callable(model):
        return model
    raise TypeError(
        f"model must have predict_on_batch or be callable predictor(images, masks), "
        f"got {type(model).__name__}")


class MemoPredictor:
    """A predictor that does not evaluate an input it has seen again: it returns the output then.

    A prediction is a function of its two inputs alone (the image and mask
    fields of view), so two fills of one volume (a consensus, a resumed or
    repeated fill) can share every evaluation whose inputs agree to the bit:
    a region seeded where the other fill seeded one, and moving as it did,
    asks exactly the same questions. Inputs are keyed by a 128-bit BLAKE2b
    digest of their bytes; outputs are kept, oldest dropped first, up to
    ``max_bytes``.

    Parameters
    ----------
    model : keras.Model or callable
        Anything :func:`as_predictor` takes.
    max_bytes : int
        Memory for remembered outputs (default 1 GiB).

    Attributes
    ----------
    hits, misses : int
        Fields of view answered from memory and evaluated.

    Examples
    --------
    >>> calls = []
    >>> memo = MemoPredictor(lambda images, masks: calls.append(len(images)) or masks * 2)
    >>> x = np.ones((2, 3, 3, 3), np.float32)
    >>> float(memo(x, x).sum()), float(memo(x, x).sum()), calls, memo.hits
    (108.0, 108.0, [2], 2)
    """

    def __init__(self, model: Any, max_bytes: int = 1 << 30):
        self.predict = as_predictor(model)
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._outputs: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def _key(image: np.ndarray, mask: np.ndarray) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        for array in (image, mask):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
        return digest.digest()

    def _remember(self, key: bytes, output: np.ndarray) -> None:
        output = np.array(output, copy=True)
        if output.nbytes > self.max_bytes:
            return
        self._outputs[key] = output
        self._bytes += output.nbytes
        while self._bytes > self.max_bytes:
            self._bytes -= self._outputs.popitem(last=False)[1].nbytes

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        keys = [self._key(i, m) for i, m in zip(images, masks)]
        known = [self._outputs.get(k) for k in keys]
        todo = [n for n, out in enumerate(known) if out is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = np.asarray(self.predict(images[todo], masks[todo]))
            for n, out in zip(todo, fresh):
                known[n] = out
                self._remember(keys[n], out)
        return np.stack(known)
