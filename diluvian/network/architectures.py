"""Flood-filling network architectures and the factory lookup.

Every diluvian model follows one I/O convention, which the rest of diluvian
relies on:

- two inputs, ``image_input`` and ``mask_input``, each shaped
  ``(batch, z, y, x, 1)`` float32: the image in [0, 1) (raw ``uint8 / 256``)
  and the current object mask as a **probability** (unset voxels hold
  ``v_false``);
- one output, ``mask_output``, shaped ``(batch, oz, oy, ox, 1)``: the new
  mask **probabilities** for the central output field of view.

Image normalisation, any probability-to-logit conversion and the final
sigmoid are layers inside the model, so callers never pre- or post-process.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from ..util import DiluvianError, get_function
from .layers import CentralCrop3D

__all__ = [
    "add_convolution_module",
    "add_unet_layer",
    "make_flood_fill_network",
    "make_flood_fill_unet",
    "make_network",
    "unet_downsample_factors",
    "unet_level_resolutions",
]


# --------------------------------------------------------------------------
# Pure helpers.
# --------------------------------------------------------------------------


def unet_downsample_factors(
    depth: int,
    rate: Sequence[int] | None = None,
    mode: str = "fixed_rate",
    resolution: Sequence[float] | None = None,
) -> np.ndarray:
    """Downsampling factor (1 or 2) per axis (ZYX) for each of ``depth`` U-Net levels.

    Parameters
    ----------
    depth : int
        Number of downsampled levels.
    rate : sequence of 3 int, optional
        For ``'fixed_rate'``: axis ``i`` is halved at level ``l`` (1-based)
        when ``rate[i] > 0`` and ``l % rate[i] == 0``; 0 never halves it.
    mode : str
        ``'fixed_rate'`` or ``'isotropy_approximating'``.
    resolution : sequence of 3 numbers, optional
        Voxel size (ZYX) for ``'isotropy_approximating'``: at each level the
        finest axes are halved, choosing the set of axes (always the finest
        first) whose result is closest to isotropic.

    Returns
    -------
    ndarray of int, shape (depth, 3)

    Examples
    --------
    >>> unet_downsample_factors(3, rate=[2, 1, 0]).tolist()
    [[1, 2, 1], [2, 2, 1], [1, 2, 1]]
    >>> unet_downsample_factors(2, mode="isotropy_approximating", resolution=[40, 4, 4]).tolist()
    [[1, 2, 2], [1, 2, 2]]
    """
    depth = int(depth)
    factors = np.ones((max(depth, 0), 3), dtype=np.int64)
    if mode == "fixed_rate":
        if rate is None:
            raise DiluvianError("[network] unet_downsample_rate is required for 'fixed_rate'")
        rate = np.asarray(rate, dtype=np.int64)
        if rate.shape != (3,) or np.any(rate < 0):
            raise DiluvianError(f"[network] unet_downsample_rate = {rate.tolist()} must be 3 "
                                "non-negative integers")
        for level in range(1, depth + 1):
            factors[level - 1] = np.where((rate > 0) & (level % np.maximum(rate, 1) == 0), 2, 1)
        return factors
    if mode == "isotropy_approximating":
        if resolution is None:
            raise DiluvianError("[network] unet_downsample_mode = 'isotropy_approximating' "
                                "needs [network] resolution (or [volume] resolution)")
        res = np.asarray(resolution, dtype=np.float64)
        if res.shape != (3,) or np.any(res <= 0):
            raise DiluvianError(f"[network] resolution = {res.tolist()} must be 3 positive numbers")
        for level in range(depth):
            best = None
            for threshold in np.unique(res):  # ascending: fewer axes win ties
                f = np.where(res <= threshold, 2, 1)
                new = res * f
                ratio = new.max() / new.min()
                if best is None or ratio < best[0] - 1e-12:
                    best = (ratio, f)
            factors[level] = best[1]
            res = res * best[1]
        return factors
    raise DiluvianError(f"[network] unet_downsample_mode = {mode!r} is invalid: expected "
                        "'fixed_rate' or 'isotropy_approximating'")


def unet_level_resolutions(resolution: Sequence[float], factors: np.ndarray) -> np.ndarray:
    """Voxel size (ZYX) at each downsampled level given per-level ``factors``.

    Examples
    --------
    >>> f = unet_downsample_factors(4, mode="isotropy_approximating", resolution=[40, 4, 4])
    >>> unet_level_resolutions([40, 4, 4], f).tolist()
    [[40, 8, 8], [40, 16, 16], [40, 32, 32], [80, 64, 64]]
    """
    res = np.asarray(resolution)
    return res * np.cumprod(np.asarray(factors), axis=0)


def _check_names(network_config) -> None:
    checks = [
        ("convolution_activation", keras.activations.get, "a Keras activation"),
        ("output_activation", keras.activations.get, "a Keras activation"),
        ("initialization", keras.initializers.get, "a Keras initializer"),
    ]
    for key, getter, what in checks:
        value = getattr(network_config, key)
        try:
            getter(value)
        except (ValueError, TypeError):
            raise DiluvianError(f"[network] {key} = {value!r} is not {what}") from None


def _fov(shape, name: str) -> tuple[int, int, int]:
    arr = np.asarray(shape)
    if arr.shape != (3,) or np.any(arr < 1):
        raise DiluvianError(f"[model] {name} = {arr.tolist()} must be 3 positive integers")
    return tuple(int(v) for v in arr)


def _inputs(input_fov_shape, network_config):
    image_input = keras.Input(shape=(*input_fov_shape, 1), dtype="float32", name="image_input")
    mask_input = keras.Input(shape=(*input_fov_shape, 1), dtype="float32", name="mask_input")
    image = image_input
    if network_config.rescale_image:
        image = keras.layers.Rescaling(scale=2.0, offset=-1.0, name="image_rescale")(image)
    x = keras.layers.Concatenate(axis=-1, name="image_mask")([image, mask_input])
    return image_input, mask_input, x


def _conv(x, filters: int, network_config, activation=None, name: str | None = None):
    return keras.layers.Conv3D(
        filters,
        kernel_size=tuple(int(v) for v in network_config.convolution_dim),
        padding=network_config.convolution_padding,
        kernel_initializer=network_config.initialization,
        activation=activation,
        name=name,
    )(x)


def _post(x, network_config, dropout: bool = True):
    if network_config.batch_normalization:
        x = keras.layers.BatchNormalization()(x)
    if dropout and network_config.dropout_probability > 0:
        x = keras.layers.Dropout(network_config.dropout_probability)(x)
    return x


def _spatial(x) -> tuple[int, int, int]:
    return tuple(int(v) for v in x.shape[1:4])


def _crop_to(x, target):
    target = tuple(int(v) for v in target)
    if _spatial(x) == target:
        return x
    return CentralCrop3D(target)(x)


def _output(x, image_input, mask_input, output_fov_shape, network_config, name: str):
    if any(s < t for s, t in zip(_spatial(x), output_fov_shape)):
        raise DiluvianError(
            f"[network] {name}: the network output {list(_spatial(x))} is smaller than "
            f"[model] output_fov_shape {list(output_fov_shape)} (too much 'valid' padding "
            "for the input FOV)")
    x = _crop_to(x, output_fov_shape)
    mask_output = keras.layers.Conv3D(
        1, (1, 1, 1), kernel_initializer=network_config.initialization,
        activation=network_config.output_activation, dtype="float32", name="mask_output")(x)
    return keras.Model(inputs=[image_input, mask_input], outputs=mask_output, name=name)


def _build(builder, name, input_fov_shape, output_fov_shape, network_config):
    input_fov_shape = _fov(input_fov_shape, "input_fov_shape")
    output_fov_shape = _fov(output_fov_shape, "output_fov_shape")
    _check_names(network_config)
    try:
        return builder(input_fov_shape, output_fov_shape, network_config)
    except ValueError as exc:  # e.g. a 'valid' convolution on a too small tensor
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DiluvianError(
            f"[network] cannot build {name} for input_fov_shape {list(input_fov_shape)}, "
            f"output_fov_shape {list(output_fov_shape)}: {msg}") from exc


# --------------------------------------------------------------------------
# Architectures.
# --------------------------------------------------------------------------


def add_convolution_module(model, network_config):
    """One residual convolution module on tensor ``model`` (diluvian 0.0.6's name).

    ``num_layers_per_module`` convolutions in parallel with a skip link
    (cropped to match for ``'valid'`` padding), summed and activated, then
    batch normalisation and dropout as configured. Returns the output tensor.
    """
    nc, act, y = network_config, network_config.convolution_activation, model
    for layer in range(nc.num_layers_per_module):
        last = layer == nc.num_layers_per_module - 1
        y = _conv(y, nc.convolution_filters, nc, activation=None if last else act)
        if not last:
            y = _post(y, nc, dropout=False)
    x = keras.layers.Add()([_crop_to(model, _spatial(y)), y])
    x = keras.layers.Activation(act)(x)
    return _post(x, nc)


def add_unet_layer(model, network_config, remaining_layers, output_shape=None, factors=None):
    """A U-Net of ``remaining_layers`` downsampled levels on tensor ``model`` (0.0.6's name).

    See :func:`make_flood_fill_unet`. ``factors`` are the per-level
    downsampling factors (default: from ``network_config``, see
    :func:`unet_downsample_factors`); with ``output_shape`` the result is
    centre-cropped to it. Returns the output tensor (before the final 1x1x1
    convolution).
    """
    nc, x = network_config, model
    if factors is None:
        factors = unet_downsample_factors(remaining_layers, nc.unet_downsample_rate,
                                          nc.unet_downsample_mode, nc.resolution)
    act = nc.convolution_activation
    depth = int(remaining_layers)
    skips = []
    for level in range(depth + 1):
        if level > 0:
            x = keras.layers.MaxPooling3D(
                pool_size=tuple(int(f) for f in factors[level - 1]), padding="same")(x)
        for _ in range(nc.num_layers_per_module):
            x = _conv(x, nc.convolution_filters * 2 ** level, nc, activation=act)
            x = _post(x, nc, dropout=False)
        x = _post(x, nc) if level == depth else x
        if level < depth:
            skips.append(x)
    for level in reversed(range(depth)):
        x = keras.layers.UpSampling3D(size=tuple(int(f) for f in factors[level]))(x)
        skip = skips[level]
        common = np.minimum(_spatial(x), _spatial(skip))
        x = keras.layers.Concatenate(axis=-1)([_crop_to(skip, common), _crop_to(x, common)])
        for _ in range(nc.num_layers_per_module):
            x = _conv(x, nc.convolution_filters * 2 ** level, nc, activation=act)
            x = _post(x, nc, dropout=False)
    return x if output_shape is None else _crop_to(x, output_shape)


def make_flood_fill_network(input_fov_shape, output_fov_shape, network_config) -> keras.Model:
    """Residual stack of convolution modules (the original diluvian network).

    One convolution, then ``num_modules`` modules, each
    ``num_layers_per_module`` convolutions in parallel with a skip link
    (cropped to match for ``'valid'`` padding), summed and activated
    (batch normalisation after the activation, then dropout), then a
    central crop to ``output_fov_shape`` and a 1x1x1 convolution with
    ``output_activation``.

    Parameters
    ----------
    input_fov_shape, output_fov_shape : sequence of 3 int
        Input and output field of view (ZYX voxels).
    network_config : diluvian.config.NetworkConfig
        Architecture settings.

    Returns
    -------
    keras.Model
        Inputs ``image_input`` and ``mask_input``, output ``mask_output``
        (probabilities), all shaped ``(batch, z, y, x, 1)``.
    """
    def build(in_shape, out_shape, nc):
        image_input, mask_input, x = _inputs(in_shape, nc)
        act = nc.convolution_activation
        x = _conv(x, nc.convolution_filters, nc, activation=act)
        x = _post(x, nc, dropout=False)
        for _ in range(nc.num_modules):
            x = add_convolution_module(x, nc)
        return _output(x, image_input, mask_input, out_shape, nc, "flood_fill_network")

    return _build(build, "make_flood_fill_network", input_fov_shape, output_fov_shape,
                  network_config)


def make_flood_fill_unet(input_fov_shape, output_fov_shape, network_config) -> keras.Model:
    """U-Net with ``unet_depth`` downsampled levels.

    Each level has ``num_layers_per_module`` convolutions before max pooling
    (``padding="same"``, so odd sizes such as 33 -> 17 -> 9 -> 5 -> 3 work)
    and after up-sampling; filters double per level. The up-sampled tensor
    and its skip link are centre-cropped to their common shape and
    concatenated. Factors per level come from
    :func:`unet_downsample_factors` (``unet_downsample_rate`` or
    ``unet_downsample_mode = "isotropy_approximating"`` with
    ``resolution``). With ``'valid'`` padding the output is smaller than the
    input; the result is centre-cropped to ``output_fov_shape``.

    Parameters
    ----------
    input_fov_shape, output_fov_shape : sequence of 3 int
        Input and output field of view (ZYX voxels).
    network_config : diluvian.config.NetworkConfig
        Architecture settings.

    Returns
    -------
    keras.Model
        Inputs ``image_input`` and ``mask_input``, output ``mask_output``.
    """
    factors = unet_downsample_factors(
        network_config.unet_depth, network_config.unet_downsample_rate,
        network_config.unet_downsample_mode, network_config.resolution)

    def build(in_shape, out_shape, nc):
        image_input, mask_input, x = _inputs(in_shape, nc)
        x = add_unet_layer(x, nc, len(factors), factors=factors)
        return _output(x, image_input, mask_input, out_shape, nc, "flood_fill_unet")

    return _build(build, "make_flood_fill_unet", input_fov_shape, output_fov_shape, network_config)


def make_network(model_config, network_config) -> keras.Model:
    """Build the network named by ``network_config.factory`` for ``model_config``'s FOV shapes.

    The factory is any function found by dotted name (e.g.
    ``"mypackage.nets.make_net"``) taking ``(input_fov_shape,
    output_fov_shape, network_config)`` and returning a Keras model that
    follows the diluvian I/O convention.

    Raises
    ------
    DiluvianError
        If the factory can not be found or its model breaks the convention.
    """
    factory = get_function(network_config.factory)
    if not callable(factory):
        raise DiluvianError(f"[network] factory = {network_config.factory!r} is not callable")
    model = factory(model_config.input_fov_shape, model_config.output_fov_shape, network_config)
    from .io import check_model_io

    check_model_io(model, f"[network] factory = {network_config.factory!r}")
    return model
