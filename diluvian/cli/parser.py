"""The ``diluvian`` command's argument parser: one function a command.

:func:`make_main_parser` builds it (``diluvian.__main__._make_main_parser``
is the same function, the name Sphinx and scripts know).
"""

from __future__ import annotations

import argparse

from .commands import (
    _cmd_agglomerate,
    _cmd_check_config,
    _cmd_consensus,
    _cmd_evaluate,
    _cmd_export_precomputed,
    _cmd_fill,
    _cmd_gen_subv_bounds,
    _cmd_import_ffn,
    _cmd_sparse_fill,
    _cmd_train,
    _cmd_validate,
    _cmd_view,
)

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())} "
                     f"(see {self.prog} -h)\n")


def _bool_value(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config-file", action="append", dest="config_files", default=[],
        help="Configuration files to use. For defaults, see `diluvian/conf/default.toml`. "
             "Values are overwritten in the order provided.")
    parser.add_argument(
        "-cd", action="store_true", dest="add_default_config",
        help="Add default configuration file to chain of configuration files. (The packaged "
             "defaults are always the base layer; kept for compatibility.)")
    parser.add_argument(
        "-m", "--model-file", dest="model_file", default=None,
        help="Existing network model file to use for prediction or continued training.")
    parser.add_argument(
        "-v", "--volume-file", action="append", dest="volume_files", default=[],
        help="Volume configuration files. For example, see "
             "`diluvian/conf/cremi_datasets.toml`. Values are overwritten in the order "
             "provided. Without any, the built-in synthetic EM dataset is used.")
    parser.add_argument(
        "--no-in-memory", action="store_false", dest="in_memory", default=True,
        help="Do not preload entire volumes into memory.")
    parser.add_argument(
        "-rs", "--random-seed", action="store", type=int, dest="random_seed", default=None,
        help="Seed for initializing the Python and NumPy random generators. Overrides any "
             "seed specified in configuration files.")
    parser.add_argument(
        "-l", "--log", dest="log_level", choices=LOG_LEVELS, default="WARNING",
        help="Set the logging level.")


def _add_fill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--partition-volumes", action="store_true", dest="partition_volumes", default=False,
        help="Partition volumes and only fill the validation partition.")
    parser.add_argument(
        "--no-bias", action="store_false", dest="bias", default=True,
        help="Overwrite prediction mask at the end of each field of view inference rather "
             "than using the anti-merge bias update.")
    parser.add_argument(
        "--move-batch-size", dest="move_batch_size", default=1, type=int,
        help="Maximum number of fill moves to process in each prediction batch.")
    parser.add_argument(
        "--max-moves", dest="max_moves", default=None, type=int,
        help="Cancel filling after this many moves.")
    parser.add_argument(
        "--remask-interval", dest="remask_interval", default=None, type=int,
        help="Interval in moves to reset filling region mask based on the seeded connected "
             "component.")
    parser.add_argument(
        "--dtype-policy", dest="dtype_policy", default=None,
        choices=("auto", "float32", "bfloat16", "mixed_bfloat16", "float16", "mixed_float16"),
        help="Numeric precision of the network while filling (overrides [fill] dtype_policy); "
             "'auto': bfloat16 on CPUs with native bfloat16, mixed float16 on a GPU.")


def _add_block_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--block-shape", dest="block_shape", default=None, nargs=3, type=int,
        help="Fill blockwise on Dask with blocks of this core shape (Z Y X voxels).")
    parser.add_argument(
        "--block-overlap", dest="block_overlap", default=None, nargs=3, type=int,
        help="Overlap margin in voxels (Z Y X) around each block for reconciliation.")
    parser.add_argument(
        "--scheduler", dest="scheduler", default=None,
        help="Address of a Dask scheduler (tcp://HOST:PORT) for blockwise filling. "
             "Default: a LocalCluster on this machine.")
    parser.add_argument(
        "--workers", dest="workers", default=None, type=int,
        help="Number of LocalCluster workers for blockwise filling (default: cores).")


