"""``diluvian fill``: load the model, pick the volumes, fill, write and resume."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..util import DiluvianError, make_rng
from ..volumes.datasets import prepared_volumes
from .engine import DenseFill
from .options import FillOptions
from .state import (
    FillStats,
    check_output_name,
    compare_settings,
    dataset_name,
    model_digest,
    read_fill_checkpoint,
    segmentation_paths,
    write_segmentation,
)

__all__ = ["FillOutput", "fill_volumes_with_model", "format_evaluations", "load_fill_model"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# The ``diluvian fill`` command
# --------------------------------------------------------------------------


def load_fill_model(model_file, config):
    """Load a model file for filling and apply its stored settings to ``config`` (in place).

    The network runs under the Keras dtype policy of ``config.fill.dtype_policy``
    (see :func:`diluvian.network.resolve_dtype_policy`).

    Raises
    ------
    DiluvianError
        If no file is given, it is missing or corrupt, or its FOV shapes differ
        from ``config.model``.
    """
    if model_file is None:
        raise DiluvianError("filling needs a trained model file (-m MODEL_FILE)")
    from ..network import (
        apply_model_settings,
        load_model,
        read_model_settings,
        resolve_dtype_policy,
    )

    settings = read_model_settings(model_file)
    apply_model_settings(config, settings, source=str(model_file))
    model = load_model(model_file, network_config=config.network,
                       dtype_policy=resolve_dtype_policy(config.fill.dtype_policy))
    in_shape = tuple(int(s) for s in model.inputs[0].shape[1:4])
    out_shape = tuple(int(s) for s in model.outputs[0].shape[1:4])
    want_in = tuple(int(s) for s in config.model.input_fov_shape)
    want_out = tuple(int(s) for s in config.model.output_fov_shape)
    if in_shape != want_in or out_shape != want_out:
        raise DiluvianError(
            f"{model_file}: the model maps FOVs {list(in_shape)} -> {list(out_shape)} but "
            f"[model] input_fov_shape/output_fov_shape are {list(want_in)} -> {list(want_out)}")
    return model


def _fill_settings(model_file, options: FillOptions, partition: bool) -> dict:
    """The model and settings that decide a fill's result (stored in its checkpoints)."""
    m, o = options.model_config, options
    settings = {
        "model_file": str(Path(model_file).resolve()),
        "model_sha256": model_digest(model_file),
        "seed_generator": o.seed_generator,
        "shuffle_seeds": o.shuffle_seeds,
        "ignore_mask": o.ignore_mask,
        "bias": o.bias,
        "max_moves": o.max_moves,
        "remask_interval": o.remask_interval,
        "reject_early_termination": o.reject_early_termination,
        "background_label_id": o.background_label_id,
        "partition": partition,
        "random_seed": o.random_seed,
        "t_move": m.t_move,
        "t_final": m.t_final_value,
        "move_policy": m.move_policy,
        "move_priority": m.move_priority,
        "move_check_thickness": m.move_check_thickness,
        "output_fov_move_fraction": m.output_fov_move_fraction,
        "min_body_size": o.min_body_size,
        "skip_committed": o.skip_committed,
        "full_context": o.full_context,
        "inset_fovs": o.inset_fovs,
        "stop_weak_seed": o.stop_weak_seed,
        "skip_certain": o.skip_certain,
        "closing_shape": None if o.closing_shape is None else list(o.closing_shape),
    }
    return json.loads(json.dumps(settings, default=_jsonable))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def _show_viewer(name, image, labels, resolution) -> None:
    from ..viewer import WrappedViewer

    viewer = WrappedViewer(voxel_size=np.asarray(resolution).tolist())
    if image is not None:
        viewer.add(image, name=f"{name} image")
    viewer.add(labels, name=f"{name} segmentation", kind="segmentation")
    viewer.print_view_prompt()


