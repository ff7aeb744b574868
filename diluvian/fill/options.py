"""The options of a dense fill: one frozen, validated value built once at the edge."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..util import DiluvianError

__all__ = ["FillOptions"]

#: Options whose ``None`` (or absence) means "the configuration's value".
_FROM_CONFIG = ("checkpoint_interval", "checkpoint_seconds", "min_body_size", "skip_committed",
                "full_context", "inset_fovs", "stop_weak_seed", "skip_certain")
_BOOLS = ("shuffle_seeds", "ignore_mask", "bias", "reject_early_termination", "fill_batches",
          "skip_committed", "full_context", "inset_fovs", "stop_weak_seed", "skip_certain")
#: Integer options and their smallest value (``None`` allowed where marked).
_INTS = {"background_label_id": (0, False), "move_batch_size": (1, False),
         "max_moves": (1, True), "max_bodies": (1, True), "remask_interval": (1, True),
         "checkpoint_interval": (0, False), "min_body_size": (0, False)}


@dataclass(frozen=True)
class FillOptions:
    """How a volume is densely filled (see :func:`diluvian.fill.fill_volume_with_model`).

    Built once, by :meth:`from_config` from ``[fill]``, ``[postprocessing]``,
    the model settings and the command line, and handed down whole; make a
    variant with :func:`dataclasses.replace`, which validates again.

    Attributes
    ----------
    model_config : diluvian.config.ModelConfig
        FOV shapes, move step, thresholds and movement of the regions.
    seed_generator : str
        Name for :func:`diluvian.preprocessing.make_seeds`.
    shuffle_seeds, ignore_mask, bias, reject_early_termination, fill_batches : bool
    background_label_id : int
    move_batch_size : int
        FOVs per model call (at least 1).
    max_moves, max_bodies, remask_interval : int, optional
    checkpoint_interval : int
        Committed bodies between checkpoints (0: none by count).
    checkpoint_seconds : float
        Seconds between checkpoints (0: none by time).
    sparse_mask : bool, optional
        Region masks in octrees; ``None``: only when dense masks would be large.
    skip_committed, full_context, inset_fovs, stop_weak_seed, skip_certain : bool
        The ``[fill]`` rules of the same names.
    min_body_size : int
        Smallest body committed, in claimed voxels.
    closing_shape : tuple of int, optional
        ``[postprocessing] closing_shape`` applied to each body.
    random_seed : int
        The configured random seed (seed order stream).
    """

    model_config: Any = dataclasses.field(repr=False, compare=False)
    seed_generator: str = "sobel"
    shuffle_seeds: bool = True
    ignore_mask: bool = False
    background_label_id: int = 0
    bias: bool = True
    move_batch_size: int = 1
    max_moves: int | None = None
    max_bodies: int | None = None
    remask_interval: int | None = None
    reject_early_termination: bool = False
    checkpoint_interval: int = 0
    checkpoint_seconds: float = 300.0
    sparse_mask: bool | None = None
    fill_batches: bool = False
    skip_committed: bool = False
    full_context: bool = False
    inset_fovs: bool = False
    stop_weak_seed: bool = False
    skip_certain: bool = False
    min_body_size: int = 0
    closing_shape: tuple[int, int, int] | None = None
    random_seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.seed_generator, str):
            _bad("seed_generator", self.seed_generator, "a seed generator name")
        for name in _BOOLS:
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                _bad(name, value, "true or false")
            object.__setattr__(self, name, bool(value))
        if self.sparse_mask is not None:
            if not isinstance(self.sparse_mask, (bool, np.bool_)):
                _bad("sparse_mask", self.sparse_mask, "true, false or None")
            object.__setattr__(self, "sparse_mask", bool(self.sparse_mask))
        for name, (least, optional) in _INTS.items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
                    or value < least):
                _bad(name, value, f"an integer of at least {least}"
                     + (" or None" if optional else ""))
            object.__setattr__(self, name, int(value))
        seconds = self.checkpoint_seconds
        if isinstance(seconds, (bool, np.bool_)) or not isinstance(seconds, numbers.Real) \
                or not seconds >= 0:
            _bad("checkpoint_seconds", seconds, "a number of seconds, at least 0")
        object.__setattr__(self, "checkpoint_seconds", float(seconds))
        if self.closing_shape is not None:
            try:
                shape = tuple(int(s) for s in np.asarray(self.closing_shape).ravel())
            except (TypeError, ValueError):
                shape = ()
            if len(shape) != 3 or min(shape) < 1:
                _bad("closing_shape", self.closing_shape, "three positive integers (Z, Y, X)")
            object.__setattr__(self, "closing_shape", shape)

    @classmethod
    def from_config(cls, config, **overrides) -> FillOptions:
        """Options from a configuration, with ``overrides`` (e.g. from the command line).

        An override of ``None`` for an option that ``[fill]`` sets
        (``checkpoint_interval``, ``checkpoint_seconds``, ``min_body_size``,
        ``skip_committed``, ``full_context``, ``inset_fovs``, ``stop_weak_seed``,
        ``skip_certain``) means the configuration's value.

        Raises
        ------
        DiluvianError
            Naming an unknown option, or the option and the expected value of
            a bad one.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"model_config"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise DiluvianError(f"unknown fill option(s) {', '.join(unknown)}; expected some of "
                                f"{', '.join(sorted(names))}")
        fill = config.fill
        values = {name: getattr(fill, name) for name in _FROM_CONFIG}
        values["closing_shape"] = config.postprocessing.closing_shape
        values["random_seed"] = int(config.random_seed)
        for name, value in overrides.items():
            if value is not None or name not in _FROM_CONFIG:
                values[name] = value
        return cls(model_config=config.model, **values)

    @property
    def t_final(self) -> float:
        """Mask probability at least which a voxel is in a region's body."""
        return float(self.model_config.t_final_value)

    @property
    def input_fov_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.model_config.input_fov_shape)

    def replace(self, **changes) -> FillOptions:
        """A copy with ``changes`` (validated), as :func:`dataclasses.replace`."""
        return dataclasses.replace(self, **changes)


def _bad(name: str, value, expected: str):
    raise DiluvianError(f"fill option {name} = {value!r} is invalid: expected {expected}")