def _add_bounds_moves_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bounds-num-moves", dest="bounds_num_moves", default=None, nargs=3, type=int,
        help="Number of moves in direction to size the subvolume bounds.")


def _add_consensus_parser(commandparsers) -> None:
    consensus = commandparsers.add_parser(
        "consensus", help="Densely segment a volume twice and split where the fills disagree.",
        description="Fill each volume as 'diluvian fill' does, then again with the seeds in "
                    "another random order, and keep the intersection: each pair of labels "
                    "of the two fills becomes one object (one per connected piece); pieces "
                    "smaller than [fill] min_body_size are dropped. With --block-shape, "
                    "every block of a blockwise fill is filled both ways.")
    _add_common_arguments(consensus)
    consensus.add_argument(
        "segmentation_output_file",
        help="Filename for the HDF5 segmentation output, without extension; \"{volume}\" "
             "is substituted with each volume's name.")
    _add_fill_arguments(consensus)
    consensus.add_argument(
        "--volume-name-regex", dest="volume_name_regex", default=None,
        help="Fill only the volumes whose names match this regular expression.")
    consensus.add_argument(
        "--seed-generator", dest="seed_generator", default="sobel", choices=["grid", "sobel"],
        help="Method to generate seed locations for flood filling.")
    consensus.add_argument(
        "--ignore-mask", dest="ignore_mask", default=False, type=_bool_value,
        help="Ignore the mask channel when generating seeds (true or false).")
    _add_block_arguments(consensus)
    consensus.set_defaults(handler=_cmd_consensus)


def _add_agglomerate_parser(commandparsers) -> None:
    agglomerate = commandparsers.add_parser(
        "agglomerate", help="Merge touching objects of a segmentation that the network joins.",
        description="For each pair of touching objects, fill from a seed in each near their "
                    "contact and merge them when each fill reaches into the other object "
                    "(FFN's resegmentation). Writes OUTPUT.hdf5/.toml and OUTPUT.csv.")
    _add_common_arguments(agglomerate)
    agglomerate.add_argument(
        "segmentation_name",
        help="Name of the volume to agglomerate; it needs image and labels (a 'fill' output "
             "dataset has both).")
    agglomerate.add_argument(
        "output_file",
        help="Output filename without extension; \"{volume}\" is substituted.")
    agglomerate.add_argument(
        "--min-contact", dest="min_contact", default=10, type=int, metavar="FACES",
        help="Try only pairs touching over at least this many voxel faces (default 10).")
    agglomerate.add_argument(
        "--merge-threshold", dest="merge_threshold", default=0.5, type=float,
        help="Merge when each fill covers at least this fraction of the other object in the "
             "subvolume (default 0.5).")
    agglomerate.add_argument(
        "--subvolume-shape", dest="subvolume_shape", default=None, nargs=3, type=int,
        metavar=("Z", "Y", "X"),
        help="Voxels filled around each contact (default: twice the input FOV, minus one).")
    agglomerate.add_argument(
        "--move-batch-size", dest="move_batch_size", default=8, type=int,
        help="FOVs per model call, across pairs (default 8).")
    agglomerate.add_argument(
        "--max-moves", dest="max_moves", default=None, type=int,
        help="Stop each fill after this many moves.")
    agglomerate.add_argument(
        "--full-fills", dest="early_stop", action="store_false",
        help="Fill every side to the end; by default a fill stops once its pair's decision "
             "is known (it reached --merge-threshold of the other object, or the other side "
             "ended below it).")
    agglomerate.add_argument(
        "--scheduler", dest="scheduler", default=None,
        help="Fill the pairs on the Dask scheduler at this address (tcp://HOST:PORT).")
    agglomerate.add_argument(
        "--workers", dest="workers", default=None, type=int,
        help="Fill the pairs on a LocalCluster of this many workers.")
    agglomerate.add_argument(
        "--pairs-per-task", dest="pairs_per_task", default=16, type=int,
        help="Pairs each Dask task fills, batched together (default 16).")
    agglomerate.set_defaults(handler=_cmd_agglomerate)


