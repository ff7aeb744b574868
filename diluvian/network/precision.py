"""Choosing the numeric precision a network runs at for inference."""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from pathlib import Path

__all__ = ["cpu_has_native_bfloat16", "resolve_dtype_policy", "resolve_training_dtype_policy",
           "training_policy_scope"]

log = logging.getLogger(__name__)

#: CPU flags (Linux ``/proc/cpuinfo``) of native bfloat16 arithmetic.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16).

    Parameters
    ----------
    cpuinfo : str, optional
        Contents of ``/proc/cpuinfo`` (read when not given; other systems
        than Linux report false).
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if platform.system() != "Linux" or not path.exists():
            return False
        try:
            cpuinfo = path.read_text(errors="replace")
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in _BF16_FLAGS)


def _resolve_auto(name: str | None, cpu_policy: str) -> str | None:
    """``None`` for float32, ``name`` as given, or for ``'auto'``: mixed float16 on a GPU,
    ``cpu_policy`` on a CPU with native bfloat16, else ``None``."""
    if name is None or name == "float32":
        return None
    if name != "auto":
        return name
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return cpu_policy if cpu_has_native_bfloat16() else None


def resolve_dtype_policy(name: str | None) -> str | None:
    """The Keras dtype policy to run inference under, or ``None`` for float32.

    Parameters
    ----------
    name : str or None
        ``'float32'`` (or ``None``): full precision; ``'auto'``: mixed
        float16 when TensorFlow sees a GPU, bfloat16 on a CPU with native
        bfloat16 instructions, otherwise float32; any other Keras dtype
        policy name is returned as given.
    """
    chosen = _resolve_auto(name, cpu_policy="bfloat16")
    if name == "auto":
        log.info("dtype_policy 'auto' runs the network in %s", chosen or "float32")
    return chosen


def resolve_training_dtype_policy(name: str | None) -> str | None:
    """The Keras dtype policy to train under, or ``None`` for float32.

    Parameters
    ----------
    name : str or None
        ``'float32'`` (or ``None``): full precision; ``'auto'``:
        ``'mixed_float16'`` (with loss scaling) when TensorFlow sees a GPU,
        ``'mixed_bfloat16'`` on a CPU with native bfloat16 instructions,
        otherwise float32; ``'mixed_bfloat16'`` or ``'mixed_float16'`` as
        given. Mixed policies keep the weights in float32.
    """
    chosen = _resolve_auto(name, cpu_policy="mixed_bfloat16")
    if name == "auto":
        log.info("[training] dtype_policy 'auto' trains in %s", chosen or "float32")
    return chosen


@contextlib.contextmanager
def training_policy_scope(policy: str | None):
    """Make ``policy`` Keras' global dtype policy inside the block (nothing for ``None``)."""
    if policy is None:
        yield
        return
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
