"""Volume, views and subvolumes, each checked against plain-array references."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from diluvian.util import DiluvianError, to_float_image
from diluvian.volumes import (
    DimOrder,
    DownsampledVolume,
    NdarrayVolume,
    PartitionedVolume,
    SubvolumeBounds,
    Volume,
    VolumeView,
)
from diluvian.volumes.arrays import CroppedArray, DownsampledArray, block_majority


@pytest.fixture
def cube():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 64), dtype=np.uint8)
    labels = (np.arange(64)[None, None, :] // 8 + 10 * (np.arange(64)[:, None, None] // 16)
              ).astype(np.uint64) * np.ones((64, 64, 64), np.uint64)
    return NdarrayVolume((1, 1, 1), image_data=image, label_data=labels)


def test_dim_order_names_zyx_axes():
    assert (DimOrder.Z, DimOrder.Y, DimOrder.X) == (0, 1, 2)


def test_view_composition_example_maps_coordinates_and_means(cube):
    view = cube.partition([1, 1, 2], [0, 0, 1]).downsample((4, 4, 1))
    assert view.shape == (16, 16, 32)
    np.testing.assert_array_equal(view.local_coord_to_world((2, 2, 2)), (8, 8, 34))
    np.testing.assert_array_equal(view.world_coord_to_local((8, 8, 34)), (2, 2, 2))
    sv = view.get_subvolume(SubvolumeBounds((0, 0, 0), (1, 1, 1)))
    expected = to_float_image(cube.image_data[0:4, 0:4, 32]).mean()
    assert sv.image.shape == (1, 1, 1)
    assert sv.image[0, 0, 0] == pytest.approx(expected, abs=1e-6)


def test_views_do_not_copy_parent_data(cube):
    view = cube.partition([2, 1, 1], [1, 0, 0])
    assert isinstance(view.image_data, CroppedArray)
    assert view.image_data.parent is cube.image_data
    cube.image_data[40, 5, 5] = 7
    assert view.image_data[8, 5, 5] == 7


def test_partitioned_view_matches_array_slices(cube):
    view = cube.partition([2, 1, 1], [1, 0, 0])
    assert isinstance(view, PartitionedVolume)
    assert view.shape == (32, 64, 64)
    np.testing.assert_array_equal(view.image_data[3:9, 10:20, 5:6], cube.image_data[35:41, 10:20, 5:6])
    np.testing.assert_array_equal(view.label_data[...], cube.label_data[32:])
    assert view.image_data.dtype == np.uint8 and view.image_data.ndim == 3


def test_lazy_array_supports_ints_steps_and_negative_indices(cube):
    view = cube.partition([1, 1, 1], [0, 0, 0])
    ref = cube.image_data
    np.testing.assert_array_equal(view.image_data[5], ref[5])
    np.testing.assert_array_equal(view.image_data[-1, ::3, 10:2:-2], ref[-1, ::3, 10:2:-2])
    np.testing.assert_array_equal(view.image_data[..., 4], ref[..., 4])
    np.testing.assert_array_equal(np.asarray(view.image_data), ref)
    assert view.image_data[3:3].shape == (0, 64, 64)


def test_partition_index_outside_partitioning_is_an_error(cube):
    with pytest.raises(DiluvianError, match="outside partitioning"):
        cube.partition([2, 1, 1], [2, 0, 0])


def test_downsample_to_same_resolution_returns_volume(cube):
    assert cube.downsample((1, 1, 1)) is cube


def test_downsample_to_non_multiple_resolution_is_an_error(cube):
    with pytest.raises(DiluvianError, match=r"\[volume\] resolution .* whole multiple"):
        cube.downsample((1, 1.5, 1))


def test_downsampled_image_is_block_mean(cube):
    view = cube.downsample((2, 4, 4))
    assert isinstance(view, DownsampledVolume)
    ref = to_float_image(cube.image_data).reshape(32, 2, 16, 4, 16, 4).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(view.image_data[...], ref, atol=1e-6)
    np.testing.assert_array_equal(view.resolution, (2, 4, 4))


def test_block_majority_picks_most_frequent_smallest_on_tie():
    blocks = np.array([[1, 2, 2, 3], [4, 4, 5, 5], [9, 9, 9, 9]])
    assert block_majority(blocks).tolist() == [2, 4, 9]


def test_downsampled_labels_majority_and_conjunction():
    labels = np.zeros((1, 2, 4), np.uint64)
    labels[0, :, :2] = [[1, 1], [1, 2]]
    labels[0, :, 2:] = [[3, 3], [3, 3]]
    vol = NdarrayVolume((1, 1, 1), image_data=np.zeros_like(labels, np.uint8), label_data=labels)
    assert vol.downsample((1, 2, 2)).label_data[...].ravel().tolist() == [1, 3]
    conj = vol.downsample((1, 2, 2), label_mode="conjunction")
    assert conj.label_data[...].ravel().tolist() == [0, 3]


def test_downsampled_mask_requires_all_subvoxels():
    mask = np.ones((2, 2, 2), bool)
    mask[0, 0, 0] = False
    arr = DownsampledArray(mask, (1, 2, 2), "all")
    assert arr[...].ravel().tolist() == [False, True]


def test_world_mat_to_local_crops_and_downsamples(cube):
    view = cube.partition([1, 2, 1], [0, 1, 0]).downsample((1, 2, 2))
    world = np.asarray(cube.label_data)
    local = view.world_mat_to_local(world)
    np.testing.assert_array_equal(local, view.label_data[...])


def test_identity_view_maps_coordinates_unchanged(cube):
    view = VolumeView(cube)
    np.testing.assert_array_equal(view.local_coord_to_world((1, 2, 3)), (1, 2, 3))
    assert view.image_data is cube.image_data


def test_get_subvolume_masks_seed_label_and_crops_margin(cube):
    bounds = SubvolumeBounds((0, 0, 4), (8, 8, 20), label_margin=(1, 2, 3))
    sv = cube.get_subvolume(bounds)
    assert sv.image.dtype == np.float32 and sv.image.shape == (8, 8, 16)
    np.testing.assert_allclose(sv.image, to_float_image(cube.image_data[0:8, 0:8, 4:20]))
    assert sv.label_id == int(cube.label_data[4, 4, 12])
    assert sv.label_mask.shape == (6, 4, 10)
    ref = cube.label_data[1:7, 2:6, 7:17] == sv.label_id
    np.testing.assert_array_equal(sv.label_mask, ref)


def test_get_subvolume_without_labels_has_no_mask():
    vol = NdarrayVolume((1, 1, 1), image_data=np.zeros((4, 4, 4), np.uint8))
    sv = vol.get_subvolume(SubvolumeBounds((0, 0, 0), (2, 2, 2)))
    assert sv.label_mask is None and sv.label_id is None


def test_get_subvolume_outside_volume_reads_zero(cube):
    sv = cube.get_subvolume(SubvolumeBounds((-2, 0, 0), (2, 2, 2), label_id=999))
    assert np.all(sv.image[:2] == 0)
    assert not sv.label_mask.any()


def test_bounds_generator_is_deterministic_for_a_generator(cube):
    a = cube.subvolume_bounds_generator(shape=(5, 7, 9), rng=np.random.default_rng(3))
    b = cube.subvolume_bounds_generator(shape=(5, 7, 9), rng=np.random.default_rng(3))
    for _ in range(5):
        ba, bb = next(a), next(b)
        assert ba == bb
        assert np.all(ba.start >= 0) and np.all(ba.stop <= 64)
        np.testing.assert_array_equal(ba.shape, (5, 7, 9))
        np.testing.assert_array_equal(ba.seed, (2, 3, 4))
        assert ba.label_id == int(cube.label_data[tuple(ba.start + ba.seed)])


def test_bounds_generator_seeds_lie_inside_mask():
    mask = np.zeros((20, 20, 20), bool)
    mask[10:14, 3:6, 8:9] = True
    vol = NdarrayVolume((1, 1, 1), image_data=np.zeros((20, 20, 20), np.uint8), mask_data=mask)
    gen = vol.subvolume_bounds_generator(shape=(3, 3, 3), rng=np.random.default_rng(0))
    for _ in range(20):
        b = next(gen)
        assert mask[tuple(b.start + b.seed)]


def test_bounds_generator_default_shape_comes_from_config(cube):
    b = next(cube.subvolume_bounds_generator(rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(b.shape, (13, 33, 33))


def test_bounds_generator_rejects_shape_larger_than_volume(cube):
    gen = cube.subvolume_bounds_generator(shape=(65, 3, 3), rng=np.random.default_rng(0))
    with pytest.raises(DiluvianError, match="does not fit"):
        next(gen)


def test_subvolume_generator_reads_each_bounds(cube):
    bounds = [SubvolumeBounds((0, 0, 0), (2, 2, 2)), SubvolumeBounds((4, 4, 4), (6, 6, 6))]
    subvolumes = list(cube.subvolume_generator(iter(bounds)))
    assert len(subvolumes) == 2
    np.testing.assert_allclose(subvolumes[1].image, to_float_image(cube.image_data[4:6, 4:6, 4:6]))
    gen = cube.subvolume_generator(shape=(3, 3, 3), rng=np.random.default_rng(1))
    assert next(gen).image.shape == (3, 3, 3)


def test_mask_bounds_cover_nonzero_mask():
    mask = np.zeros((8, 8, 8), bool)
    mask[2:4, 1:7, 5] = True
    vol = NdarrayVolume((1, 1, 1), image_data=np.zeros((8, 8, 8), np.uint8), mask_data=mask)
    lo, hi = vol.mask_bounds
    assert lo.tolist() == [2, 1, 5] and hi.tolist() == [4, 7, 6]


def test_volume_equality_compares_resolution_and_data(cube):
    same = NdarrayVolume((1, 1, 1), image_data=cube.image_data.copy(),
                         label_data=cube.label_data.copy())
    assert same == cube
    assert NdarrayVolume((2, 1, 1), image_data=cube.image_data,
                         label_data=cube.label_data) != cube
    assert NdarrayVolume((1, 1, 1), image_data=cube.image_data) != cube


def test_mismatched_data_shapes_are_an_error():
    with pytest.raises(DiluvianError, match="shapes differ"):
        Volume((1, 1, 1), image_data=np.zeros((2, 2, 2)), label_data=np.zeros((2, 2, 3)))


def test_views_pickle(cube):
    view = cube.partition([2, 1, 1], [0, 0, 0]).downsample((2, 2, 2))
    copy = pickle.loads(pickle.dumps(view))
    np.testing.assert_array_equal(copy.image_data[...], view.image_data[...])


class _CountingArray:
    """Array-like recording the boxes read from it."""

    def __init__(self, data):
        self.data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def test_sparse_wrapper_reads_parent_once_per_leaf(cube):
    pytest.importorskip("diluvian.octrees")
    counting = _CountingArray(cube.image_data)
    parent = Volume((1, 1, 1), image_data=counting, label_data=cube.label_data)
    sparse = parent.sparse_wrapper((8, 8, 8), (8, 8, 8))
    bounds = SubvolumeBounds((3, 5, 7), (12, 14, 20))
    sv = sparse.get_subvolume(bounds)
    ref = cube.get_subvolume(bounds)
    np.testing.assert_array_equal(sv.image, ref.image)
    np.testing.assert_array_equal(sv.label_mask, ref.label_mask)
    reads = len(counting.reads)
    assert 0 < reads <= 2 * 2 * 3  # only the touched leaves
    sparse.get_subvolume(bounds)
    assert len(counting.reads) == reads
    np.testing.assert_array_equal(sparse.local_coord_to_world((1, 2, 3)), (1, 2, 3))
