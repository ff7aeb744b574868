"""Dataset TOML files, load_volumes and partition_volumes."""

from __future__ import annotations

import numpy as np
import pytest

from diluvian.config import Config
from diluvian.util import DiluvianError
from diluvian.volumes import (
    HDF5Volume,
    NdarrayVolume,
    load_volumes,
    partition_volumes,
    write_n5_dataset,
)


@pytest.fixture
def data_dir(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        HDF5Volume.write_file(tmp_path / "data" / f"{name}.h5", (40, 16, 16),
                              image_data=rng.integers(0, 256, (8, 16, 16), dtype=np.uint8),
                              label_data=rng.integers(1, 4, (8, 16, 16)).astype(np.uint64))
    return tmp_path


def _toml(path, text):
    path.write_text(text)
    return path


ENTRY = """
[[dataset]]
name = "{name}"
hdf5_file = "{file}"
image_dataset = "volumes/raw"
label_dataset = "volumes/labels/neuron_ids"
"""


def test_load_volumes_resolves_paths_relative_to_toml(data_dir, monkeypatch):
    toml = _toml(data_dir / "sets.toml", ENTRY.format(name="A", file="data/a.h5")
                 + ENTRY.format(name="B", file="data/b.h5"))
    monkeypatch.chdir("/")
    volumes = load_volumes([toml], in_memory=False)
    assert list(volumes) == ["A", "B"]
    assert isinstance(volumes["A"], HDF5Volume)
    np.testing.assert_array_equal(volumes["A"].resolution, (40, 16, 16))


def test_load_volumes_in_memory_gives_ndarray_volumes(data_dir):
    toml = _toml(data_dir / "sets.toml", ENTRY.format(name="A", file="data/a.h5"))
    volumes = load_volumes([toml], in_memory=True)
    assert isinstance(volumes["A"], NdarrayVolume)
    assert volumes["A"] == load_volumes([toml], in_memory=False)["A"]


def test_load_volumes_filters_by_name_regex(data_dir):
    toml = _toml(data_dir / "sets.toml", ENTRY.format(name="train A", file="data/a.h5")
                 + ENTRY.format(name="test B", file="data/b.h5"))
    assert list(load_volumes([toml], False, name_regex="^test")) == ["test B"]


def test_later_files_replace_entries_of_the_same_name(data_dir):
    first = _toml(data_dir / "1.toml", ENTRY.format(name="A", file="data/a.h5"))
    second = _toml(data_dir / "2.toml", ENTRY.format(name="A", file="data/b.h5"))
    vol = load_volumes([first, second], False)["A"]
    assert vol.orig_file.endswith("b.h5")


def test_explicit_resolution_overrides_attribute(data_dir):
    toml = _toml(data_dir / "s.toml", ENTRY.format(name="A", file="data/a.h5")
                 + "resolution = [80, 32, 32]\n")
    np.testing.assert_array_equal(load_volumes([toml], False)["A"].resolution, (80, 32, 32))


@pytest.mark.parametrize("text, message", [
    (ENTRY.format(name="A", file="data/missing.h5"), "does not exist"),
    (ENTRY.format(name="A", file="data/a.h5").replace("volumes/raw", "volumes/nope"),
     "'volumes/nope' is not a dataset"),
    (ENTRY.format(name="A", file="data/a.h5") + "image_datset = 'x'\n",
     "unknown key 'image_datset'; did you mean 'image_dataset'"),
    ("[[datasets]]\nname = 'A'\n", "unknown key 'datasets'"),
    ("[[dataset]]\nhdf5_file = 'x.h5'\n", "lacks a 'name'"),
    (ENTRY.format(name="A", file="data/a.h5") + "zarr_file = 'x.zarr'\n", "exactly one of"),
    (ENTRY.format(name="A", file="data/a.h5") + "resolution = [1, 2]\n", "resolution"),
    ("[[dataset]\n", "malformed TOML"),
])
def test_bad_dataset_files_raise_one_line_errors(data_dir, text, message):
    toml = _toml(data_dir / "bad.toml", text)
    with pytest.raises(DiluvianError, match=message) as err:
        load_volumes([toml], False)
    assert "\n" not in str(err.value)
    assert str(toml) in str(err.value)


def test_mismatched_image_and_label_shapes_are_an_error(tmp_path):
    HDF5Volume.write_file(tmp_path / "m.h5", (1, 1, 1), image_data=np.zeros((4, 4, 4), np.uint8),
                          label_data=np.zeros((4, 4, 5), np.uint64))
    toml = _toml(tmp_path / "m.toml", ENTRY.format(name="M", file="m.h5"))
    with pytest.raises(DiluvianError, match="shapes differ"):
        load_volumes([toml], False)


def test_missing_dataset_file_is_an_error(tmp_path):
    with pytest.raises(DiluvianError, match="dataset file not found"):
        load_volumes([tmp_path / "nope.toml"], False)


def test_cli_reports_dataset_errors_with_exit_status_2(tmp_path, capsys, monkeypatch):
    import sys
    import types

    from diluvian.__main__ import main

    # The command's own module may not exist yet; only volume loading is under test.
    fake = types.ModuleType("diluvian.sparse_fill")
    fake.generate_subvolume_bounds = lambda *args, **kwargs: None
    monkeypatch.setitem(sys.modules, "diluvian.sparse_fill", fake)
    toml = _toml(tmp_path / "bad.toml", ENTRY.format(name="A", file="missing.h5"))
    assert main(["gen-subv-bounds", "-v", str(toml), "out_{volume}.csv", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_zarr_n5_and_image_stack_entries_load(tmp_path):
    import zarr
    from PIL import Image

    image = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    root = zarr.open_group(str(tmp_path / "v.zarr"), mode="w")
    root.create_array("raw", shape=image.shape, dtype=image.dtype, chunks=(1, 8, 8))[...] = image
    write_n5_dataset(tmp_path / "v.n5", "raw", image)
    (tmp_path / "slices").mkdir()
    for z in range(2):
        Image.fromarray(image[z]).save(tmp_path / "slices" / f"{z}.png")
    toml = _toml(tmp_path / "s.toml", """
[[dataset]]
name = "zarr"
zarr_file = "v.zarr"
image_dataset = "raw"
resolution = [40, 4, 4]

[[dataset]]
name = "n5"
n5_file = "v.n5"
image_dataset = "raw"
resolution = [40, 4, 4]

[[dataset]]
name = "stack"
image_stack_dir = "slices"
resolution = [40, 4, 4]
""")
    volumes = load_volumes([toml], in_memory=True)
    for vol in volumes.values():
        np.testing.assert_array_equal(vol.image_data, image)


def test_partition_volumes_applies_first_matching_regex(data_dir):
    toml = _toml(data_dir / "s.toml", ENTRY.format(name="A", file="data/a.h5")
                 + ENTRY.format(name="B", file="data/b.h5"))
    volumes = load_volumes([toml], False)
    config = Config([{"volume": {"resolution": [40, 16, 16]}, "training": {
        "partitions": {"^A": [1, 1, 2], ".*": [2, 1, 1]},
        "training_partition": {"^A": [0, 0, 1], ".*": [0, 0, 0]},
        "validation_partition": {".*": [0, 0, 0], "^A": [0, 0, 1]},
    }}])
    training, validation = partition_volumes(volumes, config=config)
    assert list(training) == ["A", "B"] and list(validation) == ["A", "B"]
    assert training["A"].shape == (8, 16, 8)
    np.testing.assert_array_equal(training["A"].local_coord_to_world((0, 0, 0)), (0, 0, 8))
    # ".*" comes first in validation_partition, so it applies to A too.
    np.testing.assert_array_equal(validation["A"].local_coord_to_world((0, 0, 0)), (0, 0, 0))
    assert validation["B"].shape == (4, 16, 16)
    config.training.training_partition = {".*": [1, 0, 0]}
    with pytest.raises(DiluvianError, match="volume 'A'.*outside partitioning"):
        partition_volumes(volumes, config=config)


def test_partition_volumes_downsamples_to_configured_resolution(data_dir):
    toml = _toml(data_dir / "s.toml", ENTRY.format(name="A", file="data/a.h5"))
    config = Config([{"volume": {"resolution": [40, 32, 32]}}])
    training, validation = partition_volumes(load_volumes([toml], False), config=config)
    assert training["A"].shape == (4, 8, 8)
    np.testing.assert_array_equal(training["A"].resolution, (40, 32, 32))
    training, _ = partition_volumes(load_volumes([toml], False), downsample=False, config=config)
    assert training["A"].shape == (4, 16, 16)
