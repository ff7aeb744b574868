"""Tests of the training pipeline, moving training, ``train_network`` and ``validate``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from diluvian.config import Config, OptimizerConfig
from diluvian.training.data import (
    TrainingData,
    erode_label_mask,
    fill_factor_bin_weights,
    fill_factor_weights,
    mask_seed_input,
    seed_component,
    soften,
)
from diluvian.volumes import NdarrayVolume, partition_volumes

FOV = [5, 17, 17]


def _tiny_settings(**training):
    t = {"training_size": 16, "validation_size": 4, "gpu_batch_size": 4, "total_epochs": 1,
         "num_workers": 2, "dtype_policy": "float32"}
    t.update(training)
    return {
        "random_seed": 3,
        # Single-FOV training and validation unless a test asks for moves.
        "model": {"input_fov_shape": FOV, "output_fov_shape": FOV,
                  "training_subv_shape": FOV, "validation_subv_shape": FOV},
        "network": {"num_modules": 1, "convolution_filters": 4, "unet_depth": 1},
        "training": t,
    }


def _tiny_config(model=None, **training):
    settings = _tiny_settings(**training)
    settings["model"].update(model or {})
    return Config([settings])


def _voronoi_volume(seed, shape=(24, 64, 64), n_cells=60, anisotropy=(2.5, 1.0, 1.0)):
    """Cells with dark membranes between them: an easy segmentation task."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    shape = np.asarray(shape)
    centres = rng.uniform(0, shape, size=(n_cells, 3)) * anisotropy
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    _, nearest = cKDTree(centres).query(grid.reshape(-1, 3) * anisotropy)
    labels = (nearest + 1).reshape(tuple(shape)).astype(np.uint64)
    membrane = np.zeros(labels.shape, dtype=bool)
    membrane[:, 1:, :] |= np.diff(labels, axis=1) != 0
    membrane[:, :, 1:] |= np.diff(labels, axis=2) != 0
    image = 0.75 - 0.55 * membrane + rng.normal(0, 0.05, labels.shape)
    labels[membrane] = 0
    return np.clip(image * 256, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def voronoi_volumes():
    return {name: NdarrayVolume((40, 16, 16), *_voronoi_volume(200 + i))
            for i, name in enumerate(["cells_a", "cells_b"])}


# ---------------------------------------------------------------- label processing


def test_erode_label_mask_uses_box_of_twice_erosion_plus_one():
    mask = np.zeros((3, 9, 9), dtype=bool)
    mask[:, 2:7, 2:7] = True
    out = erode_label_mask(mask, [0, 1, 1])
    expected = np.zeros_like(mask)
    expected[:, 3:6, 3:6] = True
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(erode_label_mask(mask, [0, 0, 0]), mask)


def test_erode_label_mask_keeps_objects_leaving_the_border():
    mask = np.ones((3, 5, 5), dtype=bool)
    assert erode_label_mask(mask, [1, 1, 1]).all()


def test_seed_component_keeps_only_the_seeded_component():
    mask = np.zeros((1, 5, 7), dtype=bool)
    mask[0, :, 0:2] = True
    mask[0, :, 4:7] = True
    out = seed_component(mask, (0, 2, 5))
    assert out[0, :, 4:7].all() and not out[0, :, 0:2].any()
    assert not seed_component(mask, (0, 2, 3)).any()


def test_soften_and_seed_mask_input_use_soft_values():
    target = soften(np.array([True, False]), 0.95, 0.05)
    np.testing.assert_allclose(target, [0.95, 0.05])
    mask = mask_seed_input((3, 5, 5), (1, 2, 2), 0.95, 0.05)
    assert mask[1, 2, 2] == np.float32(0.95)
    assert np.count_nonzero(mask == np.float32(0.05)) == mask.size - 1


# ---------------------------------------------------------------- fill factors


def test_fill_factor_weights_are_inverse_bin_frequencies():
    f_a = [0.1, 0.1, 0.1, 0.9]
    weights = fill_factor_weights(f_a, [0.5])
    assert weights[3] == pytest.approx(3 * weights[0])
    assert np.mean(weights) == pytest.approx(1.0)


def test_fill_factor_empty_bins_get_the_largest_weight():
    bw = fill_factor_bin_weights([0.1, 0.2, 0.9], [0.3, 0.6])
    assert bw[1] == bw.max()


def test_fill_factor_bins_give_batches_sample_weights(tiny_volumes):
    config = _tiny_config(fill_factor_bins=[0.2, 0.5])
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config)
    batch = data.batch(0)
    assert len(batch) == 3
    weights = batch[2]
    assert weights.shape == (4, 1, 1, 1)
    assert np.all(weights > 0)