def _add_train_parser(commandparsers) -> None:
    """The ``train`` command's parser."""
    train = commandparsers.add_parser(
        "train", help="Train a network from labeled volumes.",
        description="Train a network from labeled volumes.")
    _add_common_arguments(train)
    train.add_argument(
        "-mo", "--model-output-filebase", dest="model_output_filebase", default=None,
        help="Base filename for the best trained model and other output artifacts, such as "
             "metric plots and configuration state.")
    train.add_argument(
        "-mc", "--model-checkpoint-file", dest="model_checkpoint_file", default=None,
        help="Filename for model checkpoints at every epoch. This is different than the model "
             "output file; if provided, this model file is saved every epoch regardless of "
             "validation performance. Can use Keras format arguments: "
             "https://keras.io/callbacks/#modelcheckpoint")
    train.add_argument(
        "--early-restart", action="store_true", dest="early_restart", default=False,
        help="If training is aborted early because an early abort metric criteria, restart "
             "training with a new random seed.")
    train.add_argument(
        "--tensorboard", action="store_true", dest="tensorboard", default=False,
        help="Write TensorBoard event files to BASE-logs/ (loss, learning rate and "
             "validation metric per epoch).")
    train.add_argument(
        "--viewer", action="store_true", dest="viewer", default=False,
        help="Create a neuroglancer viewer for a training sample at the end of training.")
    train.add_argument(
        "--metric-plot", action="store_true", dest="metric_plot", default=False,
        help="Plot metric history at the end of training. Will be saved as a PNG with the "
             "model output base filename.")
    train.add_argument(
        "--dtype-policy", dest="dtype_policy", default=None,
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
        help="Numeric precision of training (overrides [training] dtype_policy); 'auto': "
             "mixed bfloat16 on CPUs with native bfloat16, mixed float16 on a GPU.")
    train.add_argument(
        "--max-minutes", dest="max_minutes", default=None, type=float,
        help="Stop training after this many minutes (overrides [training] max_minutes).")
    train.set_defaults(handler=_cmd_train)


def _add_fill_parser(commandparsers) -> None:
    """The ``fill`` command's parser."""
    fill = commandparsers.add_parser(
        "fill", help="Use a trained network to densely segment a volume.",
        description="Use a trained network to densely segment a volume.")
    _add_common_arguments(fill)
    fill.add_argument(
        "segmentation_output_file", default=None,
        help="Filename for the HDF5 segmentation output, without extension. Should contain "
             "\"{volume}\", which will be substituted with the volume name for each "
             "respective volume's bounds.")
    _add_fill_arguments(fill)
    fill.add_argument(
        "--volume-name-regex", dest="volume_name_regex", default=None,
        help="Fill only the volumes whose names match this regular expression.")
    fill.add_argument(
        "--seed-generator", dest="seed_generator", default="sobel", nargs="?",
        choices=["grid", "sobel"],
        help="Method to generate seed locations for flood filling.")
    fill.add_argument(
        "--ordered-seeds", action="store_false", dest="shuffle_seeds", default=True,
        help="Do not shuffle order in which seeds are processed.")
    fill.add_argument(
        "--ignore-mask", dest="ignore_mask", default=False, type=_bool_value,
        help="Ignore the mask channel when generating seeds (true or false).")
    fill.add_argument(
        "--background-label-id", dest="background_label_id", default=0, type=int,
        help="Label ID to output for voxels not belonging to any filled body.")
    fill.add_argument(
        "--viewer", action="store_true", dest="viewer", default=False,
        help="Create a neuroglancer viewer for a each volume after filling.")
    fill.add_argument(
        "--max-bodies", dest="max_bodies", default=None, type=int,
        help="Cancel filling after this many bodies (only useful for diagnostics).")
    fill.add_argument(
        "--reject-early-termination", action="store_true",
        dest="reject_early_termination", default=False,
        help="Reject seeds that terminate early, e.g., due to maximum move limits.")
    fill.add_argument(
        "--resume-file", dest="resume_filename", default=None,
        help="Filename for the TOML configuration file of a segmented label volume from which "
             "to resume filling. The configuration should only contain one dataset.")
    fill.add_argument(
        "--checkpoint-interval", dest="checkpoint_interval", default=None, type=int,
        help="Write a resumable checkpoint every this many bodies (default: "
             "[fill] checkpoint_interval).")
    fill.add_argument(
        "--checkpoint-seconds", dest="checkpoint_seconds", default=None, type=float,
        help="Also write a resumable checkpoint when this many seconds have passed since the "
             "last one (default: [fill] checkpoint_seconds, 300); a killed fill loses at "
             "most that much work.")
    _add_block_arguments(fill)
    fill.set_defaults(handler=_cmd_fill)


