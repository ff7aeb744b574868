"""The real FIB-25 sample through a dataset TOML (skipped when ../shared is absent)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from diluvian.config import Config
from diluvian.util import to_float_image
from diluvian.volumes import HDF5Volume, NdarrayVolume, load_volumes, partition_volumes

pytestmark = pytest.mark.real_data


@pytest.fixture
def fib25_toml(tmp_path, fib25_path):
    toml = tmp_path / "fib25.toml"
    toml.write_text(f"""
[[dataset]]
name = "fib25 sample2"
hdf5_file = "{fib25_path}"
image_dataset = "volumes/raw"
label_dataset = "volumes/labels/neuron_ids"
""")
    return toml


@pytest.mark.parametrize("in_memory", [True, False])
def test_fib25_loads_partitions_downsamples_and_reads_subvolumes(fib25_toml, fib25_path,
                                                                 in_memory):
    volumes = load_volumes([fib25_toml], in_memory=in_memory)
    vol = volumes["fib25 sample2"]
    assert isinstance(vol, NdarrayVolume if in_memory else HDF5Volume)
    assert vol.shape == (250, 250, 250)
    np.testing.assert_array_equal(vol.resolution, (10, 10, 10))

    config = Config([{"volume": {"resolution": [20, 20, 20]}}])
    training, validation = partition_volumes(volumes, config=config)
    train, val = training["fib25 sample2"], validation["fib25 sample2"]
    assert train.shape == val.shape == (62, 125, 125)
    np.testing.assert_array_equal(val.local_coord_to_world((0, 0, 0)), (124, 0, 0))

    with h5py.File(fib25_path, "r") as f:
        raw = f["volumes/raw"][124:150, 10:30, 20:40]
        labels = f["volumes/labels/neuron_ids"][124:150, 10:30, 20:40]
    bounds_gen = val.subvolume_bounds_generator(shape=(5, 9, 9), rng=np.random.default_rng(0))
    for _ in range(3):
        bounds = next(bounds_gen)
        sv = val.get_subvolume(bounds)
        assert sv.image.shape == (5, 9, 9) and sv.image.dtype == np.float32
        assert sv.has_seed_in_mask()
        assert 0.0 <= sv.image.min() and sv.image.max() < 1.0
    # A fixed box against plain h5py reads.
    from diluvian.volumes import SubvolumeBounds

    sv = val.get_subvolume(SubvolumeBounds((0, 5, 10), (13, 15, 20)))
    ref = to_float_image(raw).reshape(13, 2, 10, 2, 10, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(sv.image, ref, atol=1e-6)
    assert sv.label_mask.shape == (13, 10, 10)
    # The seed's label is the majority label of its 2x2x2 block.
    seed_block = labels[12:14, 10:12, 10:12].ravel()
    values, counts = np.unique(seed_block, return_counts=True)
    assert sv.label_id == values[np.argmax(counts)]
