"""Tests of what makes training yield a segmenter: moving defaults, FFN sampling, the
convstack network, mixed precision, time limits and fine-tuning."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from diluvian.config import Config, OptimizerConfig
from diluvian.training.sampling import FillFractionSampler, fill_fractions
from diluvian.util import DiluvianError

FOV = [5, 17, 17]


def _config(model=None, network=None, **training):
    t = {"training_size": 16, "validation_size": 2, "gpu_batch_size": 4, "total_epochs": 1,
         "num_workers": 1, "dtype_policy": "float32"}
    t.update(training)
    m = {"input_fov_shape": FOV, "output_fov_shape": FOV, "training_subv_shape": FOV,
         "validation_subv_shape": FOV}
    m.update(model or {})
    n = {"num_modules": 1, "convolution_filters": 4, "unet_depth": 1}
    n.update(network or {})
    config = Config([{"random_seed": 3, "model": m, "network": n, "training": t}])
    config.optimizer = OptimizerConfig({"klass": "Adam", "learning_rate": 0.003,
                                        "loss": "binary_crossentropy"})
    return config


# ---------------------------------------------------------------- 0.0.6's moving defaults


def test_default_subvolume_shapes_are_0_0_6s_two_and_four_move_steps():
    m = Config().model
    step = m.input_fov_shape // 4  # the default output FOV equals the input FOV
    assert m.training_subv_shape is None and m.validation_subv_shape is None
    assert m.training_subv_shape_value.tolist() == (m.input_fov_shape + 2 * step).tolist()
    assert m.validation_subv_shape_value.tolist() == (m.input_fov_shape + 4 * step).tolist()
    assert m.training_subv_moves == 27
    assert m.validation_subv_moves == 125


def test_default_training_is_moving_training():
    config = Config([{"model": {"input_fov_shape": [5, 9, 9], "output_fov_shape": [5, 9, 9]}}])
    shape = config.model.training_subv_shape_value
    assert np.any(shape > config.model.input_fov_shape)  # train_network's moving test
    assert shape.tolist() == [7, 13, 13]


# ---------------------------------------------------------------- FFN-style sampling


def test_fill_fractions_count_the_centre_objects_share_of_the_fov():
    labels = np.zeros((1, 5, 5), np.uint64)
    labels[0, :, :2] = 7
    labels[0, :, 2:] = 9
    f = fill_fractions(labels, (1, 3, 3))
    assert f[0, 2, 0] == pytest.approx(6 / 9)  # box clipped at the face, fraction of 9
    assert f[0, 2, 1] == pytest.approx(6 / 9)
    assert f[0, 2, 2] == pytest.approx(6 / 9)
    assert f[0, 2, 3] == pytest.approx(1.0)
    assert f[0, 0, 3] == pytest.approx(6 / 9)
    labels[0, 2, 2] = 0
    assert fill_fractions(labels, (1, 3, 3))[0, 2, 2] == 0.0  # background is never drawn


def test_fill_fraction_sampler_draws_every_bin_equally_often():
    rng = np.random.default_rng(0)
    labels = np.zeros((9, 40, 40), np.uint64)
    labels[:, :, :30] = 1  # a big object: high fractions
    labels[:, :, 30:] = 2 + rng.integers(0, 30, size=(9, 40, 10))  # speckle: low fractions
    sampler = FillFractionSampler(labels, (3, 5, 5), (5, 9, 9), [0.05, 0.5])
    assert sampler.counts[1] > 5 * sampler.counts[0] > 0
    draws = np.array([sampler.draw(rng) for _ in range(2000)])
    assert np.all(draws >= [2, 4, 4]) and np.all(draws <= [6, 35, 35])  # subvolume fits
    low = np.mean(draws[:, 2] >= 30)
    assert 0.4 < low < 0.6  # one bin in two, though few voxels lie in it


def test_fill_fraction_sampler_refuses_bad_bins_and_unlabelled_volumes():
    from diluvian.util import DiluvianError

    labels = np.ones((5, 9, 9), np.uint64)
    with pytest.raises(DiluvianError, match="sampling_bins"):
        FillFractionSampler(labels, (3, 3, 3), (3, 3, 3), [0.5, 0.2])
    with pytest.raises(DiluvianError, match="is the volume labelled"):
        FillFractionSampler(np.zeros((5, 9, 9), np.uint64), (3, 3, 3), (3, 3, 3), [0.1])


def test_training_data_with_fill_fraction_sampling_centres_labelled_voxels(tiny_volumes):
    from diluvian.training.data import TrainingData

    config = _config(sampling="fill_fraction", sampling_bins=[0.05, 0.5],
                     label_erosion=[0, 0, 0])
    data = TrainingData(tiny_volumes, config, augment=False)
    again = TrainingData(tiny_volumes, config, augment=False)
    for k in range(6):
        subv = data.subvolume(k)
        assert subv.image.shape == tuple(FOV)
        assert subv.label_mask[tuple(subv.seed)]  # the seed lies in its object
        assert np.array_equal(subv.image, again.subvolume(k).image)  # seeded


# ---------------------------------------------------------------- convstack network


def test_ffn_convstack_factory_follows_the_io_convention_and_crops():
    from diluvian.network import make_network

    config = _config(model={"output_fov_shape": [3, 9, 9], "output_fov_move_fraction": 3},
                     network={"factory": "diluvian.network.make_ffn_convstack",
                              "num_modules": 2, "convolution_filters": 4})
    model = make_network(config.model, config.network)
    assert model.output_shape == (None, 3, 9, 9, 1)
    names = {layer.name for layer in model.layers}
    assert {"conv0_a", "conv1_a", "conv2_b", "conv_lom", "logit_crop"} <= names
    image = np.random.default_rng(0).random((2, *FOV, 1), dtype=np.float32)
    mask = np.full((2, *FOV, 1), 0.05, np.float32)
    out = np.asarray(model.predict_on_batch([image, mask]))
    assert out.shape == (2, 3, 9, 9, 1) and np.all((out > 0) & (out < 1))


# ---------------------------------------------------------------- precision


def test_training_dtype_policy_auto_follows_the_hardware(monkeypatch):
    import diluvian.network.precision as precision

    assert precision.resolve_training_dtype_policy("float32") is None
    assert precision.resolve_training_dtype_policy("mixed_float16") == "mixed_float16"
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: True)
    assert precision.resolve_training_dtype_policy("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: False)
    assert precision.resolve_training_dtype_policy("auto") is None
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu"])
    assert precision.resolve_training_dtype_policy("auto") == "mixed_float16"


@pytest.mark.slow
def test_mixed_bfloat16_training_saves_a_float32_model(tiny_volumes, tmp_path):
    import keras

    from diluvian.network import load_model
    from diluvian.training import train_network

    config = _config(dtype_policy="mixed_bfloat16",
                     network={"factory": "diluvian.network.make_ffn_convstack"})
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           config=config, progress=False)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert result.model.get_layer("conv0_a").dtype_policy.name == "mixed_bfloat16"
    saved = load_model(tmp_path / "m.keras")
    assert all(layer.dtype_policy.name == "float32" for layer in saved.layers)
    x = [np.full((1, *FOV, 1), 0.5, np.float32), np.full((1, *FOV, 1), 0.05, np.float32)]
    assert np.asarray(saved.predict_on_batch(x)).dtype == np.float32


# ---------------------------------------------------------------- time limit, history


@pytest.mark.slow
def test_max_minutes_ends_training_after_the_running_epoch(tiny_volumes, tmp_path):
    from diluvian.training import train_network

    config = _config(total_epochs=50, training_size=64, max_minutes=1e-6)
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           config=config, progress=False)
    assert len(result.history) == 1  # validated once, then stopped
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == 1
    assert float(rows[0]["minutes"]) > 0
    assert 0 < int(rows[0]["samples"]) < 2 * 64  # stopped during the first epoch
    assert (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_moving_training_records_samples_and_stops_in_time(tiny_volumes, tmp_path):
    from diluvian.training import train_network

    config = _config(model={"training_subv_shape": [7, 25, 25]}, total_epochs=3,
                     training_size=8, sampling="fill_fraction")
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           config=config, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [int(r["samples"]) for r in rows] == [16, 32, 48]  # 4 steps of 4 per epoch
    assert result.best_epoch is not None


# ---------------------------------------------------------------- fine-tuning and settings


@pytest.mark.slow
def test_fine_tuning_keeps_the_models_architecture_settings_and_takes_the_users_rate(
        tiny_volumes, tmp_path):
    from diluvian.network import build_ffn_convstack, read_model_settings, save_model
    from diluvian.training import train_network

    start = build_ffn_convstack(FOV, depth=1, filters=3)
    settings = {"input_fov_shape": FOV, "output_fov_shape": FOV, "output_fov_move_fraction": 4,
                "v_true": 0.9, "v_false": 0.1, "t_move": 0.8, "move_policy": "face_max",
                "resolution": [40, 16, 16], "mask_input": "logit"}
    save_model(start, tmp_path / "start.keras", settings)
    config = _config(network={"factory": "diluvian.network.make_flood_fill_unet"})
    config.optimizer = OptimizerConfig({"klass": "SGD", "learning_rate": 1e-4,
                                        "loss": "binary_crossentropy"})
    result = train_network(model_file=tmp_path / "start.keras", volumes=tiny_volumes,
                           model_output_filebase=str(tmp_path / "tuned"), config=config,
                           progress=False)
    assert result.model.name == "ffn_convstack_3d"  # not the configured U-Net
    assert result.model.get_layer("conv0_a").get_weights()[0].shape[-1] == 3
    assert float(result.model.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    tuned = read_model_settings(tmp_path / "tuned.keras")
    assert tuned["v_true"] == 0.9 and tuned["t_move"] == 0.8
    assert tuned["move_policy"] == "face_max"
    # The network's own description comes from the starting model, not from the config.
    assert tuned["mask_input"] == "logit" and "network" not in tuned
    assert tuned["trained_from"] == "start.keras"
    # The starting model was validated first, as epoch 0.
    assert result.history[0]["epoch"] == 0 and result.history[0]["samples"] == 0
    assert [row["epoch"] for row in result.history[1:]] == list(range(1, len(result.history)))


class _ScriptedValidation:
    """A validation set whose F0.5 scores are given in advance (epoch 0 first)."""

    def __init__(self, scores):
        self.scores = list(scores)

    def __len__(self):
        return 1

    def evaluate(self, model, batch_size=32):
        score = self.scores.pop(0)
        return {"loss": 1.0 - score, "metric": score}


def test_fine_tuning_that_only_harms_keeps_the_starting_model(tmp_path):
    from diluvian.network import build_ffn_convstack, load_model, save_model
    from diluvian.training.train import _EpochEnd

    start = build_ffn_convstack(FOV, depth=1, filters=3)
    save_model(start, tmp_path / "start.keras", {"input_fov_shape": FOV,
                                                 "output_fov_shape": FOV})
    weights = start.get_weights()
    config = _config()
    end = _EpochEnd(start, _ScriptedValidation([0.8, 0.5, 0.7]), config, tmp_path / "tuned",
                    None, False, False, tmp_path / "start.keras")
    end.validate_start()
    for epoch in range(2):  # two epochs of "training" that only make it worse
        start.set_weights([w + 1.0 for w in start.get_weights()])
        end(epoch, {"loss": 0.5})
    assert end.best_epoch == 0 and end.best == 0.8
    kept = load_model(tmp_path / "tuned.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights, kept))
    rows = list(csv.DictReader(open(tmp_path / "tuned.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and rows[0]["samples"] == "0"


@pytest.mark.parametrize(("margin", "kept"), [(0.0, [1, 2]), (0.05, [0, 2]), (0.1, [0, 0])])
def test_start_margin_keeps_the_starting_model_against_small_gains(tmp_path, margin, kept):
    from diluvian.network import build_ffn_convstack, save_model
    from diluvian.training.train import _EpochEnd

    start = build_ffn_convstack(FOV, depth=1, filters=3)
    save_model(start, tmp_path / "start.keras", {"input_fov_shape": FOV,
                                                 "output_fov_shape": FOV})
    # F0.5 (higher is better): epoch 1 gains 0.04 over the start, epoch 2 0.06.
    end = _EpochEnd(start, _ScriptedValidation([0.70, 0.74, 0.76]),
                    _config(start_margin=margin), tmp_path / "tuned", None, False, False,
                    tmp_path / "start.keras")
    end.validate_start()
    best = []
    for epoch in range(2):
        end(epoch, {"loss": 0.5})
        best.append(end.best_epoch)
    assert best == kept


def test_start_margin_must_not_be_negative():
    with pytest.raises(DiluvianError, match="start_margin = -0.1 must be at least 0"):
        Config([{"training": {"start_margin": -0.1}}], sources=["user.toml"])


def test_model_settings_carry_resolution_policy_and_min_body_size():
    from diluvian.network import apply_model_settings, model_settings_from_config

    trained = Config([{"volume": {"resolution": [10, 10, 10]},
                       "model": {"move_policy": "face_max"}, "fill": {"min_body_size": 1000}}])
    settings = model_settings_from_config(trained)
    assert settings["resolution"] == [10, 10, 10]
    filling = apply_model_settings(Config(), settings)
    assert filling.volume.resolution.tolist() == [10, 10, 10]
    assert filling.model.move_policy == "face_max"
    assert filling.fill.min_body_size == 1000
    explicit = Config([{"volume": {"resolution": [20, 20, 20]}}])
    assert apply_model_settings(explicit, settings).volume.resolution.tolist() == [20, 20, 20]


def test_cli_loads_volumes_at_the_resolution_the_model_was_trained_at(tmp_path):
    import argparse

    from diluvian.__main__ import _load_config
    from diluvian.network import build_ffn_convstack, save_model

    model_file = tmp_path / "m.keras"
    save_model(build_ffn_convstack(FOV, depth=1, filters=2), model_file,
               {"input_fov_shape": FOV, "output_fov_shape": FOV, "resolution": [10, 10, 10]})
    args = argparse.Namespace(config_files=[], random_seed=None, model_file=str(model_file))
    assert _load_config(args).volume.resolution.tolist() == [10, 10, 10]
    cfg = tmp_path / "c.toml"
    cfg.write_text("[volume]\nresolution = [20, 20, 20]\n")
    args.config_files = [str(cfg)]
    assert _load_config(args).volume.resolution.tolist() == [20, 20, 20]  # explicit wins


def test_fill_volume_name_regex_that_matches_nothing_is_a_one_line_error(
        tiny_volumes, tmp_path, capsys):
    import h5py

    from diluvian.__main__ import main
    from diluvian.network import build_ffn_convstack, save_model

    with h5py.File(tmp_path / "tiny.h5", "w") as f:
        f["raw"] = tiny_volumes["vol_a"].image_data
    (tmp_path / "data.toml").write_text('[[dataset]]\nname = "tiny"\nhdf5_file = "tiny.h5"\n'
                                        'image_dataset = "raw"\nresolution = [40, 16, 16]\n')
    model_file = tmp_path / "m.keras"
    save_model(build_ffn_convstack(FOV, depth=1, filters=2), model_file,
               {"input_fov_shape": FOV, "output_fov_shape": FOV})
    status = main(["fill", "-m", str(model_file), "-v", str(tmp_path / "data.toml"),
                   "--volume-name-regex", "no_such_volume", str(tmp_path / "seg_{volume}")])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no volumes" in err[0]
    assert not list(tmp_path.glob("seg_*"))


def test_packaged_fine_tuning_recipe_keeps_to_ffns_own_augmentations():
    """``conf/fib25_finetune.toml`` trains a network made elsewhere: a small rate, and
    only mirrors and permutations (noise, contrast and missing sections are inputs
    Google's network never saw; on FIB-25 they raise its loss from 0.34 to 0.79)."""
    import tomllib
    from pathlib import Path

    import diluvian

    path = Path(diluvian.__file__).parent / "conf" / "fib25_finetune.toml"
    recipe = tomllib.loads(path.read_text())
    config = Config([recipe])
    assert "model" not in recipe and "network" not in recipe  # those come from -m MODEL
    assert config.optimizer.learning_rate <= 1e-4
    t = config.training
    assert not t.augment_noise and not t.augment_contrast and not t.augment_missing_data
    assert list(t.augment_mirrors) and list(t.augment_permute_axes)
    assert t.max_minutes == 30
    # Chosen by a densely filled box big enough to rank models as the test half does.
    assert list(t.validation_fill_shape) == [96, 96, 96]


# ---------------------------------------------------- dense validation (val_voi)
def _boxes_volume():
    from diluvian.volumes import NdarrayVolume

    labels = np.zeros((12, 32, 32), np.uint64)
    labels[1:11, 1:16, 1:31] = 1  # three touching boxes of different brightness
    labels[1:11, 16:31, 1:16] = 2
    labels[1:11, 16:31, 16:31] = 3
    image = np.where(labels > 0, 40 * labels + 60, 0).astype(np.uint8)
    return NdarrayVolume([40, 16, 16], image_data=image, label_data=labels)


def _exact(images, masks):
    c = tuple(s // 2 for s in images.shape[1:])
    centre = images[(slice(None), *c)][:, None, None, None]
    return np.where((np.abs(images - centre) < 1e-3) & (centre > 0), 0.99, 0.01).astype(
        np.float32)


def _greedy(images, masks):
    """Takes every bright voxel: merges all objects."""
    return np.where(images > 0, 0.99, 0.01).astype(np.float32)


def test_dense_validation_scores_the_dense_fill_of_a_centred_box():
    from diluvian.training.validation import DenseValidation

    config = Config([{"random_seed": 3, "fill": {"min_body_size": 0},
                      "model": {"input_fov_shape": [5, 9, 9], "output_fov_shape": [5, 9, 9]},
                      "training": {"validation_fill_shape": [12, 32, 64]}}])
    dense = DenseValidation({"boxes": _boxes_volume()}, config)
    volume, truth = dense.boxes["boxes"]
    assert volume.shape == truth.shape == (12, 32, 32)  # clipped to the volume
    exact = dense.evaluate(_exact)
    assert exact["val_voi"] == pytest.approx(0.0, abs=1e-9)
    merged = dense.evaluate(_greedy)
    assert merged["val_voi_merge"] > 0.5 and merged["val_voi_split"] == pytest.approx(0.0,
                                                                                      abs=1e-9)
    assert merged["val_voi"] == pytest.approx(merged["val_voi_split"] + merged["val_voi_merge"])


class _ScriptedDense(_ScriptedValidation):
    """F0.5 scores and dense VOIs given in advance: they disagree on the best epoch."""

    def __init__(self, scores, vois):
        super().__init__(scores)
        self.vois = list(vois)
        self.dense = object()

    def evaluate(self, model, batch_size=32):
        result = super().evaluate(model, batch_size)
        voi = self.vois.pop(0)
        result["dense"] = {"val_voi": voi, "val_voi_split": voi / 2, "val_voi_merge": voi / 2}
        return result


def test_a_dense_validation_chooses_the_model_by_val_voi(tmp_path):
    from diluvian.network import build_ffn_convstack, save_model
    from diluvian.training.train import _EpochEnd

    start = build_ffn_convstack(FOV, depth=1, filters=3)
    save_model(start, tmp_path / "start.keras", {"input_fov_shape": FOV,
                                                 "output_fov_shape": FOV})
    # F0.5 improves every epoch; the dense VOI is best after epoch 1.
    end = _EpochEnd(start, _ScriptedDense([0.5, 0.6, 0.7], [2.0, 1.2, 1.5]), _config(),
                    tmp_path / "tuned", None, False, False, tmp_path / "start.keras")
    end.validate_start()
    for epoch in range(2):
        end(epoch, {"loss": 0.5})
    assert end.select_key == "val_voi" and end.best_epoch == 1 and end.best == 1.2
    rows = list(csv.DictReader(open(tmp_path / "tuned.csv")))
    assert [float(r["val_voi"]) for r in rows] == [2.0, 1.2, 1.5]
    assert [float(r["val_binary_f_score"]) for r in rows] == [0.5, 0.6, 0.7]


@pytest.mark.slow
def test_training_with_validation_fill_shape_records_val_voi(tmp_path):
    from diluvian.training import train_network

    config = _config(validation_fill_shape=[12, 32, 32])
    config.fill.min_body_size = 0
    result = train_network(volumes={"boxes": _boxes_volume()},
                           model_output_filebase=str(tmp_path / "m"), config=config,
                           progress=False)
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert {"val_voi", "val_voi_split", "val_voi_merge", "val_binary_f_score"} <= set(rows[0])
    assert result.best_metric == pytest.approx(float(rows[0]["val_voi"]))
    assert (tmp_path / "m.keras").exists()


def test_validation_fill_shape_must_be_positive():
    with pytest.raises(DiluvianError, match="validation_fill_shape"):
        Config([{"training": {"validation_fill_shape": [0, 32, 32]}}])