def _add_sparse_fill_parser(commandparsers) -> None:
    """The ``sparse-fill`` command's parser."""
    sparse_fill = commandparsers.add_parser(
        "sparse-fill", help="Use a trained network to fill random regions in a volume.",
        description="Use a trained network to fill random regions in a volume.")
    _add_common_arguments(sparse_fill)
    _add_fill_arguments(sparse_fill)
    _add_bounds_moves_argument(sparse_fill)
    sparse_fill.add_argument(
        "--augment", action="store_true", dest="augment", default=False,
        help="Apply training augmentations to subvolumes before filling.")
    sparse_fill.add_argument(
        "-bi", "--bounds-input-file", dest="bounds_input_file", default=None,
        help="Filename for bounds CSV input. Should contain \"{volume}\", which will be "
             "substituted with the volume name for each respective volume's bounds.")
    sparse_fill.add_argument(
        "--num-regions", dest="num_regions", default=None, type=int,
        help="Stop after filling this many regions (default: all bounds, or 10 random).")
    sparse_fill.add_argument(
        "--viewer", action="store_true", dest="viewer", default=False,
        help="Create a neuroglancer viewer for each filled region.")
    sparse_fill.add_argument(
        "--animation-output-file", dest="animation_output_file", default=None,
        help="Write an animation of each fill (.gif or .mp4). May contain \"{volume}\" and "
             "\"{region}\".")
    sparse_fill.add_argument(
        "--swc-output-file", dest="swc_output_file", default=None,
        help="Write an SWC skeleton of each filled body. May contain \"{volume}\" and "
             "\"{region}\".")
    sparse_fill.set_defaults(handler=_cmd_sparse_fill)


def _add_validate_parser(commandparsers) -> None:
    """The ``validate`` command's parser."""
    validate = commandparsers.add_parser(
        "validate", help="Run a model on validation data.",
        description="Run a model on validation data.")
    _add_common_arguments(validate)
    validate.set_defaults(handler=_cmd_validate)


