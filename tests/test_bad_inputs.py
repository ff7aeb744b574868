"""Bad input on every command: one line on stderr, exit status 2, no traceback, nothing written.

Most cases run the command line in-process (``diluvian.__main__.main``) on
tiny synthetic volumes and a tiny network; subprocesses only where a real
process is needed (TensorFlow start-up noise, ``kill -9``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from diluvian.__main__ import main

FOV = [5, 9, 9]
RES = [40, 16, 16]
CONF = ("[model]\ninput_fov_shape = [5, 9, 9]\noutput_fov_shape = [5, 9, 9]\n"
        "output_fov_move_fraction = 4\n[fill]\ncheckpoint_interval = 1000\n")


def boxes(shape=(8, 40, 48), step=16) -> np.ndarray:
    """Separate boxes with ids 1..N, background between them."""
    labels = np.zeros(shape, dtype=np.uint64)
    n = 0
    for y in range(0, shape[1] - step + 1, step):
        for x in range(0, shape[2] - step + 1, step):
            n += 1
            labels[1:shape[0] - 1, y + 1:y + step - 1, x + 1:x + step - 1] = n
    return labels


def write_dataset(folder: Path, name: str, image, labels=None, resolution=RES) -> Path:
    h5 = folder / f"{name}.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("volumes/raw", data=image).attrs["resolution"] = resolution
        if labels is not None:
            f.create_dataset("volumes/labels/neuron_ids", data=labels).attrs[
                "resolution"] = resolution
    toml = folder / f"{name}.toml"
    text = (f'[[dataset]]\nname = "{name}"\nhdf5_file = "{h5.name}"\n'
            'image_dataset = "volumes/raw"\n')
    if labels is not None:
        text += 'label_dataset = "volumes/labels/neuron_ids"\n'
    toml.write_text(text)
    return toml


def save_box_model(path: Path) -> Path:
    """A 1x1x1 convolution: bright voxels (the boxes) -> 0.998, background -> 0.047."""
    import keras

    from diluvian.config import Config
    from diluvian.network import save_model
    from diluvian.network.io import model_settings_from_config

    config = Config([{"model": {"input_fov_shape": FOV, "output_fov_shape": FOV,
                                "output_fov_move_fraction": 4}}])
    image = keras.Input((*FOV, 1), name="image_input")
    mask = keras.Input((*FOV, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    out = keras.layers.Conv3D(1, 1, activation="sigmoid", name="mask_output",
                              kernel_initializer=keras.initializers.Constant([[[[[60.0], [0.0]]]]]),
                              bias_initializer=keras.initializers.Constant(-3.0))(x)
    save_model(keras.Model([image, mask], out), path, model_settings_from_config(config))
    return path


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Inputs shared by the cases: model, datasets, config, a fill's output."""
    d = tmp_path_factory.mktemp("kit")
    k = {"dir": d}
    k["model"] = save_box_model(d / "boxes.keras")
    k["model2"] = save_box_model(d / "boxes2.keras")
    with open(k["model2"], "ab") as f:  # another file (other digest), same network
        f.write(b"\0")
    truth = boxes()
    image = np.where(truth > 0, 200, 0).astype(np.uint8)
    k["truth"] = truth
    k["data"] = write_dataset(d, "boxes", image, truth)
    k["conf"] = d / "conf.toml"
    k["conf"].write_text(CONF)
    k["small"] = write_dataset(d, "small", np.zeros((3, 5, 5), np.uint8),
                               np.zeros((3, 5, 5), np.uint64))
    k["floatlabels"] = write_dataset(d, "floatlab", image, truth.astype(np.float32))
    k["other_shape"] = write_dataset(d, "pred", image[:, :32], truth[:, :32])
    k["float_image"] = write_dataset(d, "f64", np.linspace(0, 943, image.size).reshape(
        image.shape), truth)
    k["crop"] = d / "crop.h5"  # an existing file, used as a parent folder
    k["crop"].write_bytes(b"not a folder")
    k["file"] = d / "plain.txt"
    k["file"].write_text("x\n")
    (d / "folder").mkdir()
    k["folder"] = d / "folder"
    ffn = d / "ffn"
    ffn.mkdir()
    (ffn / "model.ckpt-1.index").write_bytes(b"index")
    k["ffn_no_data"] = ffn / "model.ckpt-1"
    (ffn / "model.ckpt-2.index").write_bytes(b"index")
    (ffn / "model.ckpt-2.data-00000-of-00001").write_bytes(b"data")
    k["ffn"] = ffn / "model.ckpt-2"
    # A finished fill's output, for --resume-file cases.
    out = d / "seg_{volume}"
    assert main(["fill", str(out), "-m", str(k["model"]), "-v", str(k["data"]), "-c",
                 str(k["conf"]), "--seed-generator", "grid", "--max-bodies", "1"]) == 0
    k["seg"] = d / "seg_boxes.toml"
    return k


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_bad(capsys, root: Path, *argv, status: int = 2) -> str:
    """Run a command that must fail: one stderr line, no traceback, ``root`` unchanged."""
    before = listing(root)
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == status, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("diluvian")
    assert listing(root) == before, "files were left behind"
    return lines[0]


