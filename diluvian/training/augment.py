"""Training data augmentations: small callables ``(subvolume, rng) -> subvolume``.

Each augmentation is a frozen dataclass holding its parameters; calling it
with a :class:`~diluvian.volumes.Subvolume` and a :class:`numpy.random.Generator`
returns a new subvolume (inputs are never modified in place). Geometric
augmentations (:class:`Mirror`, :class:`PermuteAxes`) move the image, the
label mask and the seed together; intensity augmentations touch only the
image, section by section along an axis, and keep it in [0, 1).

:func:`make_augmentations` builds the pipeline from the ``augment_*`` keys of
``[training]``; :func:`apply_augmentations` runs it. Everything here is plain
NumPy: no TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..util import DiluvianError
from ..volumes.subvolume import Subvolume

__all__ = [
    "Artifacts",
    "Augmentation",
    "Contrast",
    "GaussianNoise",
    "Mirror",
    "MissingSections",
    "PermuteAxes",
    "apply_augmentations",
    "make_augmentations",
]

logger = logging.getLogger(__name__)

#: Largest float32 value below 1, the top of the image range [0, 1).
_IMAGE_MAX = np.float32(np.nextafter(np.float32(1.0), np.float32(0.0)))

Augmentation = Callable[[Subvolume, np.random.Generator], Subvolume]


def _section_shape(axis: int, ndim: int = 3) -> tuple[int, ...]:
    """Broadcast shape of a per-section vector along ``axis``."""
    shape = [1] * ndim
    shape[axis] = -1
    return tuple(shape)


def _clip_image(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, _IMAGE_MAX).astype(np.float32, copy=False)


def _check_axis(axis: Any, name: str) -> int:
    if axis not in (0, 1, 2):
        raise DiluvianError(f"[training] {name} axis = {axis!r} is invalid: expected 0, 1 or 2")
    return int(axis)


def _check_prob(prob: Any, name: str) -> float:
    if not 0.0 <= float(prob) <= 1.0:
        raise DiluvianError(f"[training] {name} prob = {prob!r} is invalid: expected [0, 1]")
    return float(prob)


@dataclass(frozen=True)
class Mirror:
    """Flip image, label mask and seed along ``axis`` with probability ``prob``."""

    axis: int
    prob: float = 0.5

    def __call__(self, subv: Subvolume, rng: np.random.Generator) -> Subvolume:
        if rng.random() >= self.prob:
            return subv
        image = np.flip(subv.image, self.axis).copy()
        label = None if subv.label_mask is None else np.flip(subv.label_mask, self.axis).copy()
        seed = subv.seed.copy()
        seed[self.axis] = subv.image.shape[self.axis] - 1 - seed[self.axis]
        return replace(subv, image=image, label_mask=label, seed=seed)


@dataclass(frozen=True)
class PermuteAxes:
    """Transpose image, label mask and seed by ``permutation`` with probability ``prob``.

    Only permutations that keep the subvolume's shape are meaningful for a
    fixed field of view (e.g. swapping Y and X of a ``[13, 33, 33]`` FOV);
    :func:`make_augmentations` drops the others for a given shape.
    """

    permutation: tuple[int, int, int]
    prob: float = 0.5

    def __call__(self, subv: Subvolume, rng: np.random.Generator) -> Subvolume:
        if rng.random() >= self.prob:
            return subv
        perm = list(self.permutation)
        image = np.ascontiguousarray(np.transpose(subv.image, perm))
        label = None if subv.label_mask is None else np.ascontiguousarray(
            np.transpose(subv.label_mask, perm))
        return replace(subv, image=image, label_mask=label, seed=subv.seed[perm].copy())


@dataclass(frozen=True)
class MissingSections:
    """Blank (set to 0) each section along ``axis`` with probability ``prob``."""

    axis: int
    prob: float

    def __call__(self, subv: Subvolume, rng: np.random.Generator) -> Subvolume:
        n = subv.image.shape[self.axis]
        missing = rng.random(n) < self.prob
        if not missing.any():
            return subv
        image = subv.image.copy()
        keep = (~missing).astype(np.float32).reshape(_section_shape(self.axis))
        return replace(subv, image=image * keep)


@dataclass(frozen=True)
class GaussianNoise:
    """Per-section Gaussian multiplicative (mean 1, sd ``mul``) and additive (sd ``add``) noise.

    Every section along ``axis`` draws one factor and one offset:
    ``section * N(1, mul) + N(0, add)``, clipped to [0, 1).
    """

    axis: int
    mul: float
    add: float

    def __call__(self, subv: Subvolume, rng: np.random.Generator) -> Subvolume:
        n = subv.image.shape[self.axis]
        shape = _section_shape(self.axis)
        factor = rng.normal(1.0, self.mul, n).astype(np.float32).reshape(shape)
        offset = rng.normal(0.0, self.add, n).astype(np.float32).reshape(shape)
        return replace(subv, image=_clip_image(subv.image * factor + offset))


@dataclass(frozen=True)
class Contrast:
    """Alter the contrast of each section along ``axis`` with probability ``prob``.

    An altered section with mean ``m`` becomes ``(section - m) * s + c * m``
    with ``s ~ N(scaling_mean, scaling_std)`` and ``c ~ N(center_mean,
    center_std)``: its spread is scaled by ``s`` and its centre moved
    multiplicatively by ``c``; the result is clipped to [0, 1).
    """

    axis: int
    prob: float
    scaling_mean: float
    scaling_std: float
    center_mean: float
    center_std: float

    def __call__(self, subv: Subvolume, rng: np.random.Generator) -> Subvolume:
        n = subv.image.shape[self.axis]
        chosen = rng.random(n) < self.prob
        scaling = rng.normal(self.scaling_mean, self.scaling_std, n)
        center = rng.normal(self.center_mean, self.center_std, n)
        if not chosen.any():
            return subv
        image = np.moveaxis(subv.image.copy(), self.axis, 0)
        for i in np.flatnonzero(chosen):
            m = float(image[i].mean())
            image[i] = (image[i] - m) * scaling[i] + center[i] * m
        return replace(subv, image=_clip_image(np.moveaxis(image, 0, self.axis)))


@dataclass(frozen=True)
class Artifacts:
    """Alpha-blend real artifact patches into sections along ``axis``.

    Each section is replaced, with probability ``prob``, by
    ``section * (1 - alpha) + patch * alpha`` where ``patch`` is a random
    section-shaped crop of an artifact volume's image and ``alpha`` the same
    crop of its mask (boolean or probability).

    Parameters
    ----------
    axis, prob
        Axis of the sections and probability per section.
    volumes : sequence of Volume
        Artifact volumes with ``image_data`` and ``mask_data``.
    """

    axis: int
    prob: float
    volumes: Sequence[Any] = field(default_factory=tuple, repr=False)

    def __call__(self, subv: Subvolume, rng: np.random.Generator) -> Subvolume:
        n = subv.image.shape[self.axis]
        chosen = rng.random(n) < self.prob
        if not chosen.any() or not self.volumes:
            return subv
        from ..util import to_float_image

        image = np.moveaxis(subv.image.copy(), self.axis, 0)
        section_shape = np.array(image.shape[1:])
        for i in np.flatnonzero(chosen):
            volume = self.volumes[int(rng.integers(len(self.volumes)))]
            vol_shape = np.array(volume.shape)
            # Artifact sections run along the same axis as the subvolume's.
            plane_shape = np.delete(vol_shape, self.axis)
            if np.any(plane_shape < section_shape):
                raise DiluvianError(
                    f"artifact volume of shape {vol_shape.tolist()} is smaller than the "
                    f"training section shape {section_shape.tolist()} on axis {self.axis}")
            corner = [int(rng.integers(0, p - s + 1)) for p, s in zip(plane_shape, section_shape)]
            plane = int(rng.integers(vol_shape[self.axis]))
            index: list[Any] = [slice(c, c + s) for c, s in zip(corner, section_shape)]
            index.insert(self.axis, plane)
            patch = to_float_image(np.asarray(volume.image_data[tuple(index)]))
            alpha = np.asarray(volume.mask_data[tuple(index)], dtype=np.float32)
            if alpha.max(initial=0.0) > 1.0:
                alpha = to_float_image(np.asarray(volume.mask_data[tuple(index)]))
            image[i] = image[i] * (1.0 - alpha) + patch * alpha
        return replace(subv, image=_clip_image(np.moveaxis(image, 0, self.axis)))


def apply_augmentations(subv: Subvolume, augmentations: Sequence[Augmentation],
                        rng: np.random.Generator) -> Subvolume:
    """Run ``augmentations`` in order on ``subv``."""
    for augment in augmentations:
        subv = augment(subv, rng)
    return subv


def _load_artifact_volumes(volume_file: str, config) -> list[Any]:
    from ..volumes import load_volumes

    volumes = load_volumes([volume_file], True, config=config)
    volumes = list(volumes.values()) if isinstance(volumes, dict) else list(volumes)
    for volume in volumes:
        if getattr(volume, "mask_data", None) is None:
            raise DiluvianError(f"{volume_file}: artifact volumes need a mask (alpha) dataset")
    return volumes


def make_augmentations(training_config, shapes: Sequence[Sequence[int]] = (),
                       config=None, artifact_volumes: dict[str, list] | None = None,
                       ) -> list[Augmentation]:
    """Build the augmentation pipeline from ``[training]`` ``augment_*`` keys.

    Order: mirrors, axis permutations, artifacts, missing sections, noise,
    contrast.

    Parameters
    ----------
    training_config : TrainingConfig
        Source of ``augment_mirrors``, ``augment_permute_axes``,
        ``augment_missing_data``, ``augment_noise``, ``augment_contrast`` and
        ``augment_artifacts``.
    shapes : sequence of shape
        Shapes (subvolume image and network FOVs) every augmented subvolume
        must keep: permutations that change any of them are dropped with a
        warning (for the anisotropic ``[13, 33, 33]`` FOV only Y and X may be
        swapped).
    config : Config, optional
        Passed to :func:`diluvian.volumes.load_volumes` for artifact files.
    artifact_volumes : dict, optional
        Pre-loaded artifact volumes by ``volume_file`` (skips loading).
    """
    augs: list[Augmentation] = []
    for axis in training_config.augment_mirrors:
        augs.append(Mirror(_check_axis(axis, "augment_mirrors")))
    for perm in training_config.augment_permute_axes:
        perm = tuple(int(p) for p in perm)
        if perm == (0, 1, 2):
            continue
        bad = [list(s) for s in shapes if not np.array_equal(np.asarray(s)[list(perm)],
                                                              np.asarray(s))]
        if bad:
            logger.warning("augment_permute_axes %s skipped: it would change the shape %s",
                           list(perm), bad[0])
            continue
        augs.append(PermuteAxes(perm))
    for entry in training_config.augment_artifacts:
        volume_file = str(entry["volume_file"])
        if artifact_volumes is not None and volume_file in artifact_volumes:
            volumes = artifact_volumes[volume_file]
        else:
            volumes = _load_artifact_volumes(volume_file, config)
        augs.append(Artifacts(_check_axis(entry["axis"], "augment_artifacts"),
                              _check_prob(entry["prob"], "augment_artifacts"), tuple(volumes)))
    for entry in training_config.augment_missing_data:
        augs.append(MissingSections(_check_axis(entry["axis"], "augment_missing_data"),
                                    _check_prob(entry["prob"], "augment_missing_data")))
    for entry in training_config.augment_noise:
        augs.append(GaussianNoise(_check_axis(entry["axis"], "augment_noise"),
                                  float(entry["mul"]), float(entry["add"])))
    for entry in training_config.augment_contrast:
        augs.append(Contrast(
            _check_axis(entry["axis"], "augment_contrast"),
            _check_prob(entry["prob"], "augment_contrast"),
            float(entry["scaling_mean"]), float(entry["scaling_std"]),
            float(entry["center_mean"]), float(entry["center_std"])))
    return augs
