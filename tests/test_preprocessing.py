"""Tests of diluvian.preprocessing: grid and sobel (intensity distance) seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import pdist

from diluvian.preprocessing import (
    SEED_GENERATORS,
    grid_seeds,
    intensity_distance_seeds,
    make_seeds,
    sectionwise_sobel,
)
from diluvian.util import DiluvianError

RES = np.array([40.0, 16.0, 16.0])  # anisotropic Z, Y, X nm per voxel


def sphere_image():
    """Two bright spheres (radius 400 and 300 nm) in dark surroundings, plus mild noise."""
    shape = (30, 64, 120)
    zz, yy, xx = np.indices(shape) * RES[:, None, None, None]
    big = (zz - 15 * 40) ** 2 + (yy - 32 * 16) ** 2 + (xx - 35 * 16) ** 2 <= 400.0 ** 2
    small = (zz - 15 * 40) ** 2 + (yy - 32 * 16) ** 2 + (xx - 90 * 16) ** 2 <= 300.0 ** 2
    rng = np.random.default_rng(0)
    image = np.where(big | small, 0.75, 0.2) + rng.normal(0, 0.02, shape)
    return (np.clip(image, 0, 0.99) * 256).astype(np.uint8), big, small


def cell_image(seed=1):
    """Densely packed bright cells separated by dark membranes (watershed-like pattern)."""
    rng = np.random.default_rng(seed)
    shape = (16, 96, 96)
    free = np.ones(shape, bool)
    free[tuple(rng.integers(0, shape, size=(40, 3)).T)] = False  # cell centres
    _, idx = ndimage.distance_transform_edt(free, sampling=RES, return_indices=True)
    label = np.ravel_multi_index(idx, shape)
    membrane = ndimage.maximum_filter(label, size=(1, 3, 3)) != ndimage.minimum_filter(
        label, size=(1, 3, 3))
    image = np.where(membrane, 0.15, 0.7) + rng.normal(0, 0.02, shape)
    return (np.clip(image, 0, 0.99) * 256).astype(np.uint8), membrane


def test_grid_seeds_form_centred_lattice():
    seeds = grid_seeds(np.zeros((4, 10, 8)), step_vox=(2, 4, 4))
    assert seeds.shape == (2 * 2 * 2, 3) and seeds.dtype == np.int64
    assert sorted(set(seeds[:, 0])) == [1, 3]
    assert sorted(set(seeds[:, 1])) == [3, 7]
    assert sorted(set(seeds[:, 2])) == [2, 6]


def test_grid_seeds_respect_mask():
    mask = np.zeros((8, 16, 16), bool)
    mask[:, :8, :] = True
    seeds = grid_seeds(np.zeros(mask.shape), step_vox=4, mask=mask)
    assert len(seeds) == 2 * 2 * 4
    assert mask[tuple(seeds.T)].all()


def test_grid_seeds_of_empty_image_are_empty():
    assert grid_seeds(np.zeros((0, 5, 5)), step_vox=2).shape == (0, 3)


def test_grid_seeds_axis_shorter_than_step_gets_its_middle():
    assert grid_seeds(np.zeros((1, 1, 1)), step_vox=2).tolist() == [[0, 0, 0]]
    seeds = grid_seeds(np.zeros((8, 64, 96)), step_vox=16)
    assert len(seeds) == 4 * 6 and set(seeds[:, 0]) == {4}


def test_grid_seeds_reject_bad_step():
    with pytest.raises(DiluvianError, match="step_vox"):
        grid_seeds(np.zeros((4, 4, 4)), step_vox=0)


def test_mask_shape_mismatch_raises():
    with pytest.raises(DiluvianError, match="mask shape"):
        grid_seeds(np.zeros((4, 4, 4)), step_vox=2, mask=np.ones((4, 4, 5), bool))


def test_sectionwise_sobel_does_not_cross_sections():
    image = np.zeros((3, 8, 8), np.float32)
    image[1] = 0.5  # differs only along Z
    assert np.allclose(sectionwise_sobel(image, axis=0), 0)
    image[1, :, 4:] = 0.9
    edges = sectionwise_sobel(image, axis=0)
    assert edges[1, :, 3:5].min() > 0 and np.allclose(edges[0], 0)


def test_sobel_seeds_land_in_each_sphere_and_never_on_dark():
    image, big, small = sphere_image()
    seeds = intensity_distance_seeds(image, RES, min_sep_nm=150)
    assert len(seeds) >= 2
    inside_big = big[tuple(seeds.T)]
    inside_small = small[tuple(seeds.T)]
    assert inside_big.any() and inside_small.any()
    assert (inside_big | inside_small).all()


def test_sobel_seeds_sorted_by_distance_from_edges():
    image, big, small = sphere_image()
    seeds = intensity_distance_seeds(image, RES, min_sep_nm=150)
    first = seeds[0] * RES
    assert big[tuple(seeds[0])]
    assert np.linalg.norm(first - np.array([15 * 40, 32 * 16, 35 * 16])) < 100
    interior = ndimage.distance_transform_edt(big | small, sampling=RES)
    d = interior[tuple(seeds.T)]
    assert np.all(np.diff(d) <= 60)  # (nearly) descending; the seeds' own transform decides


def test_sobel_seeds_honour_min_separation_in_nm():
    image, membrane = cell_image()
    for min_sep in (120.0, 300.0):
        seeds = intensity_distance_seeds(image, RES, min_sep_nm=min_sep)
        assert len(seeds) > 5
        assert pdist(seeds * RES).min() >= min_sep
        assert not membrane[tuple(seeds.T)].any()
    few = intensity_distance_seeds(image, RES, min_sep_nm=300.0)
    many = intensity_distance_seeds(image, RES, min_sep_nm=120.0)
    assert len(many) > len(few)


def test_sobel_seeds_edges_only_mode_avoids_edges():
    image, big, small = sphere_image()
    seeds = intensity_distance_seeds(image, RES, min_sep_nm=150, membrane=None)
    edges = ndimage.binary_dilation(big ^ ndimage.binary_erosion(big)) | ndimage.binary_dilation(
        small ^ ndimage.binary_erosion(small))
    assert len(seeds) and not edges[tuple(seeds.T)].any()


def test_sobel_seeds_respect_mask():
    image, big, small = sphere_image()
    seeds = intensity_distance_seeds(image, RES, min_sep_nm=150, mask=~big)
    assert len(seeds) and not big[tuple(seeds.T)].any()
    assert small[tuple(seeds.T)].all()


def test_sobel_seeds_of_empty_or_constant_image_are_empty():
    assert intensity_distance_seeds(np.zeros((0, 4, 4), np.uint8), RES).shape == (0, 3)
    assert intensity_distance_seeds(np.zeros((8, 16, 16), np.uint8), RES).shape == (0, 3)
    assert intensity_distance_seeds(np.full((8, 16, 16), 200, np.uint8), RES).shape == (0, 3)


def test_sobel_seeds_reject_bad_arguments():
    image = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(DiluvianError, match="resolution"):
        intensity_distance_seeds(image, (0, 4, 4))
    with pytest.raises(DiluvianError, match="membrane"):
        intensity_distance_seeds(image, RES, membrane="grey")


def test_make_seeds_dispatches_by_name():
    image, big, small = sphere_image()
    assert set(SEED_GENERATORS) == {"grid", "sobel"}
    np.testing.assert_array_equal(make_seeds("sobel", image, RES, min_sep_nm=150),
                                  intensity_distance_seeds(image, RES, min_sep_nm=150))
    np.testing.assert_array_equal(make_seeds("grid", image, RES, step_vox=8, mask=big),
                                  grid_seeds(image, step_vox=8, mask=big))


def test_make_seeds_unknown_name_raises():
    with pytest.raises(DiluvianError, match="seed generator 'nope'"):
        make_seeds("nope", np.zeros((4, 4, 4)), RES)


@pytest.mark.real_data
def test_sobel_seeds_on_fib25_land_inside_objects(fib25_path):
    import h5py

    with h5py.File(fib25_path, "r") as f:
        crop = (slice(93, 157),) * 3
        raw = f["volumes/raw"][crop]
        labels = f["volumes/labels/neuron_ids"][crop]
        resolution = f["volumes/raw"].attrs.get("resolution", [10, 10, 10])
    seeds = intensity_distance_seeds(raw, resolution)
    assert len(seeds) >= 20
    # inside one object and at least 2 voxels from any other label
    pure = ndimage.maximum_filter(labels, size=5) == ndimage.minimum_filter(labels, size=5)
    assert pure[tuple(seeds.T)].mean() > 0.9
