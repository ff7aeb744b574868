"""Flood-filling networks: architectures, compile, save/load, FFN import.

This is the only part of diluvian that imports Keras and TensorFlow; the
command line imports it lazily. All diluvian models take two inputs,
``image_input`` (image in [0, 1)) and ``mask_input`` (mask probabilities),
shaped ``(batch, z, y, x, 1)``, and return ``mask_output`` probabilities for
the central output FOV, so any code can call
``model.predict_on_batch([images[..., None], masks[..., None]])``.

Submodules: :mod:`~diluvian.network.layers` (registered custom layers),
:mod:`~diluvian.network.architectures` and :mod:`~diluvian.network.convstack`
(network factories),
:mod:`~diluvian.network.io` (compile, save, load, model settings) and
:mod:`~diluvian.network.ffn_import` (Google FFN checkpoints).
"""

from .architectures import (
    add_convolution_module,
    add_unet_layer,
    make_flood_fill_network,
    make_flood_fill_unet,
    make_network,
    unet_downsample_factors,
    unet_level_resolutions,
)
from .convstack import make_ffn_convstack
from .devices import MultiDevicePredictor, fill_devices, make_parallel, replicate_for_devices
from .ffn_import import FFN_DELTAS, FFN_SETTINGS, build_ffn_convstack, import_ffn_checkpoint
from .io import (
    apply_model_settings,
    check_model_io,
    compile_network,
    load_model,
    model_settings_from_config,
    read_model_settings,
    save_model,
    transpose_model,
    with_dtype_policy,
)
from .layers import CentralCrop3D, ProbabilityToLogit
from .precision import (
    cpu_has_native_bfloat16,
    resolve_dtype_policy,
    resolve_training_dtype_policy,
    training_policy_scope,
)

__all__ = [
    "FFN_DELTAS",
    "FFN_SETTINGS",
    "CentralCrop3D",
    "MultiDevicePredictor",
    "ProbabilityToLogit",
    "add_convolution_module",
    "add_unet_layer",
    "apply_model_settings",
    "build_ffn_convstack",
    "check_model_io",
    "compile_network",
    "cpu_has_native_bfloat16",
    "fill_devices",
    "import_ffn_checkpoint",
    "load_model",
    "make_ffn_convstack",
    "make_flood_fill_network",
    "make_flood_fill_unet",
    "make_network",
    "make_parallel",
    "model_settings_from_config",
    "read_model_settings",
    "replicate_for_devices",
    "resolve_dtype_policy",
    "resolve_training_dtype_policy",
    "training_policy_scope",
    "save_model",
    "transpose_model",
    "with_dtype_policy",
    "unet_downsample_factors",
    "unet_level_resolutions",
]
