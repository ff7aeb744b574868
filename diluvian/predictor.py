"""The predictor interface between networks and the flood-fill engine.

A model is anything :func:`as_predictor` can turn into
``predictor(images, masks) -> probs``. This module imports neither Keras nor
the fill engine, so :mod:`diluvian.network` (multi-device predictors) and
:mod:`diluvian.regions` (the engine) both build on it without importing each
other; ``diluvian.regions.as_predictor`` is its documented name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Predictor", "as_predictor"]

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
