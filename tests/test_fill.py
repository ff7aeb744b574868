"""Dense filling: seed order, commits, overlaps, checkpoints, resume, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from diluvian.config import Config
from diluvian.fill import (
    fill_volume_with_model,
    fill_volumes_with_model,
    read_fill_checkpoint,
    segmentation_paths,
    write_segmentation,
)
from diluvian.util import DiluvianError
from diluvian.volumes.base import NdarrayVolume

FOV = [5, 9, 9]


def small_config(**fill) -> Config:
    """Tiny FOVs and move step 2 so fills of a 12x32x32 volume take few moves."""
    settings = {
        "model": {"input_fov_shape": FOV, "output_fov_shape": FOV,
                  "output_fov_move_fraction": 4, "t_move": 0.9},
        "fill": {"checkpoint_interval": 100, "min_body_size": 0, **fill},
    }
    return Config([settings])


def blob_labels() -> np.ndarray:
    """A 12x32x32 label volume: four boxes of ids 1-4 separated by background planes."""
    labels = np.zeros((12, 32, 32), dtype=np.uint64)
    labels[1:11, 1:15, 1:15] = 1
    labels[1:11, 1:15, 16:31] = 2
    labels[1:11, 16:31, 1:15] = 3
    labels[1:11, 16:31, 16:31] = 4
    return labels


def touching_labels() -> np.ndarray:
    """Like :func:`blob_labels` but ids 1 and 2 touch (no background between them)."""
    labels = blob_labels()
    labels[1:11, 1:15, 15] = 1
    return labels


def volume_of(labels: np.ndarray) -> NdarrayVolume:
    # Intensity encodes the label: 0 background, 40 per id.
    image = (labels.astype(np.int64) * 40).astype(np.uint8)
    return NdarrayVolume([40, 16, 16], image_data=image, label_data=labels)


def exact_oracle(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Predict the object of the FOV centre: same intensity and not background."""
    c = tuple(s // 2 for s in images.shape[1:])
    centre = images[(slice(None), *c)][:, None, None, None]
    same = (np.abs(images - centre) < 1e-3) & (centre > 0)
    return np.where(same, 0.99, 0.01).astype(np.float32)


def greedy_oracle(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A merging oracle: claims every object at least as bright as the darkest one in the mask.

    A region seeded in a dark object also takes brighter objects touching it;
    one seeded in a bright object does not take the darker ones.
    """
    c = tuple(s // 2 for s in images.shape[1:])
    centre = images[(slice(None), *c)]
    inside = masks > 0.5
    darkest = np.where(inside, images, np.inf).min(axis=(1, 2, 3))
    ref = np.where(inside.any(axis=(1, 2, 3)), darkest, centre)[:, None, None, None]
    same = (images >= ref - 1e-3) & (images > 0) & (ref > 0)
    return np.where(same, 0.99, 0.01).astype(np.float32)


def grid_seeds(shape, step=4) -> np.ndarray:
    grid = np.mgrid[tuple(slice(step // 2, s, step) for s in shape)]
    return grid.reshape(3, -1).T


def relabel_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label volumes are the same partition (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def fill(labels, predictor=exact_oracle, config=None, **kwargs):
    config = small_config() if config is None else config
    kwargs.setdefault("seeds", grid_seeds(labels.shape))
    kwargs.setdefault("progress", False)
    return fill_volume_with_model(predictor, volume_of(labels), config=config, **kwargs)


def test_fill_labels_every_object_once():
    truth = blob_labels()
    labels, stats = fill(truth)
    assert relabel_equal(labels, truth)
    assert stats.bodies == 4
    assert stats.complete
    assert stats.labelled_voxels == int(np.count_nonzero(truth))


def test_seed_inside_committed_body_is_skipped():
    truth = blob_labels()
    seeds = grid_seeds(truth.shape)
    _, stats = fill(truth, seeds=seeds)
    in_objects = int(np.count_nonzero(truth[tuple(seeds.T)]))
    # One body per object; every other seed in an object is skipped or cancelled.
    assert stats.skipped_seeds + stats.cancelled_regions == in_objects - 4
    assert stats.seeds_done == len(seeds)


def body_order(labels: np.ndarray, truth: np.ndarray) -> list[int]:
    """Truth objects in the order their bodies were labelled (body ids count commits)."""
    bodies = [b for b in np.unique(labels) if b]
    return [int(np.bincount(truth[labels == b].astype(np.int64)).argmax()) for b in bodies]


def test_crop_visits_shared_seeds_in_the_whole_volumes_order():
    # 25 separate boxes with one seed each; body ids count commits, so they give
    # the order in which seeds were visited.
    truth = np.zeros((8, 40, 40), dtype=np.uint64)
    seeds = []
    for i, (y, x) in enumerate(np.ndindex(5, 5)):
        truth[1:7, 8 * y + 1:8 * y + 7, 8 * x + 1:8 * x + 7] = i + 1
        seeds.append([4, 8 * y + 4, 8 * x + 4])
    seeds = np.asarray(seeds)

    def run(lo, origin):
        part = truth[:, lo:, lo:]
        volume = NdarrayVolume([40, 16, 16], image_data=(part * 10).astype(np.uint8))
        inside = (seeds[:, 1] >= lo) & (seeds[:, 2] >= lo)
        labels, _ = fill_volume_with_model(exact_oracle, volume, seeds=seeds[inside] - [0, lo, lo],
                                           seed_origin=origin, progress=False,
                                           config=small_config())
        return body_order(labels, part)

    whole = run(0, (0, 0, 0))
    crop = run(8, (0, 8, 8))
    assert sorted(whole) == list(range(1, 26)) and len(crop) == 16
    assert [t for t in whole if t in crop] == crop
    # Without its origin the crop hashes other positions: another order.
    assert run(8, (0, 0, 0)) != crop


def test_same_labels_for_any_move_batch_size():
    truth = touching_labels()
    # Skipping moves into committed bodies depends on when bodies commit: off here.
    one, _ = fill(truth, greedy_oracle, move_batch_size=1, skip_committed=False)
    four, stats4 = fill(truth, greedy_oracle, move_batch_size=4, skip_committed=False)
    full, stats_full = fill(truth, greedy_oracle, move_batch_size=4, fill_batches=True,
                            skip_committed=False)
    np.testing.assert_array_equal(one, four)
    np.testing.assert_array_equal(one, full)
    assert stats4.predict_calls < stats4.moves
    assert stats_full.moves / stats_full.predict_calls >= stats4.moves / stats4.predict_calls


def test_skip_committed_saves_evaluations_and_keeps_segmentation():
    truth = touching_labels()
    seeds = grid_seeds(truth.shape)[::-1]  # bright object 2 before the merging dark object 1
    plain, stats_plain = fill(truth, greedy_oracle, seeds=seeds, shuffle_seeds=False,
                              skip_committed=False)
    skipping, stats = fill(truth, greedy_oracle, seeds=seeds, shuffle_seeds=False,
                           skip_committed=True)
    np.testing.assert_array_equal(skipping, plain)
    assert stats.blocked_moves > 0
    assert stats.moves < stats_plain.moves


def fill_recording_centres(truth, **kwargs):
    """Fill ``truth`` and return the labels, stats and FOV centres of every move but seeds'."""
    from diluvian.regions import Region

    centres = []
    original = Region.apply

    def apply(self, request, prediction, **kw):
        if request.position != (0, 0, 0):
            centres.append(request.center_vox)
        return original(self, request, prediction, **kw)

    Region.apply = apply
    try:
        labels, stats = fill(truth, **kwargs)
    finally:
        Region.apply = original
    return labels, stats, centres


def test_full_context_keeps_fov_centres_off_the_faces():
    truth = blob_labels()
    labels, stats, centres = fill_recording_centres(truth, full_context=True)
    half = [f // 2 for f in FOV]
    assert centres
    assert all(h <= c < n - h for centre in centres
               for c, h, n in zip(centre, half, truth.shape))
    # Seeds nearer a face than half a FOV are skipped (the grid's z = 10 plane
    # here), so no object is left in fragments of seeds that could not move.
    assert stats.bodies == 4
    assert all(len(np.unique(truth[labels == b])) == 1 for b in range(1, 5))


def test_context_voxels_start_no_seed_and_centre_no_fov():
    truth = blob_labels()
    seeds = grid_seeds(truth.shape)
    labels, stats, centres = fill_recording_centres(truth, seeds=seeds,
                                                    context=[[0, 0, 0], [0, 0, 4]])
    assert centres and max(c[2] for c in centres) < 32 - 4
    in_context = int(np.count_nonzero(seeds[:, 2] >= 32 - 4))
    assert in_context and stats.skipped_seeds >= in_context
    # FOVs (9 wide in X) centred left of the context still reach the far face.
    assert relabel_equal(labels, truth)
    with pytest.raises(DiluvianError, match="context"):
        fill(truth, context=[1, -1, 0])


def test_dtype_policy_resolution():
    from diluvian.network import cpu_has_native_bfloat16, resolve_dtype_policy

    assert cpu_has_native_bfloat16("processor: 0\nflags\t: fpu avx2 avx512_bf16 sse\n")
    assert cpu_has_native_bfloat16("flags : amx_bf16 amx_tile\n")
    assert not cpu_has_native_bfloat16("flags : fpu avx2 avx512f\n")
    assert resolve_dtype_policy("float32") is None
    assert resolve_dtype_policy(None) is None
    assert resolve_dtype_policy("mixed_bfloat16") == "mixed_bfloat16"
    import tensorflow as tf

    auto = resolve_dtype_policy("auto")
    if tf.config.list_physical_devices("GPU"):
        assert auto == "mixed_float16"
    else:
        assert auto == ("bfloat16" if cpu_has_native_bfloat16() else None)


def test_first_body_keeps_overlapping_voxels():
    truth = touching_labels()
    # Seed in object 2 (brighter) first, then object 1, which also claims object 2.
    seeds = np.array([[5, 7, 23], [5, 7, 7]])
    labels, stats = fill(truth, greedy_oracle, seeds=seeds, shuffle_seeds=False,
                         skip_committed=False)
    assert labels[5, 7, 23] == 1 and labels[5, 7, 7] == 2
    assert np.all(labels[truth == 2] == 1)
    assert stats.overlap_voxels == int(np.count_nonzero(truth == 2))


def test_min_body_size_rejects_small_bodies():
    truth = blob_labels()
    truth[1:11, 1:15, 1:15] = 0
    truth[5, 7, 7] = 1
    truth[5, 6:9, 6:9] = 1
    labels, stats = fill(truth, config=small_config(min_body_size=50),
                         seeds=np.array([[5, 7, 7], [5, 7, 8], [5, 7, 23]]), shuffle_seeds=False)
    assert labels[5, 7, 7] == 0 and labels[5, 7, 23] != 0
    assert stats.rejected_small == 1
    assert stats.skipped_seeds == 1  # the second seed lies in the rejected body


def test_background_label_id_marks_unfilled_voxels():
    truth = blob_labels()
    labels, _ = fill(truth, background_label_id=2)
    assert np.all(labels[truth == 0] == 2)
    assert 2 not in np.unique(labels[truth != 0])


def test_seed_outside_volume_raises():
    with pytest.raises(DiluvianError, match="outside the volume"):
        fill(blob_labels(), seeds=np.array([[0, 0, 40]]))


def test_empty_volume_raises():
    empty = NdarrayVolume([40, 16, 16], image_data=np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(DiluvianError, match="empty"):
        fill_volume_with_model(exact_oracle, empty, seeds=np.zeros((0, 3)),
                               config=small_config(), progress=False)


def _state_roundtrip(tmp_path, state, name="v"):
    h5, toml = segmentation_paths(str(tmp_path / "out_{volume}"), name)
    write_segmentation(h5, toml, name, None, None, [40, 16, 16], state=state)
    return read_fill_checkpoint(toml)[1]


def test_max_bodies_then_resume_matches_uninterrupted(tmp_path):
    truth = touching_labels()
    full, _ = fill(truth, greedy_oracle, move_batch_size=3)
    saved = []
    partial, stats = fill(truth, greedy_oracle, move_batch_size=3, max_bodies=2,
                          checkpoint=saved.append)
    assert stats.bodies == 2 and not stats.complete
    assert np.count_nonzero(partial) < np.count_nonzero(full)
    state = _state_roundtrip(tmp_path, saved[-1])
    resumed, stats = fill(truth, greedy_oracle, move_batch_size=2, resume=state)
    assert stats.complete
    np.testing.assert_array_equal(resumed, full)


def test_interrupt_checkpoints_then_resume_loses_nothing(tmp_path):
    truth = touching_labels()
    full, _ = fill(truth, greedy_oracle)
    calls = {"n": 0}

    def interrupting(images, masks):
        calls["n"] += 1
        if calls["n"] == 12:
            os.kill(os.getpid(), signal.SIGINT)
        return greedy_oracle(images, masks)

    saved = []
    with pytest.raises(KeyboardInterrupt):
        fill(truth, interrupting, checkpoint=saved.append)
    assert saved and not saved[-1].stats.complete
    state = _state_roundtrip(tmp_path, saved[-1])
    resumed, stats = fill(truth, greedy_oracle, resume=state)
    np.testing.assert_array_equal(resumed, full)
    assert stats.bodies == len(np.unique(full)) - 1


def test_resume_of_other_shape_raises(tmp_path):
    truth = blob_labels()
    saved = []
    fill(truth, checkpoint=saved.append, max_bodies=1)
    state = _state_roundtrip(tmp_path, saved[-1])
    with pytest.raises(DiluvianError, match="shape"):
        fill(truth[:, :16], resume=state)


def test_output_toml_points_at_cremi_labels(tmp_path):
    truth = blob_labels()
    saved = []
    labels, _ = fill(truth, checkpoint=saved.append)
    h5, toml = segmentation_paths(str(tmp_path / "seg_{volume}"), "blobs")
    write_segmentation(h5, toml, "blobs", None, volume_of(truth).image_data, [40, 16, 16],
                       state=saved[-1])
    entry = tomllib.loads(toml.read_text())["dataset"][0]
    assert (toml.parent / entry["hdf5_file"]) == h5
    assert entry["resolution"] == [40, 16, 16]
    with h5py.File(h5) as f:
        assert f["volumes/labels/neuron_ids"].dtype == np.uint64
        np.testing.assert_array_equal(f["volumes/labels/neuron_ids"][...], labels)
        assert f["volumes/raw"].shape == truth.shape
        assert list(f["volumes/labels/neuron_ids"].attrs["resolution"]) == [40, 16, 16]


def test_blockwise_fill_refuses_max_bodies(tmp_path):
    with pytest.raises(DiluvianError, match="max"):
        fill_volumes_with_model(None, {"v": volume_of(blob_labels())}, str(tmp_path / "o"),
                                block_shape=[8, 8, 8], max_bodies=2, config=small_config())


def test_corrupt_model_file_raises(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    with pytest.raises(DiluvianError, match="bad.keras"):
        fill_volumes_with_model(bad, {"v": volume_of(blob_labels())}, str(tmp_path / "o"),
                                config=small_config())


# --------------------------------------------------------------------------
# End to end through the command line, with a tiny untrained Keras model.
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import keras

    from diluvian.network import save_model
    from diluvian.network.io import model_settings_from_config

    config = small_config()
    image = keras.Input((*FOV, 1), name="image_input")
    mask = keras.Input((*FOV, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    out = keras.layers.Conv3D(1, 3, padding="same", activation="sigmoid", name="mask_output")(x)
    model = keras.Model([image, mask], out)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(model, path, model_settings_from_config(config))
    return path


def _dataset(tmp_path) -> Path:
    from diluvian.volumes.hdf5 import HDF5Volume

    truth = blob_labels()
    HDF5Volume.write_file(tmp_path / "blobs.h5", [40, 16, 16],
                          image_data=volume_of(truth).image_data, label_data=truth)
    toml = tmp_path / "blobs.toml"
    toml.write_text('[[dataset]]\nname = "blobs"\nhdf5_file = "blobs.h5"\n'
                    'image_dataset = "volumes/raw"\nlabel_dataset = "volumes/labels/neuron_ids"\n')
    return toml


def _run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diluvian", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_partition_volumes_fills_only_validation_partition(tmp_path, tiny_model):
    from diluvian.volumes import partition_volumes

    config = small_config()
    volumes = {"blobs": volume_of(blob_labels())}
    stats = fill_volumes_with_model(tiny_model, volumes, str(tmp_path / "seg_{volume}"),
                                    partition=True, seed_generator="grid", max_moves=2,
                                    config=config, progress=False)
    expected = partition_volumes(volumes, downsample=False, config=config)[1]["blobs"]
    h5, _ = segmentation_paths(str(tmp_path / "seg_{volume}"), "blobs")
    with h5py.File(h5) as f:
        assert f["volumes/labels/neuron_ids"].shape == expected.shape
        np.testing.assert_array_equal(f["volumes/raw"][...], expected.image_data[...])
    assert stats["blobs"].complete


@pytest.mark.slow
def test_cli_fill_writes_resumable_segmentation(tmp_path, tiny_model):
    dataset = _dataset(tmp_path)
    conf = tmp_path / "conf.toml"
    conf.write_text("[fill]\ncheckpoint_interval = 1\n")
    out = tmp_path / "seg_{volume}"
    common = ["-m", tiny_model, "-v", dataset, "-c", conf, "--seed-generator", "grid",
              "--move-batch-size", "4", "--max-moves", "3"]
    first = _run("fill", str(out), *common, "--max-bodies", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    h5, toml = segmentation_paths(str(out), "blobs")
    assert h5.exists() and toml.exists()
    second = _run("fill", str(out), *common, "--resume-file", toml, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    from diluvian.volumes.datasets import volumes_from_toml

    (name, volume), = volumes_from_toml(toml).items()
    assert name == "blobs_segmentation"
    assert volume.shape == blob_labels().shape
    assert volume.label_data.dtype == np.uint64


@pytest.mark.slow
def test_cli_fill_blockwise_writes_segmentation_and_zarr_store(tmp_path, tiny_model):
    dataset = _dataset(tmp_path)
    out = tmp_path / "blk_{volume}"
    result = _run("fill", str(out), "-m", tiny_model, "-v", dataset, "--seed-generator", "grid",
                  "--max-moves", "3", "--block-shape", "8", "16", "16",
                  "--block-overlap", "2", "4", "4", "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    h5, toml = segmentation_paths(str(out), "blobs")
    assert h5.exists() and toml.exists()
    assert list(tmp_path.glob("blk_blobs*.zarr"))
    with h5py.File(h5) as f:
        assert f["volumes/labels/neuron_ids"].shape == blob_labels().shape


def test_cli_fill_with_corrupt_model_exits_2(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    result = _run("fill", tmp_path / "o_{volume}", "-m", bad, "-v", _dataset(tmp_path),
                  cwd=tmp_path)
    assert result.returncode == 2
    # One line of error (TensorFlow may log to stderr before it).
    assert result.stderr.strip().splitlines()[-1].startswith("diluvian fill: error: ")
    assert "bad.keras" in result.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------
# Real data: Google's FFN model on a crop of FIB-25.
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ffn_model(ffn_checkpoint, tmp_path_factory) -> Path:
    from diluvian.network import import_ffn_checkpoint

    path = tmp_path_factory.mktemp("ffn") / "ffn_fib25.keras"
    import_ffn_checkpoint(ffn_checkpoint, path)
    return path


@pytest.mark.slow
def test_ffn_fill_of_fib25_crop_scores_sanely(fib25_path, ffn_model):
    from skimage.metrics import adapted_rand_error, variation_of_information

    from diluvian.fill import load_fill_model

    size = 48
    with h5py.File(fib25_path) as f:
        raw = f["volumes/raw"]
        lo = [(s - size) // 2 for s in raw.shape]
        sl = tuple(slice(a, a + size) for a in lo)
        image = raw[sl]
        truth = f["volumes/labels/neuron_ids"][sl]
    config = Config([{"volume": {"resolution": [10, 10, 10]}}])
    model = load_fill_model(ffn_model, config)
    volume = NdarrayVolume([10, 10, 10], image_data=image)
    labels, stats = fill_volume_with_model(model, volume, seed_generator="sobel",
                                           move_batch_size=8, progress=False, config=config)
    split, merge = variation_of_information(truth, labels, ignore_labels=())
    arand = adapted_rand_error(truth, labels, ignore_labels=())[0]
    print(f"FIB-25 {size}^3 crop: {stats.bodies} bodies, {stats.moves} moves, "
          f"{stats.wall_seconds:.1f} s, VOI split {split:.3f} merge {merge:.3f}, "
          f"ARAND {arand:.3f}")
    # Measured on 2 cores (bfloat16): at the imported move step of 11, 1 body over 1000
    # voxels (one neuron fills most of this crop), VOI split 0.383, merge 0.606, ARAND 0.116;
    # at FFN's step of 8, 2 bodies, 0.340 / 0.521 / 0.078.
    assert stats.bodies >= 1
    assert stats.labelled_voxels > 0.5 * labels.size
    assert split + merge < 2.0
    assert arand < 0.3


def test_fill_functions_resolve_from_diluvian_diluvian():
    from diluvian import diluvian

    assert diluvian.fill_volumes_with_model is fill_volumes_with_model
    # diluvian.diluvian.fill_volume_with_model is 0.0.6's facade over the real one.
    import inspect

    assert "checkpoint_label_interval" in inspect.signature(diluvian.fill_volume_with_model).parameters


def _many_boxes() -> np.ndarray:
    """An 8x64x96 volume of 4x6 = 24 separate boxes (ids 1..24)."""
    labels = np.zeros((8, 64, 96), dtype=np.uint64)
    n = 0
    for y in range(4):
        for x in range(6):
            n += 1
            labels[1:7, y * 16 + 1:y * 16 + 15, x * 16 + 1:x * 16 + 15] = n
    return labels


@pytest.mark.slow
def test_cli_fill_interrupted_by_sigint_then_resumed_equals_uninterrupted(tmp_path):
    """SIGINT to ``diluvian fill`` checkpoints; ``--resume-file`` finishes the same segmentation."""
    import keras

    from diluvian.network import save_model
    from diluvian.network.io import model_settings_from_config
    from diluvian.volumes.hdf5 import HDF5Volume

    config = small_config()
    image = keras.Input((*FOV, 1), name="image_input")
    mask = keras.Input((*FOV, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    # Bright voxels (the boxes) -> 0.998, background -> 0.047: one body per box.
    out = keras.layers.Conv3D(1, 1, activation="sigmoid", name="mask_output",
                              kernel_initializer=keras.initializers.Constant([[[[[60.0], [0.0]]]]]),
                              bias_initializer=keras.initializers.Constant(-3.0))(x)
    model_file = tmp_path / "boxes.keras"
    save_model(keras.Model([image, mask], out), model_file, model_settings_from_config(config))
    truth = _many_boxes()
    HDF5Volume.write_file(tmp_path / "boxes.h5", [40, 16, 16],
                          image_data=np.where(truth > 0, 200, 0).astype(np.uint8), label_data=truth)
    dataset = tmp_path / "boxes.toml"
    dataset.write_text('[[dataset]]\nname = "boxes"\nhdf5_file = "boxes.h5"\n'
                       'image_dataset = "volumes/raw"\n'
                       'label_dataset = "volumes/labels/neuron_ids"\n')
    conf = tmp_path / "conf.toml"
    conf.write_text("[fill]\ncheckpoint_interval = 1\n")
    common = ["-m", model_file, "-v", dataset, "-c", conf, "--seed-generator", "grid"]

    whole = _run("fill", str(tmp_path / "whole_{volume}"), *common, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    whole_h5, _ = segmentation_paths(str(tmp_path / "whole_{volume}"), "boxes")
    with h5py.File(whole_h5) as f:
        expected = f["volumes/labels/neuron_ids"][...]
    n_bodies = len(np.unique(expected)) - 1
    assert n_bodies == 24
    assert relabel_equal(expected, truth)

    out = str(tmp_path / "cut_{volume}")
    h5, toml = segmentation_paths(out, "boxes")
    proc = subprocess.Popen([sys.executable, "-m", "diluvian", "fill", out, *map(str, common)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    import time

    deadline = time.monotonic() + 240
    while not toml.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "diluvian fill: interrupted"
    state = read_fill_checkpoint(toml)[1]
    assert 0 < state.stats.bodies < n_bodies and not state.stats.complete

    resumed = _run("fill", out, *common, "--resume-file", toml, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with h5py.File(h5) as f:
        np.testing.assert_array_equal(f["volumes/labels/neuron_ids"][...], expected)


def test_fill_model_runs_under_configured_dtype_policy(tiny_model):
    from diluvian.fill import load_fill_model

    config = small_config(dtype_policy="bfloat16")
    model = load_fill_model(tiny_model, config)
    reference = load_fill_model(tiny_model, small_config(dtype_policy="float32"))
    assert any(layer.dtype_policy.name == "bfloat16" for layer in model.layers)
    assert all(layer.dtype_policy.name == "float32" for layer in reference.layers)
    rng = np.random.default_rng(0)
    x = [rng.random((2, *FOV, 1), dtype=np.float32), np.full((2, *FOV, 1), 0.5, np.float32)]
    out = np.asarray(model.predict_on_batch(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(reference.predict_on_batch(x)), atol=0.02)
