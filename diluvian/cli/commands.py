"""Handlers of ``diluvian``'s commands.

Each builds what it needs (configuration, volumes, model) and calls the
library function; heavy modules (TensorFlow, Keras, neuroglancer, Dask) are
imported only inside the command that needs them.
"""

from __future__ import annotations

import sys

from ..util import DiluvianError

__all__ = [
    "_load_config",
    "_apply_model_resolution",
    "_load_volumes",
    "_cmd_check_config",
    "_cmd_train",
    "_cmd_validate",
    "_apply_dtype_policy",
    "_cmd_fill",
    "_cmd_consensus",
    "_cmd_agglomerate",
    "_cmd_sparse_fill",
    "_cmd_evaluate",
    "_cmd_view",
    "_cmd_gen_subv_bounds",
    "_cmd_import_ffn",
    "_cmd_export_precomputed",
]


def _load_config(args):
    from ..config import Config

    config = Config.from_toml(*args.config_files)
    if args.random_seed is not None:
        config.random_seed = args.random_seed
    _apply_model_resolution(args, config)
    return config


def _apply_model_resolution(args, config) -> None:
    """Volumes are loaded at the resolution the ``-m`` model was trained at, unless set."""
    model_file = getattr(args, "model_file", None)
    if model_file is None or config.explicitly_set("volume.resolution"):
        return
    from ..modelfile import read_model_settings

    value = read_model_settings(model_file).get("resolution")
    if value is not None:
        try:
            config.volume.resolution = config.volume.FIELDS["resolution"].convert(value)
        except ValueError:
            raise DiluvianError(f"{model_file}: model setting resolution = {value!r} is "
                                "invalid: expected 3 positive integers (nm, Z Y X)") from None


def _load_volumes(args, config, name_regex=None):
    from ..volumes import load_volumes

    return load_volumes(args.volume_files, args.in_memory, name_regex=name_regex,
                        config=config)


def _cmd_check_config(args) -> int:
    config = _load_config(args)
    if args.config_property is None:
        sys.stdout.write(str(config))
        return 0
    value = config.get(args.config_property)
    import numpy as np
    import tomli_w

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        sys.stdout.write(tomli_w.dumps(value))
    elif isinstance(value, bool):
        print("true" if value else "false")
    else:
        print(value)
    return 0


def _cmd_train(args) -> int:
    from ..training import train_network

    config = _load_config(args)
    if args.dtype_policy is not None:
        config.training.dtype_policy = args.dtype_policy
    if args.max_minutes is not None:
        config.training.max_minutes = float(args.max_minutes)
    volumes = _load_volumes(args, config)
    train_network(
        model_file=args.model_file,
        volumes=volumes,
        model_output_filebase=args.model_output_filebase,
        model_checkpoint_file=args.model_checkpoint_file,
        tensorboard=args.tensorboard,
        viewer=args.viewer,
        metric_plot=args.metric_plot,
        early_restart=args.early_restart,
        config=config,
    )
    return 0


def _cmd_validate(args) -> int:
    from ..training import validate_model

    config = _load_config(args)
    volumes = _load_volumes(args, config)
    validate_model(args.model_file, volumes, config=config)
    return 0


def _apply_dtype_policy(args, config) -> None:
    if getattr(args, "dtype_policy", None) is not None:
        config.fill.dtype_policy = args.dtype_policy


def _cmd_fill(args) -> int:
    from ..diluvian import fill_volumes_with_model

    config = _load_config(args)
    _apply_dtype_policy(args, config)
    volumes = _load_volumes(args, config, name_regex=args.volume_name_regex)
    fill_volumes_with_model(
        args.model_file,
        volumes,
        args.segmentation_output_file,
        resume_filename=args.resume_filename,
        partition=args.partition_volumes,
        viewer=args.viewer,
        seed_generator=args.seed_generator,
        background_label_id=args.background_label_id,
        bias=args.bias,
        move_batch_size=args.move_batch_size,
        max_moves=args.max_moves,
        max_bodies=args.max_bodies,
        remask_interval=args.remask_interval,
        shuffle_seeds=args.shuffle_seeds,
        ignore_mask=args.ignore_mask,
        reject_early_termination=args.reject_early_termination,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_seconds=args.checkpoint_seconds,
        block_shape=args.block_shape,
        block_overlap=args.block_overlap,
        scheduler=args.scheduler,
        workers=args.workers,
        config=config,
    )
    return 0