def _add_evaluate_parser(commandparsers) -> None:
    """The ``evaluate`` command's parser."""
    evaluate = commandparsers.add_parser(
        "evaluate", help="Evaluate a filling result versus a ground truth.",
        description="Evaluate a filling result versus a ground truth.")
    _add_common_arguments(evaluate)
    evaluate.add_argument(
        "--border-threshold", dest="border_threshold", default=25.0, type=float,
        help="Region border threshold (in nm) to ignore. Official CREMI default is 25nm.")
    evaluate.add_argument(
        "--partition-volumes", action="store_true", dest="partition_volumes", default=False,
        help="Partition volumes and only evaluate the validation partitions.")
    evaluate.add_argument(
        "--json", dest="json_file", default=None,
        help="Also write the figures to this JSON file.")
    evaluate.add_argument(
        "--skeletons", dest="skeletons", default=None, nargs="?", const="", metavar="SWC_DIR",
        help="Also report the expected run length (ERL) on ground-truth skeletons: those in "
             "the SWC files (nm) of SWC_DIR, or, without SWC_DIR, traced from the ground-truth "
             "labels with kimimaro (then put the bare --skeletons after the volume names).")
    evaluate.add_argument(
        "--skeleton-offset", dest="skeleton_offset", default=None, nargs=3, type=float,
        metavar=("Z", "Y", "X"),
        help="Position in nm of the ground truth's first voxel in the SWC coordinates "
             "(default 0 0 0).")
    evaluate.add_argument(
        "--skeleton-dust", dest="skeleton_dust", default=1000, type=int, metavar="VOXELS",
        help="Skip ground-truth objects with fewer voxels when tracing skeletons "
             "(default 1000).")
    evaluate.add_argument("ground_truth_name", help="Name of the ground truth volume.")
    evaluate.add_argument("prediction_name", help="Name of the prediction volume.")
    evaluate.set_defaults(handler=_cmd_evaluate)


def _add_view_parser(commandparsers) -> None:
    """The ``view`` command's parser."""
    view = commandparsers.add_parser(
        "view", help="View a set of co-registered volumes in neuroglancer.",
        description="View a set of co-registered volumes in neuroglancer.")
    _add_common_arguments(view)
    view.add_argument(
        "--partition-volumes", action="store_true", dest="partition_volumes", default=False,
        help="Partition volumes and view centered at the validation partitions.")
    view.add_argument(
        "--bind-address", dest="bind_address", default="127.0.0.1",
        help="Address the neuroglancer server binds to (default 127.0.0.1).")
    view.add_argument(
        "--port", dest="port", default=0, type=int,
        help="Port for the neuroglancer server (default: any free port).")
    view.add_argument(
        "--png", dest="png_file", default=None,
        help="Instead of serving, write a PNG montage of orthogonal slices with label "
             "overlays to this file.")
    view.add_argument(
        "volume_name_regex", default=".", nargs="?",
        help="Regex to filter which volumes of those defined in the volume configuration "
             "should be loaded.")
    view.set_defaults(handler=_cmd_view)


def _add_check_config_parser(commandparsers) -> None:
    """The ``check-config`` command's parser."""
    check_config = commandparsers.add_parser(
        "check-config", help="Check a configuration value.",
        description="Check a configuration value.")
    _add_common_arguments(check_config)
    check_config.add_argument(
        "config_property", default=None, nargs="?",
        help="Name of the property to show, e.g., `training.batch_size`.")
    check_config.set_defaults(handler=_cmd_check_config)


def _add_gen_subv_bounds_parser(commandparsers) -> None:
    """The ``gen-subv-bounds`` command's parser."""
    gen_subv_bounds = commandparsers.add_parser(
        "gen-subv-bounds", help="Generate subvolume bounds.",
        description="Generate subvolume bounds.")
    _add_common_arguments(gen_subv_bounds)
    gen_subv_bounds.add_argument(
        "bounds_output_file", default=None,
        help="Filename for the CSV output. Should contain \"{volume}\", which will be "
             "substituted with the volume name for each respective volume's bounds.")
    gen_subv_bounds.add_argument(
        "num_bounds", default=None, type=int, help="Number of bounds to generate.")
    _add_bounds_moves_argument(gen_subv_bounds)
    gen_subv_bounds.set_defaults(handler=_cmd_gen_subv_bounds)


