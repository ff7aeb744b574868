"""Import of Google's FFN convstack_3d checkpoint, checked against an independent reference.

Needs ``../shared`` (the ``ffn_checkpoint`` and ``fib25_path`` fixtures skip
otherwise).
"""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

pytest.importorskip("keras")

from diluvian import network as N  # noqa: E402
from diluvian.__main__ import main  # noqa: E402
from diluvian.config import Config  # noqa: E402
from diluvian.util import DiluvianError  # noqa: E402

pytestmark = pytest.mark.real_data

FOV = 33
HALF = FOV // 2


@pytest.fixture(scope="session")
def ffn_model_file(ffn_checkpoint, tmp_path_factory):
    """The checkpoint imported once per session."""
    out = tmp_path_factory.mktemp("ffn") / "ffn_fib25.keras"
    N.import_ffn_checkpoint(ffn_checkpoint, out)
    return out


@pytest.fixture(scope="session")
def ffn_model(ffn_model_file):
    return N.load_model(ffn_model_file)


@pytest.fixture(scope="session")
def fib25(fib25_path):
    with h5py.File(fib25_path, "r") as f:
        return f["volumes/raw"][:], f["volumes/labels/neuron_ids"][:]


def fov_slices(center):
    return tuple(slice(c - HALF, c + HALF + 1) for c in center)


def seed_mask():
    mask = np.full((FOV,) * 3, 0.05, dtype=np.float32)
    mask[HALF, HALF, HALF] = 0.95
    return mask


def predict_fov(model, raw_fov, mask):
    image = raw_fov.astype(np.float32) / 256.0
    return np.asarray(model.predict_on_batch([image[None, ..., None], mask[None, ..., None]]))[
        0, ..., 0]


# --------------------------------------------------------------------------
# Independent reference: plain numpy convolutions on the checkpoint arrays.
# --------------------------------------------------------------------------


def conv3d_same(x, weights, biases):
    """Cross-correlation with zero 'SAME' padding of a (z, y, x, c) array, as tf.nn.conv3d."""
    k = weights.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (p, p), (0, 0)))
    windows = sliding_window_view(xp, (k, k, k), axis=(0, 1, 2))  # z, y, x, c, kz, ky, kx
    cols = windows.reshape(-1, x.shape[-1] * k ** 3)
    w = weights.transpose(3, 0, 1, 2, 4).reshape(-1, weights.shape[-1])  # (c, kz, ky, kx), out
    return (cols @ w).reshape(*x.shape[:3], -1) + biases


def reference_ffn(checkpoint, raw_fov, mask):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint))

    def conv(x, name):
        return conv3d_same(x, reader.get_tensor(f"seed_update/{name}/weights"),
                           reader.get_tensor(f"seed_update/{name}/biases"))

    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    image = (raw_fov.astype(np.float32) - 128.0) / 33.0
    logits = np.log(mask) - np.log1p(-mask)
    x = np.stack([image, logits], axis=-1).astype(np.float32)
    x = conv(relu(conv(x, "conv0_a")), "conv0_b")
    for i in range(1, 12):
        x = x + conv(relu(conv(relu(x), f"conv{i}_a")), f"conv{i}_b")
    update = conv(relu(x), "conv_lom")[..., 0]
    return 1.0 / (1.0 + np.exp(-(logits + update)))


def test_imported_ffn_matches_independent_numpy_reference(ffn_model, ffn_checkpoint, fib25):
    raw, _ = fib25
    center = (120, 100, 140)
    raw_fov = raw[fov_slices(center)]
    mask = seed_mask()
    mask[HALF + 3:, :, :8] = 0.7  # exercise the mask channel beyond the seed
    ours = predict_fov(ffn_model, raw_fov, mask)
    reference = reference_ffn(ffn_checkpoint, raw_fov, mask)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert 0.01 < np.mean(reference > 0.5) < 0.99  # a non-trivial prediction


