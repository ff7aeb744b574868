"""Compile, save and load diluvian models; model settings carried in the file.

A diluvian model file is a Keras ``.keras`` archive with one extra entry,
``diluvian.json``, holding the model settings it was made with (FOV shapes,
move step, soft mask values, thresholds, how the image is normalised and
whether the network works on mask logits). :func:`apply_model_settings`
copies them into a :class:`diluvian.config.Config` for every key the user did
not set explicitly, so ``-m model.keras`` alone is enough to fill.
"""

from __future__ import annotations

import inspect
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..modelfile import SETTINGS_ENTRY, read_model_settings
from ..util import DiluvianError, atomic_output
from . import layers as _layers  # noqa: F401  (registers the custom layers)

__all__ = [
    "SETTINGS_ENTRY",
    "apply_model_settings",
    "check_model_io",
    "compile_network",
    "optimizer_arguments",
    "load_model",
    "model_settings_from_config",
    "move_step_fraction",
    "read_model_settings",
    "save_model",
    "transpose_model",
]

logger = logging.getLogger(__name__)

#: Settings keys copied into ``[model]``.
MODEL_KEYS = ("input_fov_shape", "output_fov_shape", "output_fov_move_fraction", "v_true",
              "v_false", "t_move", "t_final", "move_check_thickness", "move_policy")
#: Settings keys copied into ``[fill]``.
FILL_KEYS = ("min_body_size",)
#: Settings keys copied into ``[volume]``: volumes are filled at the resolution trained on.
VOLUME_KEYS = ("resolution",)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------
# I/O convention.
# --------------------------------------------------------------------------


def check_model_io(model, where: str) -> None:
    """Raise :class:`DiluvianError` unless ``model`` follows the diluvian I/O convention.

    Inputs ``image_input`` and ``mask_input`` and output ``mask_output``, all
    five-dimensional ``(batch, z, y, x, 1)``.
    """
    names = [t.name for t in getattr(model, "inputs", None) or []]
    outputs = list(getattr(model, "output_names", None) or [])
    if sorted(names) != ["image_input", "mask_input"] or outputs != ["mask_output"]:
        raise DiluvianError(
            f"{where}: is not a diluvian model: expected inputs 'image_input', 'mask_input' and "
            f"output 'mask_output', found inputs {names} and outputs {outputs}")
    shapes = [tuple(t.shape) for t in model.inputs] + [tuple(model.outputs[0].shape)]
    if any(len(s) != 5 or s[-1] != 1 for s in shapes):
        raise DiluvianError(f"{where}: is not a diluvian model: inputs and output must be shaped "
                            f"(batch, z, y, x, 1), found {shapes}")


def transpose_model(model) -> keras.Model:
    """Wrap an X, Y, Z-ordered model so that it takes and returns Z, Y, X arrays.

    The spatial axes of both inputs are reversed before the model and those
    of its output after it (``keras.layers.Permute``).
    """
    perm = (3, 2, 1, 4)
    image_input = keras.Input(shape=tuple(model.inputs[0].shape[1:4])[::-1] + (1,),
                              dtype="float32", name="image_input")
    mask_input = keras.Input(shape=tuple(model.inputs[1].shape[1:4])[::-1] + (1,),
                             dtype="float32", name="mask_input")
    by_name = {t.name: i for i, t in enumerate(model.inputs)}
    xyz = [None, None]
    xyz[by_name["image_input"]] = keras.layers.Permute(perm, name="image_to_xyz")(image_input)
    xyz[by_name["mask_input"]] = keras.layers.Permute(perm, name="mask_to_xyz")(mask_input)
    out = model(xyz)
    out = keras.layers.Permute(perm, name="mask_output")(out)
    return keras.Model([image_input, mask_input], out, name=f"{model.name}_zyx")


# --------------------------------------------------------------------------
# Compile.
# --------------------------------------------------------------------------


