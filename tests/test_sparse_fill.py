"""``diluvian gen-subv-bounds`` and ``diluvian sparse-fill`` on the synthetic dataset.

The model is a hand-made 1x1x1 convolution, ``sigmoid(20 * image - 9)``,
which marks the light cytoplasm of the synthetic EM and not its dark
membranes, so fills really move, stop at membranes and give bodies to
skeletonise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from diluvian.__main__ import main
from diluvian.config import Config
from diluvian.volumes import SYNTHETIC_VOLUMES, load_volumes
from diluvian.volumes.subvolume import SubvolumeBounds

CONFIG_TOML = """\
random_seed = 7

[model]
input_fov_shape = [5, 9, 9]
output_fov_shape = [5, 9, 9]
output_fov_move_fraction = 2
t_move = 0.8

[network]
factory = "diluvian.network.make_flood_fill_network"
num_modules = 1
num_layers_per_module = 1
convolution_filters = 2
dropout_probability = 0.0
"""
MOVE_STEP = np.array([2, 4, 4])
FOV = np.array([5, 9, 9])


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(CONFIG_TOML)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, config_file) -> Path:
    import keras

    from diluvian.network import save_model
    from diluvian.network.io import model_settings_from_config

    config = Config.from_toml(config_file)
    image = keras.Input((*FOV, 1), name="image_input")
    mask = keras.Input((*FOV, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    conv = keras.layers.Conv3D(1, 1, activation="sigmoid", name="mask_output")
    out = conv(x)
    conv.set_weights([np.array([20.0, 0.0], np.float32).reshape(1, 1, 1, 2, 1),
                      np.array([-9.0], np.float32)])
    model = keras.Model([image, mask], out)
    path = tmp_path_factory.mktemp("model") / "membrane.keras"
    save_model(model, path, model_settings_from_config(config))
    return path


@pytest.fixture(scope="module")
def synthetic_volumes():
    return load_volumes([], in_memory=True)


def _gen_bounds(tmp_path, config_file, n="3", moves=("1", "1", "1")) -> int:
    return main(["gen-subv-bounds", "-c", str(config_file), str(tmp_path / "b_{volume}.csv"), n,
                 "--bounds-num-moves", *moves])


def test_gen_subv_bounds_writes_a_csv_per_volume_that_round_trips(
        tmp_path, config_file, synthetic_volumes):
    assert _gen_bounds(tmp_path, config_file, moves=("1", "2", "1")) == 0
    expected_shape = FOV + 2 * np.array([1, 2, 1]) * MOVE_STEP
    for name in SYNTHETIC_VOLUMES:
        path = tmp_path / f"b_{name}.csv"
        bounds = SubvolumeBounds.iterable_from_csv(path)
        assert len(bounds) == 3
        shape = np.array(synthetic_volumes[name].shape)
        for b in bounds:
            assert b.shape.tolist() == expected_shape.tolist()
            assert np.all(b.start >= 0) and np.all(b.stop <= shape)
        again = tmp_path / f"again_{name}.csv"
        SubvolumeBounds.iterable_to_csv(bounds, again)
        assert SubvolumeBounds.iterable_from_csv(again) == bounds


def test_gen_subv_bounds_is_reproducible_per_seed(tmp_path, config_file):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _gen_bounds(tmp_path / "a", config_file) == 0
    assert _gen_bounds(tmp_path / "b", config_file) == 0
    name = SYNTHETIC_VOLUMES[0]
    assert ((tmp_path / "a" / f"b_{name}.csv").read_text()
            == (tmp_path / "b" / f"b_{name}.csv").read_text())


def test_gen_subv_bounds_without_volume_placeholder_raises(tmp_path, config_file, capsys):
    from diluvian.sparse_fill import generate_subvolume_bounds
    from diluvian.util import DiluvianError

    with pytest.raises(DiluvianError, match="volume"):
        generate_subvolume_bounds(str(tmp_path / "b.csv"), {"a": None, "b": None}, 2,
                                  config=Config.from_toml(config_file))
    assert main(["gen-subv-bounds", "-c", str(config_file), str(tmp_path / "b.csv"), "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "{volume}" in err


@pytest.mark.slow
def test_sparse_fill_cli_fills_csv_bounds_and_writes_gif_and_swc(
        tmp_path, config_file, model_file, capsys):
    assert _gen_bounds(tmp_path, config_file, n="2", moves=("1", "1", "1")) == 0
    rc = main(["sparse-fill", "-c", str(config_file), "-m", str(model_file),
               "-bi", str(tmp_path / "b_{volume}.csv"), "--num-regions", "1",
               "--animation-output-file", str(tmp_path / "fill_{volume}_{region}.gif"),
               "--swc-output-file", str(tmp_path / "body_{volume}_{region}.swc")])
    out = capsys.readouterr().out
    assert rc == 0
    name = SYNTHETIC_VOLUMES[0]
    gif = tmp_path / f"fill_{name}_0.gif"
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    swc_lines = (tmp_path / f"body_{name}_0.swc").read_text().splitlines()
    nodes = [line.split() for line in swc_lines if line and not line.startswith("#")]
    assert nodes and all(len(n) == 7 for n in nodes)
    assert "F0.5" in out and "IoU" in out and name in out
    assert not list(tmp_path.glob(f"fill_{SYNTHETIC_VOLUMES[1]}_*"))  # capped at one region


def test_sparse_fill_results_are_reproducible_and_consistent(
        tmp_path, config_file, model_file, synthetic_volumes):
    from diluvian.sparse_fill import fill_region_with_model

    def run():
        return fill_region_with_model(
            model_file, volumes=synthetic_volumes, num_regions=3, moves=[1, 2, 2],
            config=Config.from_toml(config_file), progress=False, print_table=False)

    first, second = run(), run()
    assert first == second
    assert [r["volume"] for r in first] == list(SYNTHETIC_VOLUMES)
    assert any(r["moves"] > 1 for r in first)
    for r in first:
        expected = FOV + 2 * np.array([1, 2, 2]) * MOVE_STEP
        assert (np.array(r["stop"]) - r["start"]).tolist() == expected.tolist()
        p, q, iou = r["precision"], r["recall"], r["iou"]
        if p > 0 and q > 0:
            # IoU = 1 / (1/P + 1/R - 1) for the same true positives.
            assert math.isclose(iou, 1.0 / (1.0 / p + 1.0 / q - 1.0), rel_tol=1e-9)
        assert math.isclose(r["f_0.5"], 1.25 * p * q / (0.25 * p + q), rel_tol=1e-9)


def test_sparse_fill_max_moves_caps_each_region(config_file, model_file, synthetic_volumes):
    from diluvian.sparse_fill import fill_region_with_model

    results = fill_region_with_model(
        model_file, volumes=synthetic_volumes, num_regions=2, moves=[2, 3, 3], max_moves=2,
        move_batch_size=2, config=Config.from_toml(config_file), progress=False,
        print_table=False)
    assert all(r["moves"] <= 2 for r in results)


def test_sparse_fill_missing_model_file_is_one_line_error(tmp_path, config_file, capsys):
    rc = main(["sparse-fill", "-c", str(config_file), "-m", str(tmp_path / "nope.keras")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "nope.keras" in err


def _cubes() -> np.ndarray:
    labels = np.zeros((40, 40, 40), np.uint32)
    labels[4:20, 4:20, 4:20] = 1
    labels[20:36, 20:36, 20:36] = 2
    labels[30:32, 2:4, 2:4] = 3
    return labels


def test_object_seeds_are_distance_maxima_of_large_objects():
    from diluvian.sparse_fill import object_seeds
    from diluvian.util import make_rng

    labels = _cubes()
    seeds = object_seeds(labels, 5, make_rng(0, "t"), min_size_vox=1000, margin_vox=2)
    assert sorted(s["label_id"] for s in seeds) == [1, 2]  # the small object is never seeded
    for s in seeds:
        lo = 4 if s["label_id"] == 1 else 20
        assert all(lo + 6 <= v <= lo + 9 for v in s["seed_vox"])
        assert labels[tuple(s["seed_vox"])] == s["label_id"]
        assert s["size_vox"] == 16 ** 3 and s["distance_vox"] >= 7


def test_fill_seeded_objects_scores_each_fill_within_its_box():
    from diluvian.sparse_fill import fill_seeded_objects

    config = Config([{"model": {"input_fov_shape": [5, 5, 5], "output_fov_shape": [5, 5, 5],
                                "output_fov_move_fraction": 2, "t_move": 0.8}}])
    labels = _cubes()
    image = np.where(labels == 1, 0.9, 0.1).astype(np.float32)
    seeds = [{"label_id": 1, "seed_vox": [12, 12, 12]}, {"label_id": 2, "seed_vox": [28] * 3}]
    results = fill_seeded_objects(image, labels, seeds, lambda images, masks: images,
                                  config.model, box_shape=(24, 24, 24), batch_size=4)
    first, second = results
    assert first["iou"] == 1.0 and first["moves"] > 1
    assert first["box_start"] == [0, 0, 0] and first["box_stop"] == [24, 24, 24]
    assert second["box_start"] == [16, 16, 16]  # shifted inside the volume
    assert second["iou"] == 0.0 and second["recall"] == 0.0  # image marks only object 1