def test_imported_weights_are_the_checkpoint_arrays_unchanged(ffn_model, ffn_checkpoint):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(ffn_checkpoint))
    for name in ("conv0_a", "conv7_b", "conv_lom"):
        kernel, bias = ffn_model.get_layer(name).get_weights()
        np.testing.assert_array_equal(kernel, reader.get_tensor(f"seed_update/{name}/weights"))
        np.testing.assert_array_equal(bias, reader.get_tensor(f"seed_update/{name}/biases"))


def test_imported_model_file_carries_ffn_settings(ffn_model_file):
    settings = N.read_model_settings(ffn_model_file)
    assert settings["source"] == "ffn"
    assert settings["mask_input"] == "logit"
    assert settings["image_normalization"] == {"mean": 128.0, "std": 33.0}
    assert settings["input_fov_shape"] == settings["output_fov_shape"] == [33, 33, 33]
    assert (settings["v_true"], settings["v_false"]) == (0.95, 0.05)
    assert (settings["t_move"], settings["t_final"], settings["min_body_size"]) == (0.9, 0.6, 1000)
    config = N.apply_model_settings(Config(), settings)
    assert config.model.move_step.tolist() == [11, 11, 11]  # diluvian's default, not FFN's 8


def test_seeded_fov_inside_fib25_object_overlaps_it(ffn_model, fib25):
    raw, labels = fib25
    # Distance of every voxel to the nearest object boundary, computed once.
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in range(3):
        diff = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        boundary[tuple(lo)] |= diff
        boundary[tuple(hi)] |= diff
    depth = ndimage.distance_transform_edt(~boundary)
    inside = np.zeros(labels.shape, dtype=bool)
    inside[(slice(HALF, -HALF),) * 3] = True  # FOV centres whose FOV lies in the volume
    ids, counts = np.unique(labels[inside], return_counts=True)
    ious = []
    for obj in ids[np.argsort(counts)[::-1]][:60]:
        if obj == 0:
            continue
        score = np.where(inside & (labels == obj), depth, -1.0)
        center = np.unravel_index(np.argmax(score), labels.shape)
        truth = labels[fov_slices(center)] == obj
        if not 0.15 <= truth.mean() <= 0.7:  # skip objects filling the FOV: too easy
            continue
        prob = predict_fov(ffn_model, raw[fov_slices(center)], seed_mask())
        components, _ = ndimage.label(prob > 0.6)
        seg = components == components[HALF, HALF, HALF] if prob[HALF, HALF, HALF] > 0.6 \
            else np.zeros_like(truth)
        ious.append(np.count_nonzero(seg & truth) / np.count_nonzero(seg | truth))
        if len(ious) == 3:
            break
    assert len(ious) == 3
    assert min(ious) > 0.5, ious


def test_import_ffn_command_writes_model_file(ffn_checkpoint, tmp_path):
    out = tmp_path / "cli.keras"
    assert main(["import-ffn", str(ffn_checkpoint), "-o", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        assert "diluvian.json" in zf.namelist()
    assert N.read_model_settings(out)["source"] == "ffn"


def test_import_ffn_move_step_chooses_the_stored_step(ffn_checkpoint, tmp_path):
    out = tmp_path / "deltas8.keras"
    assert main(["import-ffn", str(ffn_checkpoint), "-o", str(out), "--move-step", "8"]) == 0
    settings = N.read_model_settings(out)
    assert settings["move_step"] == [8, 8, 8] and settings["output_fov_move_fraction"] == 4
    config = N.apply_model_settings(Config(), settings)
    assert config.model.move_step.tolist() == [N.FFN_DELTAS] * 3
    # 10 is not 33 // k for any k: refused before anything is written.
    bad = tmp_path / "bad.keras"
    assert main(["import-ffn", str(ffn_checkpoint), "-o", str(bad), "--move-step", "10"]) == 2
    assert not bad.exists()


def test_import_ffn_bad_checkpoint_raises_naming_it(tmp_path):
    with pytest.raises(DiluvianError, match="nothing.ckpt"):
        N.import_ffn_checkpoint(tmp_path / "nothing.ckpt", tmp_path / "out.keras")
    assert main(["import-ffn", str(tmp_path / "nothing.ckpt"), "-o",
                 str(tmp_path / "out.keras")]) == 2
