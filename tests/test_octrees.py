"""Tests of diluvian.octrees: every behaviour checked against a plain numpy array."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from diluvian.octrees import (
    BranchNode,
    LeafNode,
    OctreeVolume,
    UniformBranchNode,
    UniformLeafNode,
    UniformNode,
)

START = np.array([3, 5, 7])
SHAPE = np.array([20, 37, 29])
LEAF = (4, 8, 8)


def make_pair(fill_value=0, dtype=np.float32):
    vol = OctreeVolume(LEAF, (START, START + SHAPE), dtype, fill_value=fill_value)
    ref = np.full(SHAPE, fill_value, dtype=dtype)
    return vol, ref


def random_box(rng, shape=SHAPE):
    a = rng.integers(0, shape)
    b = rng.integers(a + 1, shape + 1)
    return a, b


def octree_key(a, b):
    return tuple(slice(int(s), int(e)) for s, e in zip(START + a, START + b))


def ref_key(a, b):
    return tuple(slice(int(s), int(e)) for s, e in zip(a, b))


def node_count(vol):
    return sum(1 for _ in vol.iter_nodes())


@pytest.mark.parametrize("seed", range(6))
def test_random_slice_writes_and_reads_match_numpy(seed):
    rng = np.random.default_rng(seed)
    vol, ref = make_pair()
    for _ in range(25):
        a, b = random_box(rng)
        if rng.random() < 0.4:
            value = float(rng.integers(0, 3))
        else:
            value = rng.random(b - a).astype(np.float32)
        vol[octree_key(a, b)] = value
        ref[ref_key(a, b)] = value
        a, b = random_box(rng)
        np.testing.assert_array_equal(vol[octree_key(a, b)], ref[ref_key(a, b)])
    np.testing.assert_array_equal(vol[:, :, :], ref)


@pytest.mark.parametrize("seed", range(3))
def test_point_writes_and_reads_match_numpy(seed):
    rng = np.random.default_rng(100 + seed)
    vol, ref = make_pair(dtype=np.int32)
    for _ in range(200):
        p = rng.integers(0, SHAPE)
        v = int(rng.integers(-5, 5))
        vol[tuple(int(c) for c in START + p)] = v
        ref[tuple(p)] = v
    for _ in range(200):
        p = rng.integers(0, SHAPE)
        assert vol[tuple(int(c) for c in START + p)] == ref[tuple(p)]
    np.testing.assert_array_equal(vol[:, :, :], ref)


def test_vectorised_points_match_numpy():
    rng = np.random.default_rng(7)
    vol, ref = make_pair(dtype=np.int16)
    vol[START[0]:START[0] + 6, :, :] = 3
    ref[0:6] = 3
    pts = rng.integers(0, SHAPE, size=(500, 3))
    vals = rng.integers(0, 100, size=500).astype(np.int16)
    # duplicates: numpy keeps the last write; make points unique for a clean comparison
    pts = np.unique(pts, axis=0)
    vals = vals[:len(pts)]
    vol[tuple(START[i] + pts[:, i] for i in range(3))] = vals
    ref[tuple(pts[:, i] for i in range(3))] = vals
    np.testing.assert_array_equal(vol[:, :, :], ref)
    query = rng.integers(0, SHAPE, size=(300, 3))
    np.testing.assert_array_equal(vol[tuple(START[i] + query[:, i] for i in range(3))],
                                  ref[tuple(query[:, i] for i in range(3))])


def test_integer_keys_keep_their_axis_as_in_006():
    vol, ref = make_pair()
    rng = np.random.default_rng(3)
    block = rng.random((37, 29)).astype(np.float32)
    vol[START[0] + 2] = block  # numpy-shaped values are still accepted
    ref[2] = block
    np.testing.assert_array_equal(vol[START[0] + 2, :, 4 + START[2]], ref[2:3, :, 4:5])
    assert vol[START[0] + 2, START[1] + 3, START[2] + 4].shape == (1, 1, 1)
    assert vol[START[0] + 2, START[1] + 3, START[2] + 4] == ref[2, 3, 4]
    np.testing.assert_array_equal(vol[int(START[0]) + 2, ...], ref[2:3, ...])
    vol[START[0] + 3] = block[np.newaxis]  # and values with the kept axis
    np.testing.assert_array_equal(vol[START[0] + 3], block[np.newaxis])


def test_unwritten_voxels_read_fill_value():
    vol, _ = make_pair(fill_value=np.nan)
    assert np.isnan(vol[:, :, :]).all()
    assert np.isnan(vol[tuple(int(c) for c in START)])
    assert vol.fullness() == 0.0


def test_default_fill_value_is_zero():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (9, 9, 9)), np.uint8)
    assert vol[:, :, :].sum() == 0 and vol[:, :, :].dtype == np.uint8


def test_out_of_bounds_keys_raise_index_error():
    vol, _ = make_pair()
    stop = START + SHAPE
    with pytest.raises(IndexError):
        vol[int(stop[0]), int(START[1]), int(START[2])]
    with pytest.raises(IndexError):
        vol[int(START[0]) - 1, int(START[1]), int(START[2])] = 1
    with pytest.raises(IndexError):
        vol[0:int(stop[0]), :, :]
    with pytest.raises(IndexError):
        vol[::2, :, :]
    with pytest.raises(IndexError):
        vol[np.array([int(stop[0])]), np.array([START[1]]), np.array([START[2]])]


def test_nodes_wholly_outside_bounds_are_none():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (5, 12, 12)), np.uint8)
    vol[0, 0, 0] = 1  # split the root down one path
    root = vol.root
    assert isinstance(root, BranchNode)
    # root covers 16^3; z-offset children start at z=8 >= 5, so are outside
    for i in range(8):
        if (i >> 2) & 1:
            assert root.child(i) is None
        else:
            assert root.child(i) is not None
    assert root.children[1][0][0] is None and root.children[0][1][1] is not None


def test_constant_over_whole_node_collapses_it():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (16, 16, 16)), np.float32)
    rng = np.random.default_rng(0)
    vol[0:16, 0:16, 0:16] = rng.random((16, 16, 16)).astype(np.float32)
    assert vol.fullness() == 1.0
    vol[0:4, 0:4, 0:4] = 2.0
    leaf = vol._leaves[(0, 0, 0)]
    assert isinstance(leaf, UniformLeafNode) and leaf.value == 2.0
    assert vol._dense.get((0, 0, 0)) is None
    vol[0:8, 0:8, 8:16] = 5.0
    octant = vol.root.children[0][0][1]
    assert isinstance(octant, UniformBranchNode) and octant.value == 5.0
    vol[:, :, :] = 1.0
    assert isinstance(vol.root, UniformBranchNode)
    assert node_count(vol) == 1 and vol.fullness() == 0.0
    assert (vol[:, :, :] == 1.0).all()


def test_uniform_children_merge_into_uniform_parent():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (8, 8, 8)), np.int32)
    vol[0, 0, 0] = 1
    assert isinstance(vol.root, BranchNode)
    vol[0:4, 0:4, 0:4] = 0
    assert isinstance(vol.root, UniformBranchNode) and vol.root.value == 0


def test_nan_uniform_children_merge():
    vol = OctreeVolume((2, 2, 2), ((0, 0, 0), (4, 4, 4)), np.float32, fill_value=np.nan)
    vol[1, 1, 1] = 0.5
    vol[0:2, 0:2, 0:2] = np.nan
    assert isinstance(vol.root, UniformBranchNode)


def test_one_voxel_in_uniform_node_splits_only_its_path():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (32, 32, 32)), np.uint8)
    assert node_count(vol) == 1
    vol[5, 9, 30] = 3
    assert vol.depth == 3
    # 3 branch levels, each splitting into 8 children: 1 + 3 * 8 nodes
    assert node_count(vol) == 1 + 3 * 8
    leaves = list(vol.iter_leaves())
    assert len(leaves) == 1 and isinstance(leaves[0], LeafNode)
    assert leaves[0].start == (4, 8, 28)
    assert sum(isinstance(n, UniformNode) for n in vol.iter_nodes()) == 3 * 8 - 3  # minus 2 branches, 1 leaf
    expected = np.zeros((32, 32, 32), np.uint8)
    expected[5, 9, 30] = 3
    np.testing.assert_array_equal(vol[:, :, :], expected)


def test_writing_the_uniform_value_allocates_nothing():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (32, 32, 32)), np.uint8)
    vol[3:9, 2:20, 5:6] = 0
    assert node_count(vol) == 1


def test_leaf_bounds_are_clipped():
    vol = OctreeVolume((4, 4, 4), ((2, 0, 0), (9, 6, 5)), np.uint8)
    vol[8, 5, 4] = 1
    start, stop = vol.get_leaf_bounds()
    np.testing.assert_array_equal(start, [6, 4, 4])
    np.testing.assert_array_equal(stop, [9, 6, 5])
    leaf, = vol.iter_leaves()
    assert leaf.data.shape == (3, 2, 1)


def test_fullness_is_relative_to_clip_bounds():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (6, 4, 4)), np.uint8)
    vol[5, 0, 0] = 1  # leaf clipped to 2 x 4 x 4 of a 6 x 4 x 4 volume
    assert vol.stored_fraction() == pytest.approx(32 / 96)
    assert vol.fullness() == pytest.approx(1 / 2)  # one leaf of ceil(6 / 4) * 1 * 1 cells
    vol[0, 0, 0] = 1
    assert vol.stored_fraction() == pytest.approx(1.0)
    assert vol.fullness() == pytest.approx(1.0)


def test_populator_fills_leaves_lazily_on_first_read():
    rng = np.random.default_rng(5)
    source = rng.random((20, 20, 20)).astype(np.float32)
    calls = []

    def populator(bounds):
        start, stop = bounds
        calls.append((tuple(start), tuple(stop)))
        return source[tuple(slice(a, b) for a, b in zip(start, stop))]

    vol = OctreeVolume((8, 8, 8), ((0, 0, 0), (20, 20, 20)), np.float32, populator=populator)
    assert calls == []
    np.testing.assert_array_equal(vol[1:3, 2:5, 3:4], source[1:3, 2:5, 3:4])
    assert calls == [((0, 0, 0), (8, 8, 8))]
    np.testing.assert_array_equal(vol[0:8, 0:8, 0:8], source[0:8, 0:8, 0:8])
    assert len(calls) == 1  # cached
    np.testing.assert_array_equal(vol[:, :, :], source)
    assert len(calls) == 27
    assert ((16, 16, 16), (20, 20, 20)) in calls


def test_populator_partial_write_keeps_rest_of_leaf():
    source = np.arange(8 ** 3, dtype=np.float64).reshape(8, 8, 8)
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (8, 8, 8)), np.float64,
                       populator=lambda b: source[tuple(slice(a, c) for a, c in zip(*b))])
    vol[1, 1, 1] = -1
    vol[4:6, 0:8, 0:8] = -2
    ref = source.copy()
    ref[1, 1, 1] = -1
    ref[4:6] = -2
    np.testing.assert_array_equal(vol[:, :, :], ref)


def test_populator_wrong_shape_raises():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (8, 8, 8)), np.uint8,
                       populator=lambda b: np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="populator returned shape"):
        vol[0, 0, 0]


def test_map_copy_keeps_uniformity_and_maps_values():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (16, 16, 16)), np.float32, fill_value=np.nan)
    rng = np.random.default_rng(2)
    block = rng.random((5, 6, 7)).astype(np.float32)
    vol[1:6, 2:8, 3:10] = block
    vol[8:16, 8:16, 8:16] = 0.75
    copy = vol.map_copy(np.bool_, lambda d: d > 0.5, lambda v: v > 0.5)
    assert copy.dtype == np.bool_
    kinds = [type(n) for n in vol.iter_nodes()]
    assert [type(n) for n in copy.iter_nodes()] == kinds
    ref = vol[:, :, :] > 0.5
    np.testing.assert_array_equal(copy[:, :, :], ref)
    assert isinstance(copy.root.children[1][1][1], UniformBranchNode)
    assert copy.root.children[1][1][1].value
    # the copy is independent
    copy[0:16, 0:16, 0:16] = False
    assert np.array_equal(vol[1:6, 2:8, 3:10], block)


def test_map_copy_of_lazy_volume_maps_populator():
    vol = OctreeVolume((4, 4, 4), ((0, 0, 0), (8, 8, 8)), np.int32,
                       populator=lambda b: np.full(tuple(b[1] - b[0]), 3))
    copy = vol.map_copy(np.int64, lambda d: d * 2, lambda v: v * 2)
    assert (copy[:, :, :] == 6).all()


def test_get_volume_is_zero_based_numpy_like_view():
    vol, ref = make_pair()
    view = vol.view()
    assert view.shape == tuple(SHAPE) and view.dtype == np.float32
    rng = np.random.default_rng(9)
    block = rng.random((3, 4, 5)).astype(np.float32)
    view[-3:, 1:5, 2:7] = block
    ref[-3:, 1:5, 2:7] = block
    np.testing.assert_array_equal(view[-5:, :, :], ref[-5:, :, :])
    assert view[-1, 1, 2] == ref[-1, 1, 2]
    np.testing.assert_array_equal(np.asarray(view), ref)


def test_asarray_gives_dense_copy():
    vol, ref = make_pair()
    vol[int(START[0]):int(START[0]) + 2, :, :] = 4.0
    ref[0:2] = 4.0
    np.testing.assert_array_equal(np.asarray(vol), ref)
    assert np.asarray(vol, dtype=np.float64).dtype == np.float64


def test_shape_and_dtype():
    vol = OctreeVolume((4, 4, 4), ((1, 2, 3), (11, 22, 33)), np.uint16)
    assert vol.shape == (10, 20, 30)
    assert vol.dtype == np.uint16


def test_huge_bounds_cost_almost_nothing_until_touched():
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        vol = OctreeVolume((32, 32, 32), ((0, 0, 0), (10 ** 4,) * 3), np.float32,
                           fill_value=np.nan)
        vol[5000:5013, 5000:5033, 5000:5033] = 1.0
        vol[1, 2, 3] = 0.5
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used < 4 * 2 ** 20  # at most 8 leaves of 128 KiB + tree nodes
    assert vol[5012, 5032, 5032] == 1.0 and vol[1, 2, 3] == 0.5
    assert np.isnan(vol[9999, 9999, 9999])
    assert vol.fullness() < 1e-5
    vol[:, :, :] = 0.0
    assert node_count(vol) == 1