def _add_import_ffn_parser(commandparsers) -> None:
    """The ``import-ffn`` command's parser."""
    import_ffn = commandparsers.add_parser(
        "import-ffn", help="Convert a Google FFN convstack_3d checkpoint into a diluvian model.",
        description="Convert a Google FFN convstack_3d TensorFlow checkpoint into a diluvian "
                    "model file (.keras) carrying its architecture and inference settings.")
    import_ffn.add_argument(
        "checkpoint", help="Checkpoint prefix, e.g. model.ckpt-27465036 (without .index).")
    import_ffn.add_argument(
        "-o", "--output", dest="output", required=True, help="Output model file (.keras).")
    import_ffn.add_argument(
        "--move-step", dest="move_step", type=int, default=None,
        help="Move step in voxels stored with the model (default 11: diluvian's dense fill "
             "needs fewer network evaluations than with FFN's own 8, for better scores on "
             "FIB-25). 33 // k for a whole k: 16, 11, 8, 6, ...")
    import_ffn.add_argument(
        "-l", "--log", dest="log_level", choices=LOG_LEVELS, default="WARNING",
        help="Set the logging level.")
    import_ffn.set_defaults(handler=_cmd_import_ffn)


def _add_export_precomputed_parser(commandparsers) -> None:
    """The ``export-precomputed`` command's parser."""
    export = commandparsers.add_parser(
        "export-precomputed",
        help="Export a segmentation as a neuroglancer precomputed volume.",
        description="Write the labels of a blockwise fill zarr store (OUT.zarr), or of the "
                    "HDF5 file or dataset TOML written by `diluvian fill`, as a neuroglancer "
                    "precomputed segmentation folder (info file and raw uint64 chunks), "
                    "chunk by chunk, under a temporary name renamed when complete.")
    export.add_argument(
        "input", help="Blockwise fill zarr store (folder), HDF5 file (.h5/.hdf5) or dataset "
                      "TOML (.toml) holding the labels.")
    export.add_argument(
        "output_dir", help="Precomputed folder to create; serve it and open it in neuroglancer "
                           "as precomputed://URL.")
    export.add_argument(
        "--dataset", dest="dataset", default=None,
        help="Path of the label array inside an HDF5 file or zarr store (default: "
             "volumes/labels/neuron_ids in HDF5, labels in zarr).")
    export.add_argument(
        "--volume", dest="volume_name", default=None,
        help="Name of the [[dataset]] to export from a dataset TOML with several.")
    export.add_argument(
        "--resolution", dest="resolution", nargs=3, type=float, default=None,
        metavar=("Z", "Y", "X"),
        help="Voxel size in nm, Z Y X (default: the input's resolution attribute).")
    export.add_argument(
        "--chunk-size", dest="chunk_size", nargs=3, type=int, default=[64, 64, 64],
        metavar=("Z", "Y", "X"), help="Chunk shape in voxels, Z Y X (default: 64 64 64).")
    export.add_argument(
        "--overwrite", action="store_true", default=False,
        help="Replace an existing precomputed folder at OUTPUT_DIR.")
    export.add_argument(
        "-l", "--log", dest="log_level", choices=LOG_LEVELS, default="WARNING",
        help="Set the logging level.")
    export.set_defaults(handler=_cmd_export_precomputed)


def make_main_parser() -> argparse.ArgumentParser:
    """Build the argument parser for the ``diluvian`` command."""
    parser = _Parser(
        prog="diluvian", description="Train or run flood-filling networks on EM data.")
    commandparsers = parser.add_subparsers(help="Commands", dest="command")
    commandparsers.required = True
    _add_train_parser(commandparsers)
    _add_fill_parser(commandparsers)
    _add_consensus_parser(commandparsers)
    _add_agglomerate_parser(commandparsers)
    _add_sparse_fill_parser(commandparsers)
    _add_validate_parser(commandparsers)
    _add_evaluate_parser(commandparsers)
    _add_view_parser(commandparsers)
    _add_check_config_parser(commandparsers)
    _add_gen_subv_bounds_parser(commandparsers)
    _add_import_ffn_parser(commandparsers)
    _add_export_precomputed_parser(commandparsers)
    return parser
