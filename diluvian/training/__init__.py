"""Training flood-filling networks: data, augmentation, moving training, validation.

Submodules: :mod:`~diluvian.training.augment` (augmentations, plain NumPy),
:mod:`~diluvian.training.data` (seeded samples, fill-factor weights, the
Keras ``PyDataset``), :mod:`~diluvian.training.moving` (moving training),
:mod:`~diluvian.training.validation` (fixed seeded
validation fills and scores) and :mod:`~diluvian.training.train`
(:func:`train_network`, :func:`validate_model`, moving training).

Importing this package does not import TensorFlow; training does.
"""

from .augment import make_augmentations
from .compat006 import (
    DataGenerator,
    EarlyAbort,
    EarlyAbortException,
    GeneratorReset,
    GeneratorSubvolumeMetric,
    MovingTrainingGenerator,
    build_training_gen,
    build_validation_gen,
    get_output_margin,
    patch_prediction_copy,
)
from .data import TrainingData, fill_factor_bin_weights, fill_factor_weights
from .moving import fit_moving
from .train import (
    DEFAULT_MODEL_OUTPUT_FILEBASE,
    MovingTrainer,
    TrainingResult,
    format_validation_table,
    plot_history,
    show_training_sample,
    train_network,
    validate_model,
    write_history_csv,
)
from .validation import ValidationSet

__all__ = [
    "DEFAULT_MODEL_OUTPUT_FILEBASE",
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
    "MovingTrainer",
    "TrainingData",
    "TrainingResult",
    "ValidationSet",
    "fill_factor_bin_weights",
    "fill_factor_weights",
    "fit_moving",
    "format_validation_table",
    "make_augmentations",
    "plot_history",
    "show_training_sample",
    "train_network",
    "validate_model",
    "write_history_csv",
]