# ---------------------------------------------------------------- samples and batches


def test_samples_are_seeded_on_their_target_object(tiny_volumes):
    config = _tiny_config(label_erosion=[0, 0, 0])
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config, augment=False)
    (images, masks), targets = data.batch(0)
    assert images.shape == masks.shape == targets.shape == (4, *FOV, 1)
    center = tuple(s // 2 for s in FOV)
    assert np.all(masks[(slice(None), *center, 0)] == np.float32(0.95))
    assert np.all(targets[(slice(None), *center, 0)] == np.float32(0.95))
    assert set(np.unique(targets).tolist()) <= {np.float32(0.95), np.float32(0.05)}
    assert images.min() >= 0.0 and images.max() < 1.0


def test_samples_alternate_round_robin_across_volumes(tiny_volumes):
    config = _tiny_config(augment_use_both=False)
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config)
    assert [data.volume_name(k) for k in range(4)] == ["vol_a", "vol_b", "vol_a", "vol_b"]


def test_augment_use_both_pairs_plain_and_augmented_samples(tiny_volumes):
    config = _tiny_config(augment_use_both=True)
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config)
    plain = data.raw_subvolume(0)
    np.testing.assert_array_equal(data.subvolume(0).image, plain.image)
    assert data.volume_name(0) == data.volume_name(1)


def test_same_seed_gives_identical_first_batches(tiny_volumes):
    from diluvian.training.data import make_py_dataset

    config = _tiny_config()
    training, _ = partition_volumes(tiny_volumes, config=config)
    a = make_py_dataset(TrainingData(training, config), workers=2)
    b = make_py_dataset(TrainingData(training, config), workers=2)
    for index in (1, 0):  # order of building does not matter
        (ia, ma), ta = a[index]
        (ib, mb), tb = b[index]
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ta, tb)
    config.random_seed = 4
    c = TrainingData(training, config).batch(0)
    assert not np.array_equal(c[0][0], a[0][0][0])


def test_new_epochs_draw_new_samples_unless_generators_reset(tiny_volumes):
    from diluvian.training.data import make_py_dataset

    config = _tiny_config()
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config)
    ds = make_py_dataset(data, workers=1)
    first = ds[0][0][0]
    ds.on_epoch_end()
    assert not np.array_equal(ds[0][0][0], first)
    ds = make_py_dataset(data, workers=1, reset_generators=True)
    ds.on_epoch_end()
    np.testing.assert_array_equal(ds[0][0][0], first)


@pytest.mark.parametrize("reset", [False, True])
def test_tf_dataset_yields_each_epochs_batches_in_order(tiny_volumes, reset):
    from diluvian.training.data import make_tf_dataset

    config = _tiny_config(training_size=4, fill_factor_bins=[0.5])
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config)
    dataset = make_tf_dataset(data, workers=3, reset_generators=reset, queue_size=1)
    assert int(dataset.cardinality()) == data.steps_per_epoch == 2
    for epoch in (0, 1):  # each iteration is the next epoch, unless reset
        batches = list(dataset.as_numpy_iterator())
        assert len(batches) == 2
        for index, got in enumerate(batches):
            expected = data.batch(index, 0 if reset else epoch)
            np.testing.assert_array_equal(got[0][0], expected[0][0])
            np.testing.assert_array_equal(got[0][1], expected[0][1])
            np.testing.assert_array_equal(got[1], expected[1])
            np.testing.assert_array_equal(got[2], expected[2])


# ---------------------------------------------------------------- moving training


class _ConstantModel:
    """Stands in for a Keras model: training does nothing, predicts a constant."""

    def __init__(self, value, output_fov):
        self.value = value
        self.output_fov = output_fov
        self.trained = []

    def train_on_batch(self, x, y, return_dict=False):
        self.trained.append((x[0].copy(), x[1].copy(), y.copy()))
        return {"loss": 0.0}

    def predict_on_batch(self, x):
        return np.full((len(x[0]), *self.output_fov, 1), self.value, dtype=np.float32)


