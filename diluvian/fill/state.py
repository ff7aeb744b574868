"""Fill state, statistics and the output files of dense filling (HDF5 + dataset TOML)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..util import DiluvianError, atomic_output

__all__ = [
    "FillState",
    "FillStats",
    "compare_settings",
    "dataset_name",
    "model_digest",
    "read_fill_checkpoint",
    "segmentation_paths",
    "write_segmentation",
]


#: HDF5 paths of the output (CREMI layout) and of the resumable fill state.
IMAGE_PATH = "volumes/raw"
LABEL_PATH = "volumes/labels/neuron_ids"
SEEDS_PATH = "fill/seeds"
EXCLUDED_PATH = "fill/excluded"
STATE_GROUP = "fill"
#: Version of the checkpoint layout.
STATE_VERSION = 1


@dataclass
class FillStats:
    """Counters of a dense fill (cumulative across resumes except the timings).

    The ``evals_*`` counters say where network evaluations (``moves``) go;
    they overlap (an evaluation near a face may also be in a committed body).
    Checkpoints written before they existed load with them at 0.

    Attributes
    ----------
    seeds : int
        Seeds in the ordered seed list.
    seeds_done : int
        Seeds resolved (committed, skipped, cancelled or rejected).
    bodies : int
        Bodies committed.
    skipped_seeds : int
        Seeds lying in an already committed or rejected body when reached.
    cancelled_regions : int
        Regions stopped because an earlier body covered their seed.
    rejected_small : int
        Bodies with fewer than ``min_body_size`` claimed voxels.
    rejected_early : int
        Regions stopped by ``max_moves`` with ``reject_early_termination``.
    overlap_voxels : int
        Voxels of bodies that an earlier body had claimed already.
    labelled_voxels : int
        Voxels labelled so far.
    moves : int
        Network evaluations (FOV predictions), wasted ones included.
    wasted_moves : int
        Evaluations spent on cancelled regions.
    blocked_moves : int
        Moves not predicted because their centre lay in a committed body.
    certain_moves : int
        Moves not predicted because the region had already decided their
        neighbourhood (``skip_certain``).
    weak_seeds : int
        Regions stopped because a prediction put their seed below ``t_move``.
    evals_near_face : int
        Evaluations whose FOV reached past a volume face (centre within
        half an input FOV of it), so the model saw padding.
    evals_in_committed : int
        Evaluations centred on a voxel of an already committed body.
    evals_revisit : int
        Evaluations of a lattice cell (:meth:`Region.vox_to_cell` of the
        centre) that their region had already predicted.
    evals_rejected : int
        Evaluations of regions whose body was then rejected (under
        ``min_body_size``, or stopped early with ``reject_early_termination``).
    evals_cancelled : int
        Evaluations of regions cancelled by an earlier body (as ``wasted_moves``).
    single_fov_seeds : int
        Regions that ended after exactly one evaluation.
    predict_calls : int
        Model calls (batches) in this run.
    predict_seconds, wall_seconds : float
        Time in model calls and in the whole fill, in this run.
    complete : bool
        Whether every seed has been resolved.
    """

    seeds: int = 0
    seeds_done: int = 0
    bodies: int = 0
    skipped_seeds: int = 0
    cancelled_regions: int = 0
    rejected_small: int = 0
    rejected_early: int = 0
    overlap_voxels: int = 0
    labelled_voxels: int = 0
    moves: int = 0
    wasted_moves: int = 0
    blocked_moves: int = 0
    weak_seeds: int = 0
    certain_moves: int = 0
    evals_near_face: int = 0
    evals_in_committed: int = 0
    evals_revisit: int = 0
    evals_rejected: int = 0
    evals_cancelled: int = 0
    single_fov_seeds: int = 0
    predict_calls: int = 0
    predict_seconds: float = 0.0
    wall_seconds: float = 0.0
    complete: bool = False


@dataclass
class FillState:
    """Everything needed to continue a dense fill.

    Attributes
    ----------
    labels : ndarray of uint64
        Body ids, 0 where unlabelled (before ``background_label_id`` is applied).
    excluded : ndarray of bool
        Voxels of rejected bodies (seeds there are skipped).
    seeds : ndarray of int64, shape (N, 3)
        Seeds in processing order.
    next_seed : int
        Index of the first seed not yet resolved; all before it are.
    next_id : int
        Id of the next committed body.
    stats : FillStats
    settings : dict, optional
        Model and settings of the fill (see :func:`fill_settings`); a resume
        must ask for the same ones.
    """

    labels: np.ndarray
    excluded: np.ndarray
    seeds: np.ndarray
    next_seed: int = 0
    next_id: int = 1
    stats: FillStats = field(default_factory=FillStats)
    settings: dict | None = None


def model_digest(model_file) -> str:
    """SHA-256 of a model file (names the model in a fill checkpoint)."""
    import hashlib

    digest = hashlib.sha256()
    with open(model_file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compare_settings(saved: dict | None, wanted: dict, source) -> None:
    """Refuse to resume a fill made with another model or other settings.

    Raises
    ------
    DiluvianError
        Naming every setting that differs, with the checkpoint's value and
        the requested one.
    """
    if saved is None:
        return
    differ = []
    for key, value in wanted.items():
        if key in saved and saved[key] != value:
            if key == "model_sha256":
                differ.append(f"model ({saved.get('model_file', '?')} sha256 {saved[key][:12]} "
                              f"vs {wanted.get('model_file', '?')} sha256 {value[:12]})")
            elif key != "model_file":
                differ.append(f"{key} ({saved[key]!r} vs {value!r})")
    if differ:
        raise DiluvianError(f"{source}: the fill was made with other settings than this run "
                            f"asks for (checkpoint vs now): {'; '.join(differ)}; resume with the "
                            "same ones or start a new fill")


# --------------------------------------------------------------------------
# Output files and checkpoints
# --------------------------------------------------------------------------


def check_output_name(volumes: dict, output_file: str) -> None:
    """Refuse no volumes, or several volumes whose outputs ``output_file`` would not tell apart.

    Raises
    ------
    DiluvianError
        For no volumes, or several without ``{volume}`` in ``output_file``.
    """
    if not volumes:
        raise DiluvianError("no volumes to fill")
    if len(volumes) > 1 and "{volume}" not in str(output_file):
        raise DiluvianError(f"output file {output_file!r} must contain '{{volume}}' to fill "
                            f"{len(volumes)} volumes")


def segmentation_paths(output_file: str, volume_name: str) -> tuple[Path, Path]:
    """``(OUT.hdf5, OUT.toml)`` for a volume, with ``{volume}`` substituted."""
    base = str(output_file).replace("{volume}", volume_name)
    return Path(base + ".hdf5"), Path(base + ".toml")


def dataset_name(volume_name: str) -> str:
    """Name of the segmentation dataset written for ``volume_name``."""
    return f"{volume_name}_segmentation"


def write_segmentation(hdf5_path, toml_path, volume_name: str, labels: np.ndarray,
                       image: np.ndarray | None, resolution, state: FillState | None = None,
                       background_label_id: int = 0) -> None:
    """Write a label volume (CREMI layout) and its dataset TOML, each atomically.

    Parameters
    ----------
    hdf5_path, toml_path : path-like
        Output files; the TOML refers to the HDF5 file by a path relative to it.
    volume_name : str
        Source volume; the dataset is named :func:`dataset_name` of it.
    labels : ndarray
        Label volume (stored as ``uint64``); with ``state``, the state's
        labels are written instead (with ``background_label_id`` applied).
    image : ndarray, optional
        Raw image stored as ``volumes/raw``.
    resolution : sequence of 3 numbers
        nm per voxel, Z, Y, X (``resolution`` attribute of each dataset).
    state : FillState, optional
        Resumable fill state, stored in the ``fill`` group.
    background_label_id : int
    """
    import h5py
    import tomli_w

    hdf5_path, toml_path = Path(hdf5_path), Path(toml_path)
    resolution = np.asarray(resolution, dtype=np.float64)
    if state is not None:
        labels = state.labels
        if background_label_id != 0:
            labels = labels.copy()
            labels[state.labels == 0] = background_label_id
    labels = np.asarray(labels, dtype=np.uint64)
    chunks = tuple(min(s, c) for s, c in zip(labels.shape, (32, 64, 64)))
    with atomic_output(hdf5_path, suffix=".hdf5") as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset(LABEL_PATH, data=labels, chunks=chunks, compression="gzip",
                              compression_opts=1)
        ds.attrs["resolution"] = resolution
        if image is not None:
            ds = f.create_dataset(IMAGE_PATH, data=np.asarray(image), chunks=chunks,
                                  compression="gzip", compression_opts=1)
            ds.attrs["resolution"] = resolution
        if state is not None:
            group = f.create_group(STATE_GROUP)
            f.create_dataset(SEEDS_PATH, data=np.asarray(state.seeds, dtype=np.int64))
            f.create_dataset(EXCLUDED_PATH, data=state.excluded.astype(np.uint8), chunks=chunks,
                             compression="gzip", compression_opts=1)
            group.attrs["state"] = json.dumps({
                "version": STATE_VERSION,
                "volume": volume_name,
                "next_seed": int(state.next_seed),
                "next_id": int(state.next_id),
                "background_label_id": int(background_label_id),
                "stats": asdict(state.stats),
                "settings": state.settings,
            })
    try:
        rel = hdf5_path.resolve().relative_to(toml_path.resolve().parent)
    except ValueError:
        rel = hdf5_path.resolve()
    entry = {"name": dataset_name(volume_name), "hdf5_file": str(rel), "label_dataset": LABEL_PATH,
             "resolution": [v.item() if hasattr(v, "item") else v
                            for v in np.asarray(resolution).tolist()]}
    if image is not None:
        entry["image_dataset"] = IMAGE_PATH
    entry["resolution"] = [int(v) if float(v).is_integer() else float(v)
                           for v in entry["resolution"]]
    with atomic_output(toml_path, suffix=".toml") as tmp:
        tmp.write_text(tomli_w.dumps({"dataset": [entry]}))


def read_fill_checkpoint(resume_filename) -> tuple[str, FillState, np.ndarray]:
    """Read a dataset TOML (one dataset) and its label volume to resume a fill.

    Returns
    -------
    name : str
        Dataset name in the TOML.
    state : FillState
        Labels (0 = unlabelled), rejected voxels, seeds, counters and the
        fill's settings.
    resolution : ndarray
        Resolution of the label dataset.

    Raises
    ------
    DiluvianError
        If the TOML does not hold exactly one HDF5 dataset with labels, the
        file is not a fill's output (no ``fill`` group), or its state is
        unreadable.
    """
    import h5py

    path = Path(resume_filename)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise DiluvianError(f"{path}: resume file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise DiluvianError(f"{path}: is not a dataset TOML file: {exc}") from None
    entries = doc.get("dataset")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise DiluvianError(f"{path}: a resume file must hold exactly one [[dataset]] entry")
    entry = entries[0]
    if "hdf5_file" not in entry or "label_dataset" not in entry:
        raise DiluvianError(f"{path}: the [[dataset]] entry needs hdf5_file and label_dataset "
                            "to resume from")
    h5 = Path(entry["hdf5_file"]).expanduser()
    h5 = h5 if h5.is_absolute() else path.parent / h5
    try:
        f = h5py.File(h5, "r")
    except (FileNotFoundError, OSError) as exc:
        raise DiluvianError(f"{path}: cannot open hdf5_file {str(h5)!r}: {exc}") from None
    with f:
        ds = f.get(entry["label_dataset"])
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
            raise DiluvianError(f"{h5}: label_dataset {entry['label_dataset']!r} is not a 3D "
                                "dataset")
        labels = np.asarray(ds[...]).astype(np.uint64)
        resolution = np.asarray(entry.get("resolution", ds.attrs.get("resolution", [1, 1, 1])))
        state = FillState(labels=labels, excluded=np.zeros(labels.shape, dtype=bool), seeds=None)
        group = f.get(STATE_GROUP)
        if group is None:
            raise DiluvianError(f"{path}: {h5} holds no fill state: it is not the output of "
                                "`diluvian fill` (give the OUT.toml that a fill wrote)")
        try:
            info = json.loads(group.attrs["state"])
            state.seeds = np.asarray(f[SEEDS_PATH][...], dtype=np.int64).reshape(-1, 3)
            state.excluded = np.asarray(f[EXCLUDED_PATH][...]).astype(bool)
            state.next_seed = int(info["next_seed"])
            state.next_id = int(info["next_id"])
            known = set(FillStats.__dataclass_fields__)
            state.stats = FillStats(**{k: v for k, v in info["stats"].items() if k in known})
            background = int(info.get("background_label_id", 0))
            state.settings = info.get("settings")
        except (KeyError, ValueError, TypeError) as exc:
            raise DiluvianError(f"{h5}: corrupt fill state: {exc}") from None
    if background != 0:
        state.labels[labels == background] = 0
    if state.excluded.shape != labels.shape or not 0 <= state.next_seed <= len(state.seeds):
        raise DiluvianError(f"{h5}: inconsistent fill state (next seed {state.next_seed} of "
                            f"{len(state.seeds)})")
    return str(entry.get("name", "")), state, resolution