def _cmd_consensus(args) -> int:
    from ..fill.consensus import consensus_volumes_with_model

    config = _load_config(args)
    _apply_dtype_policy(args, config)
    volumes = _load_volumes(args, config, name_regex=args.volume_name_regex)
    options = {"seed_generator": args.seed_generator, "ignore_mask": args.ignore_mask,
               "bias": args.bias, "move_batch_size": args.move_batch_size,
               "max_moves": args.max_moves, "remask_interval": args.remask_interval}
    blockwise = {"block_shape": args.block_shape, "block_overlap": args.block_overlap,
                 "scheduler": args.scheduler, "workers": args.workers}
    consensus_volumes_with_model(args.model_file, volumes, args.segmentation_output_file,
                                 partition=args.partition_volumes, options=options,
                                 config=config, blockwise=blockwise)
    return 0


def _cmd_agglomerate(args) -> int:
    from ..fill.agglomerate import AgglomerationOptions, agglomerate_volume

    config = _load_config(args)
    volumes = _load_volumes(args, config)
    if args.segmentation_name not in volumes:
        raise DiluvianError(f"volume {args.segmentation_name!r} is not defined; available "
                            f"volumes: {', '.join(sorted(volumes)) or '(none)'}")
    options = AgglomerationOptions(
        min_contact_vox=args.min_contact, merge_threshold=args.merge_threshold,
        subvolume_shape=tuple(args.subvolume_shape) if args.subvolume_shape else None,
        batch_size=args.move_batch_size, max_moves=args.max_moves, early_stop=args.early_stop,
        pairs_per_task=args.pairs_per_task)
    agglomerate_volume(args.model_file, volumes[args.segmentation_name], args.segmentation_name,
                       args.output_file, options=options, config=config,
                       dask={"scheduler": args.scheduler, "workers": args.workers})
    return 0


def _cmd_sparse_fill(args) -> int:
    from ..sparse_fill import fill_region_with_model

    config = _load_config(args)
    _apply_dtype_policy(args, config)
    volumes = _load_volumes(args, config)
    fill_region_with_model(
        args.model_file,
        volumes=volumes,
        partition=args.partition_volumes,
        augment=args.augment,
        bounds_input_file=args.bounds_input_file,
        bias=args.bias,
        move_batch_size=args.move_batch_size,
        max_moves=args.max_moves,
        remask_interval=args.remask_interval,
        moves=args.bounds_num_moves,
        num_regions=args.num_regions,
        viewer=args.viewer,
        animation_output_file=args.animation_output_file,
        swc_output_file=args.swc_output_file,
        config=config,
    )
    return 0


def _cmd_evaluate(args) -> int:
    from ..evaluation import evaluate_volume
    from ..skeletons import SkeletonSource

    config = _load_config(args)
    volumes = _load_volumes(args, config)
    skeletons = None
    if args.skeletons is not None:
        skeletons = SkeletonSource(swc_folder=args.skeletons or None,
                                   offset_nm=tuple(args.skeleton_offset or (0.0, 0.0, 0.0)),
                                   dust_threshold_vox=args.skeleton_dust)
    evaluate_volume(
        volumes,
        args.ground_truth_name,
        args.prediction_name,
        partition=args.partition_volumes,
        border_threshold=args.border_threshold,
        json_file=args.json_file,
        config=config,
        skeletons=skeletons,
    )
    return 0


def _cmd_view(args) -> int:
    from ..diluvian import view_volumes

    config = _load_config(args)
    volumes = _load_volumes(args, config, name_regex=args.volume_name_regex)
    view_volumes(
        volumes,
        partition=args.partition_volumes,
        bind_address=args.bind_address,
        port=args.port,
        png_file=args.png_file,
        config=config,
    )
    return 0


def _cmd_gen_subv_bounds(args) -> int:
    from ..sparse_fill import generate_subvolume_bounds

    config = _load_config(args)
    volumes = _load_volumes(args, config)
    generate_subvolume_bounds(
        args.bounds_output_file, volumes, args.num_bounds, moves=args.bounds_num_moves,
        config=config)
    return 0


def _cmd_import_ffn(args) -> int:
    from ..network import import_ffn_checkpoint

    import_ffn_checkpoint(args.checkpoint, args.output, move_step=args.move_step)
    return 0


def _cmd_export_precomputed(args) -> int:
    from ..precomputed import export_precomputed

    out = export_precomputed(args.input, args.output_dir, resolution=args.resolution,
                             chunk_shape=args.chunk_size, dataset=args.dataset,
                             volume=args.volume_name, overwrite=args.overwrite)
    print(f"{out}: neuroglancer precomputed segmentation (serve the folder and open "
          "precomputed://URL)")
    return 0
