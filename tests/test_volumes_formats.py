"""HDF5, Zarr/OME-Zarr, N5, image-slice folders and CATMAID tile stacks (over HTTP)."""

from __future__ import annotations

import functools
import http.server
import pickle
import threading

import h5py
import numpy as np
import pytest

from diluvian.util import DiluvianError
from diluvian.volumes import (
    HDF5Volume,
    ImageFolderVolume,
    ImageStackVolume,
    N5Volume,
    NdarrayVolume,
    ZarrVolume,
    write_n5_dataset,
)
from diluvian.volumes.tiles import tile_url


@pytest.fixture
def arrays():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (6, 20, 24), dtype=np.uint8)
    labels = rng.integers(0, 4, (6, 20, 24)).astype(np.uint64)
    mask = np.zeros((6, 20, 24), bool)
    mask[1:5, 2:18, 3:20] = True
    return image, labels, mask


def test_hdf5_write_file_uses_cremi_paths_and_resolution(tmp_path, arrays):
    image, labels, mask = arrays
    path = tmp_path / "v.h5"
    HDF5Volume.write_file(path, (40, 4, 4), image_data=image, label_data=labels, mask_data=mask)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["volumes/raw"][...], image)
        np.testing.assert_array_equal(f["volumes/labels/neuron_ids"][...], labels)
        assert f["volumes/labels/mask"][...].astype(bool).tolist() == mask.tolist()
        assert f["volumes/raw"].attrs["resolution"].tolist() == [40, 4, 4]
    assert [p.name for p in tmp_path.iterdir()] == ["v.h5"]  # no temporary left


def test_hdf5_volume_reads_lazily_and_to_memory(tmp_path, arrays):
    image, labels, _ = arrays
    path = tmp_path / "v.h5"
    HDF5Volume.write_file(path, (40, 4, 4), image_data=image, label_data=labels)
    vol = HDF5Volume(path, "volumes/raw", "volumes/labels/neuron_ids")
    assert isinstance(vol.image_data, h5py.Dataset)
    np.testing.assert_array_equal(vol.resolution, (40, 4, 4))
    np.testing.assert_array_equal(vol.image_data[1:3, 4:9, 2:5], image[1:3, 4:9, 2:5])
    mem = vol.to_memory_volume()
    assert isinstance(mem, NdarrayVolume) and mem == vol
    again = pickle.loads(pickle.dumps(vol))
    np.testing.assert_array_equal(again.label_data[...], labels)


def test_hdf5_missing_dataset_is_a_one_line_error(tmp_path, arrays):
    path = tmp_path / "v.h5"
    HDF5Volume.write_file(path, (1, 1, 1), image_data=arrays[0])
    with pytest.raises(DiluvianError, match="'volumes/nope' is not a dataset") as err:
        HDF5Volume(path, "volumes/nope")
    assert "\n" not in str(err.value)


def test_hdf5_missing_file_is_an_error(tmp_path):
    with pytest.raises(DiluvianError, match="not found"):
        HDF5Volume(tmp_path / "nope.h5", "volumes/raw")


def test_zarr_volume_reads_arrays_with_resolution_attribute(tmp_path, arrays):
    import zarr

    image, labels, _ = arrays
    root = zarr.open_group(str(tmp_path / "v.zarr"), mode="w")
    a = root.create_array("raw", shape=image.shape, dtype=image.dtype, chunks=(2, 8, 8))
    a[...] = image
    a.attrs["resolution"] = [40, 8, 8]
    b = root.create_array("labels", shape=labels.shape, dtype=labels.dtype, chunks=(2, 8, 8))
    b[...] = labels
    vol = ZarrVolume(tmp_path / "v.zarr", "raw", "labels")
    np.testing.assert_array_equal(vol.resolution, (40, 8, 8))
    np.testing.assert_array_equal(vol.image_data[2:5, 3:11, 0:7], image[2:5, 3:11, 0:7])
    np.testing.assert_array_equal(vol.label_data[...], labels)


