"""Agglomeration: touching objects merged when the network fills across their contact."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from diluvian.config import Config
from diluvian.fill.agglomerate import (
    AgglomerationOptions,
    agglomerate,
    contacts,
    merge_labels,
)
from diluvian.util import DiluvianError

FOV = [5, 9, 9]


def small_config() -> Config:
    return Config([{"model": {"input_fov_shape": FOV, "output_fov_shape": FOV,
                              "output_fov_move_fraction": 4, "t_move": 0.9},
                    "random_seed": 3}])


def split_box():
    """A bright box (200) split into labels 1 and 2, touching a dim box (100) labelled 3."""
    image = np.zeros((12, 24, 48), np.uint8)
    labels = np.zeros(image.shape, np.uint64)
    image[1:11, 2:22, 2:30] = 200
    image[1:11, 2:22, 30:46] = 100
    labels[1:11, 2:22, 2:16] = 1
    labels[1:11, 2:22, 16:30] = 2
    labels[1:11, 2:22, 30:46] = 3
    return image, labels


def exact_oracle(images, masks):
    """Predict the object of the FOV centre: same intensity and not background."""
    c = tuple(s // 2 for s in images.shape[1:])
    centre = images[(slice(None), *c)][:, None, None, None]
    same = (np.abs(images - centre) < 1e-3) & (centre > 0)
    return np.where(same, 0.99, 0.01).astype(np.float32)


# ------------------------------------------------------------------ contacts
def test_contacts_count_faces_and_pick_a_central_voxel_pair():
    labels = np.zeros((2, 3, 5), np.uint64)
    labels[:, :, 0:2] = 4
    labels[:, :, 2:4] = 9
    labels[:, 1, 4] = 5  # touches 9 over 2 faces
    found = contacts(labels)
    assert [(c.a, c.b, c.area) for c in found] == [(4, 9, 6), (5, 9, 2)]
    c = found[0]
    assert labels[c.vox_a] == 4 and labels[c.vox_b] == 9
    assert np.abs(np.subtract(c.vox_a, c.vox_b)).sum() == 1
    assert c.vox_a[1] == 1  # the middle row of the 3-voxel-high contact
    assert [(c.a, c.b) for c in contacts(labels, min_area=3)] == [(4, 9)]


def test_background_is_never_a_contact():
    labels = np.array([[[1, 0, 2, 2, 0]]])
    assert contacts(labels) == []


def test_merge_labels_is_transitive_and_takes_the_smallest_label():
    labels = np.array([0, 1, 2, 3, 4, 7], np.uint64)
    assert merge_labels(labels, [(7, 3), (3, 4)]).tolist() == [0, 1, 2, 3, 3, 3]
    assert merge_labels(labels, []).tolist() == labels.tolist()


def test_options_are_checked():
    with pytest.raises(DiluvianError, match="merge threshold"):
        AgglomerationOptions(merge_threshold=1.5)
    with pytest.raises(DiluvianError, match="minimum contact"):
        AgglomerationOptions(min_contact_vox=0)
    with pytest.raises(DiluvianError, match="pairs per task"):
        AgglomerationOptions(pairs_per_task=0)


# --------------------------------------------------------------- agglomerate
def test_agglomerate_merges_a_split_object_but_not_a_different_one():
    image, labels = split_box()
    merged, rows = agglomerate(exact_oracle, image, labels, (40, 16, 16),
                               options=AgglomerationOptions(early_stop=False),
                               config=small_config(), progress=False)
    by_pair = {(r["a"], r["b"]): r for r in rows}
    assert set(by_pair) == {(1, 2), (2, 3)}
    assert by_pair[(1, 2)]["merged"] and by_pair[(1, 2)]["score_ab"] > 0.9
    assert by_pair[(1, 2)]["score_ba"] > 0.9
    assert not by_pair[(2, 3)]["merged"]
    assert by_pair[(2, 3)]["score_ab"] == 0.0 and by_pair[(2, 3)]["score_ba"] == 0.0
    expected = labels.copy()
    expected[expected == 2] = 1
    np.testing.assert_array_equal(merged, expected)


class _Counting:
    """``exact_oracle`` that counts the FOVs it is asked for."""

    def __init__(self):
        self.fovs = 0

    def __call__(self, images, masks):
        self.fovs += len(images)
        return exact_oracle(images, masks)


def test_early_stop_makes_the_same_decisions_with_fewer_evaluations():
    image, labels = split_box()
    results = {}
    for early in (False, True):
        counter = _Counting()
        merged, rows = agglomerate(counter, image, labels, (40, 16, 16),
                                   options=AgglomerationOptions(early_stop=early),
                                   config=small_config(), progress=False)
        results[early] = (merged, [(r["a"], r["b"], r["merged"]) for r in rows], counter.fovs,
                          rows)
    np.testing.assert_array_equal(results[True][0], results[False][0])
    assert results[True][1] == results[False][1]
    assert results[True][2] < results[False][2]
    # A stopped side records the score it had reached: at least the threshold when merged.
    for row in results[True][3]:
        if row["merged"]:
            assert min(row["score_ab"], row["score_ba"]) >= 0.5


def test_agglomerate_is_reproducible_and_thresholded():
    image, labels = split_box()
    strict = AgglomerationOptions(merge_threshold=1.0, min_contact_vox=1)
    first = agglomerate(exact_oracle, image, labels, options=strict, config=small_config(),
                        progress=False)
    second = agglomerate(exact_oracle, image, labels, options=strict, config=small_config(),
                         progress=False)
    assert first[1] == second[1]
    np.testing.assert_array_equal(first[0], second[0])
    few = AgglomerationOptions(min_contact_vox=10 * 20 + 1)
    merged, rows = agglomerate(exact_oracle, image, labels, options=few, config=small_config(),
                               progress=False)
    assert rows == [] and np.array_equal(merged, labels)


def test_agglomerate_on_dask_decides_as_a_single_process_does():
    from dask.distributed import Client, LocalCluster

    image, labels = split_box()
    # Three touching pairs, so that tasks of one pair each split the work.
    labels = labels.copy()
    labels[1:11, 12:22, 2:16] = 4
    options = AgglomerationOptions(pairs_per_task=1, min_contact_vox=1)
    alone = agglomerate(exact_oracle, image, labels, (40, 16, 16), options=options,
                        config=small_config(), progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        spread = agglomerate(exact_oracle, image, labels, (40, 16, 16), options=options,
                             config=small_config(), progress=False, client=client)
    assert len(alone[1]) >= 3
    assert spread[1] == alone[1]
    np.testing.assert_array_equal(spread[0], alone[0])


# ------------------------------------------------------------------------ CLI
def save_box_model(path):
    """A 1x1x1 convolution: bright voxels -> 0.998, background -> 0.047."""
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
def test_cli_agglomerate_writes_merged_labels_and_csv(tmp_path, capsys):
    from diluvian.__main__ import main
    from diluvian.volumes.hdf5 import HDF5Volume

    image = np.zeros((10, 24, 40), np.uint8)
    labels = np.zeros(image.shape, np.uint64)
    image[1:9, 2:22, 2:20] = 200
    labels[1:9, 2:22, 2:11], labels[1:9, 2:22, 11:20] = 5, 6  # one box, split in two
    image[1:9, 2:22, 24:38] = 200
    labels[1:9, 2:22, 24:38] = 7  # another box, apart
    HDF5Volume.write_file(tmp_path / "seg.h5", [40, 16, 16], image_data=image,
                          label_data=labels)
    data = tmp_path / "seg.toml"
    data.write_text('[[dataset]]\nname = "seg"\nhdf5_file = "seg.h5"\n'
                    'image_dataset = "volumes/raw"\nlabel_dataset = "volumes/labels/neuron_ids"\n')
    model = save_box_model(tmp_path / "boxes.keras")
    out = tmp_path / "agg_{volume}"
    assert main(["agglomerate", "-m", str(model), "-v", str(data), "seg", str(out)]) == 0
    assert "1 touching pairs tried, 1 merged" in capsys.readouterr().out
    with h5py.File(tmp_path / "agg_seg.hdf5") as f:
        merged = f["volumes/labels/neuron_ids"][...]
    expected = labels.copy()
    expected[expected == 6] = 5
    np.testing.assert_array_equal(merged, expected)
    with open(tmp_path / "agg_seg.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["a"], r["b"], r["merged"]) for r in rows] == [("5", "6", "1")]
    assert int(rows[0]["contact_area"]) == 8 * 20
    # On Dask workers (each loading the model file once): the same result.
    out = tmp_path / "dask_{volume}"
    assert main(["agglomerate", "-m", str(model), "-v", str(data), "seg", str(out),
                 "--workers", "1"]) == 0
    with h5py.File(tmp_path / "dask_seg.hdf5") as f:
        np.testing.assert_array_equal(f["volumes/labels/neuron_ids"][...], expected)


def test_cli_agglomerate_bad_threshold_is_one_line(tmp_path, capsys):
    from diluvian.__main__ import main

    rc = main(["agglomerate", "-m", "m.keras", "seg", str(tmp_path / "o"),
               "--merge-threshold", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "--merge-threshold 2.0" in err and len(err.strip().splitlines()) == 1


def test_doctests():
    import doctest

    import diluvian.fill.agglomerate

    failed, attempted = doctest.testmod(diluvian.fill.agglomerate)
    assert failed == 0 and attempted > 0
