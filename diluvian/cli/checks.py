"""Checks of ``diluvian``'s options, input and output paths.

Each raises :class:`diluvian.util.DiluvianError` with a one-line message
naming the option, file or value and what was expected, before any model,
volume or TensorFlow is loaded.
"""

from __future__ import annotations

from ..util import DiluvianError, check_input_file, check_output_path

__all__ = ["_at_least", "_check_inputs", "_check_options", "_check_outputs"]


def _at_least(args, dest: str, option: str, minimum, what: str = "") -> None:
    value = getattr(args, dest, None)
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    if any(v != v or v < minimum for v in values):
        shown = " ".join(str(v) for v in values)
        rule = what or (f"at least {minimum}" if len(values) == 1
                        else f"{len(values)} values, each at least {minimum}")
        raise DiluvianError(f"{option} {shown} is invalid: expected {rule}")


def _check_options(args) -> None:
    """Option values that cannot work: a one-line error before anything starts."""
    if getattr(args, "random_seed", None) is not None and not 0 <= args.random_seed < 2**63:
        raise DiluvianError(f"-rs/--random-seed {args.random_seed} is invalid: expected a "
                            "non-negative integer")
    _at_least(args, "move_batch_size", "--move-batch-size", 1)
    _at_least(args, "max_moves", "--max-moves", 1)
    _at_least(args, "max_bodies", "--max-bodies", 1)
    _at_least(args, "remask_interval", "--remask-interval", 1)
    _at_least(args, "checkpoint_interval", "--checkpoint-interval", 1)
    _at_least(args, "checkpoint_seconds", "--checkpoint-seconds", 1e-9,
              "a positive number of seconds")
    _at_least(args, "block_shape", "--block-shape", 1)
    _at_least(args, "block_overlap", "--block-overlap", 0)
    _at_least(args, "workers", "--workers", 1)
    _at_least(args, "max_minutes", "--max-minutes", 1e-9, "a positive number of minutes")
    _at_least(args, "background_label_id", "--background-label-id", 0)
    _at_least(args, "bounds_num_moves", "--bounds-num-moves", 0)
    _at_least(args, "num_regions", "--num-regions", 1)
    _at_least(args, "num_bounds", "num_bounds", 1)
    _at_least(args, "border_threshold", "--border-threshold", 0.0, "a non-negative distance in nm")
    _at_least(args, "chunk_size", "--chunk-size", 1)
    _at_least(args, "skeleton_dust", "--skeleton-dust", 0)
    _at_least(args, "min_contact", "--min-contact", 1)
    _at_least(args, "subvolume_shape", "--subvolume-shape", 1)
    _at_least(args, "pairs_per_task", "--pairs-per-task", 1)
    threshold = getattr(args, "merge_threshold", None)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise DiluvianError(f"--merge-threshold {threshold} is invalid: expected a fraction "
                            "from 0 to 1")
    if getattr(args, "skeletons", None) and getattr(args, "partition_volumes", False):
        raise DiluvianError("--skeletons SWC_DIR cannot be combined with --partition-volumes: "
                            "SWC coordinates are in the whole volume")
    _at_least(args, "resolution", "--resolution", 1e-12, "3 positive voxel sizes in nm")
    port = getattr(args, "port", None)
    if port is not None and not 0 <= port <= 65535:
        raise DiluvianError(f"--port {port} is invalid: expected 0 to 65535")


def _check_inputs(args) -> None:
    """Input files named on the command line exist and are files."""
    command = args.command
    if command in ("fill", "sparse-fill", "consensus", "agglomerate") and args.model_file is None:
        raise DiluvianError(f"{command} needs a trained model file (-m MODEL_FILE)")
    if command == "validate" and args.model_file is None:
        raise DiluvianError("validate needs a model file (-m MODEL_FILE)")
    if getattr(args, "model_file", None) is not None and command in (
            "train", "fill", "sparse-fill", "validate", "consensus", "agglomerate"):
        check_input_file(args.model_file, "model file")
    for name in getattr(args, "volume_files", None) or []:
        check_input_file(name, "volume file")
    for name in getattr(args, "config_files", None) or []:
        check_input_file(name, "configuration file")
    if getattr(args, "resume_filename", None) is not None:
        check_input_file(args.resume_filename, "resume file")
    bounds = getattr(args, "bounds_input_file", None)
    if bounds is not None and "{volume}" not in bounds:
        check_input_file(bounds, "bounds CSV file")
    if command == "evaluate" and args.skeletons:
        from ..skeletons import read_swc_folder

        read_swc_folder(args.skeletons)
    if command == "import-ffn":
        from pathlib import Path

        from ..network.ffn_import import move_fraction

        if not str(args.output).endswith(".keras"):
            raise DiluvianError(f"{args.output}: model files must end in '.keras'")
        move_fraction(args.move_step, "--move-step")
        prefix = Path(args.checkpoint)
        check_input_file(f"{prefix}.index", "FFN checkpoint index")
        if not list(prefix.parent.glob(f"{prefix.name}.data-*")):
            raise DiluvianError(f"{prefix}: FFN checkpoint has no data file "
                                f"({prefix.name}.data-00000-of-00001)")


def _check_outputs(args) -> None:
    """Every output can be written, before any work starts."""
    command = args.command
    if command == "train":
        from ..training.train import DEFAULT_MODEL_OUTPUT_FILEBASE

        base = args.model_output_filebase or DEFAULT_MODEL_OUTPUT_FILEBASE
        check_output_path(base + ".keras", "model output (-mo)")
        check_output_path(args.model_checkpoint_file, "model checkpoint file (-mc)")
    elif command in ("fill", "consensus"):
        check_output_path(args.segmentation_output_file + ".hdf5", "segmentation output")
    elif command == "sparse-fill":
        check_output_path(args.animation_output_file, "animation output")
        check_output_path(args.swc_output_file, "SWC output")
    elif command == "evaluate":
        check_output_path(args.json_file, "JSON output (--json)")
    elif command == "agglomerate":
        base = args.output_file.replace("{volume}", args.segmentation_name)
        check_output_path(base + ".hdf5", "agglomeration output")
        check_output_path(base + ".csv", "agglomeration CSV output")
    elif command == "view":
        check_output_path(args.png_file, "PNG output (--png)")
    elif command == "gen-subv-bounds":
        check_output_path(args.bounds_output_file, "bounds output")
    elif command == "import-ffn":
        check_output_path(args.output, "model output (-o)")
    elif command == "export-precomputed":
        check_output_path(args.output_dir, "precomputed output folder", folder=True)