def optimizer_arguments(klass) -> list[str]:
    """Keyword arguments the constructor of the Keras optimizer class ``klass`` accepts.

    Follows ``**kwargs`` up the class hierarchy (a Keras optimizer passes
    ``clipnorm``, ``weight_decay`` and so on to its base class).
    """
    names: list[str] = []
    for cls in klass.__mro__:
        if cls is object or "__init__" not in vars(cls):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters.values()
        names.extend(p.name for p in params if p.name != "self" and p.name not in names
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _optimizer_kwargs(optimizer_config, klass_name: str, klass) -> dict[str, Any]:
    """The ``[optimizer]`` arguments to pass to ``klass``.

    Arguments the packaged defaults carry that ``klass`` does not accept
    (``momentum`` and ``nesterov`` of the default SGD for Adam, say) are
    dropped; one set by the user that it does not accept is an error.
    """
    accepted = optimizer_arguments(klass)
    kwargs = {}
    for key, value in optimizer_config.kwargs.items():
        if key in accepted:
            kwargs[key] = value
            continue
        from_defaults = getattr(optimizer_config, "from_defaults", None)
        if from_defaults is not None and from_defaults(key):
            logger.debug("[optimizer] %s = %r (from the defaults) is not an argument of %s; "
                         "dropped", key, value, klass_name)
            continue
        source_of = getattr(optimizer_config, "source_of", None)
        source = source_of(key) if source_of is not None else "<settings>"
        raise DiluvianError(f"{source}: [optimizer] {key} = {value!r} is not an argument of "
                            f"keras.optimizers.{klass_name}; accepted: {', '.join(accepted)}")
    return kwargs


def compile_network(model, optimizer_config, metrics=None) -> keras.Model:
    """Compile ``model`` with the optimizer and loss named in ``optimizer_config``.

    Parameters
    ----------
    model : keras.Model
    optimizer_config : diluvian.config.OptimizerConfig
        ``klass`` names any ``keras.optimizers`` class; its other keys
        (``optimizer_config.kwargs``) are passed to the constructor; ``loss``
        names a Keras loss (or is a dotted name of a loss function). Keys
        that only the packaged defaults set (e.g. ``momentum`` for the
        default SGD) and that ``klass`` does not accept are dropped from
        ``optimizer_config`` (so a configuration saved afterwards no longer
        carries them).
    metrics : list, optional
        Passed to ``model.compile``.

    Returns
    -------
    keras.Model
        The same model, compiled.

    Raises
    ------
    DiluvianError
        For an unknown optimizer or loss name, an explicitly set argument
        the optimizer does not accept, or an invalid argument value.
    """
    klass_name = optimizer_config.klass
    klass = getattr(keras.optimizers, klass_name, None)
    if not (isinstance(klass, type) and issubclass(klass, keras.optimizers.Optimizer)
            and klass is not keras.optimizers.Optimizer):
        known = sorted(n for n, v in vars(keras.optimizers).items()
                       if isinstance(v, type) and issubclass(v, keras.optimizers.Optimizer)
                       and n != "Optimizer")
        raise DiluvianError(f"[optimizer] klass = {klass_name!r} is not a Keras optimizer; "
                            f"expected one of {', '.join(known)}")
    kwargs = _optimizer_kwargs(optimizer_config, klass_name, klass)
    discard = getattr(optimizer_config, "discard", None)
    if discard is not None:
        for key in list(optimizer_config.kwargs):
            if key not in kwargs:
                discard(key)
    try:
        optimizer = klass(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DiluvianError(f"[optimizer] klass = {klass_name!r} rejects the arguments "
                            f"{kwargs}: {str(exc).splitlines()[0]}") from None
    loss_name = optimizer_config.loss
    if "." in loss_name:
        from ..util import get_function

        loss = get_function(loss_name)
    else:
        try:
            loss = keras.losses.get(loss_name)
        except (ValueError, TypeError):
            loss = None
        if loss is None:
            raise DiluvianError(f"[optimizer] loss = {loss_name!r} is not a Keras loss "
                                "(e.g. 'binary_crossentropy')")
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


# --------------------------------------------------------------------------
# Save and load.
# --------------------------------------------------------------------------


def model_settings_from_config(config=None, **overrides) -> dict[str, Any]:
    """Model settings (for :func:`save_model`) of a diluvian-built model under ``config``.

    Parameters
    ----------
    config : diluvian.config.Config, optional
        Defaults to :data:`diluvian.config.CONFIG`.
    **overrides
        Keys to add or replace.
    """
    if config is None:
        from ..config import CONFIG as config
    m = config.model
    settings = {
        "source": "diluvian",
        "input_fov_shape": m.input_fov_shape,
        "output_fov_shape": m.output_fov_shape,
        "output_fov_move_fraction": m.output_fov_move_fraction,
        "move_step": m.move_step,
        "v_true": m.v_true,
        "v_false": m.v_false,
        "t_move": m.t_move,
        "move_policy": m.move_policy,
        "resolution": config.volume.resolution,
        "mask_input": "probability",
        "image_normalization": "rescale" if config.network.rescale_image else "unit",
        "network": config.network.settings(),
    }
    if m.t_final is not None:
        settings["t_final"] = m.t_final
    if config.fill.min_body_size:
        settings["min_body_size"] = int(config.fill.min_body_size)
    settings.update(overrides)
    return _jsonable(settings)


def save_model(model, filename, settings: dict[str, Any] | None = None) -> None:
    """Write ``model`` and its ``settings`` to a ``.keras`` file, atomically.

    Parameters
    ----------
    model : keras.Model
    filename : str or path-like
        Must end in ``.keras``.
    settings : dict, optional
        JSON-serialisable model settings (see
        :func:`model_settings_from_config`), stored as ``diluvian.json``
        inside the archive.
    """
    path = Path(filename)
    if path.suffix != ".keras":
        raise DiluvianError(f"{path}: model files must end in '.keras'")
    payload = json.dumps(_jsonable(dict(settings or {})), indent=1, sort_keys=True)
    with atomic_output(path, suffix=".keras") as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(SETTINGS_ENTRY, payload)


_FLOAT32_LAYERS = ("mask_output", "logit_update", "logit_crop")


def with_dtype_policy(model, dtype_policy: str):
    """A copy of ``model`` (same weights) whose layers run under ``dtype_policy``.

    The probability-to-logit conversion, the final logit update and the
    output stay in float32.
    """
    try:
        policy = keras.dtype_policies.get(dtype_policy)
    except (ValueError, TypeError):
        raise DiluvianError(f"dtype_policy = {dtype_policy!r} is not a Keras dtype policy "
                            "(e.g. 'bfloat16', 'float16', 'mixed_bfloat16')") from None

    def clone(layer):
        config = layer.get_config()
        # The logit conversion, the final logit update and the output stay in float32.
        if layer.name not in _FLOAT32_LAYERS and not isinstance(layer, _layers.ProbabilityToLogit):
            config["dtype"] = policy.name
        return layer.__class__.from_config(config)

    clone_model = keras.models.clone_model(model, clone_function=clone)
    clone_model.set_weights(model.get_weights())
    return clone_model


def load_model(model_file, network_config=None, compile: bool = False,
               dtype_policy: str | None = None) -> keras.Model:
    """Load a diluvian model file (in Keras' safe mode).

    Parameters
    ----------
    model_file : str or path-like
        A ``.keras`` file following the diluvian I/O convention.
    network_config : diluvian.config.NetworkConfig, optional
        With ``transpose`` set, the model is wrapped so that it takes and
        returns Z, Y, X arrays although it was built for X, Y, Z.
    compile : bool
        Whether to restore the training configuration saved with the model.
    dtype_policy : str, optional
        Run the model's layers under a Keras dtype policy such as
        ``'bfloat16'``, ``'float16'`` or ``'mixed_bfloat16'``; the output
        stays float32 probabilities.

    Raises
    ------
    DiluvianError
        If the file is missing, corrupt, or not a diluvian model.
    """
    read_model_settings(model_file)  # checks the archive
    try:
        model = keras.saving.load_model(str(model_file), compile=compile, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - keras raises many kinds for bad files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DiluvianError(f"{model_file}: cannot load the Keras model: {msg}") from exc
    check_model_io(model, str(model_file))
    if dtype_policy is not None:
        model = with_dtype_policy(model, dtype_policy)
    if network_config is not None and network_config.transpose:
        model = transpose_model(model)
    return model


def move_step_fraction(output_fov_shape, move_step) -> int | None:
    """The smallest ``output_fov_move_fraction`` giving ``move_step``
    (``output_fov_shape // fraction``), or ``None`` if none does."""
    out = np.asarray(output_fov_shape, dtype=np.int64)
    step = np.asarray(move_step, dtype=np.int64)
    for fraction in range(1, int(out.max()) + 1):
        if np.array_equal(out // fraction, step):
            return fraction
    return None


def apply_model_settings(config, settings: dict[str, Any], source: str = "<model file>"):
    """Copy model-file ``settings`` into ``config`` for keys the user did not set explicitly.

    ``[model]`` keys (FOV shapes, ``output_fov_move_fraction`` or
    ``move_step``, ``v_true``, ``v_false``, ``t_move``, ``t_final``,
    ``move_policy``), ``[fill] min_body_size`` and ``[volume] resolution``
    (the resolution the model was trained at) are updated in place unless
    ``config.explicitly_set("model.<key>")``. An explicitly set FOV shape
    that differs from the model's is an error, since the network can not
    take it.

    Returns
    -------
    diluvian.config.Config
        ``config`` itself.
    """
    settings = dict(settings)
    if ("output_fov_move_fraction" not in settings and "move_step" in settings
            and "output_fov_shape" in settings):
        fraction = move_step_fraction(settings["output_fov_shape"], settings["move_step"])
        if fraction is not None:
            settings["output_fov_move_fraction"] = fraction
    for key in ("input_fov_shape", "output_fov_shape"):
        if key in settings and config.explicitly_set(f"model.{key}"):
            model_value = [int(v) for v in settings[key]]
            if getattr(config.model, key).tolist() != model_value:
                raise DiluvianError(
                    f"{source}: the model has {key} {model_value} but the configuration sets "
                    f"[model] {key} = {getattr(config.model, key).tolist()}")
    for section, keys in (("model", MODEL_KEYS), ("fill", FILL_KEYS), ("volume", VOLUME_KEYS)):
        section_config = getattr(config, section)
        for key in keys:
            if key not in settings or config.explicitly_set(f"{section}.{key}"):
                continue
            field = section_config.FIELDS[key]
            value = settings[key]
            try:
                value = None if value is None else field.convert(value)
            except ValueError:
                raise DiluvianError(f"{source}: model setting {key} = {value!r} is invalid: "
                                    f"expected {field.describe()}") from None
            setattr(section_config, key, value)
    config.model._validate(source)
    return config