def fill_volumes_with_model(  # noqa: PLR0913 - the documented public signature
    model_file,
    volumes: dict,
    filename: str,
    resume_filename=None,
    partition: bool = False,
    viewer: bool = False,
    seed_generator: str = "sobel",
    background_label_id: int = 0,
    bias: bool = True,
    move_batch_size: int = 1,
    max_moves: int | None = None,
    max_bodies: int | None = None,
    remask_interval: int | None = None,
    shuffle_seeds: bool = True,
    ignore_mask: bool = False,
    reject_early_termination: bool = False,
    checkpoint_interval: int | None = None,
    checkpoint_seconds: float | None = None,
    block_shape=None,
    block_overlap=None,
    scheduler: str | None = None,
    workers: int | None = None,
    config=None,
    progress: bool = True,
) -> dict[str, FillStats]:
    """Densely segment volumes with a model file and write ``OUT.hdf5`` + ``OUT.toml`` each.

    Parameters
    ----------
    model_file : str or path-like
        Model file (``.keras``); its stored settings configure FOV shapes,
        move step and thresholds unless the configuration sets them.
    volumes : dict
        ``{name: Volume}``.
    filename : str
        Output base name without extension, with ``{volume}`` substituted by
        each volume's name (required when there are several volumes).
    resume_filename : str or path-like, optional
        Dataset TOML (one dataset) of an earlier fill to continue.
    partition : bool
        Fill only the validation partition of each volume.
    viewer : bool
        Show image and segmentation of each volume in neuroglancer.
    seed_generator : str
        ``'sobel'`` or ``'grid'``.
    background_label_id : int
        Label of voxels in no body.
    bias, move_batch_size, max_moves, max_bodies, remask_interval, shuffle_seeds, ignore_mask, \
reject_early_termination, checkpoint_interval, checkpoint_seconds
        See :func:`fill_volume_with_model`.
    block_shape, block_overlap, scheduler, workers
        With a block shape (or ``[fill] block_shape``) each volume is filled
        blockwise on Dask by
        :func:`diluvian.blockwise.fill_volumes_blockwise`, which resumes
        from its store (``resume_filename`` and ``max_bodies`` are refused).
    config : Config, optional
        Defaults to :data:`diluvian.config.CONFIG`; not modified.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        ``{volume name: FillStats}``.
    """
    if config is None:
        from ..config import CONFIG as config
    config = copy.deepcopy(config)
    per_fill = {"seed_generator": seed_generator, "shuffle_seeds": shuffle_seeds,
                "ignore_mask": ignore_mask, "bias": bias, "move_batch_size": move_batch_size,
                "max_moves": max_moves, "remask_interval": remask_interval,
                "reject_early_termination": reject_early_termination}
    if block_shape is not None or config.fill.block_shape is not None:
        from ..blockwise import BlockwiseOptions, fill_volumes_blockwise

        if resume_filename is not None:
            raise DiluvianError(f"--resume-file {resume_filename}: a blockwise fill resumes from "
                                "its OUT.zarr store; run the same command again instead")
        if max_bodies is not None:
            raise DiluvianError(f"--max-bodies {max_bodies} is not available for blockwise "
                                "filling")
        options = BlockwiseOptions(block_shape=block_shape, block_overlap=block_overlap,
                                   scheduler=scheduler, workers=workers, progress=progress,
                                   fill_options=per_fill)
        return fill_volumes_blockwise(model_file, volumes, filename, options,
                                      partition=partition, viewer=viewer,
                                      background_label_id=background_label_id, config=config)
    check_output_name(volumes, filename)
    model = load_fill_model(model_file, config)  # the model's settings first: options read them
    options = FillOptions.from_config(
        config, **per_fill, background_label_id=background_label_id, max_bodies=max_bodies,
        checkpoint_interval=checkpoint_interval, checkpoint_seconds=checkpoint_seconds)
    return _fill_volumes(model, model_file, volumes, options, partition,
                         FillOutput(filename, viewer, progress, resume_filename), config)


