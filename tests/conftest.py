"""Shared fixtures: real data under ../shared (skipped when absent), caches, seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DILUVIAN_SHARED", ROOT.parent / "shared"))
FIB25_H5 = SHARED / "data" / "fib25" / "training_sample2.h5"
FFN_CHECKPOINT = SHARED / "models" / "ffn_fib25" / "model.ckpt-27465036"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def _diluvian_cache(tmp_path_factory):
    """Keep the synthetic dataset and download caches out of the user's home."""
    if "DILUVIAN_CACHE_DIR" not in os.environ:
        os.environ["DILUVIAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("diluvian-cache"))
    yield


@pytest.fixture(scope="session")
def fib25_path() -> Path:
    """Path of the real FIB-25 volume; skips the test when ../shared is absent."""
    if not FIB25_H5.exists():
        pytest.skip("../shared/data/fib25/training_sample2.h5 is not available")
    return FIB25_H5


@pytest.fixture(scope="session")
def ffn_checkpoint() -> Path:
    """Prefix of Google's FFN checkpoint; skips the test when ../shared is absent."""
    if not Path(str(FFN_CHECKPOINT) + ".index").exists():
        pytest.skip("../shared/models/ffn_fib25 is not available")
    return FFN_CHECKPOINT


@pytest.fixture(scope="module")
def tiny_volumes():
    """Two small synthetic EM volumes with labels (24 x 64 x 64 at 40 x 16 x 16 nm)."""
    from diluvian.volumes import NdarrayVolume, make_synthetic_volume

    vols = {}
    for i, name in enumerate(["vol_a", "vol_b"]):
        image, labels = make_synthetic_volume(100 + i, shape=(24, 64, 64))
        vols[name] = NdarrayVolume((40, 16, 16), image_data=image, label_data=labels)
    return vols
