"""Global configuration objects.

This module contains the configuration objects for storing, validating and
loading configuration state. A :class:`Config` holds ``random_seed`` and one
object per TOML table: ``[volume]`` (:class:`VolumeConfig`), ``[model]``
(:class:`ModelConfig`), ``[network]`` (:class:`NetworkConfig`),
``[optimizer]`` (:class:`OptimizerConfig`), ``[training]``
(:class:`TrainingConfig`), ``[postprocessing]``
(:class:`PostprocessingConfig`) and ``[fill]`` (:class:`FillConfig`).

Defaults live in ``diluvian/conf/default.toml``. Files given later override
only the keys they set. Every key is validated when loaded: an unknown
section or key, or a value of the wrong type or shape, raises
:class:`diluvian.util.DiluvianError` naming the file, the key and what was
expected (with the closest valid names for a misspelt key).

The command line builds one :class:`Config` and passes it down; the
module-level :data:`CONFIG` is only the documented default used when a Python
caller passes none.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from .util import DiluvianError

__all__ = [
    "BaseConfig",
    "CONFIG",
    "Config",
    "FillConfig",
    "ModelConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "PostprocessingConfig",
    "TrainingConfig",
    "VolumeConfig",
    "default_config_path",
]


def default_config_path() -> Path:
    """Path of the packaged ``default.toml``."""
    return Path(str(resources.files("diluvian") / "conf" / "default.toml"))


# --------------------------------------------------------------------------
# Field kinds: each checks and converts one TOML value.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A configuration key: its kind, whether it may be unset, and options."""

    kind: str  # int, float, bool, str, vec (int vector), fvec, dict, list, any
    optional: bool = False
    length: int | None = None  # for vectors
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.kind == "vec":
            return f"a list of {self.length or 'N'} integers"
        if self.kind == "fvec":
            return "a list of numbers"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "dict": "a table",
            "list": "a list",
            "any": "a value",
        }[self.kind]

    def convert(self, value: Any) -> Any:
        """Return the stored form of ``value``, or raise ``ValueError``."""
        k = self.kind
        if k == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
            return value
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            return float(value)
        if k == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if k == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise ValueError
            return value
        if k in ("vec", "fvec"):
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise ValueError
            items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
            if self.length is not None and len(items) != self.length:
                raise ValueError
            if k == "vec":
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                    raise ValueError
                return np.array(items, dtype=np.int64)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                raise ValueError
            return [float(v) for v in items]
        if k == "dict":
            if not isinstance(value, dict):
                raise ValueError
            return copy.deepcopy(value)
        if k == "list":
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return copy.deepcopy(list(value))
        return copy.deepcopy(value)


def _to_toml_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_toml_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_toml_value(v) for v in value]
    return value


class BaseConfig:
    """Base class for configuration objects.

    A section is built from a settings dict; every key must be one of the
    section's ``FIELDS``. String representation yields TOML that parses back
    to a dictionary that initializes an equal configuration object.
    """

    SECTION: str = ""
    FIELDS: dict[str, Field] = {}
    #: Whether unknown keys are kept (only :class:`OptimizerConfig`).
    PASSTHROUGH = False

    def __init__(self, settings: dict[str, Any], source: str | dict[str, str] = "<settings>"):
        self._extra: dict[str, Any] = {}
        sources = source if isinstance(source, dict) else {}
        default_source = (", ".join(sorted(set(sources.values()))) or "<settings>") if isinstance(
            source, dict) else source
        for name, value in settings.items():
            source = sources.get(name, default_source)
            field = self.FIELDS.get(name)
            if field is None:
                if self.PASSTHROUGH:
                    self._extra[name] = copy.deepcopy(value)
                    setattr(self, name, copy.deepcopy(value))
                    continue
                raise DiluvianError(_unknown_key_message(source, self.SECTION, name, self.FIELDS))
            try:
                setattr(self, name, field.convert(value))
            except ValueError:
                raise DiluvianError(
                    f"{source}: [{self.SECTION}] {name} = {value!r} is invalid: "
                    f"expected {field.describe()}"
                ) from None
        source = default_source
        for name, field in self.FIELDS.items():
            if name not in settings:
                if not field.optional:
                    raise DiluvianError(f"{source}: [{self.SECTION}] is missing the key {name!r}")
                setattr(self, name, None)
        self._validate(source)

    def _validate(self, source: str) -> None:
        """Check relations between keys; raise :class:`DiluvianError` on failure."""

    def settings(self) -> dict[str, Any]:
        """Settings dict (TOML-ready) that re-creates this object; unset keys are omitted."""
        out = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = _to_toml_value(value)
        for name in self._extra:
            out[name] = _to_toml_value(getattr(self, name))
        return out

    def __str__(self) -> str:
        return tomli_w.dumps({self.SECTION: self.settings()})

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.settings() == other.settings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings()!r})"


