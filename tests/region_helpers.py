"""Helpers shared by the flood-fill engine tests."""

from __future__ import annotations

import numpy as np

from diluvian.config import CONFIG, ModelConfig

#: Cubic FOV edge and move step of the engine tests' default model config.
FOV = 7
STEP = 2


def model_config(**overrides) -> ModelConfig:
    """The default ``[model]`` with ``FOV``-voxel cubic FOVs and move step ``STEP``."""
    settings = CONFIG.model.settings()
    settings.update(input_fov_shape=[FOV] * 3, output_fov_shape=[FOV] * 3,
                    output_fov_move_fraction=FOV // STEP)
    settings.update(overrides)
    return ModelConfig(settings)


def ball(shape, centre, radius) -> np.ndarray:
    """Boolean ball of ``radius`` voxels around ``centre`` in a volume of ``shape``."""
    z, y, x = np.ogrid[tuple(slice(0, s) for s in shape)]
    return ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= radius ** 2
