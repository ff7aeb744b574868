"""Small registered Keras layers used inside diluvian models.

Every piece of a diluvian model is a real, serialisable layer (never a
``Lambda``), so models saved as ``.keras`` files load in Keras' safe mode.
Built-in layers cover most needs (``Rescaling`` for image normalisation,
``Activation("sigmoid")``, ``Add``, ``Permute``); the two here fill the gaps:

- :class:`CentralCrop3D` crops the three spatial axes of a
  ``(batch, z, y, x, channels)`` tensor to a fixed shape, keeping the centre
  (for odd differences the extra voxel is removed from the end, which keeps
  an up-sampled ``padding="same"`` pooled tensor aligned with its skip link);
- :class:`ProbabilityToLogit` converts mask probabilities to logits (clipped)
  for models that work in logit space, such as imported FFN models.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

__all__ = ["CentralCrop3D", "ProbabilityToLogit", "crop_offsets"]

PACKAGE = "diluvian"


def crop_offsets(shape: Sequence[int], target_shape: Sequence[int]) -> list[tuple[int, int]]:
    """Voxels to remove ``(before, after)`` per axis to centre-crop ``shape`` to ``target_shape``.

    Raises
    ------
    ValueError
        If ``target_shape`` is larger than ``shape`` along any axis.

    Examples
    --------
    >>> crop_offsets([34, 10], [33, 6])
    [(0, 1), (2, 2)]
    """
    if len(shape) != len(target_shape):
        raise ValueError(f"shape {list(shape)} and target_shape {list(target_shape)} differ in rank")
    out = []
    for s, t in zip(shape, target_shape):
        s, t = int(s), int(t)
        if t > s:
            raise ValueError(f"cannot crop shape {list(shape)} to the larger {list(target_shape)}")
        before = (s - t) // 2
        out.append((before, s - t - before))
    return out


@keras.saving.register_keras_serializable(package=PACKAGE)
class CentralCrop3D(keras.layers.Layer):
    """Crop the spatial axes of ``(batch, z, y, x, channels)`` to ``target_shape`` (ZYX), centred.

    Parameters
    ----------
    target_shape : sequence of 3 int
        Output spatial shape; must not exceed the input's.
    """

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(int(v) for v in target_shape)
        if len(target_shape) != 3 or min(target_shape) < 1:
            raise ValueError(f"CentralCrop3D target_shape must be 3 positive integers, "
                             f"got {list(target_shape)}")
        self.target_shape = target_shape

    def _offsets(self, input_shape) -> list[tuple[int, int]]:
        spatial = input_shape[1:4]
        if any(s is None for s in spatial):
            raise ValueError(f"CentralCrop3D needs static spatial shapes, got {input_shape}")
        return crop_offsets(spatial, self.target_shape)

    def compute_output_shape(self, input_shape):
        self._offsets(input_shape)
        return (input_shape[0], *self.target_shape, input_shape[4])

    def call(self, inputs):
        (z0, _), (y0, _), (x0, _) = self._offsets(inputs.shape)
        tz, ty, tx = self.target_shape
        return inputs[:, z0:z0 + tz, y0:y0 + ty, x0:x0 + tx, :]

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ProbabilityToLogit(keras.layers.Layer):
    """``log(p / (1 - p))`` of probabilities clipped to ``[epsilon, 1 - epsilon]``, in float32.

    Parameters
    ----------
    epsilon : float
        Clip margin. The default, ``1e-7``, leaves the usual mask values
        (0.05, 0.5, 0.95) untouched and bounds logits to about +-16.
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        epsilon = float(epsilon)
        if not 0.0 < epsilon < 0.5:
            raise ValueError(f"ProbabilityToLogit epsilon must lie in (0, 0.5), got {epsilon}")
        self.epsilon = epsilon

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs):
        p = ops.clip(ops.cast(inputs, "float32"), self.epsilon, 1.0 - self.epsilon)
        return ops.log(p) - ops.log1p(-p)

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