def _moving_trainer(tiny_volumes, value):
    from diluvian.training.moving import MovingTrainer

    config = _tiny_config(model={"training_subv_shape": [9, 33, 33]}, augment_use_both=False)
    training, _ = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config, subv_shape=config.model.training_subv_shape_value)
    model = _ConstantModel(value, FOV)
    trainer = MovingTrainer(model, data, config)
    trainer.new_epoch(0)
    return trainer, model, config


def test_moving_training_moves_the_fov_along_the_regions_moves(tiny_volumes):
    trainer, model, config = _moving_trainer(tiny_volumes, 0.99)
    try:
        for _ in range(4):
            trainer.step()
    finally:
        trainer.close()
    step = config.model.move_step
    for slot, positions in enumerate(trainer.positions):
        assert len(set(positions)) == len(positions) == 4
        region = trainer.slots[slot]
        assert positions[0] == tuple(int(s) for s in region.seed_vox)
        for later in positions[1:]:
            delta = (np.asarray(later) - region.seed_vox) / step
            assert np.allclose(delta, np.round(delta))  # on the move lattice
    # The mask input of the later steps carries the network's own predictions.
    assert np.any(np.isclose(model.trained[-1][1], 0.99))


def test_moving_training_replaces_exhausted_regions(tiny_volumes):
    trainer, model, _ = _moving_trainer(tiny_volumes, 0.01)
    try:
        trainer.step()
        first = list(trainer.slots)
        trainer.step()
    finally:
        trainer.close()
    assert all(a is not b for a, b in zip(first, trainer.slots))
    assert trainer.next_draw == 2 * trainer.batch_size


def test_moving_training_targets_are_the_label_under_the_fov(tiny_volumes):
    trainer, model, _ = _moving_trainer(tiny_volumes, 0.99)
    try:
        requests, (images, masks), targets = trainer.next_batch()
    finally:
        trainer.close()
    for r, target in zip(requests, targets):
        half = np.asarray(FOV) // 2
        lo = np.asarray(r.center_vox) - half
        sl = tuple(slice(int(a), int(a) + s) for a, s in zip(lo, FOV))
        expected = soften(np.asarray(r.region.target)[sl], 0.95, 0.05)
        np.testing.assert_array_equal(target[..., 0], expected)


# ---------------------------------------------------------------- train_network


@pytest.mark.slow
def test_train_network_writes_model_config_history_plot_and_checkpoints(tiny_volumes, tmp_path):
    from diluvian.network import read_model_settings
    from diluvian.training import train_network

    config = _tiny_config(total_epochs=2)
    base = tmp_path / "out" / "m"
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(base),
                           model_checkpoint_file=str(tmp_path / "model.{epoch:02d}.keras"),
                           metric_plot=True, config=config, progress=False)
    for suffix in (".keras", ".toml", ".csv", ".png"):
        assert (tmp_path / "out" / f"m{suffix}").exists()
    assert (tmp_path / "model.01.keras").exists() and (tmp_path / "model.02.keras").exists()
    with open(tmp_path / "out" / "m.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "val_loss", "val_binary_f_score"} <= set(rows[0])
    assert Config.from_toml(tmp_path / "out" / "m.toml").training.training_size == 16
    assert read_model_settings(tmp_path / "out" / "m.keras")["input_fov_shape"] == FOV
    assert len(result.history) == 2


@pytest.mark.slow
def test_moving_training_runs_through_train_network(tiny_volumes, tmp_path):
    from diluvian.training import train_network

    config = _tiny_config(model={"training_subv_shape": [9, 25, 25]})
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           config=config, progress=False)
    assert len(result.history) == 1
    assert (tmp_path / "m.keras").exists()


def _event_tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["scalars"])


@pytest.mark.parametrize("model", [{}, {"training_subv_shape": [9, 25, 25]}],
                         ids=["single-move", "moving"])
