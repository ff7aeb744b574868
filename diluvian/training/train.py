"""``train_network`` and ``validate_model``: the training loop and its outputs.

Outputs of :func:`train_network` for a base name ``BASE`` (default
``diluvian-model`` in the working directory):

``BASE.keras``
    The best model so far (by the validation metric; by the training loss
    when ``validation_size`` is 0), with its model settings (see
    :func:`diluvian.network.save_model`).
``BASE.toml``
    The full configuration used, written with the run's first model.
``BASE.csv``
    History, one row per epoch: ``epoch``, ``loss``, ``val_loss``,
    ``val_<metric>``, ``minutes`` (wall time since training started),
    ``samples`` (training samples so far) and any other logged values. A
    run continued from a model file (``model_file``) starts with epoch 0:
    the starting model's validation, which ``BASE.keras`` keeps until an
    epoch validates better.
``BASE.png``
    With ``metric_plot``: loss and metric per epoch.
``BASE-interrupted.keras``
    On Ctrl-C: the model of the last completed epoch.
``BASE-logs/``
    With ``tensorboard``: TensorBoard event files, per epoch: ``train/``
    (``epoch_loss``, ``epoch_learning_rate``) and ``validation/``
    (``epoch_loss`` and the validation metric). View them with
    ``tensorboard --logdir BASE-logs``.

Each file is written atomically, and a run does not touch ``BASE.keras``,
``BASE.toml`` or ``BASE.csv`` before it has a model of its own: an earlier
run's files with the same ``BASE`` stay a consistent set until then (and
are replaced, as a set, from then on). A run always ends with a model file:
if no epoch had a finite validation metric, the last epoch's model is saved.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..util import DiluvianError, write_history_csv
from .data import TrainingData, make_tf_dataset
from .moving import MovingTrainer, fit_moving
from .outputs import _require, plot_history, show_training_sample
from .validation import ValidationSet, metric_name

__all__ = [
    "DEFAULT_MODEL_OUTPUT_FILEBASE",
    "TrainingResult",
    "show_training_sample",
    "train_network",
    "validate_model",
]

logger = logging.getLogger(__name__)

#: Base name of the outputs when ``model_output_filebase`` is not given.
DEFAULT_MODEL_OUTPUT_FILEBASE = "diluvian-model"
#: Most restarts under a new seed with ``early_restart``.
MAX_EARLY_RESTARTS = 10


@dataclass
class TrainingResult:
    """What :func:`train_network` returns.

    Attributes
    ----------
    model : keras.Model
        The trained model (weights of the last epoch).
    history : list of dict
        One row per epoch (as written to ``BASE.csv``).
    best_epoch : int or None
        1-based epoch of the best validation metric.
    best_metric : float or None
    model_file : Path
        ``BASE.keras``.
    aborted : bool
        Whether ``early_abort_epoch`` stopped training (after any restarts).
    random_seed : int or None
        The seed of the (last) run.
    """

    model: Any
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    model_file: Path | None = None
    aborted: bool = False
    random_seed: int | None = None


# --------------------------------------------------------------------------
# Model and devices.
# --------------------------------------------------------------------------


def _strategy(num_gpus: int):
    import tensorflow as tf

    if num_gpus <= 1:
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) < num_gpus:
        raise DiluvianError(f"[training] num_gpus = {num_gpus} but only {len(gpus)} GPU(s) "
                            "are available")
    return tf.distribute.MirroredStrategy(devices=[g.name for g in gpus[:num_gpus]])


def _build_model(model_file, config, policy: str | None):
    """A compiled model: loaded from ``model_file`` (settings applied to ``config``) or new.

    With a mixed ``policy`` the layers compute in half precision (weights
    stay float32) and the optimizer scales the loss for ``mixed_float16``.
    """
    from ..network import (
        apply_model_settings,
        compile_network,
        load_model,
        make_network,
        read_model_settings,
        training_policy_scope,
        with_dtype_policy,
    )

    with training_policy_scope(policy):
        if model_file is not None:
            apply_model_settings(config, read_model_settings(model_file), source=str(model_file))
            model = load_model(model_file, network_config=config.network)
        else:
            model = make_network(config.model, config.network)
        if policy is not None:
            model = with_dtype_policy(model, policy)
        return compile_network(model, config.optimizer)


#: Model-file settings that describe the network itself, kept from the starting model.
_CARRIED_SETTINGS = ("source", "mask_input", "image_normalization", "network")


def _model_settings(config, model_file=None) -> dict[str, Any]:
    """Settings saved with the trained model; a continued model keeps its network's own."""
    from ..network import model_settings_from_config, read_model_settings

    settings = model_settings_from_config(config)
    if model_file is not None:
        start = read_model_settings(model_file)
        for key in _CARRIED_SETTINGS:
            if key in start:
                settings[key] = start[key]
            else:
                settings.pop(key, None)
        settings["trained_from"] = Path(model_file).name
    return settings