def k_args(kit, *names):
    out = []
    for name in names:
        out += {"m": ["-m", kit["model"]], "v": ["-v", kit["data"]], "c": ["-c", kit["conf"]]}[name]
    return out


# --------------------------------------------------------------------------
# Options: found before anything is loaded (no model, no volumes, no Dask)
# --------------------------------------------------------------------------

OPTION_CASES = [
    (["check-config", "-rs", "-1"], "-rs"),
    (["fill", "o_{volume}", "--block-shape", "0", "0", "0"], "--block-shape 0 0 0"),
    (["fill", "o_{volume}", "--block-overlap", "-1", "0", "0"], "--block-overlap"),
    (["fill", "o_{volume}", "--workers", "0"], "--workers"),
    (["fill", "o_{volume}", "--move-batch-size", "0"], "--move-batch-size"),
    (["fill", "o_{volume}", "--max-moves", "0"], "--max-moves"),
    (["fill", "o_{volume}", "--max-bodies", "-2"], "--max-bodies"),
    (["fill", "o_{volume}", "--remask-interval", "0"], "--remask-interval"),
    (["fill", "o_{volume}", "--checkpoint-interval", "0"], "--checkpoint-interval"),
    (["fill", "o_{volume}", "--checkpoint-seconds", "0"], "--checkpoint-seconds"),
    (["fill", "o_{volume}", "--checkpoint-seconds", "-5"], "--checkpoint-seconds"),
    (["fill", "o_{volume}", "--checkpoint-seconds", "nan"], "--checkpoint-seconds"),
    (["fill", "o_{volume}", "--background-label-id", "-1"], "--background-label-id"),
    (["fill", "o_{volume}", "--block-shape", "a", "b", "c"], "--block-shape"),
    (["fill", "o_{volume}", "--frobnicate"], "frobnicate"),
    (["fill", "o_{volume}", "--seed-generator", "magic"], "seed-generator"),
    (["sparse-fill", "--num-regions", "0"], "--num-regions"),
    (["sparse-fill", "--bounds-num-moves", "-1", "0", "0"], "--bounds-num-moves"),
    (["gen-subv-bounds", "b.csv", "0"], "num_bounds"),
    (["gen-subv-bounds", "b.csv", "many"], "num_bounds"),
    (["evaluate", "--border-threshold", "-1", "a", "b"], "--border-threshold"),
    (["evaluate", "--skeleton-dust", "-1", "a", "b"], "--skeleton-dust"),
    (["evaluate", "--partition-volumes", "a", "b", "--skeletons=swc"], "--partition-volumes"),
    (["consensus", "o_{volume}", "--move-batch-size", "0"], "--move-batch-size"),
    (["agglomerate", "seg", "o", "--min-contact", "0"], "--min-contact"),
    (["agglomerate", "seg", "o", "--merge-threshold", "1.5"], "--merge-threshold"),
    (["agglomerate", "seg", "o", "--subvolume-shape", "0", "9", "9"], "--subvolume-shape"),
    (["view", "--port", "70000"], "--port"),
    (["export-precomputed", "in.zarr", "out", "--chunk-size", "0", "64", "64"], "--chunk-size"),
    (["export-precomputed", "in.zarr", "out", "--resolution", "0", "1", "1"], "--resolution"),
    (["check-config", "-l", "LOUD"], "-l"),
    (["train", "--max-minutes", "0"], "--max-minutes"),
    (["train", "--max-minutes", "-3"], "--max-minutes"),
    (["train", "--dtype-policy", "float64"], "--dtype-policy"),
]


