"""The command line surface: subcommands, options, check-config and error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from diluvian.__main__ import _make_main_parser, main

COMMANDS = ["train", "fill", "sparse-fill", "validate", "evaluate", "view", "check-config",
            "gen-subv-bounds"]
COMMON = ["--config-file", "-cd", "--model-file", "--volume-file", "--no-in-memory",
          "--random-seed", "--log"]


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "diluvian", *args], capture_output=True,
                          text=True, **kwargs)


def test_help_lists_the_eight_commands():
    out = run_cli("-h")
    assert out.returncode == 0
    for cmd in COMMANDS:
        assert cmd in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_the_common_options(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "-h"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in COMMON:
        assert option in text


@pytest.mark.parametrize("command, options", [
    ("train", ["-mo", "-mc", "--early-restart", "--tensorboard", "--viewer", "--metric-plot"]),
    ("fill", ["--partition-volumes", "--no-bias", "--move-batch-size", "--max-moves",
              "--remask-interval", "--seed-generator", "--ordered-seeds", "--ignore-mask",
              "--background-label-id", "--viewer", "--max-bodies",
              "--reject-early-termination", "--resume-file"]),
    ("sparse-fill", ["--bounds-num-moves", "--augment", "-bi", "--bounds-input-file"]),
    ("evaluate", ["--border-threshold", "--partition-volumes"]),
    ("gen-subv-bounds", ["--bounds-num-moves"]),
])
def test_seed_options_are_present(command, options, capsys):
    with pytest.raises(SystemExit):
        main([command, "-h"])
    text = capsys.readouterr().out
    for option in options:
        assert option in text


def test_parser_defaults_follow_the_seed_usage():
    parser = _make_main_parser()
    args = parser.parse_args(["fill", "out_{volume}"])
    assert args.seed_generator == "sobel" and args.bias is True
    assert args.shuffle_seeds is True and args.move_batch_size == 1
    assert args.background_label_id == 0 and args.in_memory is True
    args = parser.parse_args(["fill", "out", "--no-bias", "--ordered-seeds",
                              "--seed-generator", "grid", "-c", "a.toml", "-c", "b.toml"])
    assert args.bias is False and args.shuffle_seeds is False
    assert args.seed_generator == "grid" and args.config_files == ["a.toml", "b.toml"]
    args = parser.parse_args(["evaluate", "gt", "pred"])
    assert args.border_threshold == 25.0
    args = parser.parse_args(["gen-subv-bounds", "b_{volume}.csv", "5",
                              "--bounds-num-moves", "1", "2", "3"])
    assert args.num_bounds == 5 and args.bounds_num_moves == [1, 2, 3]


def test_check_config_prints_one_value(capsys):
    assert main(["check-config", "training.gpu_batch_size"]) == 0
    assert capsys.readouterr().out.strip() == "32"


def test_check_config_prints_whole_config_as_toml(capsys, tmp_path):
    import tomllib

    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\ntotal_epochs = 5\n")
    assert main(["check-config", "-c", str(cfg), "-rs", "42"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["training"]["total_epochs"] == 5
    assert data["random_seed"] == 42


def test_check_config_does_not_import_tensorflow():
    code = ("import sys; from diluvian.__main__ import main; "
            "main(['check-config', 'model.t_move']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_bad_config_is_one_line_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\ngpu_bach_size = 4\n")
    out = run_cli("check-config", "-c", str(bad))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "bad.toml" in lines[0] and "gpu_batch_size" in lines[0]
    assert "Traceback" not in out.stderr


def test_debug_log_level_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\ngpu_bach_size = 4\n")
    out = run_cli("check-config", "-c", str(bad), "-l", "DEBUG")
    assert out.returncode == 2
    assert "Traceback" in out.stderr


def test_unknown_property_is_an_error(capsys):
    assert main(["check-config", "model.nope"]) == 2
    assert "nope" in capsys.readouterr().err
