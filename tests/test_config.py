"""Layered TOML configuration: defaults, overrides, round trips and validation."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from diluvian.config import CONFIG, Config, ModelConfig, OptimizerConfig
from diluvian.util import DiluvianError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_match_documented_values():
    c = Config()
    assert c.random_seed == 1
    assert c.volume.resolution.tolist() == [40, 16, 16]
    assert c.model.input_fov_shape.tolist() == [13, 33, 33]
    assert c.model.output_fov_shape.tolist() == [13, 33, 33]
    assert c.model.output_fov_move_fraction == 4
    assert (c.model.v_true, c.model.v_false, c.model.t_move) == (0.95, 0.05, 0.9)
    assert c.model.move_recheck is True and c.model.move_priority == "descending"
    assert c.network.factory == "diluvian.network.make_flood_fill_unet"
    assert c.network.unet_downsample_rate.tolist() == [0, 1, 1]
    assert c.optimizer.klass == "SGD" and c.optimizer.kwargs == {
        "learning_rate": 0.001, "momentum": 0.5, "nesterov": True}
    assert c.training.gpu_batch_size == 32 and c.training.total_epochs == 2
    assert c.training.partitions == {".*": [2, 1, 1]}
    assert c.training.validation_metric["args"] == {"beta": 0.5}
    assert c.postprocessing.closing_shape is None


def test_module_config_is_the_default():
    assert CONFIG == Config()


def test_later_files_override_only_the_keys_they_set(tmp_path):
    a = write(tmp_path, "a.toml", "random_seed = 7\n[training]\ngpu_batch_size = 4\n"
                                 "total_epochs = 9\n")
    b = write(tmp_path, "b.toml", "[training]\ngpu_batch_size = 8\n[model]\nt_move = 0.8\n")
    c = Config.from_toml(a, b)
    assert c.random_seed == 7
    assert c.training.gpu_batch_size == 8
    assert c.training.total_epochs == 9
    assert c.model.t_move == 0.8
    assert c.model.v_true == 0.95
    assert c.explicitly_set("training.total_epochs")
    assert not c.explicitly_set("model.v_true")


def test_str_is_toml_that_parses_back_to_an_equal_config(tmp_path):
    a = write(tmp_path, "a.toml", "[model]\nt_final = 0.6\ntraining_subv_shape = [13, 65, 65]\n"
                                 "[postprocessing]\nclosing_shape = [1, 3, 3]\n"
                                 "[optimizer]\nklass = 'Adam'\nclipnorm = 1.0\n")
    c = Config.from_toml(a)
    again = Config([tomllib.loads(str(c))])
    assert again == c
    assert again.optimizer.kwargs["clipnorm"] == 1.0
    out = tmp_path / "out.toml"
    c.to_toml(out)
    assert Config.from_toml(out) == c


def test_move_step_and_subvolume_moves():
    m = Config().model
    assert m.move_step.tolist() == [3, 8, 8]
    assert m.subv_moves([13, 33, 33]) == 1
    assert m.subv_moves([13, 49, 49]) == 9
    assert m.training_subv_moves == 27 and m.validation_subv_moves == 125  # 0.0.6 defaults
    assert m.t_final_value == m.t_move


def test_unknown_key_names_file_key_and_closest_names(tmp_path):
    bad = write(tmp_path, "bad.toml", "[training]\ngpu_bach_size = 4\n")
    with pytest.raises(DiluvianError) as err:
        Config.from_toml(bad)
    msg = str(err.value)
    assert "bad.toml" in msg and "gpu_bach_size" in msg and "gpu_batch_size" in msg
    assert "\n" not in msg


def test_unknown_section_is_rejected(tmp_path):
    bad = write(tmp_path, "bad.toml", "[trainig]\ngpu_batch_size = 4\n")
    with pytest.raises(DiluvianError, match="trainig.*training"):
        Config.from_toml(bad)


@pytest.mark.parametrize("text, fragment", [
    ("[model]\ninput_fov_shape = [13, 33]\n", "list of 3 integers"),
    ("[model]\nt_move = 'high'\n", "a number"),
    ("[training]\ngpu_batch_size = 2.5\n", "an integer"),
    ("[model]\nmove_priority = 'fastest'\n", "descending"),
    ("[model]\noutput_fov_shape = [15, 33, 33]\n", "can not be larger"),
    ("random_seed = 'x'\n", "random_seed"),
    ("[training]\naugment_noise = [{axis = 0, mull = 0.1, add = 0.1}]\n", "mull"),
])
def test_wrong_values_name_the_key_and_expectation(tmp_path, text, fragment):
    bad = write(tmp_path, "bad.toml", text)
    with pytest.raises(DiluvianError, match=fragment) as err:
        Config.from_toml(bad)
    assert "bad.toml" in str(err.value)


def test_missing_and_malformed_files_are_one_line_errors(tmp_path):
    with pytest.raises(DiluvianError, match="not found"):
        Config.from_toml(tmp_path / "nope.toml")
    bad = write(tmp_path, "broken.toml", "[model\n")
    with pytest.raises(DiluvianError, match="broken.toml: malformed TOML"):
        Config.from_toml(bad)


def test_get_dotted_names():
    c = Config()
    assert c.get("training.gpu_batch_size") == 32
    assert c.get("model.move_step").tolist() == [3, 8, 8]
    assert c.get("training.validation_metric.mode") == "max"
    with pytest.raises(DiluvianError, match="gpu_batch_size"):
        c.get("training.gpu_batch")


def test_optimizer_passes_unknown_keys_through():
    opt = OptimizerConfig({"klass": "Adam", "loss": "mse", "beta_1": 0.8})
    assert opt.kwargs == {"beta_1": 0.8}


def test_sections_validate_vectors_as_int_arrays():
    m = ModelConfig({**Config().model.settings(), "input_fov_shape": [5, 9, 9],
                     "output_fov_shape": [5, 9, 9]})
    assert m.input_fov_shape.dtype == np.int64
    assert m.move_step.tolist() == [1, 2, 2]
