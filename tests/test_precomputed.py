"""Neuroglancer precomputed export: the library function and ``diluvian export-precomputed``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from diluvian.__main__ import main
from diluvian.blockwise.store import STATE_ATTR
from diluvian.precomputed import export_precomputed, read_precomputed, read_precomputed_chunk
from diluvian.util import DiluvianError


def synthetic_labels() -> np.ndarray:
    """Blobs with large IDs (above 2**32) in a volume not a multiple of the chunk shape."""
    labels = np.zeros((10, 13, 17), dtype=np.uint64)
    labels[1:9, 2:11, 3:8] = 7
    labels[2:6, 4:12, 9:16] = (1 << 40) + 3
    labels[7:10, 0:5, 12:17] = 12345
    return labels


def write_store(path, labels, complete=True, resolution=(40, 4, 4)):
    """A zarr store laid out like a blockwise fill's."""
    import zarr

    group = zarr.open_group(str(path), mode="w")
    arr = group.create_array("labels", shape=labels.shape, chunks=(5, 6, 7), dtype="uint64",
                             fill_value=0)
    arr[...] = labels
    arr.attrs["resolution"] = list(resolution)
    group.attrs[STATE_ATTR] = {"settings": {"version": 2}, "complete": complete, "objects": 3,
                               "merges": 0}
    return path


