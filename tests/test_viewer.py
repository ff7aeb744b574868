"""Neuroglancer viewer state and PNG montages (no browser: see test_view_browser.py)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from diluvian.util import DiluvianError


def stand_in(shape=(8, 16, 16), resolution=(40, 4, 4), mask=True):
    rng = np.random.default_rng(0)
    labels = np.zeros(shape, np.uint64)
    labels[:, : shape[1] // 2] = 7
    labels[:, shape[1] // 2 :, shape[2] // 2 :] = 9
    return types.SimpleNamespace(
        resolution=np.asarray(resolution),
        image_data=rng.integers(0, 255, size=shape, dtype=np.uint8),
        label_data=labels,
        mask_data=np.ones(shape, bool) if mask else None)


def test_util_wrapped_viewer_resolves_lazily_to_viewer_class():
    import diluvian.util
    from diluvian.viewer import WrappedViewer

    assert diluvian.util.WrappedViewer is WrappedViewer
    with pytest.raises(AttributeError):
        diluvian.util.NoSuchThing  # noqa: B018


def test_view_volumes_adds_image_label_and_mask_layers_with_voxel_size(capsys):
    from diluvian.viewer import view_volumes

    viewer = view_volumes({"vol": stand_in()}, block=False)
    state = viewer.get_json_state()
    layers = {layer["name"]: layer["type"] for layer in state["layers"]}
    assert layers == {"vol": "image", "vol-labels": "segmentation", "vol-mask": "image"}
    assert state["dimensions"] == {"z": [4e-8, "m"], "y": [4e-9, "m"], "x": [4e-9, "m"]}
    url = viewer.get_viewer_url()
    assert url.startswith("http://127.0.0.1:")
    assert url in capsys.readouterr().out


def test_add_rejects_unknown_kind_and_non_3d_data():
    from diluvian.viewer import WrappedViewer

    viewer = WrappedViewer(voxel_size=(10, 10, 10))
    with pytest.raises(DiluvianError, match="kind 'volume'"):
        viewer.add(np.zeros((2, 2, 2)), "x", kind="volume")
    with pytest.raises(DiluvianError, match="expected ZYX"):
        viewer.add(np.zeros((2, 2)), "x")


def test_partition_centres_view_on_validation_partition(monkeypatch):
    import diluvian.volumes
    from diluvian.viewer import view_volumes

    def fake_partition_volumes(volumes, downsample=True, config=None):
        validation = {}
        for name, v in volumes.items():
            part = stand_in(shape=(4, 16, 16), resolution=v.resolution)
            part.local_coord_to_world = lambda a: np.asarray(a) + np.array([4, 0, 0])
            validation[name] = part
        return {}, validation

    monkeypatch.setattr(diluvian.volumes, "partition_volumes", fake_partition_volumes,
                        raising=False)
    viewer = view_volumes({"vol": stand_in()}, partition=True, block=False)
    state = viewer.get_json_state()
    assert state["position"] == [6.0, 8.0, 8.0]
    assert "validation" in [layer["name"] for layer in state["layers"]]


def test_print_view_prompt_opens_browser_on_v(monkeypatch, capsys):
    from diluvian.viewer import WrappedViewer

    viewer = WrappedViewer()
    opened = []
    monkeypatch.setattr(viewer, "open_in_browser", lambda: opened.append(True))
    answers = iter(["v", ""])
    viewer.print_view_prompt(input_fn=lambda prompt: next(answers))
    assert opened == [True]
    assert viewer.get_viewer_url() in capsys.readouterr().out


def test_png_montage_is_written_and_has_label_colours(tmp_path):
    import matplotlib.image

    from diluvian.viewer import view_volumes

    out = tmp_path / "montage.png"
    assert view_volumes({"vol": stand_in()}, png_file=str(out)) is None
    rgb = matplotlib.image.imread(str(out))[..., :3]
    assert rgb.shape[1] > rgb.shape[0] > 100
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert np.mean(saturation > 0.2) > 0.05  # coloured label overlays, not just grey
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no leftovers


def test_label_colours_are_seeded_and_stable():
    from diluvian.viewer import label_colors

    a = label_colors(np.array([3, 5, 0]))
    b = label_colors(np.array([5, 3]))
    np.testing.assert_array_equal(a[:2], b[::-1])
    assert a[2].tolist() == [0.0, 0.0, 0.0]
    assert not np.array_equal(a[0], label_colors(np.array([3]), seed=1)[0])


def test_view_without_volumes_is_a_user_error():
    from diluvian.viewer import view_volumes

    with pytest.raises(DiluvianError, match="no volumes"):
        view_volumes({}, block=False)
