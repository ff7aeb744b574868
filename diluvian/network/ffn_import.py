"""Import a Google FFN ``convstack_3d`` checkpoint as a diluvian model.

The FFN network (Januszewski et al. 2018) takes the image normalised as
``(raw - 128) / 33`` and the current object mask as logits, concatenated in
that order; ``conv0_a`` (ReLU) and ``conv0_b`` (linear) are followed by
residual modules ``x + conv_b(relu(conv_a(relu(x))))``, a ReLU and a 1x1x1
``conv_lom`` giving a logit update that is added to the input mask logits.

The imported Keras model follows the diluvian I/O convention: image in
[0, 1), mask probabilities in, probabilities out. The normalisation
(``Rescaling(256 / 33, -128 / 33)``), the probability-to-logit conversion
and the final sigmoid are layers of the model. FFN tensors are Z, Y, X
ordered, as are Keras ``Conv3D`` kernels ``(kz, ky, kx, in, out)``, so the
weights are copied unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..util import DiluvianError
from .convstack import build_ffn_convstack
from .io import move_step_fraction, save_model

__all__ = ["FFN_DELTAS", "FFN_SETTINGS", "build_ffn_convstack", "import_ffn_checkpoint",
           "read_ffn_weights"]

#: The move step (``deltas``) of the FFN authors' own inference on FIB-25.
FFN_DELTAS = 8

#: Inference settings stored with an imported model: the FFN authors' on
#: FIB-25, except the move step. diluvian's dense fill moves 11 voxels
#: (``output_fov_move_fraction = 3``) where FFN moves 8: on FIB-25 that needs
#: about 0.6x the network evaluations for better VOI and adapted Rand (issue
#: 21). ``import_ffn_checkpoint(..., move_step=8)`` (``import-ffn --move-step
#: 8``) or ``[model] output_fov_move_fraction = 4`` restores FFN's step.
FFN_SETTINGS: dict[str, Any] = {
    "source": "ffn",
    "input_fov_shape": [33, 33, 33],
    "output_fov_shape": [33, 33, 33],
    "output_fov_move_fraction": 3,
    "move_step": [11, 11, 11],
    "v_true": 0.95,
    "v_false": 0.05,
    "t_move": 0.9,
    "t_final": 0.6,
    "min_body_size": 1000,
    "move_policy": "face_max",
    "mask_input": "logit",
    "image_normalization": {"mean": 128.0, "std": 33.0},
}

_SCOPE = "seed_update"


def read_ffn_weights(checkpoint_prefix) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{layer name: (weights, biases)}`` of the ``seed_update`` convolutions in a checkpoint.

    Raises
    ------
    DiluvianError
        If the checkpoint can not be read or holds no FFN convolutions.
    """
    import tensorflow as tf

    prefix = str(checkpoint_prefix)
    if prefix.endswith(".index"):
        prefix = prefix[: -len(".index")]
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # noqa: BLE001 - tf raises NotFound, DataLoss, ...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DiluvianError(f"{prefix}: cannot read TensorFlow checkpoint: {msg}") from None
    names = reader.get_variable_to_shape_map()
    pattern = re.compile(rf"^{_SCOPE}/(conv\w+)/weights$")
    out = {}
    for name in names:
        match = pattern.match(name)
        if match:
            layer = match.group(1)
            bias_name = f"{_SCOPE}/{layer}/biases"
            if bias_name not in names:
                raise DiluvianError(f"{prefix}: {name} has no matching {bias_name}")
            out[layer] = (reader.get_tensor(name), reader.get_tensor(bias_name))
    if not out:
        raise DiluvianError(f"{prefix}: no '{_SCOPE}/conv*/weights' variables: not an FFN "
                            "convstack_3d checkpoint")
    return out


def _module_count(weights) -> int:
    n = 0
    while f"conv{n + 1}_a" in weights:
        n += 1
    return n


def move_fraction(move_step, name: str = "move step") -> int | None:
    """``output_fov_move_fraction`` giving a move step of ``move_step`` voxels in FFN's
    33-voxel FOV (``None`` for ``None``); a :class:`DiluvianError` naming the steps
    possible if none does."""
    if move_step is None:
        return None
    edge = FFN_SETTINGS["output_fov_shape"][0]
    fraction = (None if isinstance(move_step, bool)
                or not isinstance(move_step, (int, np.integer))
                else move_step_fraction([edge], [int(move_step)]))
    if fraction is None:
        steps = sorted({edge // k for k in range(1, edge + 1)}, reverse=True)
        possible = ", ".join(str(step) for step in steps[:8])
        raise DiluvianError(f"{name} {move_step!r} is invalid: expected one of {possible}, "
                            f"... ({edge} // k voxels for a whole k)")
    return fraction


def import_ffn_checkpoint(checkpoint_prefix, output_file, *,
                          move_step: int | None = None) -> keras.Model:
    """Convert a Google FFN ``convstack_3d`` checkpoint into a diluvian ``.keras`` model file.

    Parameters
    ----------
    checkpoint_prefix : str or path-like
        Checkpoint prefix, e.g. ``.../model.ckpt-27465036`` (without
        ``.index``).
    output_file : str or path-like
        Output ``.keras`` file; it carries :data:`FFN_SETTINGS`.
    move_step : int, optional
        Move step in voxels stored with the model (default 11, see
        :data:`FFN_SETTINGS`; :data:`FFN_DELTAS`, 8, is FFN's own). It must
        be ``33 // k`` for a whole ``k`` (33, 16, 11, 8, 6, ...), as
        ``[model] output_fov_move_fraction`` gives it.

    Returns
    -------
    keras.Model
        The imported model.

    Raises
    ------
    DiluvianError
        If the checkpoint can not be read or its variables do not fit the
        architecture.
    """
    if Path(output_file).suffix != ".keras":
        raise DiluvianError(f"{output_file}: model files must end in '.keras'")
    fraction = move_fraction(move_step)
    weights = read_ffn_weights(checkpoint_prefix)
    depth = _module_count(weights)
    if "conv0_a" not in weights or "conv0_b" not in weights or "conv_lom" not in weights:
        raise DiluvianError(f"{checkpoint_prefix}: missing conv0_a, conv0_b or conv_lom: not an "
                            "FFN convstack_3d checkpoint")
    filters = int(weights["conv0_a"][0].shape[-1])
    fov = FFN_SETTINGS["input_fov_shape"]
    model = build_ffn_convstack(fov, depth=depth, filters=filters)
    expected = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv3D)}
    if set(weights) != expected:
        raise DiluvianError(f"{checkpoint_prefix}: convolutions {sorted(weights)} do not match "
                            f"the convstack_3d layers {sorted(expected)}")
    for name, (kernel, bias) in weights.items():
        layer = model.get_layer(name)
        want = [tuple(w.shape) for w in layer.get_weights()]
        if [kernel.shape, bias.shape] != want:
            raise DiluvianError(f"{checkpoint_prefix}: {name} has shapes {kernel.shape}, "
                                f"{bias.shape}; expected {want[0]}, {want[1]}")
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    settings = dict(FFN_SETTINGS)
    if fraction is not None:
        settings["output_fov_move_fraction"] = fraction
        settings["move_step"] = [int(move_step)] * 3
    settings["ffn"] = {"checkpoint": Path(str(checkpoint_prefix)).name, "depth": depth,
                       "filters": filters}
    save_model(model, output_file, settings)
    return model