def test_tensorboard_event_files_are_written_beside_the_model(tiny_volumes, tmp_path, model):
    pytest.importorskip("tensorboard")
    from diluvian.training import train_network

    config = _tiny_config(model=model, training_size=4, validation_size=2, total_epochs=1)
    train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                  tensorboard=True, config=config, progress=False)
    logs = tmp_path / "m-logs"
    for run in ("train", "validation"):
        assert list((logs / run).glob("events.out.tfevents.*")), run
    assert "epoch_loss" in _event_tags(logs / "train")
    assert {"epoch_loss", "epoch_binary_f_score"} <= _event_tags(logs / "validation")


@pytest.mark.parametrize("package, flag", [("tensorboard", "--tensorboard"),
                                           ("neuroglancer", "--viewer")])
def test_missing_optional_package_is_a_one_line_error_before_training(
        tiny_volumes, tmp_path, monkeypatch, package, flag):
    import sys

    from diluvian.training import train_network
    from diluvian.util import DiluvianError

    monkeypatch.setitem(sys.modules, package, None)  # importing it raises ImportError
    with pytest.raises(DiluvianError, match=f"pip install {package}") as err:
        train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                      config=_tiny_config(), progress=False, **{flag.lstrip("-"): True})
    assert "\n" not in str(err.value) and flag in str(err.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_interrupt_saves_the_last_completed_epoch(tiny_volumes, tmp_path, monkeypatch):
    from diluvian.training import train_network
    from diluvian.training.validation import ValidationSet

    calls = []
    evaluate = ValidationSet.evaluate

    def interrupting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(ValidationSet, "evaluate", interrupting)
    config = _tiny_config(total_epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                      config=config, progress=False)
    assert (tmp_path / "m-interrupted.keras").exists()


@pytest.mark.slow
def test_early_abort_stops_and_restarts_under_a_new_seed(tiny_volumes, tmp_path, monkeypatch):
    from diluvian.training import train, train_network

    monkeypatch.setattr(train, "MAX_EARLY_RESTARTS", 1)
    config = _tiny_config(total_epochs=3, early_abort_epoch=1, early_abort_loss=0.0,
                          training_size=4, validation_size=2)
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           config=config, progress=False)
    assert result.aborted and len(result.history) == 1
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           early_restart=True, config=config, progress=False)
    assert result.random_seed == config.random_seed + 1


@pytest.mark.slow
def test_small_network_beats_all_foreground_and_all_background(voronoi_volumes, tmp_path):
    from diluvian.training import train_network
    from diluvian.training.validation import ValidationSet
    from diluvian.util import binary_f_score

    settings = _tiny_settings(training_size=200, validation_size=8, gpu_batch_size=8,
                              total_epochs=10, label_erosion=[0, 0, 0])
    settings["model"]["t_move"] = 0.5
    settings["network"].update(convolution_filters=8, dropout_probability=0.0)
    config = Config([settings])
    config.optimizer = OptimizerConfig({"klass": "Adam", "learning_rate": 0.003,
                                        "loss": "binary_crossentropy"})
    result = train_network(volumes=voronoi_volumes, model_output_filebase=str(tmp_path / "m"),
                           config=config, progress=False)
    _, validation = partition_volumes(voronoi_volumes, config=config)
    labels = [s.label_mask for s in ValidationSet(validation, config).subvolumes]
    all_fg = np.mean([binary_f_score(m, np.ones_like(m), beta=0.5) for m in labels])
    all_bg = np.mean([binary_f_score(m, np.zeros_like(m), beta=0.5) for m in labels])
    assert result.best_metric > all_fg
    assert result.best_metric > all_bg


@pytest.mark.slow
def test_validate_model_reports_each_volume_and_overall(tiny_volumes, tmp_path, capsys):
    from diluvian.training import train_network, validate_model

    config = _tiny_config()
    train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                  config=config, progress=False)
    result = validate_model(tmp_path / "m.keras", tiny_volumes, config=config, progress=False)
    again = validate_model(tmp_path / "m.keras", tiny_volumes, config=config, progress=False)
    assert again["metric"] == result["metric"]  # fixed seeded validation subvolumes
    assert set(result["volumes"]) == {"vol_a", "vol_b"}
    assert result["volumes"]["vol_a"]["count"] == 4
    assert 0.0 <= result["metric"] <= 1.0 and result["loss"] > 0
    out = capsys.readouterr().out
    assert "overall" in out and "vol_b" in out