@pytest.mark.parametrize("argv, named", OPTION_CASES, ids=[" ".join(a) for a, _ in OPTION_CASES])
def test_bad_option_is_one_line_before_any_work(argv, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = run_bad(capsys, tmp_path, *argv)
    assert named in line


# --------------------------------------------------------------------------
# Input files
# --------------------------------------------------------------------------


def test_missing_and_wrong_input_files(kit, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = kit["dir"]
    cases = [
        (["fill", "o_{volume}", "-v", kit["data"]], "needs a trained model file"),
        (["fill", "o_{volume}", "-m", "missing.keras"], "missing.keras"),
        (["fill", "o_{volume}", "-m", kit["folder"]], "is a folder"),
        (["sparse-fill", "-m", "missing.keras"], "missing.keras"),
        (["validate"], "needs a model file"),
        (["train", "-v", "missing.toml"], "missing.toml"),
        (["check-config", "-v", "missing.toml"], "missing.toml"),
        (["check-config", "-c", "missing.toml"], "missing.toml"),
        (["check-config", "-c", kit["crop"]], "crop.h5"),
        (["fill", "o_{volume}", *k_args(kit, "m", "v"), "--resume-file", "missing.toml"],
         "missing.toml"),
        (["sparse-fill", *k_args(kit, "m", "v"), "-bi", "missing.csv"], "missing.csv"),
        (["import-ffn", "nowhere/model.ckpt-9", "-o", "m.keras"], "model.ckpt-9.index"),
        (["import-ffn", kit["ffn_no_data"], "-o", "m.keras"], "no data file"),
        (["import-ffn", kit["ffn_no_data"], "-o", "m.h5"], "must end in '.keras'"),
        (["import-ffn", kit["ffn_no_data"], "-o", "m.keras", "--move-step", "10"],
         "--move-step 10 is invalid"),
        (["fill", "o_{volume}", "-m", kit["file"], "-v", kit["data"]], "plain.txt"),
        (["view", "-v", kit["floatlabels"]], "labels must be integers"),
        (["evaluate", "-v", kit["data"], "-v", kit["other_shape"], "boxes", "pred"],
         "does not cover"),
        (["evaluate", "-v", kit["data"], "boxes", "nope"], "nope"),
        (["fill", "o_{volume}", "-m", kit["model"], "-v", kit["small"], "-c", kit["conf"]],
         "smaller than [model] input_fov_shape"),
    ]
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_bytes(b"\xff\xfe[[dataset]]\x00")
    cases.append((["view", "-v", bad_toml], "bad.toml"))
    dangling = tmp_path / "dangling.toml"
    dangling.write_text('[[dataset]]\nname = "x"\nhdf5_file = "gone.h5"\n'
                        'image_dataset = "volumes/raw"\n')
    cases.append((["view", "-v", dangling], "gone.h5"))
    assert d.exists()
    for argv, named in cases:
        line = run_bad(capsys, tmp_path, *argv)
        assert named in line, (argv, line)


def test_unreachable_resolution_names_the_key(kit, capsys, tmp_path):
    conf = tmp_path / "res.toml"
    conf.write_text(CONF + "[volume]\nresolution = [30, 16, 16]\n")
    line = run_bad(capsys, tmp_path, "fill", tmp_path / "o_{volume}", *k_args(kit, "m", "v"),
                   "-c", conf)
    assert "[volume] resolution" in line


def test_float_image_out_of_range_is_warned(kit, caplog):
    from diluvian.volumes.datasets import volumes_from_toml

    with caplog.at_level("WARNING"):
        volumes_from_toml(kit["float_image"])
    assert "943" in caplog.text and "float64" in caplog.text


# --------------------------------------------------------------------------
# Outputs: checked before any model is loaded or voxel filled
# --------------------------------------------------------------------------


def test_unwritable_outputs_are_found_before_any_work(kit, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crop, data, model = kit["crop"], kit["data"], kit["model"]
    cases = [
        ["fill", f"{crop}/sub/seg_{{volume}}", "-m", model, "-v", data],
        ["fill", "/proc/diluvian/seg_{volume}", "-m", model, "-v", data],
        ["fill", f"{crop}/seg", "-m", model, "-v", data],
        ["evaluate", "-v", data, "--json", f"{crop}/x.json", "boxes", "boxes"],
        ["evaluate", "-v", data, "--json", kit["folder"], "boxes", "boxes"],
        ["gen-subv-bounds", f"{crop}/b.csv", "3", "-v", data],
        ["gen-subv-bounds", "/proc/b.csv", "3", "-v", data],
        ["gen-subv-bounds", kit["folder"], "3", "-v", data],
        ["train", "-mo", f"{crop}/sub/model", "-v", data],
        ["train", "-mo", "/proc/nowhere/model", "-v", data],
        ["train", "-mc", "/proc/ck.{epoch}.keras", "-v", data],
        ["view", "-v", data, "--png", "/proc/x.png"],
        ["view", "-v", data, "--png", f"{crop}/x.png"],
        ["import-ffn", kit["ffn"], "-o", "/proc/m.keras"],
        ["import-ffn", kit["ffn"], "-o", f"{crop}/m.keras"],
        ["export-precomputed", data, f"{crop}/pre"],
        ["export-precomputed", data, kit["file"]],
        ["sparse-fill", "-m", model, "-v", data, "--swc-output-file", f"{crop}/r.swc"],
        ["sparse-fill", "-m", model, "-v", data, "--animation-output-file", "/proc/a.gif"],
    ]
    for argv in cases:
        line = run_bad(capsys, tmp_path, *argv)
        assert "crop.h5" in line or "/proc" in line or "folder" in line or "plain.txt" in line, line


def test_output_checks_do_not_import_tensorflow(kit, tmp_path):
    code = ("import sys; from diluvian.__main__ import main; "
            f"rc = main(['fill', '/proc/x/o_{{volume}}', '-m', {str(kit['model'])!r}, "
            f"'-v', {str(kit['data'])!r}]); "
            "assert rc == 2 and 'tensorflow' not in sys.modules, rc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_error_after_tensorflow_starts_is_still_the_only_line(kit, tmp_path):
    # The volume is checked against the model's FOV, so TensorFlow has started.
    out = subprocess.run([sys.executable, "-m", "diluvian", "fill", str(tmp_path / "o_{volume}"),
                          "-m", str(kit["model"]), "-v", str(kit["small"]), "-c",
                          str(kit["conf"])], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "input_fov_shape" in lines[0], out.stderr
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------
# Configuration values that cannot work
# --------------------------------------------------------------------------

CONFIG_CASES = [
    ("[model]\ninput_fov_shape = [4, 9, 9]\noutput_fov_shape = [3, 9, 9]\n", "odd"),
    ("[model]\noutput_fov_shape = [13, 32, 33]\n", "odd"),
    ("[model]\nv_true = 0.05\nv_false = 0.95\n", "v_true"),
    ("[model]\nv_true = 0.5\nv_false = 0.5\n", "v_true"),
    ("[fill]\ncheckpoint_interval = 0\n", "checkpoint_interval"),
    ("[fill]\ncheckpoint_seconds = 0\n", "checkpoint_seconds"),
    ("[fill]\nmin_body_size = -1\n", "min_body_size"),
    ("[fill]\nblock_shape = [0, 64, 64]\n", "block_shape"),
    ("[fill]\nblock_overlap = [-1, 0, 0]\n", "block_overlap"),
    ("[fill]\nreconcile_threshold = 2.0\n", "reconcile_threshold"),
    ("[training]\ntraining_size = 0\n", "training_size"),
    ("[training]\nvalidation_size = -1\n", "validation_size"),
    ("[training]\npatience = -1\n", "patience"),
    ("random_seed = -4\n", "random_seed"),
    ("[training]\nmax_minutes = 0\n", "max_minutes"),
    ("[training]\nsampling_bins = [0.5, 0.2]\n", "sampling_bins"),
    ("[training]\nsampling_bins = [0.0, 0.5]\n", "sampling_bins"),
    ("[training]\nsampling = \"everywhere\"\n", "sampling"),
    ("[training]\ndtype_policy = \"float8\"\n", "dtype_policy"),
]


@pytest.mark.parametrize("text, key", CONFIG_CASES, ids=[k for _, k in CONFIG_CASES])
def test_config_value_that_cannot_work(text, key, capsys, tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    line = run_bad(capsys, tmp_path, "check-config", "-c", conf)
    assert key in line and "c.toml" in line


# --------------------------------------------------------------------------
# Bounds CSV files
# --------------------------------------------------------------------------

HEADER = ("start_z,start_y,start_x,stop_z,stop_y,stop_x,seed_z,seed_y,seed_x,label_id,"
          "label_margin_z,label_margin_y,label_margin_x\n")

CSV_CASES = [
    (b"\x00\x01\x02binary\x00", "binary"),
    (b"start_z,start_y\n\xff\xfe\xfa\n", "UTF-8"),
    (b"", "empty"),
    (b"a,b,c\n1,2,3\n", ":1:"),
    (b"start_z,start_y,start_x,stop_z,stop_y\n0,0,0,5,9\n", ":1:"),
    (HEADER.encode() + b"0,0,0,5,9\n", ":2:"),
    (HEADER.encode() + b"0,0,0,5,9,9,,,,,,,\n0,0,x,5,9,9,,,,,,,\n", ":3:"),
    (HEADER.encode() + b"-1,0,0,5,9,9,,,,,,,\n", "negative"),
    (HEADER.encode() + b"0,0,0,5,9,90,,,,,,,\n", "outside the volume"),
    (HEADER.encode() + b"0,0,0,5,9,9,9,0,0,,,,\n", "seed"),
    (HEADER.encode() + b"3,0,0,2,9,9,,,,,,,\n", "stop"),
]


@pytest.mark.parametrize("content, named", CSV_CASES, ids=[n for _, n in CSV_CASES])
def test_bad_bounds_csv(content, named, kit, capsys, tmp_path):
    csv = tmp_path / "b.csv"
    csv.write_bytes(content)
    line = run_bad(capsys, tmp_path, "sparse-fill", *k_args(kit, "m", "v", "c"), "-bi", csv)
    assert "b.csv" in line and named in line, line


# --------------------------------------------------------------------------
# Resume: only a fill's own output, with the same model and settings
# --------------------------------------------------------------------------


def test_resume_refuses_what_is_not_the_same_fill(kit, capsys, tmp_path):
    out = str(tmp_path / "r_{volume}")
    base = ["fill", out, "-v", kit["data"], "-c", kit["conf"]]
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("this is = = not toml")
    cases = [
        ([*base, "-m", kit["model"], "--resume-file", kit["data"]], "not the output"),
        ([*base, "-m", kit["model"], "--seed-generator", "grid", "--resume-file", kit["data"]],
         "not the output"),
        ([*base, "-m", kit["model2"], "--seed-generator", "grid", "--resume-file", kit["seg"]],
         "model"),
        ([*base, "-m", kit["model"], "--seed-generator", "sobel", "--resume-file", kit["seg"]],
         "seed_generator"),
        ([*base, "-m", kit["model"], "--seed-generator", "grid", "--no-bias", "--resume-file",
          kit["seg"]], "bias"),
        ([*base, "-m", kit["model"], "--seed-generator", "grid", "-rs", "9", "--resume-file",
          kit["seg"]], "random_seed"),
        ([*base, "-m", kit["model"], "--resume-file", garbage], "garbage.toml"),
    ]
    for argv, named in cases:
        line = run_bad(capsys, tmp_path, *argv)
        assert named in line, (argv, line)


# --------------------------------------------------------------------------
# Training: validation_size = 0 chooses by loss; an earlier run is never clobbered
# --------------------------------------------------------------------------

TRAIN_CONF = ("random_seed = 3\n[model]\ninput_fov_shape = [5, 9, 9]\n"
              "output_fov_shape = [5, 9, 9]\n[network]\nnum_modules = 1\n"
              "convolution_filters = 2\nunet_depth = 1\n[training]\ntraining_size = 8\n"
              "validation_size = {val}\ngpu_batch_size = 4\ntotal_epochs = {epochs}\n"
              "num_workers = 1\npartitions = {{ \".*\" = [1, 1, 1] }}\n"
              "training_partition = {{ \".*\" = [0, 0, 0] }}\n"
              "validation_partition = {{ \".*\" = [0, 0, 0] }}\n")


def _train_data(folder: Path) -> Path:
    from diluvian.volumes import make_synthetic_volume

    image, labels = make_synthetic_volume(5, shape=(12, 32, 32))
    return write_dataset(folder, "syn", image, labels.astype(np.uint64))


def test_validation_size_zero_chooses_by_loss_and_writes_a_model(tmp_path, capsys):
    conf = tmp_path / "t.toml"
    conf.write_text(TRAIN_CONF.format(val=0, epochs=1))
    base = tmp_path / "m"
    assert main(["train", "-c", str(conf), "-v", str(_train_data(tmp_path)), "-mo",
                 str(base)]) == 0
    for suffix in (".keras", ".toml", ".csv"):
        assert (tmp_path / f"m{suffix}").exists()


@pytest.mark.slow
def test_kill_9_of_train_leaves_the_earlier_run_intact(tmp_path):
    data = _train_data(tmp_path)
    conf = tmp_path / "t.toml"
    conf.write_text(TRAIN_CONF.format(val=2, epochs=1))
    base = tmp_path / "m"
    assert main(["train", "-c", str(conf), "-v", str(data), "-mo", str(base)]) == 0
    first = {s: (tmp_path / f"m{s}").read_bytes() for s in (".keras", ".toml", ".csv")}
    # A second, long run with the same BASE, killed during its first epoch.
    slow = tmp_path / "slow.toml"
    slow.write_text(TRAIN_CONF.format(val=2, epochs=3).replace("training_size = 8",
                                                               "training_size = 4000"))
    proc = subprocess.Popen([sys.executable, "-m", "diluvian", "train", "-c", str(slow), "-v",
                             str(data), "-mo", str(base)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "Epoch 1" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert {s: (tmp_path / f"m{s}").read_bytes() for s in first} == first


# --------------------------------------------------------------------------
# Fill: time-based checkpoints survive kill -9; SIGTERM exits 143
# --------------------------------------------------------------------------


def _wide_boxes_kit(tmp_path):
    truth = boxes((8, 64, 96))
    data = write_dataset(tmp_path, "wide", np.where(truth > 0, 200, 0).astype(np.uint8), truth)
    model = save_box_model(tmp_path / "boxes.keras")
    conf = tmp_path / "conf.toml"
    conf.write_text(CONF)
    return truth, data, model, conf


@pytest.mark.slow
def test_kill_9_of_fill_loses_at_most_checkpoint_seconds_and_resumes_identically(tmp_path):
    from diluvian.fill import read_fill_checkpoint, segmentation_paths

    truth, data, model, conf = _wide_boxes_kit(tmp_path)
    common = ["-m", str(model), "-v", str(data), "-c", str(conf), "--seed-generator", "grid"]
    whole = str(tmp_path / "whole_{volume}")
    assert main(["fill", whole, *common]) == 0
    with h5py.File(segmentation_paths(whole, "wide")[0]) as f:
        expected = f["volumes/labels/neuron_ids"][...]
    n_bodies = len(np.unique(expected)) - 1
    assert n_bodies == int(truth.max())

    out = str(tmp_path / "cut_{volume}")
    h5, toml = segmentation_paths(out, "wide")
    # checkpoint_interval is 1000 bodies: only the clock writes checkpoints.
    proc = subprocess.Popen([sys.executable, "-m", "diluvian", "fill", out, *common,
                             "--checkpoint-seconds", "0.05"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not toml.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the fill ended before it could be killed"
    state = read_fill_checkpoint(toml)[1]
    assert 0 < state.stats.bodies < n_bodies and not state.stats.complete

    assert main(["fill", out, *common, "--resume-file", str(toml)]) == 0
    with h5py.File(h5) as f:
        np.testing.assert_array_equal(f["volumes/labels/neuron_ids"][...], expected)


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_143(tmp_path):
    from diluvian.fill import read_fill_checkpoint, segmentation_paths

    truth, data, model, conf = _wide_boxes_kit(tmp_path)
    out = str(tmp_path / "t_{volume}")
    _, toml = segmentation_paths(out, "wide")
    conf.write_text(CONF.replace("checkpoint_interval = 1000", "checkpoint_interval = 1"))
    proc = subprocess.Popen([sys.executable, "-m", "diluvian", "fill", out, "-m", str(model),
                             "-v", str(data), "-c", str(conf), "--seed-generator", "grid"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while not toml.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "diluvian fill: terminated"
    assert not read_fill_checkpoint(toml)[1].stats.complete
