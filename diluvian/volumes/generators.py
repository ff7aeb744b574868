"""diluvian 0.0.6's subvolume generator classes: thin iterators over today's code.

Each wraps an iterator of :class:`~diluvian.volumes.Subvolume` and applies
one step of today's pipeline: label erosion and seed-component relabelling
from :mod:`diluvian.training.data`, and the augmentations of
:mod:`diluvian.training.augment`. Augment generators with ``return_both``
yield each subvolume unchanged and then augmented. Random choices come from
``rng`` (default: a stream of ``CONFIG.random_seed`` named after the class).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..util import make_rng

__all__ = [
    "ClipSubvolumeImageGenerator",
    "ContrastAugmentGenerator",
    "ErodedMaskGenerator",
    "GaussianNoiseAugmentGenerator",
    "MaskedArtifactAugmentGenerator",
    "MirrorAugmentGenerator",
    "MissingDataAugmentGenerator",
    "PermuteAxesAugmentGenerator",
    "RelabelSeedComponentGenerator",
    "SubvolumeAugmentGenerator",
    "SubvolumeBoundsGenerator",
    "SubvolumeGenerator",
]


class SubvolumeBoundsGenerator:
    """Random subvolume bounds of ``volume`` (``Volume.SubvolumeBoundsGenerator`` in 0.0.6).

    Iterates :meth:`~diluvian.volumes.Volume.subvolume_bounds_generator`;
    :meth:`reset` starts the same sequence again.
    """

    def __init__(self, volume, shape, label_margin=None, rng=None):
        import copy

        self.volume, self.shape, self.label_margin = volume, shape, label_margin
        if rng is None:
            from ..config import CONFIG

            rng = make_rng(CONFIG.random_seed, "subvolume_bounds", type(volume).__name__)
        self._initial = copy.deepcopy(rng)
        self.reset()

    def reset(self) -> None:
        import copy

        self._bounds = self.volume.subvolume_bounds_generator(
            shape=self.shape, label_margin=self.label_margin, rng=copy.deepcopy(self._initial))

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._bounds)


class SubvolumeGenerator:
    """Subvolumes of ``volume`` for each bounds of ``bounds_generator`` (default: random)."""

    def __init__(self, volume, bounds_generator=None):
        self.volume = volume
        self.bounds_generator = (volume.subvolume_bounds_generator() if bounds_generator is None
                                 else bounds_generator)
        self._bounds = iter(self.bounds_generator)

    def __iter__(self):
        return self

    def __next__(self):
        return self.volume.get_subvolume(next(self._bounds))

    def reset(self) -> None:
        if hasattr(self.bounds_generator, "reset"):
            self.bounds_generator.reset()
        self._bounds = iter(self.bounds_generator)


class _Wrapper:
    def __init__(self, subvolume_generator):
        self.subvolume_generator = subvolume_generator
        self._source = iter(subvolume_generator)

    def __iter__(self):
        return self

    def __next__(self):
        return self.transform(next(self._source))

    def transform(self, subv):
        return subv

    def reset(self) -> None:
        if hasattr(self.subvolume_generator, "reset"):
            self.subvolume_generator.reset()
        self._source = iter(self.subvolume_generator)


class ErodedMaskGenerator(_Wrapper):
    """Erode each label mask by ``erosion_px`` voxels per axis (a box of ``2 e + 1``)."""

    def __init__(self, subvolume_generator, erosion_px):
        super().__init__(subvolume_generator)
        self.erosion_px = np.asarray(erosion_px, dtype=np.int64)

    def transform(self, subv):
        from ..training.data import erode_label_mask

        if subv.label_mask is None:
            return subv
        return dataclasses.replace(subv, label_mask=erode_label_mask(subv.label_mask,
                                                                     self.erosion_px))


class RelabelSeedComponentGenerator(_Wrapper):
    """Keep only the seed's connected component of each label mask."""

    def transform(self, subv):
        from ..training.data import seed_component

        if subv.label_mask is None:
            return subv
        return dataclasses.replace(subv, label_mask=seed_component(subv.label_mask, subv.seed))


