"""The ``[training]`` configuration section."""

from __future__ import annotations

import numpy as np

from ..util import DiluvianError
from .fields import BaseConfig, Field, _unknown_key_message

__all__ = ["TrainingConfig"]


class TrainingConfig(BaseConfig):
    """Configuration for model training.

    Attributes
    ----------
    num_gpus : int
        Number of GPUs to use for data-parallelism; ``diluvian fill`` also
        puts one model replica on each of this many GPUs and splits every
        batch of ``--move-batch-size`` FOVs across them.
    num_workers : int
        Number of workers generating training data.
    gpu_batch_size : int
        Per-GPU batch size; the effective batch size is this times
        ``num_gpus``.
    training_size : int
        Number of samples to use for training from each volume.
    validation_size : int
        Number of samples to use for validation from each volume.
    total_epochs : int
        Maximum number of training epochs.
    reset_generators : bool
        Reset training generators after each epoch, so that the training
        examples at each epoch are identical.
    fill_factor_bins : list of float, optional
        Bin boundaries for filling fractions. If provided, sample loss is
        weighted to increase the contribution of less-frequent bins.
    partitions : dict
        Volume name regex to number of partitions along each axis. Only one
        axis should be greater than 1. Each volume should match at most one
        regex.
    training_partition, validation_partition : dict
        Volume name regex to the index of the partition used for training and
        validation respectively.
    validation_metric : dict
        ``metric``: dotted name of a function taking a true and predicted
        region mask; ``threshold``: whether to threshold the mask for the
        metric (else use mask and target probabilities); ``mode``: ``'min'``
        or ``'max'`` for how to choose the best value; ``args``: keyword
        arguments for the metric.
    patience : int
        Number of epochs after the last best validation metric before
        training stops.
    early_abort_epoch : int, optional
        If set, training checks at the end of this epoch whether validation
        loss is below ``early_abort_loss``; if not, training is aborted (and
        may restart with a new seed with ``--early-restart``).
    early_abort_loss : float, optional
        See ``early_abort_epoch``.
    label_erosion : ndarray of int
        Amount to erode the label mask of each training subvolume in each
        dimension, in voxels: ``[0, 1, 1]`` erodes with a ``[1, 3, 3]``
        structuring element.
    relabel_seed_component : bool
        Relabel training subvolumes to only include the seeded connected
        component.
    augment_validation : bool
        Whether validation data is also augmented.
    augment_use_both : bool
        Whether to use both the augmented and unaugmented version of each
        subvolume, in sequence.
    augment_mirrors : list of int
        Axes along which to mirror for data augmentation.
    augment_permute_axes : list of list of int
        Axis permutations to use for data augmentation.
    augment_missing_data : list of dict
        ``axis`` and ``prob``: an axis along which to blank planes, and the
        probability to blank each plane.
    augment_noise : list of dict
        ``axis``, ``mul`` and ``add``: an axis for independent Gaussian noise
        per plane, and the standard deviations of 1-mean multiplicative and
        0-mean additive noise.
    augment_contrast : list of dict
        ``axis``, ``prob``, ``scaling_mean``, ``scaling_std``,
        ``center_mean`` and ``center_std``: the probability to alter the
        contrast of a plane, and normal distributions to scale contrast and
        move the intensity centre multiplicatively.
    augment_artifacts : list of dict
        ``axis``, ``prob`` and ``volume_file``: an axis along which to add
        artifacts, the probability per plane, and the dataset TOML from which
        to draw artifact patches (image and mask).
    dtype_policy : str
        Precision of training: ``'auto'`` (mixed float16 with loss scaling
        on a GPU, mixed bfloat16 on a CPU with native bfloat16, else
        float32), ``'float32'``, or a Keras mixed policy name.
    sampling : str
        Where training subvolumes are centred: ``'uniform'`` (diluvian
        0.0.6: any voxel) or ``'fill_fraction'`` (Google FFN: evenly across
        ``sampling_bins`` of the fraction of the input FOV that the centre
        voxel's object fills; see :mod:`diluvian.training.sampling`).
    sampling_bins : list of float
        Bin edges of the fill fraction for ``'fill_fraction'``; centres
        whose object fills less than the first edge are never drawn.
    max_minutes : float, optional
        Stop training after this many minutes (wall time): the running
        epoch ends early and is validated as usual.
    validation_fill_shape : list of 3 int, optional
        Also segment a box of this shape (Z, Y, X voxels, clipped) at the
        centre of each validation volume densely after every epoch, with
        ``diluvian fill``'s engine and ``[fill]`` settings, and score it
        against the labels (VOI split + merge, every voxel counted:
        ``val_voi``, ``val_voi_split``, ``val_voi_merge`` in the history).
        The model is then chosen by the lowest ``val_voi`` (what a dense
        fill will give) instead of ``validation_metric``. Unset: off.
    start_margin : float
        A continued run (``train -m``) keeps its starting model unless an
        epoch validates better than it by more than this (in the metric the
        model is chosen by, e.g. ``val_voi``), so validation noise does not
        replace a good model. 0: any better epoch replaces it.
    """

    SECTION = "training"
    FIELDS = {
        "num_gpus": Field("int"),
        "num_workers": Field("int"),
        "gpu_batch_size": Field("int"),
        "training_size": Field("int"),
        "validation_size": Field("int"),
        "total_epochs": Field("int"),
        "reset_generators": Field("bool"),
        "fill_factor_bins": Field("fvec", optional=True),
        "partitions": Field("dict"),
        "training_partition": Field("dict"),
        "validation_partition": Field("dict"),
        "validation_metric": Field("dict"),
        "patience": Field("int"),
        "early_abort_epoch": Field("int", optional=True),
        "early_abort_loss": Field("float", optional=True),
        "label_erosion": Field("vec", length=3),
        "relabel_seed_component": Field("bool"),
        "augment_validation": Field("bool"),
        "augment_use_both": Field("bool"),
        "augment_mirrors": Field("list"),
        "augment_permute_axes": Field("list"),
        "augment_missing_data": Field("list"),
        "augment_noise": Field("list"),
        "augment_contrast": Field("list"),
        "augment_artifacts": Field("list"),
        "dtype_policy": Field("str", choices=("auto", "float32", "mixed_bfloat16",
                                               "mixed_float16")),
        "sampling": Field("str", choices=("uniform", "fill_fraction")),
        "sampling_bins": Field("fvec"),
        "max_minutes": Field("float", optional=True),
        "validation_fill_shape": Field("vec", length=3, optional=True),
        "start_margin": Field("float"),
    }

    _AUGMENT_KEYS = {
        "augment_missing_data": {"axis", "prob"},
        "augment_noise": {"axis", "mul", "add"},
        "augment_contrast": {
            "axis", "prob", "scaling_mean", "scaling_std", "center_mean", "center_std",
        },
        "augment_artifacts": {"axis", "prob", "volume_file"},
    }

    def _validate(self, source: str) -> None:
        s = f"{source}: [training]"
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise DiluvianError(f"{s} max_minutes = {self.max_minutes} must be positive")
        if not self.start_margin >= 0:
            raise DiluvianError(f"{s} start_margin = {self.start_margin} must be at least 0")
        box = self.validation_fill_shape
        if box is not None and np.any(np.asarray(box) < 1):
            raise DiluvianError(f"{s} validation_fill_shape = {np.asarray(box).tolist()} must "
                                "be 3 positive voxel counts")
        edges = np.asarray(self.sampling_bins, dtype=np.float64)
        if edges.size < 1 or np.any(np.diff(edges) <= 0) or edges[0] <= 0 or edges[-1] > 1:
            raise DiluvianError(f"{s} sampling_bins = {edges.tolist()} must be increasing "
                                "fractions in (0, 1]")
        for name in ("num_gpus", "num_workers", "gpu_batch_size", "total_epochs",
                     "training_size", "validation_size", "patience"):
            least = 0 if name in ("num_workers", "validation_size", "patience") else 1
            if getattr(self, name) < least:
                raise DiluvianError(f"{s} {name} = {getattr(self, name)} is too small: it must "
                                    f"be at least {least}")
        for name in ("partitions", "training_partition", "validation_partition"):
            for regex, value in getattr(self, name).items():
                if not (isinstance(value, list) and len(value) == 3
                        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                    raise DiluvianError(
                        f"{s} {name}[{regex!r}] = {value!r} is invalid: expected a list of 3 "
                        "integers"
                    )
        metric = self.validation_metric
        for key in metric:
            if key not in ("metric", "threshold", "mode", "args"):
                raise DiluvianError(_unknown_key_message(
                    source, "training", f"validation_metric.{key}",
                    [f"validation_metric.{k}" for k in ("metric", "threshold", "mode", "args")]))
        if metric.get("mode", "max") not in ("min", "max"):
            raise DiluvianError(f"{s} validation_metric.mode must be 'min' or 'max'")
        for axis in self.augment_mirrors:
            if axis not in (0, 1, 2):
                raise DiluvianError(f"{s} augment_mirrors entry {axis!r} is not an axis 0, 1 or 2")
        for perm in self.augment_permute_axes:
            if sorted(perm) != [0, 1, 2]:
                raise DiluvianError(
                    f"{s} augment_permute_axes entry {perm!r} is not a permutation of [0, 1, 2]")
        for name, keys in self._AUGMENT_KEYS.items():
            for entry in getattr(self, name):
                if not isinstance(entry, dict):
                    raise DiluvianError(f"{s} {name} entries must be tables, got {entry!r}")
                for key in entry:
                    if key not in keys:
                        raise DiluvianError(_unknown_key_message(
                            source, "training", f"{name}.{key}", [f"{name}.{k}" for k in keys]))
                missing = keys - set(entry)
                if missing:
                    raise DiluvianError(f"{s} {name} entry {entry!r} lacks {sorted(missing)}")
        if self.fill_factor_bins is not None and sorted(self.fill_factor_bins) != list(
                self.fill_factor_bins):
            raise DiluvianError(f"{s} fill_factor_bins must be increasing")

    @property
    def batch_size(self) -> int:
        """Global batch size: ``gpu_batch_size * num_gpus``."""
        return self.gpu_batch_size * self.num_gpus
