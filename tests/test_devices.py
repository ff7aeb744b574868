"""Several devices: fill replicas and MirroredStrategy training (logical CPUs stand in for GPUs)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from diluvian.util import DiluvianError

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from diluvian.network import MultiDevicePredictor, fill_devices
    from diluvian.regions import as_predictor

    fov = (5, 9, 9)
    image = keras.Input((*fov, 1), name="image_input")
    mask = keras.Input((*fov, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(x)
    out = keras.layers.Conv3D(1, 1, activation="sigmoid", name="mask_output")(x)
    model = keras.Model([image, mask], out)
    devices = fill_devices(2, device_type="CPU")
    assert len(devices) == 2 and devices[0] != devices[1], devices
    multi = MultiDevicePredictor(model, devices)
    rng = np.random.default_rng(0)
    for n in (1, 3, 8):
        images = rng.random((n, *fov), dtype=np.float32)
        masks = rng.random((n, *fov), dtype=np.float32)
        np.testing.assert_allclose(multi(images, masks), as_predictor(model)(images, masks),
                                   atol=1e-5)
    placed = {r.weights[0].value.device for r in multi.replicas}
    assert len(placed) == 2, placed
    multi.close()
    print("ok")
""")


@pytest.mark.slow
def test_replicas_on_two_devices_predict_like_one_model():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")


def test_one_gpu_or_none_uses_default_placement():
    from diluvian.network import fill_devices

    assert fill_devices(1) == []
    assert fill_devices(0) == []


def test_more_gpus_than_visible_is_a_one_line_error():
    import tensorflow as tf

    from diluvian.network import fill_devices

    visible = len(tf.config.list_logical_devices("GPU"))
    with pytest.raises(DiluvianError, match=r"num_gpus = \d+ but TensorFlow sees"):
        fill_devices(max(visible + 1, 2))


TRAIN_SCRIPT = textwrap.dedent("""
    import csv, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    # Two logical CPUs stand in for two GPUs.
    _list = tf.config.list_logical_devices
    tf.config.list_logical_devices = lambda t=None: _list("CPU") if t == "GPU" else _list(t)

    from diluvian.config import Config
    from diluvian.training import train_network
    from diluvian.volumes import NdarrayVolume, make_synthetic_volume

    volumes = {}
    for i, name in enumerate(["vol_a", "vol_b"]):
        image, labels = make_synthetic_volume(100 + i, shape=(24, 64, 64))
        volumes[name] = NdarrayVolume((40, 16, 16), image_data=image, label_data=labels)
    fov = [5, 17, 17]
    config = Config([{
        "random_seed": 3,
        "model": {"input_fov_shape": fov, "output_fov_shape": fov,
                  "training_subv_shape": fov, "validation_subv_shape": fov},
        "network": {"num_modules": 1, "convolution_filters": 4, "unet_depth": 1},
        "training": {"training_size": 16, "validation_size": 4, "gpu_batch_size": 2,
                     "total_epochs": 1, "num_workers": 2, "num_gpus": 2},
    }])
    base = sys.argv[1]
    seen = {}
    import diluvian.training.train as train_module
    make = train_module._strategy
    def spy(n):
        s = make(n)
        seen["replicas"] = s.num_replicas_in_sync
        return s
    train_module._strategy = spy
    train_network(volumes=volumes, model_output_filebase=base, config=config, progress=False)
    with open(base + ".csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0, rows
    assert seen["replicas"] == 2, seen
    print("ok")
""")


@pytest.mark.slow
@pytest.mark.parametrize("moving", [False, True], ids=["single-move", "moving"])
def test_num_gpus_2_trains_with_mirrored_strategy_on_two_devices(tmp_path, moving):
    script = TRAIN_SCRIPT
    if moving:
        script = script.replace('"training_subv_shape": fov,', '"training_subv_shape": [9, 25, 25],')
        assert script != TRAIN_SCRIPT
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")
    assert (tmp_path / "m.keras").exists()