class ClipSubvolumeImageGenerator(_Wrapper):
    """Clip each image to ``[min_val, max_val]``."""

    def __init__(self, subvolume_generator, min_val=0.0, max_val=1.0):
        super().__init__(subvolume_generator)
        self.min_val, self.max_val = min_val, max_val

    def transform(self, subv):
        return dataclasses.replace(subv, image=np.clip(subv.image, self.min_val, self.max_val))


class SubvolumeAugmentGenerator(_Wrapper):
    """Base of the augment generators: applies ``self.augmentation`` (a callable
    ``(subvolume, rng) -> subvolume`` of :mod:`diluvian.training.augment`)."""

    augmentation = None

    def __init__(self, subvolume_generator, return_both, rng=None):
        super().__init__(subvolume_generator)
        self.return_both = bool(return_both)
        if rng is None:
            from ..config import CONFIG

            rng = make_rng(CONFIG.random_seed, "augment", type(self).__name__)
        self.rng = rng
        self._pending = None

    def __next__(self):
        if self._pending is not None:
            subv, self._pending = self._pending, None
            return subv
        subv = next(self._source)
        augmented = self.augmentation(subv, self.rng)
        if self.return_both:
            self._pending = augmented
            return subv
        return augmented

    def reset(self) -> None:
        super().reset()
        self._pending = None


class MirrorAugmentGenerator(SubvolumeAugmentGenerator):
    """Mirror along ``axis`` (with probability 0.5)."""

    def __init__(self, subvolume_generator, return_both, axis, rng=None):
        from ..training.augment import Mirror

        super().__init__(subvolume_generator, return_both, rng)
        self.augmentation = Mirror(int(axis))


class PermuteAxesAugmentGenerator(SubvolumeAugmentGenerator):
    """Permute the axes as ``axes`` (with probability 0.5)."""

    def __init__(self, subvolume_generator, return_both, axes, rng=None):
        from ..training.augment import PermuteAxes

        super().__init__(subvolume_generator, return_both, rng)
        self.augmentation = PermuteAxes(tuple(int(a) for a in axes))


class MissingDataAugmentGenerator(SubvolumeAugmentGenerator):
    """Blank each section along ``axis`` with ``probability``."""

    def __init__(self, subvolume_generator, return_both, axis, probability, rng=None):
        from ..training.augment import MissingSections

        super().__init__(subvolume_generator, return_both, rng)
        self.augmentation = MissingSections(int(axis), float(probability))


class GaussianNoiseAugmentGenerator(SubvolumeAugmentGenerator):
    """Per-section multiplicative and additive Gaussian noise along ``axis``."""

    def __init__(self, subvolume_generator, return_both, axis, multiplier_sd, additive_sd,
                 rng=None):
        from ..training.augment import GaussianNoise

        super().__init__(subvolume_generator, return_both, rng)
        self.augmentation = GaussianNoise(int(axis), float(multiplier_sd), float(additive_sd))


class ContrastAugmentGenerator(SubvolumeAugmentGenerator):
    """Per-section contrast changes along ``axis`` (see :class:`~diluvian.training.augment.Contrast`)."""

    def __init__(self, subvolume_generator, return_both, axis, probability, scaling_mean,
                 scaling_std, center_mean, center_std, rng=None):
        from ..training.augment import Contrast

        super().__init__(subvolume_generator, return_both, rng)
        self.augmentation = Contrast(int(axis), float(probability), float(scaling_mean),
                                     float(scaling_std), float(center_mean), float(center_std))


class MaskedArtifactAugmentGenerator(SubvolumeAugmentGenerator):
    """Paste masked artifact sections from the volumes of ``artifact_volume_file`` along ``axis``."""

    def __init__(self, subvolume_generator, return_both, axis, probability,
                 artifact_volume_file, cache=None, rng=None):
        from ..config import CONFIG
        from ..training.augment import Artifacts, _load_artifact_volumes

        super().__init__(subvolume_generator, return_both, rng)
        volumes = cache.get(artifact_volume_file) if isinstance(cache, dict) else None
        if volumes is None:
            volumes = _load_artifact_volumes(artifact_volume_file, CONFIG)
            if isinstance(cache, dict):
                cache[artifact_volume_file] = volumes
        self.augmentation = Artifacts(int(axis), float(probability), tuple(volumes))