def leftovers(folder) -> list[str]:
    """Hidden temporary names left beside the output."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------
# Library
# --------------------------------------------------------------------------


def test_precomputed_export_round_trips_chunks(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2**40, size=(10, 12, 14), dtype=np.uint64)
    write_store(tmp_path / "s.zarr", labels)
    out = export_precomputed(tmp_path / "s.zarr", tmp_path / "ng", chunk_shape=(4, 8, 8),
                             progress=False)
    info = json.loads((out / "info").read_text())
    scale = info["scales"][0]
    assert info["type"] == "segmentation" and info["data_type"] == "uint64"
    assert scale["size"] == [14, 12, 10] and scale["resolution"] == [4, 4, 40]
    assert scale["chunk_sizes"] == [[8, 8, 4]] and scale["encoding"] == "raw"
    assert (out / scale["key"] / "8-14_8-12_8-10").stat().st_size == 6 * 4 * 2 * 8
    assert np.array_equal(read_precomputed_chunk(out, (8, 8, 8), (10, 12, 14)),
                          labels[8:10, 8:12, 8:14])
    assert np.array_equal(read_precomputed_chunk(out, (0, 0, 0), (4, 8, 8)), labels[:4, :8, :8])
    assert np.array_equal(read_precomputed(out), labels)


def test_precomputed_export_needs_a_resolution(tmp_path):
    with pytest.raises(DiluvianError, match="resolution"):
        export_precomputed(np.zeros((2, 2, 2), np.uint64), tmp_path / "ng", progress=False)


def test_interrupted_export_leaves_no_output(tmp_path):
    class Failing:
        shape = (8, 8, 8)
        dtype = np.dtype(np.uint64)

        def __init__(self):
            self.reads = 0

        def __getitem__(self, key):
            self.reads += 1
            if self.reads == 3:
                raise OSError("disk went away")
            return np.ones(tuple(s.stop - s.start for s in key), np.uint64)

    with pytest.raises(OSError, match="disk went away"):
        export_precomputed(Failing(), tmp_path / "ng", resolution=(1, 1, 1),
                           chunk_shape=(4, 4, 4), progress=False)
    assert not (tmp_path / "ng").exists() and leftovers(tmp_path) == []


def test_negative_and_float_labels_are_refused(tmp_path):
    with pytest.raises(DiluvianError, match=">= 0"):
        export_precomputed(-np.ones((2, 2, 2), np.int32), tmp_path / "a", (1, 1, 1),
                           progress=False)
    with pytest.raises(DiluvianError, match="integer"):
        export_precomputed(np.zeros((2, 2, 2), np.float32), tmp_path / "b", (1, 1, 1),
                           progress=False)
    assert leftovers(tmp_path) == [] and not (tmp_path / "a").exists()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def test_cli_exports_a_blockwise_store(tmp_path, capsys):
    labels = synthetic_labels()
    store = write_store(tmp_path / "seg.zarr", labels)
    out = tmp_path / "seg_ng"
    assert main(["export-precomputed", str(store), str(out), "--chunk-size", "4", "8", "8"]) == 0
    assert str(out) in capsys.readouterr().out
    info = json.loads((out / "info").read_text())
    scale = info["scales"][0]
    assert info["@type"] == "neuroglancer_multiscale_volume" and info["num_channels"] == 1
    assert scale["size"] == [17, 13, 10] and scale["resolution"] == [4, 4, 40]
    assert scale["chunk_sizes"] == [[8, 8, 4]] and scale["voxel_offset"] == [0, 0, 0]
    # 3 x 2 x 3 chunks, the last ones clipped to the volume
    assert len(list((out / scale["key"]).iterdir())) == 18
    assert np.array_equal(read_precomputed(out), labels)
    # raw chunk bytes are the C-order ZYX uint64 little-endian voxels
    raw = (out / scale["key"] / "16-17_8-13_8-10").read_bytes()
    assert raw == np.ascontiguousarray(labels[8:10, 8:13, 16:17]).astype("<u8").tobytes()
    assert leftovers(tmp_path) == []


def test_cli_exports_the_hdf5_and_toml_of_diluvian_fill(tmp_path):
    from diluvian.fill import write_segmentation

    labels = synthetic_labels()
    write_segmentation(tmp_path / "seg.hdf5", tmp_path / "seg.toml", "vol", labels,
                       image=None, resolution=(40, 8, 8))
    assert main(["export-precomputed", str(tmp_path / "seg.hdf5"), str(tmp_path / "a")]) == 0
    assert np.array_equal(read_precomputed(tmp_path / "a"), labels)
    assert json.loads((tmp_path / "a" / "info").read_text())["scales"][0]["resolution"] == \
        [8, 8, 40]
    assert main(["export-precomputed", str(tmp_path / "seg.toml"), str(tmp_path / "b"),
                 "--resolution", "30", "6", "6.5", "--chunk-size", "64", "5", "5"]) == 0
    scale = json.loads((tmp_path / "b" / "info").read_text())["scales"][0]
    assert scale["resolution"] == [6.5, 6, 30] and scale["chunk_sizes"] == [[5, 5, 10]]
    assert np.array_equal(read_precomputed(tmp_path / "b"), labels)


def test_cli_existing_output_needs_overwrite(tmp_path, capsys):
    store = write_store(tmp_path / "seg.zarr", synthetic_labels())
    out = tmp_path / "ng"
    assert main(["export-precomputed", str(store), str(out)]) == 0
    capsys.readouterr()
    assert main(["export-precomputed", str(store), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    write_store(store, np.ones((3, 4, 5), np.uint64))
    assert main(["export-precomputed", str(store), str(out), "--overwrite"]) == 0
    assert np.array_equal(read_precomputed(out), np.ones((3, 4, 5), np.uint64))
    assert leftovers(tmp_path) == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main(["export-precomputed", str(store), str(tmp_path / "other"), "--overwrite"]) == 2
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("make, args, message", [
    (lambda d: None, [], "does not exist"),
    (lambda d: (d / "in.txt").write_text("x"), [], "neither a zarr store"),
    (lambda d: write_store(d / "in.zarr", synthetic_labels(), complete=False), [],
     "not finished"),
    (lambda d: write_store(d / "in.zarr", synthetic_labels()), ["--dataset", "nope"],
     "no array 'nope'"),
    (lambda d: write_store(d / "in.zarr", synthetic_labels()), ["--chunk-size", "0", "4", "4"],
     "--chunk-size 0 4 4"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, make, args, message):
    make(tmp_path)
    source = next((p for p in tmp_path.iterdir() if p.name.startswith("in")), tmp_path / "in")
    assert main(["export-precomputed", str(source), str(tmp_path / "ng"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    if not message.startswith("--chunk-size"):
        assert str(source) in err
    assert not (tmp_path / "ng").exists() and leftovers(tmp_path) == []


def test_cli_entry_point_reports_a_missing_input(tmp_path):
    out = subprocess.run([sys.executable, "-m", "diluvian", "export-precomputed",
                          str(tmp_path / "missing.zarr"), str(tmp_path / "ng")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"diluvian export-precomputed: error: {tmp_path / 'missing.zarr'}: does not exist; "
        "expected a blockwise fill zarr store, an HDF5 file or a dataset TOML"]
