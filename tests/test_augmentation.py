"""Tests of the training augmentations (diluvian.training.augment)."""

from __future__ import annotations

import numpy as np
import pytest

from diluvian.config import Config
from diluvian.training.augment import (
    Artifacts,
    Contrast,
    GaussianNoise,
    Mirror,
    MissingSections,
    PermuteAxes,
    apply_augmentations,
    make_augmentations,
)
from diluvian.volumes.subvolume import Subvolume


def _subvolume(shape=(4, 6, 6), seed=(1, 2, 3)):
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.8, shape).astype(np.float32)
    label = np.zeros(shape, dtype=bool)
    label[seed] = True
    label[0, 0, 0] = True
    return Subvolume(image, label, np.array(seed), 7)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mirror_flips_image_label_and_seed_together(axis):
    subv = _subvolume()
    out = Mirror(axis, prob=1.0)(subv, np.random.default_rng(1))
    assert out.image.shape == subv.image.shape
    np.testing.assert_array_equal(out.image, np.flip(subv.image, axis))
    np.testing.assert_array_equal(out.label_mask, np.flip(subv.label_mask, axis))
    assert out.label_mask[tuple(out.seed)]
    assert out.image[tuple(out.seed)] == subv.image[tuple(subv.seed)]


def test_mirror_with_zero_probability_returns_input():
    subv = _subvolume()
    assert Mirror(0, prob=0.0)(subv, np.random.default_rng(1)) is subv


def test_permute_axes_transposes_image_label_and_seed():
    subv = _subvolume(shape=(3, 5, 5), seed=(1, 2, 4))
    out = PermuteAxes((0, 2, 1), prob=1.0)(subv, np.random.default_rng(1))
    assert out.image.shape == (3, 5, 5)
    np.testing.assert_array_equal(out.image, subv.image.transpose(0, 2, 1))
    np.testing.assert_array_equal(out.label_mask, subv.label_mask.transpose(0, 2, 1))
    assert out.seed.tolist() == [1, 4, 2]
    assert out.image[tuple(out.seed)] == subv.image[tuple(subv.seed)]


def test_permutations_changing_an_anisotropic_fov_shape_are_dropped():
    config = Config([{"training": {"augment_permute_axes": [[0, 2, 1], [1, 0, 2]],
                                   "augment_mirrors": [], "augment_missing_data": [],
                                   "augment_noise": [], "augment_contrast": []}}])
    augs = make_augmentations(config.training, shapes=[(13, 33, 33)])
    assert augs == [PermuteAxes((0, 2, 1))]
    augs = make_augmentations(config.training, shapes=[(9, 9, 9)])
    assert augs == [PermuteAxes((0, 2, 1)), PermuteAxes((1, 0, 2))]


def test_missing_sections_blank_whole_sections_only():
    subv = _subvolume(shape=(40, 4, 4))
    out = MissingSections(0, prob=0.5)(subv, np.random.default_rng(3))
    blank = np.all(out.image == 0, axis=(1, 2))
    assert 0 < blank.sum() < 40
    np.testing.assert_array_equal(out.image[~blank], subv.image[~blank])
    np.testing.assert_array_equal(out.label_mask, subv.label_mask)


def test_missing_sections_along_another_axis():
    subv = _subvolume(shape=(4, 4, 40))
    out = MissingSections(2, prob=1.0)(subv, np.random.default_rng(3))
    assert np.all(out.image == 0)


def test_gaussian_noise_has_configured_per_section_statistics():
    shape = (2000, 3, 3)
    subv = Subvolume(np.full(shape, 0.5, np.float32), np.zeros(shape, bool),
                     np.array([1, 1, 1]), 1)
    out = GaussianNoise(0, mul=0.1, add=0.0)(subv, np.random.default_rng(4))
    factor = out.image[:, 0, 0] / 0.5
    assert np.all(out.image == out.image[:, :1, :1])  # one draw per section
    assert abs(factor.mean() - 1.0) < 0.01
    assert abs(factor.std() - 0.1) < 0.01
    out = GaussianNoise(0, mul=0.0, add=0.05)(subv, np.random.default_rng(4))
    offset = out.image[:, 0, 0] - 0.5
    assert abs(offset.mean()) < 0.005
    assert abs(offset.std() - 0.05) < 0.005


def test_gaussian_noise_keeps_image_in_unit_interval():
    subv = _subvolume(shape=(50, 4, 4))
    out = GaussianNoise(0, mul=2.0, add=2.0)(subv, np.random.default_rng(5))
    assert out.image.min() >= 0.0 and out.image.max() < 1.0
    assert out.image.dtype == np.float32


def test_contrast_scales_spread_and_moves_centre():
    subv = _subvolume(shape=(5, 8, 8))
    out = Contrast(0, prob=1.0, scaling_mean=0.5, scaling_std=0.0, center_mean=1.2,
                   center_std=0.0)(subv, np.random.default_rng(6))
    for z in range(5):
        before, after = subv.image[z], out.image[z]
        assert after.std() == pytest.approx(0.5 * before.std(), rel=1e-4)
        assert after.mean() == pytest.approx(1.2 * before.mean(), rel=1e-4)


def test_contrast_with_zero_probability_changes_nothing():
    subv = _subvolume()
    out = Contrast(0, 0.0, 0.5, 0.1, 1.2, 0.2)(subv, np.random.default_rng(6))
    np.testing.assert_array_equal(out.image, subv.image)


class _ArtifactVolume:
    def __init__(self):
        self.image_data = np.full((3, 10, 10), 255, dtype=np.uint8)
        self.mask_data = np.zeros((3, 10, 10), dtype=bool)
        self.mask_data[:, :, :5] = True
        self.shape = self.image_data.shape


def test_artifacts_alpha_blend_patches_into_sections():
    subv = _subvolume(shape=(6, 4, 4))
    out = Artifacts(0, 1.0, (_ArtifactVolume(),))(subv, np.random.default_rng(7))
    assert out.image.shape == subv.image.shape
    changed = out.image != subv.image
    assert changed.any()
    # Where alpha is 1 the artifact's (near-white) image replaces the section.
    assert np.all(out.image[changed] > 0.99)
    np.testing.assert_array_equal(out.label_mask, subv.label_mask)


def test_artifacts_with_zero_probability_changes_nothing():
    subv = _subvolume()
    assert Artifacts(0, 0.0, (_ArtifactVolume(),))(subv, np.random.default_rng(7)) is subv


def test_default_pipeline_keeps_shapes_and_is_seeded():
    config = Config()
    augs = make_augmentations(config.training, shapes=[(4, 6, 6)])
    subv = _subvolume()
    a = apply_augmentations(subv, augs, np.random.default_rng(8))
    b = apply_augmentations(subv, augs, np.random.default_rng(8))
    assert a.image.shape == subv.image.shape == b.image.shape
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label_mask, b.label_mask)
    assert a.label_mask[tuple(a.seed)]