@pytest.mark.slow
def test_training_continues_from_a_saved_model(tiny_volumes, tmp_path):
    from diluvian.network import load_model
    from diluvian.training import train_network

    config = _tiny_config()
    first = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "a"),
                          config=config, progress=False)
    saved = load_model(tmp_path / "a.keras").get_weights()
    second = train_network(model_file=tmp_path / "a.keras", volumes=tiny_volumes,
                           model_output_filebase=str(tmp_path / "b"), config=config,
                           progress=False)
    assert first.model is not second.model
    assert (tmp_path / "b.keras").exists()
    # Training started from the saved weights: they changed, but only a little.
    after = second.model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(saved, after))


def _write_cli_inputs(tmp_path, tiny_volumes, settings):
    """A one-volume HDF5 dataset ``data.toml`` and ``config.toml`` holding ``settings``."""
    import tomli_w

    h5py = pytest.importorskip("h5py")
    image = tiny_volumes["vol_a"].image_data
    labels = tiny_volumes["vol_a"].label_data
    with h5py.File(tmp_path / "tiny.h5", "w") as f:
        f["raw"] = image
        f["labels"] = labels
        f["raw"].attrs["resolution"] = [40, 16, 16]
        f["labels"].attrs["resolution"] = [40, 16, 16]
    (tmp_path / "data.toml").write_text(tomli_w.dumps({"dataset": [{
        "name": "tiny", "hdf5_file": "tiny.h5", "image_dataset": "raw",
        "label_dataset": "labels", "resolution": [40, 16, 16]}]}))
    (tmp_path / "config.toml").write_text(tomli_w.dumps(settings))


@pytest.mark.slow
def test_train_cli_with_tiny_config_exits_zero(tiny_volumes, tmp_path, monkeypatch):
    from diluvian.__main__ import main

    _write_cli_inputs(tmp_path, tiny_volumes, _tiny_settings())
    monkeypatch.chdir(tmp_path)
    status = main(["train", "-c", "config.toml", "-v", "data.toml", "-mo", "cli-model"])
    assert status == 0
    assert (tmp_path / "cli-model.keras").exists() and (tmp_path / "cli-model.csv").exists()


# ---------------------------------------------------------------- optimizer choice


def _tiny_model():
    from diluvian.network import make_network

    config = _tiny_config()
    return make_network(config.model, config.network)


@pytest.mark.parametrize("klass", ["Adam", "Adagrad", "RMSprop"])
def test_other_optimizers_drop_the_default_sgd_arguments(tmp_path, klass, caplog):
    from diluvian.network import compile_network

    (tmp_path / "c.toml").write_text(f'[optimizer]\nklass = "{klass}"\nlearning_rate = 0.004\n')
    config = Config.from_toml(tmp_path / "c.toml")
    with caplog.at_level("DEBUG", logger="diluvian.network.io"):
        model = compile_network(_tiny_model(), config.optimizer)
    assert type(model.optimizer).__name__ == klass
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.004)
    assert "nesterov = True (from the defaults)" in caplog.text and "dropped" in caplog.text
    # RMSprop takes momentum: the default's value is passed on; the others lose it.
    assert ("momentum" in config.optimizer.kwargs) == (klass == "RMSprop")
    assert "nesterov" not in config.optimizer.kwargs
    # The configuration saved after compiling (BASE.toml) loads and compiles again.
    config.to_toml(tmp_path / "saved.toml")
    again = Config.from_toml(tmp_path / "saved.toml")
    assert type(compile_network(_tiny_model(), again.optimizer).optimizer).__name__ == klass


def test_explicit_argument_the_optimizer_does_not_take_is_an_error(tmp_path):
    from diluvian.network import compile_network
    from diluvian.util import DiluvianError

    (tmp_path / "c.toml").write_text('[optimizer]\nklass = "Adam"\nmomentum = 0.9\n')
    config = Config.from_toml(tmp_path / "c.toml")
    assert config.explicitly_set("optimizer.momentum")
    with pytest.raises(DiluvianError) as err:
        compile_network(_tiny_model(), config.optimizer)
    message = str(err.value)
    assert "\n" not in message
    assert "c.toml" in message and "momentum = 0.9" in message and "Adam" in message
    assert "accepted: learning_rate, beta_1" in message


