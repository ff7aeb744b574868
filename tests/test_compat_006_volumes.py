"""diluvian 0.0.6's tiled ImageStackVolume and N5Volume, offline (file:// tiles)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from diluvian.util import DiluvianError
from diluvian.volumes import (
    ImageFolderVolume,
    ImageStackVolume,
    N5Volume,
    load_volumes,
    write_n5_dataset,
)
from diluvian.volumes.tiles import tile_format_url

TW, TH = 8, 6
#: ZYX: 3 slices of 14 x 20 pixels: 3 tile rows (the last 2 high) and 3 columns (the last 4 wide)
SHAPE = (3, 14, 20)


def _write_tiles(root, full, tile_source_type=5, zoom_level=0, skip_z=()):
    """Write ``full`` (ZYX uint8) as PNG tiles, edge tiles cropped as CATMAID serves them."""
    from PIL import Image

    for z, plane in enumerate(full):
        if z in skip_z:
            continue
        for row in range(-(-plane.shape[0] // TH)):
            for col in range(-(-plane.shape[1] // TW)):
                tile = plane[row * TH:(row + 1) * TH, col * TW:(col + 1) * TW]
                rel = tile_format_url(tile_source_type, "", "png", TW, TH).format(
                    zoom_level=zoom_level, z=z, row=row, col=col)
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.ascontiguousarray(tile)).save(path)


@pytest.fixture
def stack(tmp_path):
    """(full uint8 array, tile root folder, its file:// base URL)."""
    full = np.random.default_rng(3).integers(1, 256, SHAPE, dtype=np.uint8)
    root = tmp_path / "tiles"
    root.mkdir()
    _write_tiles(root, full, skip_z=(1,))
    # zoom level 1 halves X and Y
    _write_tiles(root, full[:, ::2, ::2], zoom_level=1)
    return full, root, root.as_uri() + "/"


def _info_006(**extra):
    return {"bounds": [SHAPE[2], SHAPE[1], SHAPE[0]], "resolution": [4, 4, 40],
            "translation": [20, 12, 80], **extra}


def _params(base, **extra):
    return {"source_base_url": base, "file_extension": "png", "tile_width": TW,
            "tile_height": TH, "tile_source_type": 5, **extra}


def test_constructor_reads_stitched_tiles_lazily(stack):
    full, _, base = stack
    url = base + "{zoom_level}/{z}/{row}/{col}.png"
    vol = ImageStackVolume(SHAPE, (40, 4, 4), (80, 12, 20), TW, TH, url, missing_z=[2])
    assert vol.shape == SHAPE
    np.testing.assert_array_equal(vol.resolution, (40, 4, 4))
    assert vol.image_data.octree.fullness() == 0  # nothing fetched yet
    np.testing.assert_array_equal(vol.image_data[0, 3:13, 5:19], full[0, 3:13, 5:19] / 256)
    np.testing.assert_array_equal(vol.image_data[0], full[0] / 256)
    assert not vol.image_data[1].any()  # tiles not found read blank
    assert not vol.image_data[2].any()  # missing_z is never fetched
    box = vol.image_populator((np.array([0, 4, 6]), np.array([1, 14, 20])))
    assert box.dtype == np.float32
    np.testing.assert_array_equal(box, full[:1, 4:, 6:] / 256)


def test_from_catmaid_stack_accepts_both_stack_info_forms(stack):
    full, root, base = stack
    old = ImageStackVolume.from_catmaid_stack(_info_006(broken_slices=[2]), _params(base))
    catmaid = {"dimension": {"x": 20, "y": 14, "z": 3},
               "resolution": {"x": 4, "y": 4, "z": 40},
               "translation": {"x": 20, "y": 12, "z": 80},
               "broken_slices": {"2": 1},
               "mirrors": [{"tile_source_type": 5, "image_base": str(root.as_uri()),
                            "file_extension": "png", "tile_width": TW, "tile_height": TH}]}
    new = ImageStackVolume.from_catmaid_stack(catmaid, {})
    for vol in (old, new):
        assert vol.shape == SHAPE and vol.missing_z == {2}
        assert vol.tile_format_url == base + "{zoom_level}/{z}/{row}/{col}.png"
        np.testing.assert_array_equal(vol.translation, (80, 12, 20))
        np.testing.assert_array_equal(vol.image_data[0], full[0] / 256)
        assert not vol.image_data[2].any()
    with pytest.raises(DiluvianError, match="type 3 is not supported"):
        ImageStackVolume.from_catmaid_stack(_info_006(), _params(base, tile_source_type=3))


def test_from_toml_reads_image_stack_tables(stack, tmp_path):
    full, _, base = stack
    (tmp_path / "stacks.toml").write_text(f"""
[[ImageStack]]
title = "tiles"
bounds = [20, 14, 3]
resolution = [4, 4, 40]
translation = [0, 0, 0]
source_base_url = "{base}"
file_extension = "png"
tile_width = {TW}
tile_height = {TH}
tile_source_type = 5
""")
    vols = ImageStackVolume.from_toml(tmp_path / "stacks.toml")
    assert list(vols) == ["tiles"]
    np.testing.assert_array_equal(vols["tiles"].image_data[0, 2:9], full[0, 2:9] / 256)


def test_coordinate_conversions_and_zoom_levels(stack):
    full, _, base = stack
    vol = ImageStackVolume.from_catmaid_stack(_info_006(), _params(base))
    # world (zoom level 0 voxels) <-> real (nm): voxel * resolution + translation
    np.testing.assert_array_equal(vol.world_coord_to_real((1, 2, 3)), (120, 20, 32))
    np.testing.assert_array_equal(vol.real_coord_to_world((120, 23, 35)), (1, 2, 3))
    np.testing.assert_array_equal(vol.real_coord_to_world((119, 20, 32)), (0, 2, 3))
    zoomed = ImageStackVolume.from_catmaid_stack(_info_006(), _params(base, zoom_level=1))
    assert zoomed.shape == (3, 7, 10)
    np.testing.assert_array_equal(zoomed.resolution, (40, 8, 8))
    np.testing.assert_array_equal(zoomed.local_coord_to_world((1, 2, 3)), (1, 4, 6))
    np.testing.assert_array_equal(zoomed.world_coord_to_local((1, 5, 7)), (1, 2, 3))
    np.testing.assert_array_equal(zoomed.world_coord_to_real(zoomed.local_coord_to_world(
        (1, 2, 3))), (120, 28, 44))
    np.testing.assert_array_equal(zoomed.image_data[0], full[0, ::2, ::2] / 256)
    # downsampling by powers of 2 in XY reads the zoom level's tiles
    down = vol.downsample((40, 8, 8))
    assert isinstance(down, ImageStackVolume) and down.zoom_level == 1
    np.testing.assert_array_equal(down.image_data[2], full[2, ::2, ::2] / 256)
    both = vol.downsample((80, 8, 8))
    assert both.shape == (1, 7, 10) and isinstance(both.parent, ImageStackVolume)


def test_subvolume_bounds_generators_and_pickling(stack):
    full, _, base = stack
    vol = ImageStackVolume.from_catmaid_stack(_info_006(), _params(base))
    gen = vol.subvolume_bounds_generator(sparse_margin=(1, 3, 4),
                                         rng=np.random.default_rng(0))
    for _ in range(20):
        b = next(gen)
        np.testing.assert_array_equal(b.shape, (3, 7, 9))
        np.testing.assert_array_equal(b.seed, (1, 3, 4))
        assert np.all(b.start >= 0) and np.all(b.stop <= SHAPE)
    b = next(vol.subvolume_bounds_generator(shape=(1, 5, 5), rng=np.random.default_rng(1)))
    sub = vol.get_subvolume(b)
    z, y, x = b.start
    served = full.copy()
    served[1] = 0  # the fixture wrote no zoom level 0 tiles of slice 1
    np.testing.assert_array_equal(sub.image, served[z:z + 1, y:y + 5, x:x + 5] / 256)
    vol.image_data[0]
    again = pickle.loads(pickle.dumps(vol))
    assert again.image_data.octree.fullness() == 0
    np.testing.assert_array_equal(again.image_data[0], full[0] / 256)


def test_dataset_toml_keys_use_folder_and_tiled_classes(stack, tmp_path):
    from PIL import Image

    full, root, _ = stack
    (tmp_path / "slices").mkdir()
    for z, plane in enumerate(full):
        Image.fromarray(plane).save(tmp_path / "slices" / f"{z:02d}.png")
    (tmp_path / "info.json").write_text(json.dumps({
        "dimension": {"x": 20, "y": 14, "z": 3}, "resolution": {"x": 4, "y": 4, "z": 40},
        "mirrors": [{"tile_source_type": 5, "image_base": root.as_uri(),
                     "file_extension": "png", "tile_width": TW, "tile_height": TH}]}))
    (tmp_path / "d.toml").write_text("""
[[dataset]]
name = "folder"
image_stack_dir = "slices"
resolution = [40, 4, 4]

[[dataset]]
name = "tiles"
catmaid_stack_info = "info.json"
""")
    vols = load_volumes([tmp_path / "d.toml"], in_memory=False)
    assert isinstance(vols["folder"], ImageFolderVolume)
    assert isinstance(vols["tiles"], ImageStackVolume)
    np.testing.assert_array_equal(vols["folder"].image_data[...], full)
    np.testing.assert_array_equal(vols["tiles"].image_data[0], full[0] / 256)


def test_n5_volume_constructed_the_006_way(tmp_path):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (4, 10, 12), dtype=np.uint8)
    labels = rng.integers(0, 5, (4, 10, 12)).astype(np.uint64)
    write_n5_dataset(tmp_path / "v.n5", "raw", image, block_size=(2, 4, 8), resolution=(40, 4, 4))
    write_n5_dataset(tmp_path / "v.n5", "seg", labels, block_size=(2, 4, 8))
    today = N5Volume(tmp_path / "v.n5", image_dataset="raw", label_dataset="seg")
    old = N5Volume(str(tmp_path / "v.n5"), {"image": "raw", "labels": {"path": "seg",
                                                                       "dtype": "UINT64"}},
                   None, [40, 4, 4], [80, 8, 0])
    assert old == today
    np.testing.assert_array_equal(old.world_coord_to_real((1, 1, 1)), (120, 12, 4))
    np.testing.assert_array_equal(old.real_coord_to_world((120, 12, 4)), (1, 1, 1))
    # bounds: cut off beyond, zero-padded where the data end
    cut = N5Volume(tmp_path / "v.n5", {"image": "raw"}, bounds=[4, 12, 6])
    assert cut.shape == (4, 12, 6)
    np.testing.assert_array_equal(cut.image_data[:, :10], image[:, :, :6])
    assert not cut.image_data[:, 10:].any()
    (tmp_path / "n5.toml").write_text("""
[[N5Volume]]
title = "v"
root_path = "v.n5"
resolution = [40, 4, 4]
[N5Volume.datasets]
image = "raw"
label = "seg"
""")
    vols = N5Volume.from_toml(tmp_path / "n5.toml")
    assert vols["v"] == today
    with pytest.raises(DiluvianError, match="unknown N5Volume dataset 'raw'"):
        N5Volume(tmp_path / "v.n5", {"raw": "raw"})
