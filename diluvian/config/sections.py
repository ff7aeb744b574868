"""The configuration sections: one class per TOML table."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..util import DiluvianError
from .fields import BaseConfig, Field
from .training import TrainingConfig

__all__ = [
    "FillConfig",
    "ModelConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "PostprocessingConfig",
    "TrainingConfig",
    "VolumeConfig",
    "allow_move_policy",
]


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
        cube size is one move step in each direction. (With ``move_policy =
        "face_max"`` the move's centre voxel itself is checked.)
    move_policy : str
        Where a move puts the next FOV centre. ``'lattice'`` (default, as
        diluvian 0.0.6): one move step along the axis, so centres stay on a
        lattice anchored at the seed. ``'face_max'`` (Google FFN's
        ``FaceMaxMovementPolicy``): the voxel of highest probability on the
        move-check face, so centres follow the object; each lattice cell
        (``round((centre - seed) / move_step)``) is predicted at most once.
        Models imported with ``import-ffn`` use ``'face_max'``. Policies
        added with :func:`diluvian.regions.register_move_policy` are valid
        too.
    training_subv_shape : ndarray of int, optional
        Shape of the subvolumes used during moving training. Defaults (as in
        diluvian 0.0.6) to ``input_fov_shape + 2 * move_step``: 27 FOV
        positions per subvolume. Set it to ``input_fov_shape`` to train on
        single FOVs without moves.
    validation_subv_shape : ndarray of int, optional
        Shape of the subvolumes filled during training validation. Defaults
        (as in diluvian 0.0.6) to ``input_fov_shape + 4 * move_step``: up to
        125 FOV positions.
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
        "move_policy": Field("str", choices=("lattice", "face_max")),
        "training_subv_shape": Field("vec", optional=True, length=3),
        "validation_subv_shape": Field("vec", optional=True, length=3),
    }

    def _validate(self, source: str) -> None:
        s = f"{source}: [model]"
        if np.any(self.input_fov_shape < 1) or np.any(self.output_fov_shape < 1):
            raise DiluvianError(f"{s} FOV shapes must be positive")
        for name in ("input_fov_shape", "output_fov_shape"):
            shape = getattr(self, name)
            if np.any(shape % 2 == 0):
                raise DiluvianError(
                    f"{s} {name} {shape.tolist()} is invalid: every axis must be odd, so that "
                    "the FOV has a centre voxel")
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
        if not self.v_true > self.v_false:
            raise DiluvianError(f"{s} v_true = {self.v_true} must be greater than v_false = "
                                f"{self.v_false}")
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
        """``training_subv_shape`` if set, else ``input_fov_shape + 2 * move_step``."""
        v = self.training_subv_shape
        return self.input_fov_shape + 2 * self.move_step if v is None else v

    @property
    def validation_subv_shape_value(self) -> np.ndarray:
        """``validation_subv_shape`` if set, else ``input_fov_shape + 4 * move_step``."""
        v = self.validation_subv_shape
        return self.input_fov_shape + 4 * self.move_step if v is None else v


def allow_move_policy(name: str) -> None:
    """Accept ``name`` for ``[model] move_policy``.

    Called by :func:`diluvian.regions.register_move_policy`, which owns the
    policies (the configuration does not import them).
    """
    field = ModelConfig.FIELDS["move_policy"]
    if name not in field.choices:
        ModelConfig.FIELDS["move_policy"] = dataclasses.replace(
            field, choices=(*field.choices, name))


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
    ``momentum``, ``nesterov``, ``clipnorm``. Keys only the packaged defaults
    set are dropped if the chosen optimizer does not accept them (so
    ``klass = "Adam"`` alone works); a key set by the user that it does not
    accept is an error (see :func:`diluvian.network.compile_network`).

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

    def __init__(self, settings: dict[str, Any], source: str | dict[str, str] = "<settings>"):
        super().__init__(settings, source)
        # Where each key was set, to tell keys the packaged defaults carry
        # (dropped if the chosen optimizer does not accept them) from keys
        # the user set (an error if it does not).
        self._key_sources = {k: (source.get(k, "<settings>") if isinstance(source, dict)
                                 else source) for k in settings}

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the optimizer constructor."""
        return {k: getattr(self, k) for k in self._extra}

    def source_of(self, key: str) -> str:
        """Name of the file (or ``'<settings>'``) that set ``key``."""
        return self._key_sources.get(key, "<settings>")

    def from_defaults(self, key: str) -> bool:
        """Whether ``key`` was set only by the packaged ``default.toml``."""
        from . import default_config_path

        return self.source_of(key) == str(default_config_path())

    def discard(self, key: str) -> None:
        """Remove the optimizer argument ``key`` (a key not in ``FIELDS``), if present."""
        if key in self._extra:
            del self._extra[key]
            delattr(self, key)
            self._key_sources.pop(key, None)


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
    checkpoint_seconds : float
        Also write one when this many seconds have passed since the last
        (default 300): a killed fill loses at most about this much work.
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
        two objects' voxels in the overlap ...
    reconcile_min_voxels : int
        ... and they share at least this many voxels there (a sliver poking
        into the overlap is no evidence; default 200).
    skip_committed : bool
        Do not predict FOVs centred on voxels of bodies already committed
        (saves evaluations spent re-predicting finished objects).
    full_context : bool
        Keep FOV centres of seeds and moves half an input FOV from the volume
        faces, so every prediction sees real image context (Google FFN's
        rule; seeds nearer a face are skipped).
    inset_fovs : bool
        Centre no FOV nearer a volume face than half an input FOV: seeds and
        moves there are predicted from the nearest centre inside instead, so
        every prediction sees real image and objects at the faces are still
        filled, with far fewer evaluations near the faces.
    stop_weak_seed : bool
        Stop a region as soon as a prediction puts its own seed voxel below
        ``t_move`` (Google FFN's rule; saves evaluations on seeds outside any
        object).
    skip_certain : bool
        Do not predict a move whose neighbourhood (one move step around its
        centre) the region has already decided: every voxel predicted and at
        least ``t_move`` or at most ``1 - t_move``. Its moves are read from
        the current mask instead. Saves most evaluations inside large
        objects.
    dtype_policy : str
        Keras dtype policy the network runs under while filling:
        ``'float32'``, ``'bfloat16'``, ``'mixed_bfloat16'``, ``'float16'``,
        ``'mixed_float16'``, or ``'auto'``: bfloat16 on CPUs with native
        bfloat16 instructions (AVX512-BF16 or AMX), mixed float16 on a GPU,
        float32 otherwise.
    """

    SECTION = "fill"
    FIELDS = {
        "checkpoint_interval": Field("int"),
        "checkpoint_seconds": Field("float"),
        "min_body_size": Field("int"),
        "skip_committed": Field("bool"),
        "full_context": Field("bool"),
        "inset_fovs": Field("bool"),
        "stop_weak_seed": Field("bool"),
        "skip_certain": Field("bool"),
        "dtype_policy": Field("str", choices=("auto", "float32", "bfloat16", "mixed_bfloat16",
                                              "float16", "mixed_float16")),
        "block_shape": Field("vec", optional=True, length=3),
        "block_overlap": Field("vec", length=3),
        "reconcile_threshold": Field("float"),
        "reconcile_min_voxels": Field("int"),
    }

    def _validate(self, source: str) -> None:
        s = f"{source}: [fill]"
        if self.checkpoint_interval < 1:
            raise DiluvianError(f"{s} checkpoint_interval = {self.checkpoint_interval} must be at "
                                "least 1 (bodies between checkpoints)")
        if not self.checkpoint_seconds > 0:
            raise DiluvianError(f"{s} checkpoint_seconds = {self.checkpoint_seconds} must be "
                                "positive")
        if self.min_body_size < 0:
            raise DiluvianError(f"{s} min_body_size = {self.min_body_size} must not be negative")
        if self.block_shape is not None and np.any(np.asarray(self.block_shape) < 1):
            raise DiluvianError(f"{s} block_shape {np.asarray(self.block_shape).tolist()} must be "
                                "positive")
        if np.any(np.asarray(self.block_overlap) < 0):
            raise DiluvianError(f"{s} block_overlap {np.asarray(self.block_overlap).tolist()} must "
                                "not be negative")
        if not 0.0 <= self.reconcile_threshold <= 1.0:
            raise DiluvianError(f"{s} reconcile_threshold = {self.reconcile_threshold} must lie in "
                                "[0, 1]")


_SECTIONS: dict[str, type[BaseConfig]] = {
    "volume": VolumeConfig,
    "model": ModelConfig,
    "network": NetworkConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
    "postprocessing": PostprocessingConfig,
    "fill": FillConfig,
}


