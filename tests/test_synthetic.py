"""The built-in synthetic EM dataset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from diluvian.volumes import (
    SYNTHETIC_VOLUMES,
    load_volumes,
    make_synthetic_volume,
    partition_volumes,
    synthetic_volume_files,
)

SMALL = (16, 96, 96)


@pytest.fixture(scope="module")
def small():
    return make_synthetic_volume(7, shape=SMALL)


def test_synthetic_volume_is_deterministic_from_seed(small):
    image, labels = make_synthetic_volume(7, shape=SMALL)
    np.testing.assert_array_equal(image, small[0])
    np.testing.assert_array_equal(labels, small[1])
    other, _ = make_synthetic_volume(8, shape=SMALL)
    assert not np.array_equal(other, image)


def test_synthetic_labels_are_dense_and_numerous(small):
    image, labels = small
    assert image.dtype == np.uint8 and labels.dtype == np.uint64
    assert image.shape == labels.shape == SMALL
    assert labels.min() >= 1
    assert len(np.unique(labels)) >= 10
    # No object fills the volume: the largest holds well under half of it.
    assert np.bincount(labels.ravel().astype(np.int64)).max() < 0.4 * labels.size


def test_synthetic_membranes_are_darker_than_cytoplasm(small):
    image, labels = small
    edge = np.zeros(labels.shape, bool)
    for axis in (1, 2):
        d = np.diff(labels, axis=axis) != 0
        sl = [slice(None)] * 3
        sl[axis] = slice(0, -1)
        edge[tuple(sl)] |= d
    interior = ~ndimage.binary_dilation(edge, np.ones((1, 5, 5), bool))
    assert image[edge].mean() < image[interior].mean() - 40


def test_synthetic_image_is_anisotropic_and_textured(small):
    image = small[0].astype(np.float32)
    dz = np.abs(np.diff(image, axis=0)).mean()
    dx = np.abs(np.diff(image, axis=2)).mean()
    assert dz > 1.2 * dx
    assert image.std() > 15  # not flat
    assert 60 < image.mean() < 200


def test_synthetic_objects_branch_or_vary_in_calibre(small):
    _, labels = small
    # Per-section profile areas of one object vary along Z (calibre changes, branches).
    areas = []
    for obj in np.unique(labels)[:10]:
        per_z = (labels == obj).sum(axis=(1, 2))
        per_z = per_z[per_z > 0]
        if len(per_z) > 4:
            areas.append(per_z.std() / per_z.mean())
    assert areas and max(areas) > 0.2


@pytest.mark.slow
def test_default_dataset_loads_cached_named_volumes():
    volumes = load_volumes([], in_memory=False)
    assert list(volumes) == list(SYNTHETIC_VOLUMES)
    files = synthetic_volume_files(progress=False)
    mtimes = {name: f.stat().st_mtime_ns for name, f in files.items()}
    again = load_volumes([], in_memory=True)
    assert {n: f.stat().st_mtime_ns for n, f in synthetic_volume_files(False).items()} == mtimes
    for name, vol in again.items():
        np.testing.assert_array_equal(vol.resolution, (40, 16, 16))
        assert vol.shape == (64, 256, 256)
        assert vol.label_data is not None
        assert vol == volumes[name]
    training, validation = partition_volumes(again)
    assert training[SYNTHETIC_VOLUMES[0]].shape == (32, 256, 256)
    sv = next(validation[SYNTHETIC_VOLUMES[1]].subvolume_generator(
        shape=(13, 33, 33), rng=np.random.default_rng(0)))
    assert sv.image.shape == (13, 33, 33) and sv.has_seed_in_mask()
