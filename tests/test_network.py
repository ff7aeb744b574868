"""Tests for diluvian.network: architectures, custom layers, compile, save/load, settings."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from diluvian import network as N  # noqa: E402
from diluvian.config import Config, OptimizerConfig  # noqa: E402
from diluvian.util import DiluvianError  # noqa: E402

TINY = {
    "num_modules": 1,
    "num_layers_per_module": 1,
    "convolution_filters": 4,
    "unet_depth": 2,
    "dropout_probability": 0.0,
}


def tiny_config(fov=(5, 9, 9), out=None, **network) -> Config:
    out = fov if out is None else out
    return Config([{"model": {"input_fov_shape": list(fov), "output_fov_shape": list(out),
                              "output_fov_move_fraction": 1},
                    "network": {**TINY, **network}}], sources=["tiny.toml"])


def random_batch(model, n=2, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, *model.inputs[0].shape[1:])
    image = rng.random(shape, dtype=np.float32)
    mask = np.full(shape, 0.05, dtype=np.float32)
    mask[(slice(None), *[s // 2 for s in shape[1:4]], 0)] = 0.95
    return [image, mask]


def predict(model, batch):
    return np.asarray(model.predict_on_batch(batch))


def custom_factory(input_fov_shape, output_fov_shape, network_config):
    """A user factory plugged in by dotted name."""
    model = N.make_flood_fill_network(input_fov_shape, output_fov_shape, network_config)
    model.custom_marker = True
    return model


def wrong_io_factory(input_fov_shape, output_fov_shape, network_config):
    x = keras.Input((*input_fov_shape, 1), name="x")
    return keras.Model(x, keras.layers.Activation("sigmoid", name="y")(x))


# --------------------------------------------------------------------------
# Downsampling factors.
# --------------------------------------------------------------------------


def test_isotropy_approximating_downsampling_matches_documented_example():
    factors = N.unet_downsample_factors(4, mode="isotropy_approximating", resolution=[40, 4, 4])
    assert N.unet_level_resolutions([40, 4, 4], factors).tolist() == [
        [40, 8, 8], [40, 16, 16], [40, 32, 32], [80, 64, 64]]


def test_isotropy_approximating_downsampling_of_isotropic_voxels_halves_all_axes():
    factors = N.unet_downsample_factors(2, mode="isotropy_approximating", resolution=[8, 8, 8])
    assert factors.tolist() == [[2, 2, 2], [2, 2, 2]]


def test_fixed_rate_downsampling_halves_axis_every_rate_levels_and_never_for_zero():
    assert N.unet_downsample_factors(4, rate=[2, 1, 0]).tolist() == [
        [1, 2, 1], [2, 2, 1], [1, 2, 1], [2, 2, 1]]


def test_unknown_downsample_mode_raises():
    with pytest.raises(DiluvianError, match="unet_downsample_mode"):
        N.unet_downsample_factors(2, rate=[1, 1, 1], mode="sideways")


def test_isotropy_approximating_without_resolution_raises():
    with pytest.raises(DiluvianError, match="resolution"):
        N.unet_downsample_factors(2, mode="isotropy_approximating")


# --------------------------------------------------------------------------
# Architectures.
# --------------------------------------------------------------------------


def test_flood_fill_network_follows_io_convention_and_returns_probabilities():
    c = tiny_config()
    model = N.make_flood_fill_network(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    assert [t.name for t in model.inputs] == ["image_input", "mask_input"]
    assert model.output_names == ["mask_output"]
    out = predict(model, random_batch(model))
    assert out.shape == (2, 5, 9, 9, 1)
    assert out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))


def test_flood_fill_network_same_padding_crops_to_smaller_output_fov():
    c = tiny_config(fov=(5, 9, 9), out=(3, 5, 5))
    model = N.make_flood_fill_network(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    assert predict(model, random_batch(model)).shape == (2, 3, 5, 5, 1)


def test_flood_fill_network_valid_padding_shrinks_output():
    # One first convolution and one module of one convolution: 2 * (3 - 1) voxels lost.
    c = tiny_config(fov=(7, 11, 11), out=(3, 7, 7), convolution_padding="valid")
    model = N.make_flood_fill_network(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    assert predict(model, random_batch(model)).shape == (2, 3, 7, 7, 1)


def test_flood_fill_network_valid_padding_too_small_for_output_raises():
    c = tiny_config(fov=(7, 11, 11), out=(5, 9, 9), convolution_padding="valid")
    with pytest.raises(DiluvianError, match="output_fov_shape"):
        N.make_flood_fill_network(c.model.input_fov_shape, c.model.output_fov_shape, c.network)


def test_unet_same_padding_handles_odd_sizes():
    c = tiny_config(fov=(5, 9, 9), unet_depth=3, unet_downsample_rate=[1, 1, 1])  # 9->5->3->2
    model = N.make_flood_fill_unet(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    assert predict(model, random_batch(model)).shape == (2, 5, 9, 9, 1)


def test_unet_valid_padding_output_is_smaller_than_input():
    c = tiny_config(fov=(9, 25, 25), out=(3, 17, 17), unet_depth=1, convolution_padding="valid")
    model = N.make_flood_fill_unet(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    assert predict(model, random_batch(model)).shape == (2, 3, 17, 17, 1)
    c = tiny_config(fov=(9, 25, 25), unet_depth=1, convolution_padding="valid")
    with pytest.raises(DiluvianError, match="output_fov_shape"):
        N.make_flood_fill_unet(c.model.input_fov_shape, c.model.output_fov_shape, c.network)


def test_unet_isotropy_approximating_builds():
    c = tiny_config(fov=(5, 17, 17), unet_depth=3, unet_downsample_mode="isotropy_approximating",
                    resolution=[40, 10, 10])
    model = N.make_flood_fill_unet(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    pools = [layer.pool_size for layer in model.layers
             if isinstance(layer, keras.layers.MaxPooling3D)]
    assert pools == [(1, 2, 2), (1, 2, 2), (2, 2, 2)]
    assert predict(model, random_batch(model, n=1)).shape == (1, 5, 17, 17, 1)


def test_default_config_unet_builds_and_predicts():
    c = Config()
    model = N.make_network(c.model, c.network)
    assert model.name == "flood_fill_unet"
    out = predict(model, random_batch(model, n=1))
    assert out.shape == (1, *c.model.output_fov_shape.tolist(), 1)


def test_make_network_uses_factory_found_by_dotted_name():
    c = tiny_config(factory=f"{__name__}.custom_factory")
    model = N.make_network(c.model, c.network)
    assert model.custom_marker is True


def test_make_network_rejects_factory_breaking_io_convention():
    c = tiny_config(factory=f"{__name__}.wrong_io_factory")
    with pytest.raises(DiluvianError, match="image_input"):
        N.make_network(c.model, c.network)


def test_make_network_unknown_factory_raises():
    c = tiny_config(factory="diluvian.network.no_such_factory")
    with pytest.raises(DiluvianError, match="no_such_factory"):
        N.make_network(c.model, c.network)


def test_unknown_activation_name_raises():
    c = tiny_config(convolution_activation="wiggle")
    with pytest.raises(DiluvianError, match="convolution_activation = 'wiggle'"):
        N.make_network(c.model, c.network)


# --------------------------------------------------------------------------
# Custom layers.
# --------------------------------------------------------------------------


def test_probability_to_logit_is_exact_for_soft_targets_and_clipped():
    layer = N.ProbabilityToLogit()
    p = np.array([0.0, 0.05, 0.5, 0.95, 1.0], dtype=np.float32)
    logits = np.asarray(layer(p))
    expected = np.log(np.float32(0.05) / np.float32(0.95))
    np.testing.assert_allclose(logits[1], expected, rtol=1e-6)
    np.testing.assert_allclose(logits[3], -expected, rtol=1e-6)
    assert logits[2] == 0.0
    assert np.all(np.isfinite(logits)) and logits[0] < -15 and logits[4] > 15


def test_central_crop_removes_odd_difference_from_end():
    assert N.layers.crop_offsets([34, 10, 5], [33, 6, 5]) == [(0, 1), (2, 2), (0, 0)]
    x = np.arange(4 * 5 * 6, dtype=np.float32).reshape(1, 4, 5, 6, 1)
    out = np.asarray(N.CentralCrop3D((3, 3, 3))(x))
    np.testing.assert_array_equal(out, x[:, 0:3, 1:4, 1:4])


def test_central_crop_to_larger_shape_raises():
    with pytest.raises(ValueError, match="larger"):
        N.CentralCrop3D((5, 5, 5))(np.zeros((1, 4, 5, 6, 1), np.float32))


# --------------------------------------------------------------------------
# Save, load, settings.
# --------------------------------------------------------------------------


def round_trip_models():
    """Models using every custom and normalisation layer."""
    c = tiny_config(fov=(7, 11, 11), out=(3, 5, 5), convolution_padding="valid",
                    rescale_image=True, batch_normalization=True, dropout_probability=0.1)
    yield "network", N.make_flood_fill_network(c.model.input_fov_shape, c.model.output_fov_shape,
                                               c.network)
    c = tiny_config(fov=(5, 9, 9), out=(3, 7, 7))
    yield "unet", N.make_flood_fill_unet(c.model.input_fov_shape, c.model.output_fov_shape,
                                         c.network)
    yield "ffn", N.build_ffn_convstack((5, 9, 9), depth=1, filters=4)


@pytest.mark.parametrize("name", ["network", "unet", "ffn"])
def test_every_custom_layer_round_trips_through_save_and_load_in_safe_mode(tmp_path, name):
    model = dict(round_trip_models())[name]
    batch = random_batch(model)
    before = predict(model, batch)
    filename = tmp_path / f"{name}.keras"
    N.save_model(model, filename, {"source": "diluvian"})
    loaded = N.load_model(filename)  # safe mode, no custom_objects
    np.testing.assert_array_equal(predict(loaded, batch), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.keras"]  # no temp files


def test_model_settings_round_trip(tmp_path):
    c = tiny_config()
    model = N.make_network(c.model, c.network)
    settings = N.model_settings_from_config(c, t_final=0.6)
    N.save_model(model, tmp_path / "m.keras", settings)
    read = N.read_model_settings(tmp_path / "m.keras")
    assert read == settings
    assert read["input_fov_shape"] == [5, 9, 9]
    assert read["move_step"] == (c.model.move_step).tolist()
    assert read["mask_input"] == "probability"
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert "diluvian.json" in zf.namelist()


def test_keras_file_saved_without_settings_has_empty_settings_and_loads(tmp_path):
    model = N.build_ffn_convstack((5, 5, 5), depth=1, filters=2)
    model.save(tmp_path / "plain.keras")
    assert N.read_model_settings(tmp_path / "plain.keras") == {}
    assert N.load_model(tmp_path / "plain.keras").output_names == ["mask_output"]


def test_save_model_requires_keras_suffix(tmp_path):
    model = N.build_ffn_convstack((5, 5, 5), depth=1, filters=2)
    with pytest.raises(DiluvianError, match="m.h5"):
        N.save_model(model, tmp_path / "m.h5", {})


def test_missing_model_file_raises_naming_it(tmp_path):
    with pytest.raises(DiluvianError, match="nothere.keras: model file not found"):
        N.load_model(tmp_path / "nothere.keras")


def test_corrupt_model_file_raises_naming_it(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(DiluvianError, match="bad.keras"):
        N.load_model(bad)
    model = N.build_ffn_convstack((5, 5, 5), depth=1, filters=2)
    N.save_model(model, tmp_path / "trunc.keras", {})
    data = (tmp_path / "trunc.keras").read_bytes()
    (tmp_path / "trunc.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(DiluvianError, match="trunc.keras"):
        N.load_model(tmp_path / "trunc.keras")


def test_non_diluvian_keras_model_raises_naming_file(tmp_path):
    x = keras.Input((5, 5, 5, 1), name="x")
    keras.Model(x, keras.layers.Activation("relu", name="y")(x)).save(tmp_path / "other.keras")
    with pytest.raises(DiluvianError, match="other.keras: is not a diluvian model"):
        N.load_model(tmp_path / "other.keras")


def test_apply_model_settings_fills_keys_not_explicitly_set():
    config = Config([{"model": {"t_move": 0.8}}], sources=["user.toml"])
    N.apply_model_settings(config, N.FFN_SETTINGS)
    assert config.model.input_fov_shape.tolist() == [33, 33, 33]
    assert config.model.output_fov_shape.tolist() == [33, 33, 33]
    assert config.model.move_step.tolist() == [11, 11, 11]  # diluvian's step, not FFN's 8
    assert config.model.t_move == 0.8  # explicitly set: config wins
    assert config.model.t_final == 0.6
    assert config.fill.min_body_size == 1000


def test_apply_model_settings_derives_move_fraction_from_move_step():
    config = Config()
    settings = {"input_fov_shape": [17, 17, 17], "output_fov_shape": [17, 17, 17],
                "move_step": [8, 8, 8]}
    N.apply_model_settings(config, settings)
    assert config.model.output_fov_move_fraction == 2
    assert config.model.move_step.tolist() == [8, 8, 8]


def test_apply_model_settings_explicit_fov_differing_from_model_raises():
    config = Config([{"model": {"input_fov_shape": [13, 33, 33]}}], sources=["user.toml"])
    with pytest.raises(DiluvianError, match="input_fov_shape"):
        N.apply_model_settings(config, N.FFN_SETTINGS, source="ffn.keras")


def test_transpose_wrapper_runs_xyz_model_on_zyx_arrays(tmp_path):
    xyz_fov = (9, 7, 5)
    c = tiny_config(fov=xyz_fov)
    inner = N.make_flood_fill_network(c.model.input_fov_shape, c.model.output_fov_shape, c.network)
    N.save_model(inner, tmp_path / "xyz.keras", {})
    c.network.transpose = True
    wrapped = N.load_model(tmp_path / "xyz.keras", network_config=c.network)
    assert tuple(wrapped.inputs[0].shape[1:4]) == xyz_fov[::-1]
    assert wrapped.output_names == ["mask_output"]
    zyx = random_batch(wrapped)
    xyz = [np.transpose(a, (0, 3, 2, 1, 4)) for a in zyx]
    expected = np.transpose(predict(inner, xyz), (0, 3, 2, 1, 4))
    np.testing.assert_allclose(predict(wrapped, zyx), expected, rtol=1e-5, atol=1e-6)


def test_load_model_with_reduced_precision_policy_stays_close(tmp_path):
    model = N.build_ffn_convstack((5, 9, 9), depth=1, filters=4)
    N.save_model(model, tmp_path / "m.keras", {})
    batch = random_batch(model)
    reference = predict(model, batch)
    low = N.load_model(tmp_path / "m.keras", dtype_policy="mixed_bfloat16")
    out = predict(low, batch)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=0.05)


def test_load_model_unknown_dtype_policy_raises(tmp_path):
    model = N.build_ffn_convstack((5, 5, 5), depth=1, filters=2)
    N.save_model(model, tmp_path / "m.keras", {})
    with pytest.raises(DiluvianError, match="float13"):
        N.load_model(tmp_path / "m.keras", dtype_policy="float13")


# --------------------------------------------------------------------------
# Compile.
# --------------------------------------------------------------------------


def optimizer(klass="SGD", loss="binary_crossentropy", **kwargs) -> OptimizerConfig:
    return OptimizerConfig({"klass": klass, "loss": loss, **kwargs})


@pytest.mark.parametrize("klass, kwargs", [
    ("SGD", {"learning_rate": 0.01, "momentum": 0.5, "nesterov": True}),
    ("Adam", {"learning_rate": 0.002, "beta_1": 0.8}),
])
def test_compile_network_builds_named_optimizer_with_config_kwargs(klass, kwargs):
    model = N.build_ffn_convstack((5, 5, 5), depth=1, filters=2)
    N.compile_network(model, optimizer(klass, **kwargs))
    assert type(model.optimizer).__name__ == klass
    for key, value in kwargs.items():
        assert np.isclose(float(np.asarray(getattr(model.optimizer, key))), float(value))
    batch = random_batch(model)
    loss = model.train_on_batch(batch, np.full_like(batch[1], 0.5))
    assert np.isfinite(np.asarray(loss)).all()


@pytest.mark.parametrize("config, match", [
    (dict(klass="Sgdd"), "klass = 'Sgdd'"),
    (dict(klass="SGD", learning_rat=0.1), "learning_rat"),
    (dict(klass="SGD", loss="hinge_and_seek"), "loss = 'hinge_and_seek'"),
])
def test_compile_network_bad_names_raise(config, match):
    model = N.build_ffn_convstack((5, 5, 5), depth=1, filters=2)
    with pytest.raises(DiluvianError, match=match):
        N.compile_network(model, optimizer(**config))