def _unknown_key_message(source: str, section: str, name: str, valid) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"; valid keys: {', '.join(sorted(valid))}"
    )
    where = f"[{section}] " if section else ""
    return f"{source}: unknown key {where}{name!r}{hint}"


class VolumeConfig(BaseConfig):
    """Configuration for the volumes used for training and filling.

    Attributes
    ----------
    resolution : ndarray of int
        Resolution (nm per voxel, Z, Y, X) to which volumes are downsampled
        before training or filling.
    label_downsampling : str
        How labels are downsampled: ``'majority'`` (most frequent label of the
        sub-voxels) or ``'conjunction'`` (label only where all sub-voxels
        agree, else 0).
    """

    SECTION = "volume"
    FIELDS = {
        "resolution": Field("vec", length=3),
        "label_downsampling": Field("str", choices=("majority", "conjunction")),
    }


class ModelConfig(BaseConfig):
    """Configuration for non-network aspects of the flood filling model.

    Attributes
    ----------
    input_fov_shape : ndarray of int
        Input field of view shape in voxels for each flood filling move.
    output_fov_shape : ndarray of int
        Output field of view shape in voxels for each flood filling move. Can
        not be larger than ``input_fov_shape``.
    output_fov_move_fraction : int
        Move size as a fraction of the output field of view shape.
    v_true, v_false : float
        Soft target values for in-object and out-of-object mask voxels.
    t_move : float
        Threshold mask probability in the move check plane to queue a move to
        that position.
    t_final : float, optional
        Threshold mask probability to produce the final segmentation.
        Defaults to ``t_move``.
    move_check_thickness : int
        Thickness of move check plane in voxels. Setting this greater than 1
        is useful to make moves more robust even if the move grid aligns with
        missing sections or image artifacts.
    move_priority : str
        How to prioritize the move queue: ``'descending'`` by descending mask
        probability in the move check plane (default), ``'proximity'`` to
        prioritize moves minimizing L1 path distance from the seed, or
        ``'random'``.
    move_recheck : bool
        If true, when moves are retrieved from the queue a cube in the
        probability mask is checked around the move location. If no voxel in
        this cube is at least the move threshold, the move is skipped. The
        cube size is one move step in each direction.
    training_subv_shape : ndarray of int, optional
        Shape of the subvolumes used during moving training. Defaults to
        ``input_fov_shape`` (no moves).
    validation_subv_shape : ndarray of int, optional
        Shape of the subvolumes used during training validation. Defaults to
        ``input_fov_shape``.
    """

    SECTION = "model"
    FIELDS = {
        "input_fov_shape": Field("vec", length=3),
        "output_fov_shape": Field("vec", length=3),
        "output_fov_move_fraction": Field("int"),
        "v_true": Field("float"),
        "v_false": Field("float"),
        "t_move": Field("float"),
        "t_final": Field("float", optional=True),
        "move_check_thickness": Field("int"),
        "move_priority": Field("str", choices=("descending", "proximity", "random")),
        "move_recheck": Field("bool"),
        "training_subv_shape": Field("vec", optional=True, length=3),
        "validation_subv_shape": Field("vec", optional=True, length=3),
    }

    def _validate(self, source: str) -> None:
        s = f"{source}: [model]"
        if np.any(self.input_fov_shape < 1) or np.any(self.output_fov_shape < 1):
            raise DiluvianError(f"{s} FOV shapes must be positive")
        if np.any(self.output_fov_shape > self.input_fov_shape):
            raise DiluvianError(
                f"{s} output_fov_shape {self.output_fov_shape.tolist()} can not be larger than "
                f"input_fov_shape {self.input_fov_shape.tolist()}"
            )
        if self.output_fov_move_fraction < 1:
            raise DiluvianError(f"{s} output_fov_move_fraction must be at least 1")
        if np.any(self.move_step < 1):
            raise DiluvianError(
                f"{s} output_fov_move_fraction {self.output_fov_move_fraction} gives a zero "
                f"move step for output_fov_shape {self.output_fov_shape.tolist()}"
            )
        if self.move_check_thickness < 1:
            raise DiluvianError(f"{s} move_check_thickness must be at least 1")
        for name in ("v_true", "v_false", "t_move", "t_final"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise DiluvianError(f"{s} {name} = {v} must lie in [0, 1]")
        for name in ("training_subv_shape", "validation_subv_shape"):
            v = getattr(self, name)
            if v is not None and np.any(v < self.input_fov_shape):
                raise DiluvianError(
                    f"{s} {name} {v.tolist()} must be at least input_fov_shape "
                    f"{self.input_fov_shape.tolist()}"
                )

    @property
    def move_step(self) -> np.ndarray:
        """Move step in voxels: ``output_fov_shape // output_fov_move_fraction``."""
        return self.output_fov_shape // self.output_fov_move_fraction

    @property
    def t_final_value(self) -> float:
        """``t_final`` if set, else ``t_move``."""
        return self.t_move if self.t_final is None else self.t_final

    def subv_moves(self, shape) -> int:
        """Number of FOV positions on the move lattice inside a subvolume of ``shape``."""
        shape = np.asarray(shape)
        return int(np.prod((shape - self.input_fov_shape) // self.move_step + 1))

    @property
    def training_subv_moves(self) -> int:
        """:meth:`subv_moves` of the training subvolume shape."""
        return self.subv_moves(self.training_subv_shape_value)

    @property
    def validation_subv_moves(self) -> int:
        """:meth:`subv_moves` of the validation subvolume shape."""
        return self.subv_moves(self.validation_subv_shape_value)

    @property
    def training_subv_shape_value(self) -> np.ndarray:
        """``training_subv_shape`` if set, else ``input_fov_shape``."""
        v = self.training_subv_shape
        return self.input_fov_shape.copy() if v is None else v

    @property
    def validation_subv_shape_value(self) -> np.ndarray:
        """``validation_subv_shape`` if set, else ``input_fov_shape``."""
        v = self.validation_subv_shape
        return self.input_fov_shape.copy() if v is None else v


class NetworkConfig(BaseConfig):
    """Configuration for the flood filling network architecture.

    Attributes
    ----------
    factory : str
        Module and function name for a factory method creating the network,
        so a custom architecture can be plugged in without modifying
        diluvian (see :mod:`diluvian.network`).
    transpose : bool
        If true, loaded networks reverse the order of axes for inputs and
        outputs. Data is ZYX row-major; old networks were XYZ.
    rescale_image : bool
        If true, rescale the input image intensity from [0, 1) to [-1, 1).
    num_modules : int
        Number of convolution modules, each a skip link in parallel with
        ``num_layers_per_module`` convolution layers.
    num_layers_per_module : int
        Layers in each organizational module: convolutions per module, or
        convolutions before and after each down- and up-sampling in a U-Net
        level.
    convolution_dim : ndarray of int
        Shape of the convolution for each layer.
    convolution_filters : int
        Number of convolution filters for each layer.
    convolution_activation : str
        Keras activation applied after convolution layers.
    convolution_padding : str
        ``'same'`` (default) or ``'valid'``.
    initialization : str
        Keras initializer for all layers.
    output_activation : str
        Keras activation of the final network output.
    dropout_probability : float
        Probability for dropout layers; zero includes none.
    batch_normalization : bool
        Whether to apply batch normalization (after activation).
    unet_depth : int
        For U-Net models, the total number of downsampled levels.
    unet_downsample_rate : ndarray of int
        Frequency in levels to downsample each axis: all ones downsamples
        every axis at each level; ``[2, 1, 1]`` downsamples Z every other
        level; 0 never downsamples that axis.
    unet_downsample_mode : str
        ``'fixed_rate'`` (use ``unet_downsample_rate``) or
        ``'isotropy_approximating'`` (downsample the finest axes until the
        voxels are as isotropic as possible, using ``resolution``).
    resolution : ndarray of int, optional
        Resolution of the input image data, needed for
        ``'isotropy_approximating'``. Defaults to ``[volume] resolution``.
    """

    SECTION = "network"
    FIELDS = {
        "factory": Field("str"),
        "transpose": Field("bool"),
        "rescale_image": Field("bool"),
        "num_modules": Field("int"),
        "num_layers_per_module": Field("int"),
        "convolution_dim": Field("vec", length=3),
        "convolution_filters": Field("int"),
        "convolution_activation": Field("str"),
        "convolution_padding": Field("str", choices=("same", "valid")),
        "initialization": Field("str"),
        "output_activation": Field("str"),
        "dropout_probability": Field("float"),
        "batch_normalization": Field("bool"),
        "unet_depth": Field("int"),
        "unet_downsample_rate": Field("vec", length=3),
        "unet_downsample_mode": Field("str", choices=("fixed_rate", "isotropy_approximating")),
        "resolution": Field("vec", optional=True, length=3),
    }

    def _validate(self, source: str) -> None:
        if not 0.0 <= self.dropout_probability < 1.0:
            raise DiluvianError(
                f"{source}: [network] dropout_probability = {self.dropout_probability} "
                "must lie in [0, 1)"
            )
        for name in ("num_modules", "num_layers_per_module", "convolution_filters"):
            if getattr(self, name) < 1:
                raise DiluvianError(f"{source}: [network] {name} must be at least 1")
        if self.unet_depth < 0:
            raise DiluvianError(f"{source}: [network] unet_depth must not be negative")


class OptimizerConfig(BaseConfig):
    """Configuration for the network optimizer.

    Any other key in ``[optimizer]`` is kept as an attribute and passed to the
    optimizer's constructor as a keyword argument, e.g. ``learning_rate``,
    ``momentum``, ``nesterov``, ``clipnorm``.

    Attributes
    ----------
    klass : str
        Class name of the Keras optimizer (``keras.optimizers.<klass>``).
    loss : str
        Name of the Keras loss function.
    """

    SECTION = "optimizer"
    PASSTHROUGH = True
    FIELDS = {"klass": Field("str"), "loss": Field("str")}

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the optimizer constructor."""
        return {k: getattr(self, k) for k in self._extra}


class TrainingConfig(BaseConfig):
    """Configuration for model training.

    Attributes
    ----------
    num_gpus : int
        Number of GPUs to use for data-parallelism.
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
        for name in ("num_gpus", "num_workers", "gpu_batch_size", "total_epochs"):
            if getattr(self, name) < (0 if name == "num_workers" else 1):
                raise DiluvianError(f"{s} {name} = {getattr(self, name)} is too small")
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


class PostprocessingConfig(BaseConfig):
    """Configuration for segmentation processing after flood filling.

    Attributes
    ----------
    closing_shape : ndarray of int, optional
        Shape of the structuring element for morphological closing, in
        voxels. Unset: no closing.
    """

    SECTION = "postprocessing"
    FIELDS = {"closing_shape": Field("vec", optional=True, length=3)}


class FillConfig(BaseConfig):
    """Configuration for dense filling of whole volumes.

    Attributes
    ----------
    checkpoint_interval : int
        Write a resumable checkpoint of the segmentation every this many
        committed bodies (and on SIGINT/SIGTERM).
    min_body_size : int
        Bodies with fewer voxels after post-processing are discarded.
    block_shape : ndarray of int, optional
        If set, fill blockwise on Dask: the volume is cut into blocks of this
        core shape (Z, Y, X voxels).
    block_overlap : ndarray of int
        Margin in voxels added on each side of a block core; objects are
        reconciled across these overlaps.
    reconcile_threshold : float
        Two objects of neighbouring blocks are merged when the voxels they
        share in the overlap are at least this fraction of the smaller of the
        two objects' voxels in the overlap.
    """

    SECTION = "fill"
    FIELDS = {
        "checkpoint_interval": Field("int"),
        "min_body_size": Field("int"),
        "block_shape": Field("vec", optional=True, length=3),
        "block_overlap": Field("vec", length=3),
        "reconcile_threshold": Field("float"),
    }


_SECTIONS: dict[str, type[BaseConfig]] = {
    "volume": VolumeConfig,
    "model": ModelConfig,
    "network": NetworkConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
    "postprocessing": PostprocessingConfig,
    "fill": FillConfig,
}


def _read_toml(filename: str | Path) -> dict[str, Any]:
    path = Path(filename)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DiluvianError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise DiluvianError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DiluvianError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise DiluvianError(f"{path}: is not a text TOML file") from None


class Config:
    """A complete collection of configuration objects.

    Parameters
    ----------
    settings_collection : sequence of dict, optional
        Settings dicts (as parsed from TOML) layered, in order, over the
        packaged defaults. Each overrides only the keys it sets.
    sources : sequence of str, optional
        Name of each settings dict for error messages (e.g. its file name).

    Attributes
    ----------
    random_seed : int
        Seed for every random generator diluvian creates.
    volume, model, network, optimizer, training, postprocessing, fill
        The section objects.
    """

    SECTIONS = _SECTIONS

    def __init__(self, settings_collection=None, sources=None):
        self._build(list(settings_collection or []), list(sources or []))

    def _build(self, collection: list[dict], sources: list[str]) -> None:
        default_path = default_config_path()
        layers = [(str(default_path), _read_toml(default_path))]
        for i, settings in enumerate(collection):
            layers.append((sources[i] if i < len(sources) else "<settings>", settings))
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for source, settings in layers:
            if not isinstance(settings, dict):
                raise DiluvianError(f"{source}: expected a table of settings")
            for key, value in settings.items():
                if key == "random_seed":
                    merged[key] = value
                    origin[key] = source
                elif key in _SECTIONS:
                    if not isinstance(value, dict):
                        raise DiluvianError(f"{source}: [{key}] must be a table")
                    section = merged.setdefault(key, {})
                    for name, v in value.items():
                        section[name] = v
                        origin[f"{key}.{name}"] = source
                else:
                    valid = ["random_seed", *_SECTIONS]
                    raise DiluvianError(_unknown_key_message(source, "", key, valid).replace(
                        "unknown key", "unknown section or key"))
        seed = merged.get("random_seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise DiluvianError(f"{origin['random_seed']}: random_seed = {seed!r} is invalid: "
                                "expected an integer")
        self.random_seed = seed
        self._sources = origin
        for name, klass in _SECTIONS.items():
            section = merged.get(name, {})
            # Name the file that set each offending key in errors.
            key_sources = {k: origin[f"{name}.{k}"] for k in section}
            setattr(self, name, klass(section, source=key_sources))
        if self.network.resolution is None:
            self.network.resolution = self.volume.resolution.copy()
            self._network_resolution_default = True
        else:
            self._network_resolution_default = False

    @classmethod
    def from_toml(cls, *filenames) -> Config:
        """Build a Config from TOML files layered over the defaults.

        Parameters
        ----------
        *filenames : str or path-like
            TOML configuration files; later files override only the keys
            they set.
        """
        config = cls.__new__(cls)
        config._build([_read_toml(f) for f in filenames], [str(f) for f in filenames])
        return config

    def explicitly_set(self, dotted: str) -> bool:
        """Whether ``'section.key'`` (or ``'random_seed'``) was set by a file other than the defaults.

        Settings carried by a model file override only keys that are not
        explicitly set.
        """
        source = self._sources.get(dotted)
        return source is not None and source != str(default_config_path())

    def settings(self) -> dict[str, Any]:
        """Nested settings dict (TOML-ready) that re-creates this configuration."""
        out: dict[str, Any] = {}
        if self.random_seed is not None:
            out["random_seed"] = self.random_seed
        for name in _SECTIONS:
            section = getattr(self, name).settings()
            if name == "network" and self._network_resolution_default:
                section.pop("resolution", None)
            out[name] = section
        return out

    def to_toml(self, filename) -> None:
        """Write this configuration as TOML to ``filename`` (atomically)."""
        from .util import atomic_output

        with atomic_output(filename) as tmp:
            tmp.write_text(str(self))

    def __str__(self) -> str:
        return tomli_w.dumps(self.settings())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self.settings() == other.settings()

    def __repr__(self) -> str:
        return f"Config(random_seed={self.random_seed!r})"

    def copy(self) -> Config:
        """An independent copy of this configuration."""
        return copy.deepcopy(self)

    def get(self, dotted: str) -> Any:
        """Value of a dotted property such as ``'training.gpu_batch_size'``.

        Raises
        ------
        DiluvianError
            If the section or key does not exist (naming the closest ones).
        """
        parts = dotted.split(".")
        if parts == ["random_seed"]:
            return self.random_seed
        section_name = parts[0]
        if section_name not in _SECTIONS:
            raise DiluvianError(_unknown_key_message(
                "check-config", "", section_name, ["random_seed", *_SECTIONS]).replace(
                    "unknown key", "unknown section"))
        section = getattr(self, section_name)
        if len(parts) == 1:
            return section.settings()
        value: Any = section
        for i, part in enumerate(parts[1:]):
            if i == 0:
                valid = list(section.FIELDS) + list(section._extra)
                if part not in valid and not hasattr(type(section), part):
                    raise DiluvianError(_unknown_key_message("check-config", section_name,
                                                             part, valid))
                value = getattr(section, part)
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                raise DiluvianError(f"check-config: {dotted!r} does not name a value")
        return value


#: The documented default configuration (``diluvian/conf/default.toml``).
#: Functions use it when a caller passes no ``config``; the command line
#: always builds and passes its own.
CONFIG = Config()