def test_train_cli_rejects_an_explicit_argument_the_optimizer_does_not_take(
        tiny_volumes, tmp_path, monkeypatch, capsys):
    from diluvian.__main__ import main

    settings = _tiny_settings()
    settings["optimizer"] = {"klass": "Adagrad", "nesterov": False}
    _write_cli_inputs(tmp_path, tiny_volumes, settings)
    monkeypatch.chdir(tmp_path)
    status = main(["train", "-c", "config.toml", "-v", "data.toml", "-mo", "cli-model"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "config.toml: [optimizer] nesterov = False is not an argument of" in err[0]
    assert "Adagrad" in err[0] and "initial_accumulator_value" in err[0]
    assert not (tmp_path / "cli-model.keras").exists()


# ---------------------------------------------------------------- --viewer


def test_viewer_shows_the_first_training_sample_and_the_model_output(tiny_volumes, tmp_path,
                                                                     monkeypatch, capsys):
    pytest.importorskip("neuroglancer")
    import diluvian.viewer
    from diluvian.training import train_network

    shown = []

    class RecordingViewer(diluvian.viewer.WrappedViewer):
        """The real viewer (server on 127.0.0.1), recording layers; never waits for input."""

        def __init__(self, voxel_size, **kwargs):
            super().__init__(voxel_size, **kwargs)
            self.layers = {}
            shown.append(self)

        def add(self, data, name, **kwargs):
            super().add(data, name, **kwargs)
            self.layers[name] = (np.array(data), kwargs)

        def print_view_prompt(self, input_fn=None):
            def no_input(prompt):
                raise EOFError

            super().print_view_prompt(input_fn=no_input)

    monkeypatch.setattr(diluvian.viewer, "WrappedViewer", RecordingViewer)
    config = _tiny_config(model={"output_fov_shape": [5, 9, 9]}, training_size=4,
                          validation_size=2)
    result = train_network(volumes=tiny_volumes, model_output_filebase=str(tmp_path / "m"),
                           viewer=True, config=config, progress=False)
    assert len(shown) == 1
    viewer = shown[0]
    assert viewer.layer_names == ["image", "mask input", "target", "output"]
    np.testing.assert_array_equal(viewer.voxel_size, [40, 16, 16])
    assert "neuroglancer viewer: http://127.0.0.1:" in capsys.readouterr().out

    # The first training sample: drawn from a training partition, not a validation one.
    training, validation = partition_volumes(tiny_volumes, config=config)
    data = TrainingData(training, config, num_samples=config.training.batch_size)
    image, mask, target, _ = data.sample(0)
    np.testing.assert_array_equal(viewer.layers["image"][0], image)
    np.testing.assert_array_equal(viewer.layers["mask input"][0], mask)
    np.testing.assert_array_equal(viewer.layers["target"][0], target > 0.5)
    other = TrainingData(validation, config, stream="training", num_samples=4).sample(0)[0]
    assert not np.array_equal(other, image)

    # The trained model's output, placed at the output FOV inside the input FOV.
    expected = result.model.predict([image[None, ..., None], mask[None, ..., None]],
                                    verbose=0)[0, ..., 0]
    np.testing.assert_allclose(viewer.layers["output"][0], expected, rtol=1e-5, atol=1e-6)
    assert viewer.layers["output"][0].shape == (5, 9, 9)
    for name in ("target", "output"):
        assert list(viewer.layers[name][1]["offset"]) == [0, 4, 4]


def test_best_model_tie_on_metric_goes_to_lower_validation_loss():
    from diluvian.training.train import _EpochEnd

    end = object.__new__(_EpochEnd)
    end.mode, end.best, end.best_loss, end.best_epoch = "max", None, float("inf"), None
    assert end._better(0.0, 0.66)
    end.best, end.best_loss = 0.0, 0.66
    assert end._better(0.0, 0.62)       # same F0.5, lower loss
    assert not end._better(0.0, 0.70)
    assert end._better(0.1, 0.90)       # better metric wins whatever the loss
    end.mode = "min"
    assert not end._better(0.1, 0.1) and end._better(-0.1, 0.9)