def _default_base(model_output_filebase) -> Path:
    return Path(DEFAULT_MODEL_OUTPUT_FILEBASE if model_output_filebase is None
                else model_output_filebase)


def _suffixed(base: Path, suffix: str) -> Path:
    return base.with_name(base.name + suffix)


# --------------------------------------------------------------------------
# Epoch-end bookkeeping, shared by both training regimes.
# --------------------------------------------------------------------------


class _EpochEnd:
    """Validation, best model, history, checkpoints, patience and early abort."""

    def __init__(self, model, validation: ValidationSet, config, base: Path,
                 checkpoint_file, metric_plot: bool, progress: bool, model_file=None):
        import time

        self.model = model
        self.started = time.monotonic()
        minutes = config.training.max_minutes
        self.deadline = None if minutes is None else self.started + 60.0 * float(minutes)
        self.validation = validation
        self.config = config
        self.base = base
        self.checkpoint_file = checkpoint_file
        self.metric_plot = metric_plot
        self.progress = progress
        t = config.training
        self.metric_key = "val_" + metric_name(t)
        self.mode = t.validation_metric.get("mode", "max")
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_loss = math.inf
        self.history: list[dict[str, float]] = []
        self.steps = 0  # training batches so far, for the ``samples`` history column
        self.last_weights = None
        self.stop = False
        self.aborted = False
        self.settings = _model_settings(config, model_file)
        #: Whether this run has written BASE.keras (and so BASE.toml) yet.
        self.saved = False
        #: The history column the model is chosen by (``val_voi`` with a dense validation).
        self.select_key = self.metric_key
        #: Whether nothing is validated (validation_size = 0, no dense box).
        self.by_training_loss = False
        if getattr(validation, "dense", None) is not None:
            self.select_key, self.mode = "val_voi", "min"
        elif not len(validation):
            self.metric_key = self.select_key = "val_loss"
            self.mode, self.by_training_loss = "min", True
            logger.warning("[training] validation_size = 0 (or no validation data): the model "
                           "is chosen by its training loss")

    def _save_best(self) -> None:
        """Write BASE.keras, then (on this run's first model) BASE.toml, each atomically."""
        self._save(_suffixed(self.base, ".keras"))
        if not self.saved:
            self.config.to_toml(_suffixed(self.base, ".toml"))
            self.saved = True

    def _append_row(self, epoch: int, logs: dict[str, Any]) -> dict[str, float]:
        """Add the history row of ``epoch`` (1-based; 0 the starting model) with ``logs``."""
        import time

        row = {"epoch": epoch}
        row.update({k: float(v) for k, v in logs.items()})
        row["minutes"] = round((time.monotonic() - self.started) / 60.0, 3)
        row["samples"] = self.steps * int(self.config.training.batch_size)
        self.history.append(row)
        return row

    def validate_start(self) -> None:
        """Score the starting model of a continued run as epoch 0 and keep it as the best so far.

        A fine-tuned model is then never worse on validation than the model
        it started from: BASE.keras stays the starting model until an epoch
        beats it.
        """
        if self.by_training_loss:
            return
        logs = {"loss": math.nan}
        value, loss = self._validate(logs)
        self._append_row(0, logs)
        self.best, self.best_epoch, self.best_loss = value, 0, loss
        self._save_best()
        write_history_csv(self.history, _suffixed(self.base, ".csv"))
        logger.info("starting model: %s = %.4g, val_loss = %.4g; it is kept unless an epoch "
                    "beats it (by more than start_margin = %g)", self.select_key, value, loss,
                    self.config.training.start_margin)

    def _validate(self, logs: dict[str, Any]) -> tuple[float, float]:
        """Validate the model into ``logs``; the value it is chosen by and the validation loss."""
        if self.by_training_loss:
            loss = float(logs.get("loss", math.nan))
            result = {"loss": loss, "metric": loss}
        else:
            result = self.validation.evaluate(self.model,
                                              batch_size=self.config.training.batch_size)
        logs["val_loss"] = result["loss"]
        logs[self.metric_key] = result["metric"]
        logs.update(result.get("dense", {}))
        return float(logs[self.select_key]), float(result["loss"])

    def finish(self) -> None:
        """Make sure the run ends with a model file: the last epoch's if none was better."""
        if self.saved or self.last_weights is None:
            return
        logger.warning("no epoch had a finite %s; saving the last epoch's model as %s",
                       self.select_key, _suffixed(self.base, ".keras"))
        self.model.set_weights(self.last_weights)
        self.best_epoch = self.history[-1]["epoch"]
        self._save_best()
        write_history_csv(self.history, _suffixed(self.base, ".csv"))

    @property
    def out_of_time(self) -> bool:
        """Whether ``[training] max_minutes`` have passed."""
        import time

        return self.deadline is not None and time.monotonic() >= self.deadline

    def _save(self, path) -> None:
        """Save the model in float32 (whatever policy it trains under) with its settings."""
        from ..network import save_model, with_dtype_policy

        model = self.model
        if model.dtype_policy.name != "float32" or any(
                layer.dtype_policy.name != "float32" for layer in model.layers):
            model = with_dtype_policy(model, "float32")
        save_model(model, path, self.settings)

    def _better(self, value: float, loss: float) -> bool:
        """Better metric; on a tie (e.g. F0.5 still 0 early on), lower validation loss."""
        if self.best is None or math.isnan(self.best):
            return not math.isnan(value)
        if math.isnan(value):
            return False
        # The starting model of a continued run (epoch 0) is replaced only by a clear margin.
        margin = float(self.config.training.start_margin) if self.best_epoch == 0 else 0.0
        if margin > 0:
            return value > self.best + margin if self.mode == "max" else value < self.best - margin
        if value == self.best:
            return loss < self.best_loss
        return value > self.best if self.mode == "max" else value < self.best

    def __call__(self, epoch: int, logs: dict[str, Any]) -> None:
        t = self.config.training
        value, loss = self._validate(logs)
        row = self._append_row(epoch + 1, logs)
        self.last_weights = self.model.get_weights()
        if self._better(value, loss):
            self.best, self.best_epoch = value, epoch + 1
            self.best_loss = loss
            self._save_best()
        if self.saved:
            # Until this run has a model, an earlier run's BASE.csv stays as it was.
            write_history_csv(self.history, _suffixed(self.base, ".csv"))
        if self.checkpoint_file:
            self._save(str(self.checkpoint_file).format(epoch=epoch + 1, **logs))
        if self.progress:
            logger.info("epoch %d: %s", epoch + 1,
                        ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        if (t.early_abort_epoch is not None and epoch + 1 == t.early_abort_epoch
                and t.early_abort_loss is not None and not loss < t.early_abort_loss):
            logger.warning("epoch %d: val_loss %.4g is not below early_abort_loss %.4g; aborting",
                           epoch + 1, loss, t.early_abort_loss)
            self.aborted = self.stop = True
        if self.out_of_time:
            logger.info("[training] max_minutes = %s reached; stopping", t.max_minutes)
            self.stop = True
        if self.best_epoch is not None and epoch + 1 - self.best_epoch > t.patience:
            logger.info("no better %s for %d epochs; stopping", self.select_key, t.patience)
            self.stop = True

    def save_interrupted(self) -> None:
        if self.last_weights is None:
            return
        self.model.set_weights(self.last_weights)
        path = _suffixed(self.base, "-interrupted.keras")
        self._save(path)
        logger.warning("interrupted: saved the model of epoch %d to %s",
                       self.history[-1]["epoch"], path)


def _keras_callback(epoch_end: _EpochEnd):
    import keras

    class _Callback(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            epoch_end.steps += 1
            if epoch_end.out_of_time:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            epoch_end(epoch, logs if logs is not None else {})
            if epoch_end.stop:
                self.model.stop_training = True

    return _Callback()


def _tensorboard_callback(log_dir: Path):
    _require("tensorboard", "--tensorboard")
    import keras

    return keras.callbacks.TensorBoard(log_dir=str(log_dir))


# --------------------------------------------------------------------------
# Public entry points.
# --------------------------------------------------------------------------


def _train_once(model_file, volumes, base: Path, model_checkpoint_file, tensorboard: bool,
                metric_plot: bool, config, progress: bool) -> TrainingResult:
    from ..volumes import partition_volumes

    t = config.training
    training_volumes, validation_volumes = partition_volumes(volumes, config=config)
    for role, subv, parts in (
            ("training", config.model.training_subv_shape_value, training_volumes),
            ("validation", config.model.validation_subv_shape_value, validation_volumes)):
        for name, volume in parts.items():
            if np.any(np.asarray(volume.shape) < np.asarray(subv)):
                raise DiluvianError(
                    f"the {role} partition of volume {name!r} has shape "
                    f"{list(map(int, volume.shape))}, smaller than the {role} subvolume "
                    f"{np.asarray(subv).tolist()} ([model] input_fov_shape or "
                    f"{role}_subv_shape)")
    strategy = _strategy(t.num_gpus)
    if config.random_seed is not None:
        # Weight initialisation, dropout and Keras' own shuffling follow the seed too.
        import keras

        keras.utils.set_random_seed(int(config.random_seed))
    from ..network import resolve_training_dtype_policy

    policy = resolve_training_dtype_policy(t.dtype_policy)
    with strategy.scope():
        model = _build_model(model_file, config, policy)
    # BASE.toml is written with this run's first model (see _EpochEnd._save_best), so an
    # earlier run's BASE.keras, BASE.toml and BASE.csv stay a consistent set until then.
    moving = bool(np.any(config.model.training_subv_shape_value > config.model.input_fov_shape))
    data = TrainingData(training_volumes, config, stream="training", augment=True,
                        subv_shape=config.model.training_subv_shape_value)
    validation = ValidationSet(validation_volumes, config)
    epoch_end = _EpochEnd(model, validation, config, base, model_checkpoint_file, metric_plot,
                          progress, model_file)
    if model_file is not None:
        epoch_end.validate_start()
    callbacks = []
    tb = None
    if tensorboard:
        tb = _tensorboard_callback(_suffixed(base, "-logs"))
    try:
        if moving:
            if tb is not None:
                tb.set_model(model)
                tb.on_train_begin()
            trainer = MovingTrainer(model, data, config, strategy)
            try:
                fit_moving(trainer, epoch_end, t.total_epochs, data.steps_per_epoch, progress,
                            tb)
            finally:
                trainer.close()
                if tb is not None:
                    tb.on_train_end()
        else:
            callbacks.append(_keras_callback(epoch_end))
            if tb is not None:
                callbacks.append(tb)
            dataset = make_tf_dataset(data, workers=t.num_workers,
                                      reset_generators=t.reset_generators)
            # Batches come in their seeded order; nothing to shuffle.
            model.fit(dataset, epochs=t.total_epochs, callbacks=callbacks, shuffle=False,
                      verbose=1 if progress else 0)
    except KeyboardInterrupt:
        epoch_end.save_interrupted()
        raise
    epoch_end.finish()
    if metric_plot and epoch_end.history:
        plot_history(epoch_end.history, _suffixed(base, ".png"))
    return TrainingResult(model=model, history=epoch_end.history,
                          best_epoch=epoch_end.best_epoch, best_metric=epoch_end.best,
                          model_file=_suffixed(base, ".keras"), aborted=epoch_end.aborted,
                          random_seed=config.random_seed)


def train_network(model_file=None, volumes=None, model_output_filebase=None,
                  model_checkpoint_file=None, tensorboard: bool = False, viewer: bool = False,
                  metric_plot: bool = False, early_restart: bool = False, config=None,
                  progress: bool = True) -> TrainingResult:
    """Train a flood-filling network on the training partitions of ``volumes``.

    Parameters
    ----------
    model_file : str or path-like, optional
        Continue training this saved model (its model settings are applied
        to the configuration); else a new network is built by
        ``[network] factory``.
    volumes : dict of str to Volume, optional
        Labelled volumes; default: the built-in synthetic dataset.
    model_output_filebase : str or path-like, optional
        Base name ``BASE`` of the outputs (see the module docstring);
        default :data:`DEFAULT_MODEL_OUTPUT_FILEBASE` in the working
        directory.
    model_checkpoint_file : str, optional
        Save the model after every epoch under this name, formatted with
        ``epoch`` (1-based) and the epoch's logs, e.g.
        ``'model.{epoch:02d}.keras'``.
    tensorboard : bool
        Write TensorBoard logs to ``BASE-logs/`` (needs the ``tensorboard``
        package).
    viewer : bool
        At the end, show the first training sample and the trained model's
        output in a neuroglancer viewer (see :func:`show_training_sample`;
        needs the ``neuroglancer`` package).
    metric_plot : bool
        Plot the history to ``BASE.png``.
    early_restart : bool
        If ``early_abort_epoch`` aborts training, restart with a new seed
        (at most :data:`MAX_EARLY_RESTARTS` times).
    config : Config, optional
        Defaults to :data:`diluvian.config.CONFIG` (copied, never modified).
    progress : bool
        Show a progress bar per epoch.

    Returns
    -------
    TrainingResult

    Raises
    ------
    KeyboardInterrupt
        After saving the last completed epoch's model as
        ``BASE-interrupted.keras``.
    """
    if tensorboard:
        _require("tensorboard", "--tensorboard")
    if viewer:
        _require("neuroglancer", "--viewer")
    if config is None:
        from ..config import CONFIG as config
    config = config.copy()
    if volumes is None:
        from ..volumes import load_volumes

        volumes = load_volumes([], True, config=config)
    base = _default_base(model_output_filebase)
    result = _train_once(model_file, volumes, base, model_checkpoint_file, tensorboard,
                         metric_plot, config, progress)
    restarts = 0
    while result.aborted and early_restart and restarts < MAX_EARLY_RESTARTS:
        restarts += 1
        seed = 0 if config.random_seed is None else config.random_seed
        config.random_seed = int(seed) + 1
        logger.warning("early restart %d with random seed %d", restarts, config.random_seed)
        result = _train_once(model_file, volumes, base, model_checkpoint_file, tensorboard,
                             metric_plot, config, progress)
    if viewer:
        training_volumes, _ = _partitioned(volumes, config)
        show_training_sample(result.model, TrainingData(
            training_volumes, config, num_samples=config.training.batch_size))
    return result


def _partitioned(volumes, config):
    from ..volumes import partition_volumes

    return partition_volumes(volumes, config=config)


def validate_model(model_file, volumes=None, config=None, progress: bool = True,
                   print_table: bool = True) -> dict[str, Any]:
    """Loss and validation metric of a saved model per volume and overall.

    Each validation partition gives ``validation_size`` fixed seeded
    subvolumes, filled from their seeds with the region engine.

    Parameters
    ----------
    model_file : str or path-like
        A saved model (its settings are applied to the configuration).
    volumes : dict of str to Volume, optional
        Default: the built-in synthetic dataset.
    config : Config, optional
        Defaults to :data:`diluvian.config.CONFIG` (copied, never modified).
    progress : bool
        Show a progress bar of fill moves.
    print_table : bool
        Print a table of the results.

    Returns
    -------
    dict
        ``{'loss', 'metric', 'metric_name', 'volumes': {name: {'loss',
        'metric', 'count'}}}``.
    """
    from ..network import apply_model_settings, load_model, read_model_settings

    if model_file is None:
        raise DiluvianError("validate needs a model file (-m)")
    if config is None:
        from ..config import CONFIG as config
    config = config.copy()
    apply_model_settings(config, read_model_settings(model_file), source=str(model_file))
    model = load_model(model_file, network_config=config.network)
    if volumes is None:
        from ..volumes import load_volumes

        volumes = load_volumes([], True, config=config)
    _, validation_volumes = _partitioned(volumes, config)
    validation = ValidationSet(validation_volumes, config)
    result = validation.evaluate(model, batch_size=config.training.batch_size,
                                 progress=progress)
    result["metric_name"] = metric_name(config.training)
    if print_table:
        print(format_validation_table(result))
    return result


def format_validation_table(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`validate_model` results."""
    name = result.get("metric_name", "metric")
    rows = [(vol, r["count"], r["loss"], r["metric"]) for vol, r in result["volumes"].items()]
    rows.append(("overall", sum(r[1] for r in rows), result["loss"], result["metric"]))
    width = max(len("volume"), *(len(r[0]) for r in rows))
    lines = [f"{'volume':<{width}}  {'samples':>7}  {'loss':>8}  {name:>14}"]
    for vol, count, loss, metric in rows:
        lines.append(f"{vol:<{width}}  {count:>7d}  {loss:>8.4f}  {metric:>14.4f}")
    return "\n".join(lines)

