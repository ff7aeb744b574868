"""Blockwise filling: block layout, the overlap rule, union-find, Dask + zarr end to end."""

from __future__ import annotations

import tomllib

import h5py
import numpy as np
import pytest

from diluvian.blockwise import (
    FACE_OFFSETS,
    FORWARD_OFFSETS,
    BlockLayout,
    UnionFind,
    consecutive_ids,
    fill_volume_blockwise,
    overlap_matches,
    read_labels,
    write_store_hdf5,
)
from diluvian.blockwise.store import BLOCK_STATS, FINISHED, SCRATCH, STATE_ATTR
from diluvian.config import Config
from diluvian.preprocessing import grid_seeds
from diluvian.util import DiluvianError
from diluvian.volumes.base import NdarrayVolume

FOV = [5, 9, 9]


def small_config() -> Config:
    return Config([{
        "model": {"input_fov_shape": FOV, "output_fov_shape": FOV,
                  "output_fov_move_fraction": 4, "t_move": 0.9},
        # Object 4 of crossing_labels() has 16 voxels, all in the overlaps.
        "fill": {"checkpoint_interval": 100, "min_body_size": 0, "reconcile_min_voxels": 8},
    }])


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label arrays are equal up to a renaming of the IDs (0 fixed)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape, block", [((10, 20, 30), (5, 10, 10)), ((7, 13, 5), (3, 4, 5)),
                                          ((4, 4, 4), (8, 8, 8))])
def test_cores_tile_the_volume_exactly(shape, block):
    count = np.zeros(shape, dtype=int)
    layout = BlockLayout(shape, block, (1, 2, 3))
    for b in layout:
        count[tuple(slice(lo, hi) for lo, hi in zip(b.core_lo, b.core_hi))] += 1
    assert np.all(count == 1)
    assert len(list(layout)) == len(layout)


def test_outer_box_is_core_grown_by_overlap_and_clipped():
    layout = BlockLayout((10, 20, 30), (5, 10, 10), (1, 2, 3))
    first, last = layout.block((0, 0, 0)), layout.block((1, 1, 2))
    assert first.outer_lo == (0, 0, 0) and first.outer_hi == (6, 12, 13)
    assert last.core_lo == (5, 10, 20) and last.outer_lo == (4, 8, 17)
    assert last.outer_hi == (10, 20, 30)


def test_scratch_box_places_each_outer_box_in_its_own_slot():
    layout = BlockLayout((9, 9, 9), (4, 4, 4), (1, 1, 1))
    seen = np.zeros(layout.scratch_shape, dtype=int)
    for b in layout:
        sl = layout.scratch_box(b, b.outer_lo, b.outer_hi)
        slot = layout.slot_slices(b)
        assert all(s.start >= t.start and s.stop <= t.stop for s, t in zip(sl, slot))
        assert tuple(s.stop - s.start for s in sl) == \
            tuple(h - lo for lo, h in zip(b.outer_lo, b.outer_hi))
        seen[sl] += 1
    assert seen.max() == 1


def test_forward_offsets_name_each_neighbour_pair_once():
    assert len(FORWARD_OFFSETS) == 13
    both = set(FORWARD_OFFSETS) | {tuple(-v for v in o) for o in FORWARD_OFFSETS}
    assert len(both) == 26


def test_reconciliation_compares_face_neighbours_only():
    assert sorted(FACE_OFFSETS) == [(0, 0, 1), (0, 1, 0), (1, 0, 0)]
    layout = BlockLayout((8, 8, 8), (4, 4, 4), (1, 1, 1))
    first = layout.block((0, 0, 0))
    assert len(layout.neighbours(first)) == 7
    assert sorted(b.index for b in layout.neighbours(first, faces=True)) == [
        (0, 0, 1), (0, 1, 0), (1, 0, 0)]
    assert layout.neighbours(layout.block((1, 1, 1)), faces=True) == []