def test_ome_zarr_scale_level_selects_array_and_resolution(tmp_path, arrays):
    import zarr

    image = arrays[0]
    root = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    group = root.create_group("raw")
    datasets = []
    for level in range(2):
        data = image[:, :: 2 ** level, :: 2 ** level]
        arr = group.create_array(str(level), shape=data.shape, dtype=data.dtype, chunks=(2, 8, 8))
        arr[...] = data
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [40.0, 4.0 * 2 ** level, 4.0 * 2 ** level]}]})
    group.attrs["multiscales"] = [{"version": "0.4", "datasets": datasets, "axes": [
        {"name": n, "type": "space"} for n in "zyx"]}]
    vol = ZarrVolume(tmp_path / "ome.zarr", "raw", scale_level=1)
    np.testing.assert_array_equal(vol.resolution, (40, 8, 8))
    np.testing.assert_array_equal(vol.image_data[...], image[:, ::2, ::2])
    with pytest.raises(DiluvianError, match="scale_level 5 does not exist"):
        ZarrVolume(tmp_path / "ome.zarr", "raw", scale_level=5)


def test_zarr_missing_dataset_is_an_error(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
    with pytest.raises(DiluvianError, match="not in the store"):
        ZarrVolume(tmp_path / "e.zarr", "raw", resolution=(1, 1, 1))


@pytest.mark.parametrize("compression", ["raw", "gzip"])
def test_n5_volume_round_trips_blocks(tmp_path, arrays, compression):
    image, labels, _ = arrays
    write_n5_dataset(tmp_path / "v.n5", "raw", image, block_size=(4, 8, 16),
                     compression=compression, resolution=(40, 4, 4))
    write_n5_dataset(tmp_path / "v.n5", "labels", labels, block_size=(4, 8, 16),
                     compression=compression)
    vol = N5Volume(tmp_path / "v.n5", image_dataset="raw", label_dataset="labels")
    np.testing.assert_array_equal(vol.resolution, (40, 4, 4))
    assert vol.shape == image.shape
    np.testing.assert_array_equal(vol.image_data[...], image)
    np.testing.assert_array_equal(vol.label_data[3:6, 7:19, 15:17], labels[3:6, 7:19, 15:17])


def test_n5_multiscale_group_reads_scale_level(tmp_path, arrays):
    image = arrays[0]
    write_n5_dataset(tmp_path / "m.n5", "raw/s0", image, resolution=(40, 4, 4))
    write_n5_dataset(tmp_path / "m.n5", "raw/s1", image[:, ::2, ::2], resolution=(40, 8, 8))
    vol = N5Volume(tmp_path / "m.n5", "raw", scale_level=1)
    np.testing.assert_array_equal(vol.resolution, (40, 8, 8))
    np.testing.assert_array_equal(vol.image_data[...], image[:, ::2, ::2])


def test_n5_missing_block_reads_zero(tmp_path, arrays):
    image = arrays[0]
    write_n5_dataset(tmp_path / "v.n5", "raw", image, block_size=(6, 20, 12), resolution=(1, 1, 1))
    (tmp_path / "v.n5" / "raw" / "1" / "0" / "0").unlink()
    vol = N5Volume(tmp_path / "v.n5", "raw")
    assert not vol.image_data[:, :, 12:].any()
    np.testing.assert_array_equal(vol.image_data[:, :, :12], image[:, :, :12])


def _write_slices(folder, data, suffix):
    from PIL import Image

    folder.mkdir()
    for z, plane in enumerate(data):
        if suffix == ".tif":
            import tifffile

            tifffile.imwrite(folder / f"s{z:03d}.tif", plane)
        else:
            Image.fromarray(plane).save(folder / f"s{z:03d}{suffix}")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_image_stack_directory_reads_slices(tmp_path, arrays, suffix):
    image, _, mask = arrays
    _write_slices(tmp_path / "img", image, suffix)
    _write_slices(tmp_path / "mask", mask.astype(np.uint8), suffix)
    vol = ImageFolderVolume.from_directory(tmp_path / "img", (40, 4, 4), mask_dir=tmp_path / "mask")
    assert vol.shape == image.shape
    np.testing.assert_array_equal(vol.image_data[1:4, 5:9, :], image[1:4, 5:9, :])
    np.testing.assert_array_equal(vol.mask_data[...].astype(bool), mask)


def test_image_stack_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiluvianError, match="no PNG"):
        ImageFolderVolume.from_directory(tmp_path / "empty", (1, 1, 1))


