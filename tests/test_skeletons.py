"""Ground-truth skeletons, SWC files and the expected run length (ERL).

The ERL cases are computed by hand; the rules are in :mod:`diluvian.skeletons`:
an edge counts only when both ends are in the same non-background, unmerged
segment, and a cut edge's length belongs to no fragment.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from diluvian.__main__ import main
from diluvian.skeletons import (
    Skeleton,
    SkeletonSource,
    expected_run_length,
    node_segments,
    read_swc,
    read_swc_folder,
    skeleton_figures,
    skeletons_from_labels,
    write_swc,
)
from diluvian.util import DiluvianError


def line(n_edges=10, step=1.0, y=0.0, name=""):
    """A straight skeleton along X of ``n_edges`` edges of ``step`` nm."""
    nodes = [[0.0, y, step * i] for i in range(n_edges + 1)]
    return Skeleton(nodes, [[i, i + 1] for i in range(n_edges)], name=name)


# ------------------------------------------------------------------ ERL
def test_skeleton_in_one_segment_has_its_length_as_erl():
    s = line()
    figures = expected_run_length([s], [np.full(11, 4)])
    assert s.length_nm == 10.0
    assert figures["erl_nm"] == pytest.approx(10.0)
    assert figures["skeletons_split"] == 0 and figures["skeletons_merged"] == 0


def test_split_in_the_middle_cuts_one_edge():
    # Nodes 0..5 in segment 1, nodes 6..10 in segment 2: the edge 5-6 is cut and
    # counts in no fragment. Fragments 5 nm and 4 nm of a 10 nm skeleton:
    # ERL = (5**2 + 4**2) / 10 = 4.1.
    figures = expected_run_length([line()], [np.array([1] * 6 + [2] * 5)])
    assert figures["erl_nm"] == pytest.approx(4.1)
    assert figures["skeletons_split"] == 1 and figures["skeletons_merged"] == 0
    assert figures["skeleton_length_nm"] == 10.0


def test_two_skeletons_merged_into_one_segment_score_zero():
    a, b = line(y=0.0), line(y=50.0)
    figures = expected_run_length([a, b], [np.full(11, 3), np.full(11, 3)])
    assert figures["erl_nm"] == 0.0
    assert figures["skeletons_merged"] == 2 and figures["merged_segments"] == 1
    assert figures["skeletons_split"] == 0


def test_merge_costs_only_the_merged_part():
    # Skeleton a: nodes 0..4 in segment 1 (4 nm, alone), nodes 5..10 in segment 9,
    # which also holds skeleton b (2 nm): a keeps one 4 nm fragment, b none.
    # ERL = 4**2 / (10 + 2) = 4/3.
    a, b = line(), line(n_edges=2, y=80.0)
    figures = expected_run_length([a, b], [np.array([1] * 5 + [9] * 6), np.full(3, 9)])
    assert figures["erl_nm"] == pytest.approx(16 / 12)
    assert figures["skeletons_merged"] == 2 and figures["skeletons_split"] == 1


def test_erl_weights_skeletons_by_length():
    # Intact skeletons of 10 and 2 nm: (10**2 + 2**2) / 12.
    figures = expected_run_length([line(), line(n_edges=2, y=9.0)],
                                  [np.full(11, 1), np.full(3, 2)])
    assert figures["erl_nm"] == pytest.approx(104 / 12)


def test_background_cuts_edges_but_never_merges():
    # Node 5 unfilled: edges 4-5 and 5-6 are cut; fragments 4 + 4 nm of 10.
    # Both skeletons touch background, which is not a merge.
    seg_a = np.array([1] * 5 + [0] + [1] * 5)
    figures = expected_run_length([line(), line(n_edges=2, y=9.0)],
                                  [seg_a, np.array([0, 2, 2])])
    assert figures["erl_nm"] == pytest.approx((16 + 16 + 1) / 12)
    assert figures["skeletons_merged"] == 0 and figures["skeletons_split"] == 0


def test_branched_skeleton_fragments_are_connected_components():
    # A T: a stem 0-1-2 (1 nm edges) and branches 2-3 and 2-4 (2 nm each), all
    # in segment 1 but node 4 in segment 2: fragments 0-1-2-3 (4 nm) and 4 (0 nm).
    nodes = [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 2, 2], [0, -2, 2]]
    tee = Skeleton(nodes, [[0, 1], [1, 2], [2, 3], [2, 4]])
    figures = expected_run_length([tee], [np.array([1, 1, 1, 1, 2])])
    assert figures["erl_nm"] == pytest.approx(16 / 6)


def test_no_skeleton_length_gives_nan():
    assert np.isnan(expected_run_length([], [])["erl_nm"])


def test_node_segments_use_offset_resolution_and_coarser_grid():
    pred = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    nodes = np.array([[100.0 + 40, 16 * 2, 16 * 5], [100.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    seg, outside = node_segments(nodes, pred, (40, 16, 16), offset_nm=(100, 0, 0),
                                 factors=(1, 1, 2))
    assert seg.tolist() == [pred[1, 2, 2], pred[0, 0, 0], 0]
    assert outside == 1


def test_skeleton_figures_report_upper_bound():
    gt = np.zeros((1, 1, 12), np.uint64)
    pred = np.array([[[1] * 6 + [2] * 6]], np.uint64)
    folder_skeletons = [line()]

    class Given(SkeletonSource):
        def load(self, gt, resolution):
            return folder_skeletons

    figures = skeleton_figures(Given(swc_folder="given"), gt, pred, (1, 1, 1))
    assert figures["erl_max_nm"] == pytest.approx(10.0)
    assert figures["erl_nm"] == pytest.approx(4.1)


# ------------------------------------------------------------------ SWC
def test_swc_roundtrip(tmp_path):
    nodes = [[0, 0, 0], [40, 16, 16], [80, 32, 0], [80, 0, 48]]
    s = Skeleton(nodes, [[0, 1], [1, 2], [1, 3]], radii_nm=[1, 2, 3, 4])
    write_swc(s, tmp_path / "s.swc")
    back = read_swc(tmp_path / "s.swc")
    np.testing.assert_allclose(back.nodes_nm, s.nodes_nm)
    np.testing.assert_allclose(back.radii_nm, [1, 2, 3, 4])
    assert {tuple(sorted(e)) for e in back.edges.tolist()} == {(0, 1), (1, 2), (1, 3)}
    assert back.name == "s" and back.length_nm == pytest.approx(s.length_nm)


def test_swc_columns_are_x_y_z(tmp_path):
    (tmp_path / "a.swc").write_text("# comment\n\n1 2 10 20 30 1.5 -1\n2 2 10 20 70 1 1\n")
    s = read_swc(tmp_path / "a.swc")
    assert s.nodes_nm.tolist() == [[30, 20, 10], [70, 20, 10]]
    assert s.length_nm == 40.0


@pytest.mark.parametrize("text, expected", [
    ("1 0 1 2 3 1\n", "a.swc:1: expected 7 columns"),
    ("1 0 1 2 3 1 -1\n2 0 x 2 3 1 1\n", "a.swc:2: expected 7 columns"),
    ("1 0 1 2 3 1 -1\n1 0 1 2 3 1 -1\n", "a.swc:2: expected unique node ids"),
    ("1 0 1 2 3 1 7\n", "a.swc:1: expected the parent id"),
    ("1 0 nan 2 3 1 -1\n", "a.swc:1: expected finite"),
])
def test_malformed_swc_names_file_and_line(tmp_path, text, expected):
    (tmp_path / "a.swc").write_text(text)
    with pytest.raises(DiluvianError, match=expected):
        read_swc(tmp_path / "a.swc")


def test_swc_folder_must_exist_and_hold_swc_files(tmp_path):
    with pytest.raises(DiluvianError, match="missing: skeleton folder not found"):
        read_swc_folder(tmp_path / "missing")
    with pytest.raises(DiluvianError, match="expected SWC files"):
        read_swc_folder(tmp_path)
    (tmp_path / "b.swc").write_text("1 0 0 0 0 1 -1\n")
    (tmp_path / "a.swc").write_text("1 0 0 0 0 1 -1\n")
    assert [s.name for s in read_swc_folder(tmp_path)] == ["a", "b"]


# ------------------------------------------------------------- kimimaro
def tubes(shape=(12, 16, 64)):
    """Two tubes along X (3 x 3 voxels across), 56 voxels long, ids 1 and 2."""
    labels = np.zeros(shape, np.uint64)
    labels[3:6, 3:6, 4:60] = 1
    labels[7:10, 10:13, 4:60] = 2
    return labels


def test_kimimaro_skeleton_of_a_tube_has_about_its_length():
    skeletons = skeletons_from_labels(tubes(), (10, 10, 10), dust_threshold_vox=10)
    assert [s.name for s in skeletons] == ["1", "2"]
    for s in skeletons:
        assert 0.85 * 550 <= s.length_nm <= 1.1 * 550
    # Traced skeletons lie in their own object.
    seg, outside = node_segments(skeletons[0].nodes_nm, tubes(), (10, 10, 10))
    assert outside == 0 and set(seg.tolist()) == {1}


def test_dust_threshold_skips_small_objects():
    labels = tubes()
    labels[0, 0, 0:2] = 3
    assert [s.name for s in skeletons_from_labels(labels, (10, 10, 10),
                                                  dust_threshold_vox=5)] == ["1", "2"]


# ------------------------------------------------------------------ CLI
def write_volumes(folder: Path, resolution=(10, 10, 10)) -> Path:
    gt = tubes()
    pred = gt.copy()
    pred[pred == 2] = 1  # the two tubes merged
    split = gt.copy()
    split[:, :, 32:][split[:, :, 32:] == 1] = 5  # tube 1 split in two
    text = ""
    for name, labels in (("gt", gt), ("merged", pred), ("split", split)):
        h5 = folder / f"{name}.h5"
        with h5py.File(h5, "w") as f:
            f.create_dataset("raw", data=(labels > 0).astype(np.uint8) * 200).attrs[
                "resolution"] = resolution
            f.create_dataset("labels", data=labels).attrs["resolution"] = resolution
        text += (f'[[dataset]]\nname = "{name}"\nhdf5_file = "{h5.name}"\n'
                 'image_dataset = "raw"\nlabel_dataset = "labels"\n')
    toml = folder / "volumes.toml"
    toml.write_text(text)
    return toml


def write_tube_swc(folder: Path) -> Path:
    folder.mkdir()
    for label, (z, y) in ((1, (40, 40)), (2, (80, 110))):
        rows = [f"{i + 1} 0 {x} {y} {z} 10 {i if i else -1}" for i, x in
                enumerate(range(46, 596, 50))]
        (folder / f"tube{label}.swc").write_text("\n".join(rows) + "\n")
    return folder


def test_cli_evaluate_with_swc_skeletons_writes_erl(tmp_path, capsys):
    toml = write_volumes(tmp_path)
    swc = write_tube_swc(tmp_path / "swc")
    out = tmp_path / "split.json"
    assert main(["evaluate", "-v", str(toml), "--border-threshold", "0", "--json", str(out),
                 "gt", "split", f"--skeletons={swc}"]) == 0
    printed = capsys.readouterr().out
    assert "ERL (nm)" in printed and "skeletons split" in printed
    figures = json.loads(out.read_text())
    # Each tube: 11 nodes at x = 46, 96, ... 546 nm (voxels 5, 10, ... 55), 10 edges
    # of 50 nm. Tube 1 is split at voxel 32: the edge from voxel 30 to 35 is cut,
    # leaving fragments of 250 and 200 nm. ERL = (250**2 + 200**2 + 500**2) / 1000.
    assert figures["skeleton_length_nm"] == pytest.approx(1000.0)
    assert figures["erl_nm"] == pytest.approx((250**2 + 200**2 + 500**2) / 1000)
    assert figures["erl_max_nm"] == pytest.approx(500.0)
    assert figures["skeletons_split"] == 1 and figures["skeletons_merged"] == 0
    out2 = tmp_path / "merged.json"
    assert main(["evaluate", "-v", str(toml), "--border-threshold", "0", "--json", str(out2),
                 "--skeletons", str(swc), "gt", "merged"]) == 0
    merged = json.loads(out2.read_text())
    assert merged["erl_nm"] == 0.0 and merged["skeletons_merged"] == 2


def test_cli_evaluate_traces_skeletons_from_ground_truth(tmp_path, capsys):
    toml = write_volumes(tmp_path)
    out = tmp_path / "gt.json"
    assert main(["evaluate", "-v", str(toml), "--border-threshold", "0", "--json", str(out),
                 "--skeleton-dust", "10", "gt", "gt", "--skeletons"]) == 0
    figures = json.loads(out.read_text())
    assert figures["skeletons"] == 2
    assert figures["erl_nm"] == pytest.approx(figures["erl_max_nm"])
    assert figures["erl_nm"] > 0.8 * 550
    assert figures["skeletons_split"] == 0 and figures["skeletons_merged"] == 0


@pytest.mark.parametrize("swc_text, named", [
    (None, "nowhere: skeleton folder not found"),
    ("1 0 1\n", "x.swc:1: expected 7 columns"),
])
def test_cli_bad_skeleton_input_is_one_line(tmp_path, capsys, swc_text, named):
    toml = write_volumes(tmp_path)
    folder = tmp_path / "nowhere"
    if swc_text is not None:
        folder.mkdir()
        (folder / "x.swc").write_text(swc_text)
    capsys.readouterr()
    rc = main(["evaluate", "-v", str(toml), "gt", "split", f"--skeletons={folder}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert named in err


def test_cli_swc_skeletons_refuse_partitioned_volumes(tmp_path, capsys):
    rc = main(["evaluate", "--partition-volumes", "gt", "pred", f"--skeletons={tmp_path}"])
    assert rc == 2 and "--partition-volumes" in capsys.readouterr().err


def test_doctests():
    import doctest

    import diluvian.skeletons

    failed, attempted = doctest.testmod(diluvian.skeletons)
    assert failed == 0 and attempted > 0