def test_blocks_read_half_a_fov_of_context_within_the_volume():
    from diluvian.blockwise.run import context_box

    layout = BlockLayout((20, 40, 40), (10, 20, 20), (2, 4, 4))
    lo, hi = context_box(layout, layout.block((0, 1, 0)), (5, 9, 9))
    # Outer box z [0, 12), y [16, 40), x [0, 24), grown by (2, 4, 4) and clipped.
    assert lo.tolist() == [0, 12, 0] and hi.tolist() == [14, 40, 28]


def test_block_shape_must_be_positive():
    with pytest.raises(DiluvianError, match="block_shape"):
        BlockLayout((10, 10, 10), (0, 5, 5), (1, 1, 1))
    with pytest.raises(DiluvianError, match="block_overlap"):
        BlockLayout((10, 10, 10), (5, 5, 5), (1, -1, 1))


# --------------------------------------------------------------------------
# Reconciliation rule and union-find
# --------------------------------------------------------------------------


def two_blocks_of(truth: np.ndarray, face: int, overlap: int):
    """Labels of a block below and one above ``face`` (Z) as two block fills would see them.

    Each block relabels the truth with its own IDs and sees only its outer box.
    """
    a = np.where(truth != 0, truth + 100, 0)[:face + overlap]
    b = np.where(truth != 0, truth + 200, 0)[face - overlap:]
    return a[face - overlap:], b[:2 * overlap]


def test_object_crossing_a_block_face_is_matched():
    truth = np.zeros((8, 4, 4), dtype=np.uint64)
    truth[1:7, 1:3, 1:3] = 1
    a, b = two_blocks_of(truth, face=4, overlap=2)
    assert overlap_matches(a, b, 0.5) == [(101, 201)]


def test_different_objects_touching_at_a_face_stay_separate():
    truth = np.zeros((8, 4, 4), dtype=np.uint64)
    truth[:4] = 1
    truth[4:] = 2
    a, b = two_blocks_of(truth, face=4, overlap=2)
    assert overlap_matches(a, b, 0.5) == [(101, 201), (102, 202)]


def test_threshold_is_a_fraction_of_the_smaller_objects_overlap_voxels():
    a = np.zeros((1, 1, 12), dtype=np.uint64)
    b = np.zeros_like(a)
    a[..., :10] = 1          # 10 voxels in the overlap
    b[..., 7:11] = 2         # 4 voxels, 3 shared with object 1
    assert overlap_matches(a, b, 0.75) == [(1, 2)]
    assert overlap_matches(a, b, 0.76) == []


def test_a_few_shared_voxels_are_no_evidence():
    a = np.zeros((1, 1, 12), dtype=np.uint64)
    b = np.zeros_like(a)
    a[..., :11] = 1          # a large object in one block ...
    a[..., 11] = 3           # ... and one that pokes a single voxel into the overlap
    b[...] = 2               # the other block has one object there
    assert overlap_matches(a, b, 0.5) == [(1, 2), (3, 2)]
    assert overlap_matches(a, b, 0.5, min_voxels=2) == [(1, 2)]


def test_background_never_matches():
    a = np.zeros((2, 2, 2), dtype=np.uint64)
    b = np.ones_like(a)
    assert overlap_matches(a, b, 0.1) == []


def test_union_find_merges_transitively():
    uf = UnionFind()
    uf.union(1, 2)
    uf.union(3, 4)
    uf.union(2, 4)
    assert len({uf.find(k) for k in (1, 2, 3, 4)}) == 1
    assert uf.find(5) == 5


def test_consecutive_ids_number_components_from_one():
    mapping = consecutive_ids([30, 10, 20, 40], [(10, 99), (99, 40)])
    assert mapping == {10: 1, 40: 1, 20: 2, 30: 3}


# --------------------------------------------------------------------------
# End to end on Dask (threads), with an exact oracle predictor
# --------------------------------------------------------------------------


