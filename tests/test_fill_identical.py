"""Refactors of the fill engine must not change its labels: FIB-25 crops, bit for bit.

The reference digests below were made by this module's
:func:`fill_crop` from the code *before* the refactor of issue 18 (movement
policies as classes, a typed box, layers). They fill a centred crop of FIB-25
with Google's FFN model imported by :func:`diluvian.network.import_ffn_checkpoint`
under the ``float32`` dtype policy (deterministic on CPUs): a 64^3 crop with the
model's own ``face_max`` movement and a 40^3 crop with diluvian's ``lattice``
movement.

Only SHA-256 digests of the labels are kept (labels derived from the shared
FIB-25 data are not committed). Print new ones (only when a change of labels
is intended) with::

    DILUVIAN_WRITE_FILL_REFERENCE=1 python -m pytest -s tests/test_fill_identical.py
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

CASES = {  # name: (crop edge, move_policy or None for the model's own, digest of the labels)
    "fib25_64_face_max": (64, None,
                          "fe7ec14b0adaade0ac4ea4a736e5c45fb9d8b8a124b0a6038d1ad421fd2ef55c"),
    "fib25_40_lattice": (40, "lattice",
                         "aec3d3693a2224e589adb7e9ebf7e4baf2f18bc2695cd57f8f7bb22168edbbb3"),
}


@pytest.fixture(scope="module")
def ffn_model_file(ffn_checkpoint, tmp_path_factory) -> Path:
    from diluvian.network import import_ffn_checkpoint

    path = tmp_path_factory.mktemp("ffn") / "ffn_fib25.keras"
    import_ffn_checkpoint(ffn_checkpoint, path, move_step=8)  # the digests' step
    return path


def fill_crop(fib25_path: Path, model_file: Path, size: int, move_policy: str | None):
    """Dense-fill the centred ``size``^3 crop of FIB-25; return the uint32 labels."""
    import h5py

    from diluvian.config import Config
    from diluvian.fill import fill_volume_with_model, load_fill_model
    from diluvian.volumes.base import NdarrayVolume

    with h5py.File(fib25_path) as f:
        raw = f["volumes/raw"]
        lo = [(s - size) // 2 for s in raw.shape]
        image = raw[tuple(slice(a, a + size) for a in lo)]
    # The digests pin the fill rules of before issue 21, kept as the quality
    # setting (inset_fovs = false).
    settings = {"volume": {"resolution": [10, 10, 10]},
                "fill": {"dtype_policy": "float32", "inset_fovs": False}}
    if move_policy is not None:
        settings["model"] = {"move_policy": move_policy}
    config = Config([settings])
    model = load_fill_model(model_file, config)
    volume = NdarrayVolume([10, 10, 10], image_data=image)
    labels, _ = fill_volume_with_model(model, volume, progress=False, config=config)
    return np.asarray(labels).astype(np.uint32)


def digest(labels: np.ndarray) -> str:
    """SHA-256 of the labels' shape and C-order uint32 bytes."""
    labels = np.ascontiguousarray(labels, dtype=np.uint32)
    h = hashlib.sha256(repr(labels.shape).encode())
    h.update(labels.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_fill_labels_bit_identical(name, fib25_path, ffn_model_file):
    size, move_policy, reference = CASES[name]
    labels = fill_crop(fib25_path, ffn_model_file, size, move_policy)
    if os.environ.get("DILUVIAN_WRITE_FILL_REFERENCE"):
        print(f"{name}: {digest(labels)}")
    assert digest(labels) == reference
