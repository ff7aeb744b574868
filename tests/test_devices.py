"""Filling with one model replica per device (logical CPU devices stand in for GPUs)."""

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