def exact_oracle(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Predict the object of the FOV centre: same intensity and not background."""
    c = tuple(s // 2 for s in images.shape[1:])
    centre = images[(slice(None), *c)][:, None, None, None]
    same = (np.abs(images - centre) < 1e-3) & (centre > 0)
    return np.where(same, 0.99, 0.01).astype(np.float32)


def crossing_labels() -> np.ndarray:
    """Objects crossing block faces, two of them touching (IDs 1 and 2) across a face."""
    labels = np.zeros((16, 32, 32), dtype=np.uint64)
    labels[1:15, 2:30, 2:16] = 1      # crosses the Z and Y faces
    labels[1:15, 2:14, 16:30] = 2     # touches object 1 across the X face x = 16
    labels[1:15, 18:30, 18:30] = 3    # crosses Z, Y and X faces
    labels[6:10, 15:17, 16:18] = 4    # a small object crossing the Y face
    return labels


def volume_of(labels: np.ndarray) -> NdarrayVolume:
    image = (labels.astype(np.int64) * 40).astype(np.uint8)
    return NdarrayVolume([40, 16, 16], image_data=image, label_data=labels)


@pytest.fixture(scope="module")
def thread_client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture
def dense_seeds(monkeypatch):
    from diluvian.preprocessing import SEED_GENERATORS, grid_seeds

    monkeypatch.setitem(SEED_GENERATORS, "dense",
                        lambda image, mask=None: grid_seeds(image, step_vox=2, mask=mask))
    return {"seed_generator": "dense", "move_batch_size": 4}


def run_blockwise(path, client, options, **kwargs):
    return fill_volume_blockwise(exact_oracle, volume_of(crossing_labels()), path,
                                 block_shape=(8, 16, 16), block_overlap=(2, 4, 4), client=client,
                                 fill_options=options, progress=False, config=small_config(),
                                 **kwargs)


def test_blockwise_fill_reconciles_objects_across_blocks(tmp_path, thread_client, dense_seeds):
    result = run_blockwise(tmp_path / "out.zarr", thread_client, dense_seeds)
    labels = read_labels(result.store)
    assert result.blocks == 8 and result.filled_blocks == 8
    assert same_partition(labels, crossing_labels())
    assert result.objects == 4
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}


def test_rerun_refills_only_unfinished_blocks_with_identical_result(tmp_path, thread_client,
                                                                     dense_seeds):
    import zarr

    path = tmp_path / "out.zarr"
    first = read_labels(run_blockwise(path, thread_client, dense_seeds).store)
    again = run_blockwise(path, thread_client, dense_seeds)
    assert again.filled_blocks == 0
    # Forget two blocks, as if the run had died before they landed.
    group = zarr.open_group(str(path), mode="r+")
    state = dict(group.attrs[STATE_ATTR])
    state["complete"] = False
    group.attrs[STATE_ATTR] = state
    layout = BlockLayout((16, 32, 32), (8, 16, 16), (2, 4, 4))
    for index in ((0, 1, 0), (1, 1, 1)):
        group[FINISHED][index] = 0
        group[SCRATCH][layout.slot_slices(layout.block(index))] = 0
    group["labels"][...] = 0
    resumed = run_blockwise(path, thread_client, dense_seeds)
    assert resumed.filled_blocks == 2
    assert np.array_equal(read_labels(path), first)


def test_new_reconcile_settings_reconcile_again_without_refilling(tmp_path, thread_client,
                                                                  dense_seeds):
    path = tmp_path / "out.zarr"
    first = run_blockwise(path, thread_client, dense_seeds)
    # Object 4 (16 voxels in the cores of 4 blocks) no longer shares enough voxels to be joined.
    strict = run_blockwise(path, thread_client, dense_seeds, reconcile_min_voxels=100)
    assert strict.filled_blocks == 0
    assert strict.objects == first.objects - 1 + 4
    labels, truth = read_labels(path), crossing_labels()
    assert same_partition(np.where(truth == 4, 0, labels), np.where(truth == 4, 0, truth))
    assert len(np.unique(labels[truth == 4])) == 4
    back = run_blockwise(path, thread_client, dense_seeds)
    assert back.filled_blocks == 0 and same_partition(read_labels(path), truth)


def test_landed_blocks_are_recorded_without_rewriting_the_state(tmp_path, thread_client,
                                                                dense_seeds, monkeypatch):
    import zarr

    from diluvian.blockwise import finished_blocks, run

    saves = []
    original = run._save_state
    monkeypatch.setattr(run, "_save_state", lambda g, s: (saves.append(1), original(g, s)))
    result = run_blockwise(tmp_path / "out.zarr", thread_client, dense_seeds)
    assert len(saves) == 1  # only the final outcome; blocks go to the progress arrays
    group = zarr.open_group(str(result.store), mode="r")
    assert finished_blocks(group).shape == (2, 2, 2) and finished_blocks(group).all()
    assert "finished_blocks" not in group.attrs[STATE_ATTR]
    names = group[BLOCK_STATS].attrs["fields"]
    stats = np.asarray(group[BLOCK_STATS][...])
    assert stats.shape == (2, 2, 2, len(names))
    assert stats[..., names.index("bodies")].sum() == result.stats.bodies > 0
    assert len(result.block_stats) == 8 and isinstance(result.stats.moves, int)
    # Labelled voxels count the block's outer box, not the context read around it.
    layout = BlockLayout(crossing_labels().shape, [8, 16, 16], [2, 4, 4])
    scratch = np.asarray(group[SCRATCH][...])
    column = names.index("labelled_voxels")
    for block in layout:
        outer = scratch[layout.scratch_box(block, block.outer_lo, block.outer_hi)]
        assert stats[block.index][column] == np.count_nonzero(outer)


def test_version_1_store_is_converted_and_resumed(tmp_path, thread_client, dense_seeds):
    import zarr

    path = tmp_path / "out.zarr"
    first = run_blockwise(path, thread_client, dense_seeds)
    expected = read_labels(path)
    # Rewrite the store as version 1 wrote it: progress in the attributes, one block missing.
    group = zarr.open_group(str(path), mode="r+")
    keys = sorted(first.block_stats)
    state = dict(group.attrs[STATE_ATTR])
    state["settings"]["version"] = 1
    state["complete"] = False
    state["finished_blocks"] = keys[1:]
    state["block_stats"] = {k: first.block_stats[k] for k in keys[1:]}
    group.attrs[STATE_ATTR] = state
    del group[FINISHED]
    del group[BLOCK_STATS]
    group["labels"][...] = 0
    resumed = run_blockwise(path, thread_client, dense_seeds)
    assert resumed.filled_blocks == 1
    assert np.array_equal(read_labels(path), expected)
    assert resumed.stats.bodies == first.stats.bodies
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs[STATE_ATTR]["settings"]["version"] == 2
    assert "finished_blocks" not in group.attrs[STATE_ATTR]


def test_store_made_with_other_settings_is_refused(tmp_path, thread_client, dense_seeds):
    path = tmp_path / "out.zarr"
    run_blockwise(path, thread_client, dense_seeds)
    with pytest.raises(DiluvianError, match="block_overlap"):
        fill_volume_blockwise(exact_oracle, volume_of(crossing_labels()), path,
                              block_shape=(8, 16, 16), block_overlap=(1, 4, 4),
                              client=thread_client, fill_options=dense_seeds, progress=False,
                              config=small_config())


def test_unknown_fill_option_is_refused(tmp_path):
    with pytest.raises(DiluvianError, match="max_bodies"):
        fill_volume_blockwise(exact_oracle, volume_of(crossing_labels()), tmp_path / "o.zarr",
                              block_shape=(8, 8, 8), fill_options={"max_bodies": 3},
                              config=small_config())


@pytest.mark.parametrize("bad, key", [({"reconcile_threshold": 0.0}, "reconcile_threshold"),
                                      ({"reconcile_min_voxels": 0}, "reconcile_min_voxels"),
                                      ({"tf_threads": 0}, "tf_threads")])
def test_bad_reconcile_and_thread_settings_are_refused(tmp_path, bad, key):
    with pytest.raises(DiluvianError, match=key):
        fill_volume_blockwise(exact_oracle, volume_of(crossing_labels()), tmp_path / "o.zarr",
                              block_shape=(8, 8, 8), config=small_config(), **bad)
    assert not (tmp_path / "o.zarr").exists()


def test_options_value_equals_keywords(tmp_path, thread_client, dense_seeds):
    """One BlockwiseOptions value fills exactly as the same settings given as keywords,
    and a keyword replaces its field; a misspelt keyword is refused."""
    from diluvian.blockwise import BlockwiseOptions

    by_keywords = run_blockwise(tmp_path / "k.zarr", thread_client, dense_seeds)
    opts = BlockwiseOptions(block_shape=(8, 16, 16), block_overlap=(9, 9, 9),
                            fill_options=dense_seeds, progress=False)
    by_value = fill_volume_blockwise(exact_oracle, volume_of(crossing_labels()),
                                     tmp_path / "v.zarr", opts, block_overlap=(2, 4, 4),
                                     client=thread_client, config=small_config())
    assert by_value.objects == by_keywords.objects and by_value.merges == by_keywords.merges
    np.testing.assert_array_equal(read_labels(by_value.store), read_labels(by_keywords.store))
    with pytest.raises(TypeError, match="block_shap"):
        fill_volume_blockwise(exact_oracle, volume_of(crossing_labels()), tmp_path / "x.zarr",
                              block_shap=(8, 8, 8), config=small_config())


def test_blockwise_options_routes_fill_keywords():
    """Keywords naming fill options join the value's fill options; others replace fields."""
    from diluvian.blockwise import BlockwiseOptions, blockwise_options

    base = BlockwiseOptions(workers=3, fill_options={"bias": False, "max_moves": 5})
    opts = blockwise_options(base, max_moves=7, seed_generator="grid", block_shape=(8, 8, 8))
    assert opts.fill_options == {"bias": False, "max_moves": 7, "seed_generator": "grid"}
    assert opts.block_shape == (8, 8, 8) and opts.workers == 3
    assert base.fill_options == {"bias": False, "max_moves": 5}  # not modified
    assert blockwise_options() == BlockwiseOptions()
    with pytest.raises(TypeError, match="max_move"):
        blockwise_options(base, max_move=3)


def test_blockwise_command_refuses_volume_smaller_than_fov(tmp_path, tiny_model):
    """As a single-process fill: one line naming the volume, its shape and the FOV."""
    from diluvian.blockwise import fill_volumes_blockwise

    config = small_config()
    fov = list(config.model.input_fov_shape)
    tiny = volume_of(np.ones([max(1, f - 2) for f in fov], dtype=np.uint64))
    with pytest.raises(DiluvianError, match=r"volume 'small' of shape .* smaller than \[model\]"):
        fill_volumes_blockwise(tiny_model, {"small": tiny},
                               str(tmp_path / "seg"), block_shape=(8, 8, 8), config=config,
                               progress=False)


def test_store_exports_to_hdf5_and_dataset_toml(tmp_path, thread_client, dense_seeds):
    result = run_blockwise(tmp_path / "out.zarr", thread_client, dense_seeds)
    volume = volume_of(crossing_labels())
    write_store_hdf5(result.store, tmp_path / "seg.hdf5", tmp_path / "seg.toml", "blobs",
                     volume.image_data, background_label_id=9)
    entry = tomllib.loads((tmp_path / "seg.toml").read_text())["dataset"][0]
    assert entry["name"] == "blobs_segmentation" and entry["resolution"] == [40, 16, 16]
    with h5py.File(tmp_path / "seg.hdf5", "r") as f:
        labels = f[entry["label_dataset"]][...]
        assert np.array_equal(f[entry["image_dataset"]][...], volume.image_data)
    expected = read_labels(result.store)
    expected[expected == 0] = 9
    assert np.array_equal(labels, expected)


def test_finished_store_exports_to_precomputed_through_the_cli(tmp_path, thread_client,
                                                               dense_seeds):
    from diluvian.__main__ import main
    from diluvian.precomputed import read_precomputed

    result = run_blockwise(tmp_path / "out.zarr", thread_client, dense_seeds)
    out = tmp_path / "out_ng"
    assert main(["export-precomputed", str(result.store), str(out),
                 "--chunk-size", "8", "8", "8"]) == 0
    exported = read_precomputed(out)
    assert np.array_equal(exported, read_labels(result.store))
    assert same_partition(exported, crossing_labels())


# --------------------------------------------------------------------------
# Worker processes with a tiny Keras model, through the blockwise ``fill``
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import keras

    from diluvian.network import save_model
    from diluvian.network.io import model_settings_from_config

    image = keras.Input((*FOV, 1), name="image_input")
    mask = keras.Input((*FOV, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    out = keras.layers.Conv3D(1, 3, padding="same", activation="sigmoid", name="mask_output")(x)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(keras.Model([image, mask], out), path, model_settings_from_config(small_config()))
    return path


@pytest.mark.slow
def test_blockwise_fill_command_on_worker_processes_resumes_identically(tmp_path, tiny_model):
    from diluvian.blockwise import fill_volumes_blockwise
    from diluvian.blockwise.cli import store_path

    labels = np.zeros((24, 40, 40), dtype=np.uint64)
    labels[2:22, 4:36, 4:20] = 1
    labels[2:22, 4:36, 20:36] = 2
    volume = volume_of(labels)
    out = str(tmp_path / "seg_{volume}")
    kwargs = dict(seed_generator="grid", move_batch_size=4, max_moves=3, block_shape=(12, 20, 20),
                  block_overlap=(2, 4, 4), workers=2, config=small_config(), progress=False)
    stats = fill_volumes_blockwise(tiny_model, {"blobs": volume}, out, **kwargs)
    store = store_path(out, "blobs")
    first = read_labels(store)
    assert stats["blobs"].bodies == int(first.max())
    assert set(np.unique(first)) == set(range(int(first.max()) + 1))
    with h5py.File(tmp_path / "seg_blobs.hdf5", "r") as f:
        assert np.array_equal(f["volumes/labels/neuron_ids"][...], first)
    # Drop the store's progress except one block: the rerun (worker threads this time,
    # so the per-worker model cache can be inspected) refills the rest identically.
    import zarr

    from diluvian.blockwise import workers

    group = zarr.open_group(str(store), mode="r+")
    state = dict(group.attrs[STATE_ATTR])
    state["complete"] = False
    group.attrs[STATE_ATTR] = state
    flags = np.zeros(group[FINISHED].shape, dtype=np.uint8)
    flags.flat[0] = 1
    group[FINISHED][...] = flags
    workers._MODELS.clear()
    fill_volumes_blockwise(tiny_model, {"blobs": volume}, out, processes=False, **kwargs)
    assert np.array_equal(read_labels(store), first)
    loaded = [key for key in workers._MODELS if key[1] == str(tiny_model.resolve())]
    assert 1 <= len(loaded) <= 2  # once per worker, although 7 blocks were filled


# --------------------------------------------------------------------------
# Seeds: every block starts from the whole volume's seeds
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def em_volume():
    from diluvian.volumes import make_synthetic_volume
    from diluvian.volumes.synthetic import SYNTHETIC_RESOLUTION

    image, _ = make_synthetic_volume(3, shape=(24, 96, 96))
    return NdarrayVolume(SYNTHETIC_RESOLUTION, image_data=image)


def on_blocks(volume, layout):
    return lambda function, *args: [function(volume, layout, b.index, *args) for b in layout]


def test_sobel_features_of_a_box_need_only_the_box_grown_by_the_halo(em_volume):
    from diluvian.preprocessing import sobel_features, sobel_halo

    image = np.asarray(em_volume.image_data)
    whole = sobel_features(image, em_volume.resolution)
    halo = sobel_halo(em_volume.resolution)
    lo, hi = np.array([5, 30, 20]), np.array([15, 60, 70])
    g_lo, g_hi = np.maximum(lo - halo, 0), hi + halo
    part = sobel_features(image[tuple(slice(a, b) for a, b in zip(g_lo, g_hi))],
                          em_volume.resolution)
    inner = tuple(slice(a, b) for a, b in zip(lo - g_lo, hi - g_lo))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    for full, piece in zip(whole, part):
        assert np.array_equal(full[box], piece[inner])  # exactly, not approximately


def test_blocks_make_exactly_the_whole_volumes_sobel_seeds(em_volume):
    from skimage.filters import threshold_otsu

    from diluvian.blockwise.seeds import block_seeds, sobel_levels
    from diluvian.preprocessing import intensity_distance_seeds, sobel_features

    image = np.asarray(em_volume.image_data)
    layout = BlockLayout(image.shape, (12, 40, 40), (2, 6, 6))
    levels = sobel_levels(on_blocks(em_volume, layout), em_volume, layout)
    smooth, edges = sobel_features(image, em_volume.resolution)
    assert levels == (float(threshold_otsu(edges)), float(threshold_otsu(smooth)))
    whole = intensity_distance_seeds(image, em_volume.resolution)
    assert len(whole) > 20
    found = set()
    for block in layout:
        seeds = block_seeds(em_volume, layout, block.index, "sobel", levels)
        lo, hi = np.asarray(block.outer_lo), np.asarray(block.outer_hi)
        assert np.all((seeds >= lo) & (seeds < hi))
        expected = whole[np.all((whole >= lo) & (whole < hi), axis=1)]
        assert sorted(map(tuple, seeds.tolist())) == sorted(map(tuple, expected.tolist()))
        found |= set(map(tuple, seeds.tolist()))
    assert found == set(map(tuple, whole.tolist()))


def test_blocks_make_the_whole_volumes_grid_and_masked_seeds(em_volume):
    from diluvian.blockwise.seeds import block_seeds

    mask = np.zeros(em_volume.shape, bool)
    mask[:, :50] = True
    volume = NdarrayVolume(em_volume.resolution, image_data=em_volume.image_data,
                           mask_data=mask)
    layout = BlockLayout(volume.shape, (12, 40, 40), (2, 6, 6))
    whole = grid_seeds(np.zeros(volume.shape), mask=mask)
    found = set()
    for block in layout:
        found |= set(map(tuple, block_seeds(volume, layout, block.index, "grid").tolist()))
    assert found == set(map(tuple, whole.tolist()))
    assert block_seeds(volume, layout, (0, 0, 0), "sobel", levels=None).shape == (0, 3)


def test_blockwise_store_records_whole_volume_seed_thresholds(tmp_path, thread_client,
                                                              em_volume):
    import zarr

    from diluvian.blockwise.seeds import sobel_levels

    def nothing(images, masks):
        return np.zeros(images.shape, np.float32)

    result = fill_volume_blockwise(nothing, em_volume, tmp_path / "out.zarr",
                                   block_shape=(12, 48, 48), block_overlap=(2, 4, 4),
                                   client=thread_client, progress=False, config=small_config())
    state = zarr.open_group(str(result.store), mode="r").attrs[STATE_ATTR]
    layout = BlockLayout(em_volume.shape, (12, 48, 48), (2, 4, 4))
    assert state["seed_levels"] == list(sobel_levels(on_blocks(em_volume, layout), em_volume,
                                                     layout))
    assert state["settings"]["seeding"] == "whole volume"
    # Each block resolved the whole volume's seeds in its outer box.
    assert result.stats.seeds > 0
