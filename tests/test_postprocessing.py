"""Tests of diluvian.postprocessing: bodies, components, closing and SWC skeletons."""

from __future__ import annotations

import numpy as np
import pytest

from diluvian.postprocessing import Body, binary_closing
from diluvian.util import DiluvianError


def two_blobs():
    """A 2-voxel gap splits a big blob (x 0..9) from a small one (x 12..14)."""
    m = np.zeros((5, 5, 16), dtype=bool)
    m[1:4, 1:4, 0:10] = True
    m[2, 2, 12:15] = True
    return m


def read_swc(path):
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split())
    return rows


def tube_mask():
    """A square tube along X: ZYX mask with voxels x 10..89 at z 2..9, y 11..18."""
    m = np.zeros((12, 30, 100), dtype=bool)
    m[2:10, 11:19, 10:90] = True
    return m


def test_is_seed_in_mask():
    m = two_blobs()
    assert Body(m, (2, 2, 5)).is_seed_in_mask()
    assert not Body(m, (0, 0, 0)).is_seed_in_mask()


def test_body_accepts_non_bool_masks():
    m = two_blobs().astype(np.float32) * 0.9
    assert Body(m, (2, 2, 5)).mask.dtype == np.bool_


def test_seed_outside_mask_array_raises():
    with pytest.raises(ValueError, match="outside"):
        Body(two_blobs(), (5, 0, 0))


def test_largest_component_picks_the_biggest():
    m = two_blobs()
    got = Body(m, (2, 2, 13)).get_largest_component()
    assert got.dtype == np.bool_
    expected = m.copy()
    expected[:, :, 10:] = False
    np.testing.assert_array_equal(got, expected)


def test_seeded_component_picks_the_seeds_component():
    m = two_blobs()
    got = Body(m, (2, 2, 13)).get_seeded_component()
    expected = np.zeros_like(m)
    expected[2, 2, 12:15] = True
    np.testing.assert_array_equal(got, expected)


def test_seeded_component_is_empty_when_seed_not_in_mask():
    got = Body(two_blobs(), (0, 0, 0)).get_seeded_component()
    assert got.dtype == np.bool_ and not got.any()


def test_components_use_face_connectivity():
    m = np.zeros((3, 3, 3), dtype=bool)
    m[0, 0, 0] = m[1, 1, 1] = True  # only a corner in common
    assert Body(m, (0, 0, 0)).get_seeded_component().sum() == 1


def test_closing_bridges_gaps_before_components():
    m = two_blobs()
    body = Body(m, (2, 2, 13))
    joined = body.get_seeded_component(closing_shape=(1, 1, 3))
    assert joined[2, 2, 0] and joined[2, 2, 14]
    assert joined[2, 2, 10] and joined[2, 2, 11]
    np.testing.assert_array_equal(body.get_largest_component(closing_shape=(1, 1, 3)), joined)


def test_closing_keeps_voxels_at_array_border():
    m = np.ones((4, 4, 4), dtype=bool)
    np.testing.assert_array_equal(binary_closing(m, (3, 3, 3)), m)


def test_closing_shape_none_or_ones_is_identity():
    m = two_blobs()
    np.testing.assert_array_equal(binary_closing(m, None), m)
    np.testing.assert_array_equal(binary_closing(m, (1, 1, 1)), m)


def test_invalid_closing_shape_raises_diluvian_error():
    with pytest.raises(DiluvianError, match="closing_shape"):
        binary_closing(two_blobs(), (3, 3))


def test_to_swc_writes_parseable_swc(tmp_path):
    path = tmp_path / "body.swc"
    Body(tube_mask(), (5, 15, 40)).to_swc(path, resolution=(8, 8, 8))
    rows = read_swc(path)
    assert len(rows) > 10
    assert all(len(r) == 7 for r in rows)
    ids = [int(r[0]) for r in rows]
    assert len(set(ids)) == len(ids)
    parents = [int(r[6]) for r in rows]
    assert all(p == -1 or p in set(ids) for p in parents)
    assert parents.count(-1) == 1
    np.array([[float(c) for c in r[2:6]] for r in rows])  # numeric x y z radius


def test_to_swc_tube_is_linear_with_right_length_in_nm(tmp_path):
    path = tmp_path / "tube.swc"
    res = (8, 8, 8)
    Body(tube_mask(), (5, 15, 40)).to_swc(path, resolution=res)
    rows = read_swc(path)
    xyz = np.array([[float(c) for c in r[2:5]] for r in rows])
    ids = {int(r[0]): i for i, r in enumerate(rows)}
    parents = [int(r[6]) for r in rows]
    # linear: no node has more than one child
    children = np.bincount([ids[p] for p in parents if p != -1], minlength=len(rows))
    assert children.max() == 1
    length = sum(np.linalg.norm(xyz[i] - xyz[ids[p]]) for i, p in enumerate(parents) if p != -1)
    tube_nm = 80 * res[2]
    assert 0.85 * tube_nm < length < 1.2 * tube_nm
    # runs along physical X inside the tube, mostly near its axis (ends may reach corners)
    assert xyz[:, 0].min() < 15 * 8 and xyz[:, 0].max() > 84 * 8
    assert np.all((xyz[:, 1] >= 11 * 8) & (xyz[:, 1] <= 18 * 8))
    assert np.all((xyz[:, 2] >= 2 * 8) & (xyz[:, 2] <= 9 * 8))
    assert np.median(np.abs(xyz[:, 1] - 14.5 * 8)) <= 1 * 8
    assert np.median(np.abs(xyz[:, 2] - 5.5 * 8)) <= 1 * 8


def test_to_swc_uses_anisotropic_resolution_and_offset_per_axis(tmp_path):
    path = tmp_path / "aniso.swc"
    res = (40, 4, 16)  # Z, Y, X nm
    offset = (100, 200, 300)  # Z, Y, X voxels
    Body(tube_mask(), (5, 15, 40)).to_swc(path, resolution=res, offset_vox=offset)
    xyz = np.array([[float(c) for c in r[2:5]] for r in read_swc(path)])
    x_vox = xyz[:, 0] / res[2] - offset[2]
    y_vox = xyz[:, 1] / res[1] - offset[1]
    z_vox = xyz[:, 2] / res[0] - offset[0]
    assert x_vox.min() < 15 and x_vox.max() > 84
    assert np.all((y_vox >= 11) & (y_vox < 19))
    assert np.all((z_vox >= 2) & (z_vox < 10))


def test_to_swc_of_empty_mask_writes_comment_only_file(tmp_path):
    path = tmp_path / "empty.swc"
    Body(np.zeros((4, 4, 4), dtype=bool), (1, 1, 1)).to_swc(path)
    assert path.exists() and read_swc(path) == []


def test_to_swc_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "fail.swc"
    path.write_text("old")

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Body, "to_skeleton", boom)
    with pytest.raises(RuntimeError):
        Body(tube_mask(), (5, 15, 40)).to_swc(path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["fail.swc"]