def _fill_volumes(model, model_file, volumes: dict, options: FillOptions, partition: bool,
                  output: FillOutput, config) -> dict:
    """Single-process fill of each volume with a loaded ``model`` and one options value."""
    settings = _fill_settings(model_file, options, partition)
    from ..network import MultiDevicePredictor, fill_devices

    devices = fill_devices(int(config.training.num_gpus))
    if devices:
        # One replica per GPU; every model call's batch is split across them.
        model = MultiDevicePredictor(model, devices)
    volumes = prepared_volumes(volumes, partition, config)
    resume = None
    if output.resume_filename is not None:
        resume = _resume_state(output.resume_filename, settings, volumes)
    all_stats = {}
    for name, volume in volumes.items():
        state = resume[1] if resume is not None and resume[0] == name else None
        all_stats[name] = _fill_one(model, name, volume, options, settings, state, output)
    return all_stats


@dataclass(frozen=True)
class FillOutput:
    """Where and how ``diluvian fill`` writes one volume's result."""

    filename: str
    viewer: bool = False
    progress: bool = True
    resume_filename: str | None = None


def _resume_state(resume_filename, settings: dict, volumes: dict) -> tuple[str, object]:
    """``(volume name, FillState)`` of a checkpoint made with the same settings."""
    resume_name, resume_state, _ = read_fill_checkpoint(resume_filename)
    if resume_state.settings is None:
        logger.warning("%s: an older checkpoint without its settings; resuming without "
                       "checking that model and settings match", resume_filename)
    compare_settings(resume_state.settings, settings, resume_filename)
    names = [k for k in volumes if dataset_name(k) == resume_name or k == resume_name]
    if not names and len(volumes) == 1:
        names = list(volumes)
    if not names:
        raise DiluvianError(f"{resume_filename}: dataset {resume_name!r} matches none of the "
                            f"volumes {', '.join(volumes)}")
    return names[0], resume_state


def _fill_one(model, name: str, volume, options: FillOptions, settings: dict, state,
              out: FillOutput) -> FillStats:
    """Fill one volume (resuming ``state``), checkpointing to its ``OUT.hdf5`` + ``OUT.toml``."""
    hdf5_path, toml_path = segmentation_paths(out.filename, name)
    raw = np.asarray(volume.image_data[...]) if volume.image_data is not None else None
    if state is not None and raw is not None and state.labels.shape != raw.shape:
        raise DiluvianError(
            f"{out.resume_filename}: labels of shape {list(state.labels.shape)} do not match "
            f"volume {name!r} of shape {list(raw.shape)}")

    def checkpoint(s):
        s.settings = settings
        write_segmentation(hdf5_path, toml_path, name, None, raw, volume.resolution,
                           state=s, background_label_id=options.background_label_id)

    fill = DenseFill(model, volume, options, checkpoint=checkpoint, progress=out.progress)
    labels, stats = fill.run(rng=make_rng(options.random_seed, "fill_seeds", name),
                             resume=state)
    logger.info("%s: %d bodies, %.1f%% labelled, %d moves in %.1f s -> %s", name,
                stats.bodies, 100.0 * stats.labelled_voxels / labels.size, stats.moves,
                stats.wall_seconds, hdf5_path)
    logger.info("%s: where the %d evaluations went: %s", name, stats.moves,
                format_evaluations(stats))
    if out.viewer:
        _show_viewer(name, raw, labels, volume.resolution)
    return stats


def format_evaluations(stats: FillStats) -> str:
    """One line of the ``evals_*`` counters of a fill (they may overlap)."""
    return (f"{stats.evals_near_face} near a face, {stats.evals_in_committed} in committed "
            f"bodies, {stats.evals_revisit} revisits, {stats.evals_rejected} in rejected "
            f"bodies, {stats.evals_cancelled} in cancelled regions, "
            f"{stats.single_fov_seeds} single-FOV seeds")