@pytest.fixture
def tile_server(tmp_path):
    """Serve tmp_path/tiles over HTTP on 127.0.0.1; yields (base URL, folder, request log)."""
    root = tmp_path / "tiles"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 (http.server naming)
            requests.append(self.path)
            super().do_GET()

    handler = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root, requests
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("source_type", [1, 4, 5, 7, 9])
def test_catmaid_stack_reads_tiles_over_http(tile_server, source_type):
    from PIL import Image

    base, root, requests = tile_server
    rng = np.random.default_rng(2)
    full = rng.integers(1, 256, (3, 12, 20), dtype=np.uint8)
    tw, th = 8, 8
    for z in range(3):
        if z == 1:
            continue  # a missing slice reads blank
        for row in range(2):
            for col in range(3):
                tile = np.zeros((th, tw), np.uint8)
                part = full[z, row * th:(row + 1) * th, col * tw:(col + 1) * tw]
                tile[:part.shape[0], :part.shape[1]] = part
                url = tile_url(source_type, "", z, row, col, 0, "png", tw, th)
                path = root / url
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(tile).save(path)
    info = {"dimension": {"x": 20, "y": 12, "z": 3}, "resolution": {"x": 4, "y": 4, "z": 40},
            "translation": {"x": 100, "y": 0, "z": 0},
            "mirrors": [{"tile_source_type": source_type, "image_base": base,
                         "file_extension": "png", "tile_width": tw, "tile_height": th}]}
    vol = ImageStackVolume.from_catmaid_stack(info, {})
    assert vol.shape == (3, 12, 20)
    np.testing.assert_array_equal(vol.resolution, (40, 4, 4))
    np.testing.assert_array_equal(vol.image_data[0, 3:11, 5:18], full[0, 3:11, 5:18] / 256)
    assert not vol.image_data[1].any()
    np.testing.assert_array_equal(vol.image_data[2], full[2] / 256)
    fetched = len(requests)
    vol.image_data[0, 3:11, 5:18]  # served from the tile cache
    assert len(requests) == fetched
    np.testing.assert_array_equal(vol.world_coord_to_real((1, 0, 0)), (40, 0, 100))


def test_catmaid_zoom_level_halves_xy_and_skips_broken_slices(tile_server):
    from PIL import Image

    base, root, _ = tile_server
    tile = np.full((8, 8), 200, np.uint8)
    for z in range(2):
        path = root / tile_url(5, "", z, 0, 0, 1, "png", 8, 8)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(tile).save(path)
    info = {"dimension": {"x": 16, "y": 16, "z": 2}, "resolution": {"x": 4, "y": 4, "z": 40},
            "broken_slices": {"1": 1}}
    vol = ImageStackVolume.from_catmaid_stack(info, {
        "source_base_url": base, "tile_source_type": 5, "file_extension": "png",
        "tile_width": 8, "tile_height": 8, "zoom_level": 1})
    assert vol.shape == (2, 8, 8)
    np.testing.assert_array_equal(vol.resolution, (40, 8, 8))
    assert np.all(vol.image_data[0] == 200 / 256) and not vol.image_data[1].any()


def test_catmaid_unknown_tile_source_type_is_an_error():
    info = {"dimension": {"x": 8, "y": 8, "z": 1}, "resolution": {"x": 1, "y": 1, "z": 1}}
    with pytest.raises(DiluvianError, match="type 3 is not supported"):
        ImageStackVolume.from_catmaid_stack(info, {"source_base_url": "http://x/",
                                                   "tile_source_type": 3})
