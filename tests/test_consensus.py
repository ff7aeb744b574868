"""Consensus segmentation: two fills in different seed orders, split where they disagree."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from diluvian.config import Config
from diluvian.fill import fill_volume_with_model
from diluvian.fill.consensus import consensus_fill, consensus_labels
from diluvian.util import DiluvianError, make_rng
from diluvian.volumes.base import NdarrayVolume

FOV = [5, 9, 9]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label volumes are the same partition (ids may differ, 0 is 0)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


# ------------------------------------------------------------ consensus_labels
def test_identical_fills_give_the_same_partition_with_consecutive_ids():
    a = np.array([[[0, 7, 7, 3, 3, 9]]], np.uint64)
    out = consensus_labels(a, a)
    assert out.dtype == np.uint64
    assert out.tolist() == [[[0, 1, 1, 2, 2, 3]]]


def test_a_merge_in_one_fill_only_is_split():
    a = np.array([1, 1, 1, 1, 2, 2])  # objects A and B merged, C separate
    b = np.array([4, 4, 5, 5, 6, 6])  # all three separate
    assert consensus_labels(a, b).tolist() == [1, 1, 2, 2, 3, 3]


def test_a_merge_in_both_fills_survives():
    a = np.array([1, 1, 1, 1, 0, 0])
    b = np.array([8, 8, 8, 8, 0, 3])
    assert consensus_labels(a, b).tolist() == [1, 1, 1, 1, 0, 0]


def test_background_in_either_fill_stays_background():
    a = np.array([0, 1, 1, 2])
    b = np.array([5, 0, 5, 5])
    assert consensus_labels(a, b).tolist() == [0, 0, 1, 2]


def test_pieces_smaller_than_min_size_are_dropped_and_ids_stay_consecutive():
    a = np.array([3, 3, 3, 3, 3, 3])
    b = np.array([1, 2, 2, 1, 4, 4])  # pieces (3,1) of 2 voxels, (3,2) of 2, (3,4) of 2
    assert consensus_labels(a, b, min_size=3).tolist() == [0] * 6
    b = np.array([9, 2, 9, 9, 4, 4])  # (3,9) is two pieces: voxel 0 and voxels 2-3
    assert consensus_labels(a, b, min_size=2).tolist() == [0, 0, 1, 1, 2, 2]
    assert consensus_labels(a, b, min_size=2, connected=False).tolist() == [1, 0, 1, 1, 2, 2]


def test_a_pair_whose_voxels_do_not_touch_is_split_into_its_connected_pieces():
    # Two fills agree on one object, but the second fill's background cuts it in
    # two: each face-connected piece becomes an object of its own (FFN's consensus).
    a = np.ones((3, 4, 4), np.uint32)
    b = np.full((3, 4, 4), 7, np.uint32)
    b[:, 2, :] = 0
    out = consensus_labels(a, b)
    assert set(np.unique(out[:, :2])) == {1} and set(np.unique(out[:, 3:])) == {2}
    assert (out[:, 2] == 0).all()
    # Diagonal contact is not a connection (face connectivity).
    c = np.array([[1, 0], [0, 1]])
    assert consensus_labels(c, c).tolist() == [[1, 0], [0, 2]]
    assert consensus_labels(c, c, connected=False).tolist() == [[1, 0], [0, 1]]
    with pytest.raises(DiluvianError, match="at most 3 dimensions"):
        consensus_labels(np.ones((1, 1, 1, 2)), np.ones((1, 1, 1, 2)))


def test_large_ids_and_empty_inputs():
    big = np.uint64(2**63 + 5)
    a = np.array([big, big, 1], np.uint64)
    b = np.array([1, 2, 2], np.uint64)
    assert consensus_labels(a, b).tolist() == [1, 2, 3]
    assert consensus_labels(np.zeros((2, 2, 2)), np.zeros((2, 2, 2))).sum() == 0


def test_shapes_must_match():
    with pytest.raises(DiluvianError, match="expected the same shape"):
        consensus_labels(np.zeros((2, 3)), np.zeros((3, 2)))


# -------------------------------------------------------------- consensus_fill
def small_config(seed=11) -> Config:
    return Config([{"model": {"input_fov_shape": FOV, "output_fov_shape": FOV,
                              "output_fov_move_fraction": 4, "t_move": 0.9},
                    "fill": {"checkpoint_interval": 100, "min_body_size": 0},
                    "random_seed": seed}])


def touching_boxes() -> np.ndarray:
    """Four boxes; 1 and 2 touch, the rest are separated by background."""
    labels = np.zeros((12, 32, 32), dtype=np.uint64)
    labels[1:11, 1:15, 1:16] = 1
    labels[1:11, 1:15, 16:31] = 2
    labels[1:11, 16:31, 1:15] = 3
    labels[1:11, 16:31, 16:31] = 4
    return labels


def volume_of(labels):
    image = (labels.astype(np.int64) * 40).astype(np.uint8)
    return NdarrayVolume([40, 16, 16], image_data=image, label_data=labels)


def greedy_oracle(images, masks):
    """Merges: a region takes every object at least as bright as the darkest in its mask."""
    c = tuple(s // 2 for s in images.shape[1:])
    centre = images[(slice(None), *c)]
    inside = masks > 0.5
    darkest = np.where(inside, images, np.inf).min(axis=(1, 2, 3))
    ref = np.where(inside.any(axis=(1, 2, 3)), darkest, centre)[:, None, None, None]
    same = (images >= ref - 1e-3) & (images > 0) & (ref > 0)
    return np.where(same, 0.99, 0.01).astype(np.float32)


def seeds_of(shape, step=4):
    grid = np.mgrid[tuple(slice(step // 2, s, step) for s in shape)]
    return grid.reshape(3, -1).T


def test_consensus_fill_combines_two_seed_orders():
    labels = touching_boxes()
    config = small_config()
    volume = volume_of(labels)
    options = {"seed_generator": "grid", "progress": False}
    out, fills = consensus_fill(greedy_oracle, volume, name="v", options=options,
                                config=config)
    expected = []
    for stream in (("v",), ("v", "consensus")):
        got, _ = fill_volume_with_model(greedy_oracle, volume, seed_generator="grid",
                                        rng=make_rng(11, "fill_seeds", *stream),
                                        progress=False, config=config)
        expected.append(got)
    np.testing.assert_array_equal(fills[0][0], expected[0])
    np.testing.assert_array_equal(fills[1][0], expected[1])
    np.testing.assert_array_equal(out, consensus_labels(*expected))
    # Never more merged than either fill: each consensus object lies in one object of each.
    for fill in expected:
        pairs = np.unique(np.stack([out[out > 0], fill[out > 0]]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]


def test_the_second_fill_reuses_the_first_fills_evaluations_exactly():
    calls = []

    def counting(images, masks):
        calls.append(len(images))
        return greedy_oracle(images, masks)

    volume, config = volume_of(touching_boxes()), small_config()
    options = {"seed_generator": "grid", "progress": False}
    results = {}
    for reuse in (0, 1 << 30):
        calls.clear()
        out, fills = consensus_fill(counting, volume, name="v", options=options, config=config,
                                    reuse_bytes=reuse)
        results[reuse] = (out, [f[0] for f in fills], sum(calls),
                          sum(f[1].moves for f in fills))
    plain, reused = results[0], results[1 << 30]
    np.testing.assert_array_equal(reused[0], plain[0])
    for a, b in zip(reused[1], plain[1]):
        np.testing.assert_array_equal(a, b)
    assert plain[2] == plain[3]  # without reuse every requested FOV is evaluated
    assert reused[3] == plain[3] and reused[2] < plain[2]


def test_memo_predictor_forgets_the_oldest_outputs_beyond_its_memory():
    from diluvian.predictor import MemoPredictor

    calls = []
    memo = MemoPredictor(lambda i, m: calls.append(len(i)) or i[:, :2, :2, :2] + m[:, :2, :2, :2],
                         max_bytes=2 * 8 * 4)  # two outputs of 2x2x2 float32
    x = np.arange(4 * 27, dtype=np.float32).reshape(4, 3, 3, 3)
    first = memo(x[:3], x[:3])
    assert calls == [3] and memo.misses == 3 and len(memo._outputs) == 2
    again = memo(x[:3], x[:3])  # the first output was forgotten: evaluated again
    np.testing.assert_array_equal(first, again)
    assert calls == [3, 1] and memo.hits == 2
    # A mask that differs by one value is another input.
    y = x[:1].copy()
    y[0, 1, 1, 1] += 1
    memo(x[:1], y)
    assert calls == [3, 1, 1]


def test_consensus_of_the_greedy_oracle_splits_a_one_sided_merge():
    # Seeds only in object 1 then 2 (fill A) or 2 then 1 (fill B, as a reversed list):
    # A merges 1 and 2, B does not; the consensus keeps them apart.
    labels = touching_boxes()
    config = small_config()
    seeds = np.array([[5, 7, 7], [5, 7, 23]])
    fills = [fill_volume_with_model(greedy_oracle, volume_of(labels), seeds=s,
                                    shuffle_seeds=False, progress=False, config=config)[0]
             for s in (seeds, seeds[::-1])]
    assert len(np.unique(fills[0][labels == 1].tolist() + fills[0][labels == 2].tolist())) == 1
    out = consensus_labels(*fills)
    assert same_partition(np.where(np.isin(labels, [1, 2]), labels, 0), out)


def test_unknown_fill_option_is_refused():
    with pytest.raises(ValueError, match="shuffle_seeds"):
        consensus_fill(greedy_oracle, volume_of(touching_boxes()),
                       options={"shuffle_seeds": False}, config=small_config())


# ------------------------------------------------------------------ blockwise
def blockwise_consensus(path, client, consensus=True, block_shape=(12, 32, 32)):
    from diluvian.blockwise import fill_volume_blockwise

    return fill_volume_blockwise(greedy_oracle, volume_of(touching_boxes()), path,
                                 block_shape=block_shape, block_overlap=(0, 4, 4),
                                 client=client, fill_options={"seed_generator": "grid"},
                                 seed_stream=("v",), progress=False, config=small_config(),
                                 consensus=consensus)


def test_blockwise_consensus_fills_each_block_both_ways(tmp_path):
    from dask.distributed import Client, LocalCluster

    from diluvian.blockwise import read_labels

    expected, fills = consensus_fill(greedy_oracle, volume_of(touching_boxes()), name="v",
                                     options={"seed_generator": "grid", "progress": False},
                                     config=small_config())
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        # One block holding the whole volume: exactly the whole volume's consensus,
        # from the evaluations of both fills.
        one = blockwise_consensus(tmp_path / "one.zarr", client)
        assert same_partition(read_labels(one.store), expected)
        assert one.stats.moves == fills[0][1].moves + fills[1][1].moves
        # Four blocks: each consensus object lies in one object of the plain blockwise fill.
        plain = blockwise_consensus(tmp_path / "plain.zarr", client, False, (12, 16, 16))
        four = blockwise_consensus(tmp_path / "four.zarr", client, True, (12, 16, 16))
        out, ref = read_labels(four.store), read_labels(plain.store)
        assert out.max() >= 1 and np.array_equal(out > 0, (out > 0) & (ref > 0))
        pairs = np.unique(np.stack([out[out > 0], ref[out > 0]]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]
        assert four.stats.moves > plain.stats.moves
        # A store remembers whether it is a consensus: it resumes only as one.
        with pytest.raises(DiluvianError, match="fill_options"):
            blockwise_consensus(tmp_path / "four.zarr", client, False, (12, 16, 16))


# ------------------------------------------------------------------------ CLI
def save_box_model(path):
    """A 1x1x1 convolution: bright voxels (the boxes) -> 0.998, background -> 0.047."""
    import keras

    from diluvian.network import save_model
    from diluvian.network.io import model_settings_from_config

    image = keras.Input((*FOV, 1), name="image_input")
    mask = keras.Input((*FOV, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    out = keras.layers.Conv3D(1, 1, activation="sigmoid", name="mask_output",
                              kernel_initializer=keras.initializers.Constant([[[[[60.0], [0.0]]]]]),
                              bias_initializer=keras.initializers.Constant(-3.0))(x)
    save_model(keras.Model([image, mask], out), path, model_settings_from_config(small_config()))
    return path


@pytest.mark.slow
def test_cli_consensus_writes_a_segmentation_as_fill_does(tmp_path, capsys):
    from diluvian.__main__ import main
    from diluvian.volumes.hdf5 import HDF5Volume

    truth = np.zeros((8, 32, 32), np.uint64)
    truth[1:7, 1:15, 1:15], truth[1:7, 1:15, 17:31], truth[1:7, 17:31, 1:31] = 1, 2, 3
    HDF5Volume.write_file(tmp_path / "boxes.h5", [40, 16, 16],
                          image_data=np.where(truth > 0, 200, 0).astype(np.uint8),
                          label_data=truth)
    data = tmp_path / "boxes.toml"
    data.write_text('[[dataset]]\nname = "boxes"\nhdf5_file = "boxes.h5"\n'
                    'image_dataset = "volumes/raw"\nlabel_dataset = "volumes/labels/neuron_ids"\n')
    model = save_box_model(tmp_path / "boxes.keras")
    common = ["-m", str(model), "-v", str(data), "--seed-generator", "grid"]
    assert main(["consensus", str(tmp_path / "con_{volume}"), *common]) == 0
    assert "boxes: 3 bodies" in capsys.readouterr().out
    assert main(["fill", str(tmp_path / "fill_{volume}"), *common]) == 0
    with h5py.File(tmp_path / "con_boxes.hdf5") as f:
        consensus = f["volumes/labels/neuron_ids"][...]
        assert f["volumes/raw"].shape == truth.shape
    with h5py.File(tmp_path / "fill_boxes.hdf5") as f:
        filled = f["volumes/labels/neuron_ids"][...]
    assert (tmp_path / "con_boxes.toml").exists()
    assert same_partition(consensus, filled)
    assert same_partition(consensus, truth)
    # Blockwise (--block-shape): the same consensus, and a resumable store.
    assert main(["consensus", str(tmp_path / "blk_{volume}"), *common, "--block-shape",
                 "8", "16", "16", "--workers", "1"]) == 0
    assert "boxes: 3 bodies" in capsys.readouterr().out
    with h5py.File(tmp_path / "blk_boxes.hdf5") as f:
        assert same_partition(f["volumes/labels/neuron_ids"][...], truth)
    assert (tmp_path / "blk_boxes.zarr").is_dir()


def test_cli_consensus_needs_a_model(tmp_path, capsys):
    from diluvian.__main__ import main

    assert main(["consensus", str(tmp_path / "o_{volume}")]) == 2
    err = capsys.readouterr().err
    assert "needs a trained model file" in err and len(err.strip().splitlines()) == 1


def test_doctests():
    import doctest

    import diluvian.fill.consensus
    import diluvian.postprocessing

    failed, attempted = doctest.testmod(diluvian.postprocessing)
    assert failed == 0 and attempted > 0
    assert diluvian.fill.consensus.consensus_labels is diluvian.postprocessing.consensus_labels
