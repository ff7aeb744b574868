"""The FFN ``convstack_3d`` architecture: a residual stack that updates mask logits.

Google FFN's network (Januszewski et al. 2018) takes the image normalised as
``(raw - 128) / 33`` and the current object mask as logits, concatenated in
that order; ``conv0_a`` (ReLU) and ``conv0_b`` (linear) are followed by
residual modules ``x + conv_b(relu(conv_a(relu(x))))``, a ReLU and a 1x1x1
``conv_lom`` giving a logit update that is added to the input mask logits.

:func:`build_ffn_convstack` builds it with FFN's layer names (used by
:mod:`~diluvian.network.ffn_import`); :func:`make_ffn_convstack` is the
``[network] factory`` for training one from scratch
(``factory = "diluvian.network.make_ffn_convstack"``), sized by ``[network]
num_modules``, ``convolution_filters`` and ``convolution_dim``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from .layers import CentralCrop3D, ProbabilityToLogit

__all__ = ["FFN_IMAGE_MEAN", "FFN_IMAGE_STD", "build_ffn_convstack", "make_ffn_convstack"]

#: FFN's image normalisation of raw ``uint8`` values: ``(raw - mean) / std``.
FFN_IMAGE_MEAN = 128.0
FFN_IMAGE_STD = 33.0


def build_ffn_convstack(
    fov_shape: Sequence[int] = (33, 33, 33), depth: int = 11, filters: int = 32,
    image_mean: float = FFN_IMAGE_MEAN, image_std: float = FFN_IMAGE_STD, *,
    output_fov_shape: Sequence[int] | None = None, kernel: Sequence[int] = (3, 3, 3),
    initialization: str = "glorot_uniform",
) -> keras.Model:
    """The FFN ``convstack_3d`` architecture as a diluvian-convention Keras model.

    Layer names follow FFN's checkpoints (``conv0_a`` ... ``conv{depth}_b``,
    ``conv_lom``).

    Parameters
    ----------
    fov_shape : sequence of 3 int
        Input field of view (ZYX).
    depth : int
        Number of residual modules.
    filters : int
        Filters per convolution.
    image_mean, image_std : float
        Image normalisation of raw ``uint8`` values.
    output_fov_shape : sequence of 3 int, optional
        Central output field of view; defaults to ``fov_shape`` (as in FFN).
    kernel : sequence of 3 int
        Convolution kernel shape.
    initialization : str
        Keras kernel initializer.
    """
    fov = tuple(int(v) for v in fov_shape)
    out = fov if output_fov_shape is None else tuple(int(v) for v in output_fov_shape)
    image_input = keras.Input(shape=(*fov, 1), dtype="float32", name="image_input")
    mask_input = keras.Input(shape=(*fov, 1), dtype="float32", name="mask_input")
    # Our image is raw / 256; FFN wants (raw - mean) / std.
    image = keras.layers.Rescaling(scale=256.0 / image_std, offset=-image_mean / image_std,
                                   name="image_normalization")(image_input)
    logits = ProbabilityToLogit(name="mask_logit", dtype="float32")(mask_input)
    x = keras.layers.Concatenate(axis=-1, name="image_logit")([image, logits])

    def conv(t, name, activation=None, size=tuple(kernel), n=filters):
        return keras.layers.Conv3D(n, size, padding="same", activation=activation,
                                   kernel_initializer=initialization, name=name)(t)

    x = conv(x, "conv0_a", "relu")
    x = conv(x, "conv0_b")
    for i in range(1, depth + 1):
        x_in = x
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        x = conv(x, f"conv{i}_a", "relu")
        x = conv(x, f"conv{i}_b")
        x = keras.layers.Add(name=f"residual{i}")([x_in, x])
    x = keras.layers.Activation("relu", name="relu_lom")(x)
    update = conv(x, "conv_lom", size=(1, 1, 1), n=1)
    if out != fov:
        update = CentralCrop3D(out, name="update_crop")(update)
        logits = CentralCrop3D(out, name="logit_crop", dtype="float32")(logits)
    new_logits = keras.layers.Add(name="logit_update", dtype="float32")([logits, update])
    mask_output = keras.layers.Activation("sigmoid", dtype="float32",
                                          name="mask_output")(new_logits)
    return keras.Model([image_input, mask_input], mask_output, name="ffn_convstack_3d")


def make_ffn_convstack(input_fov_shape, output_fov_shape, network_config) -> keras.Model:
    """``[network] factory`` building an FFN-style residual stack (see the module docstring).

    ``num_modules`` residual modules of two ``convolution_dim`` convolutions
    with ``convolution_filters`` filters each, initialised with
    ``initialization``. Unlike :func:`~diluvian.network.make_flood_fill_network`
    the mask is processed as logits and the output is the input mask's
    logits plus a learnt update, so a network starts out repeating its mask
    input, and the image is normalised as FFN does (``(raw - 128) / 33``).

    Parameters
    ----------
    input_fov_shape, output_fov_shape : sequence of 3 int
        Input and output field of view (ZYX voxels).
    network_config : diluvian.config.NetworkConfig

    Returns
    -------
    keras.Model
    """
    from .architectures import _build

    def build(in_shape, out_shape, nc):
        return build_ffn_convstack(
            in_shape, depth=int(nc.num_modules), filters=int(nc.convolution_filters),
            output_fov_shape=out_shape, kernel=tuple(int(v) for v in nc.convolution_dim),
            initialization=nc.initialization)

    return _build(build, "make_ffn_convstack", input_fov_shape, output_fov_shape,
                  network_config)
