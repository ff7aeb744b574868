"""Sparse filling: fill single objects from seeds in subvolumes and score them.

``diluvian gen-subv-bounds`` (:func:`generate_subvolume_bounds`) writes
random subvolume boxes to a CSV per volume; ``diluvian sparse-fill``
(:func:`fill_region_with_model`) fills one object from the centre seed of
each box (random boxes, or those of such a CSV) and prints, per region,
F_0.5, precision, recall and IoU against the seed's ground truth object.

Subvolume shapes are ``input_fov_shape + 2 * moves * move_step``, so a fill
can make ``moves`` moves from the seed in each direction before it reaches
the box edge. Keras is imported only when a model is loaded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fill.options import FillOptions
from .util import DiluvianError, binary_confusion_matrix, confusion_f_score, make_rng

__all__ = [
    "DEFAULT_BOUNDS_NUM_MOVES",
    "DEFAULT_NUM_REGIONS",
    "fill_region_with_model",
    "format_results_table",
    "fill_seeded_objects",
    "generate_subvolume_bounds",
    "object_seeds",
    "subvolume_shape_for_moves",
]

logger = logging.getLogger(__name__)

#: Moves from the seed in each direction (Z, Y, X) that a subvolume allows when
#: ``moves`` is not given (the original diluvian default).
DEFAULT_BOUNDS_NUM_MOVES = (5, 5, 5)
#: Regions filled by ``sparse-fill`` from random subvolumes when
#: ``num_regions`` is not given.
DEFAULT_NUM_REGIONS = 10
#: Regions with more voxels than this keep their mask block-sparse.
SPARSE_MASK_VOXELS = 2 ** 24


def _config_or_default(config):
    if config is None:
        from .config import CONFIG

        return CONFIG
    return config


def subvolume_shape_for_moves(moves: Sequence[int] | None, model_config) -> np.ndarray:
    """Subvolume shape ``input_fov_shape + 2 * moves * move_step`` (Z, Y, X voxels).

    Parameters
    ----------
    moves : sequence of 3 int, optional
        Moves from the seed in each direction; defaults to
        :data:`DEFAULT_BOUNDS_NUM_MOVES`.
    model_config : diluvian.config.ModelConfig
        FOV shape and move step.
    """
    moves = np.asarray(DEFAULT_BOUNDS_NUM_MOVES if moves is None else moves, dtype=np.int64)
    if moves.shape != (3,) or np.any(moves < 0):
        raise DiluvianError(f"--bounds-num-moves {moves.ravel().tolist()} is invalid: expected "
                            "three non-negative integers (Z Y X)")
    return (np.asarray(model_config.input_fov_shape, dtype=np.int64)
            + 2 * moves * np.asarray(model_config.move_step, dtype=np.int64))


def _per_volume_filename(template: str, name: str, n_volumes: int, what: str) -> Path:
    template = str(template)
    if "{volume}" not in template and n_volumes > 1:
        raise DiluvianError(f"{what} {template!r} must contain '{{volume}}' when there are "
                            f"{n_volumes} volumes")
    return Path(template.replace("{volume}", name))


def generate_subvolume_bounds(filename: str, volumes: dict, num_bounds: int,
                              moves: Sequence[int] | None = None, config=None) -> dict[str, Path]:
    """Write ``num_bounds`` random subvolume bounds per volume to CSV files.

    Boxes are drawn by each volume's
    :meth:`~diluvian.volumes.Volume.subvolume_bounds_generator` (seed at the
    box centre, inside the volume's mask if it has one) with a random stream
    ``make_rng(config.random_seed, 'subv-bounds', volume_name)``, so the
    files depend only on the seed and the volume names.

    Parameters
    ----------
    filename : str
        Output CSV name; ``{volume}`` is replaced by each volume's name (and
        is required when there are several volumes).
    volumes : dict
        ``{name: Volume}``.
    num_bounds : int
        Boxes per volume.
    moves : sequence of 3 int, optional
        Box shape is ``input_fov_shape + 2 * moves * move_step``; defaults to
        :data:`DEFAULT_BOUNDS_NUM_MOVES`.
    config : diluvian.config.Config, optional
        Defaults to :data:`diluvian.config.CONFIG`.

    Returns
    -------
    dict
        ``{volume name: CSV path written}``.
    """
    from .volumes.subvolume import SubvolumeBounds

    config = _config_or_default(config)
    if int(num_bounds) < 1:
        raise DiluvianError(f"number of bounds {num_bounds} is invalid: expected at least 1")
    if not volumes:
        raise DiluvianError("no volumes to generate subvolume bounds for")
    shape = subvolume_shape_for_moves(moves, config.model)
    paths = {name: _per_volume_filename(filename, name, len(volumes), "bounds output file")
             for name in volumes}
    for name, volume in volumes.items():
        rng = make_rng(config.random_seed, "subv-bounds", name)
        generator = volume.subvolume_bounds_generator(shape=shape, rng=rng, config=config)
        bounds = [next(generator) for _ in range(int(num_bounds))]
        SubvolumeBounds.iterable_to_csv(bounds, paths[name])
        logger.info("wrote %d bounds of shape %s for %s to %s", len(bounds), shape.tolist(),
                    name, paths[name])
    return paths


# --------------------------------------------------------------------------
# sparse-fill
# --------------------------------------------------------------------------


def _load_model(model_file, config):
    if model_file is None:
        raise DiluvianError("sparse filling needs a trained model file (-m MODEL_FILE)")
    from .network import (
        apply_model_settings,
        load_model,
        read_model_settings,
        resolve_dtype_policy,
    )

    apply_model_settings(config, read_model_settings(model_file), source=str(model_file))
    model = load_model(model_file, network_config=config.network,
                       dtype_policy=resolve_dtype_policy(config.fill.dtype_policy))
    in_shape = [int(s) for s in model.inputs[0].shape[1:4]]
    out_shape = [int(s) for s in model.outputs[0].shape[1:4]]
    want_in = config.model.input_fov_shape.tolist()
    want_out = config.model.output_fov_shape.tolist()
    if in_shape != want_in or out_shape != want_out:
        raise DiluvianError(
            f"{model_file}: the model maps FOVs {in_shape} -> {out_shape} but [model] "
            f"input_fov_shape/output_fov_shape are {want_in} -> {want_out}")
    return model


def _region_filename(template, volume: str, index: int, many: bool) -> Path:
    text = str(template).replace("{volume}", volume).replace("{region}", str(index))
    path = Path(text)
    if many and ("{region}" not in str(template) or "{volume}" not in str(template)):
        # Keep one file per region even when the template has no placeholders.
        path = path.with_name(f"{path.stem}-{volume}-{index}{path.suffix}")
    return path


def _bounds_sources(volumes: dict, bounds_input_file, num_regions, moves, config):
    """Yield ``(volume name, SubvolumeBounds)`` in fill order."""
    if bounds_input_file is not None:
        from .volumes.subvolume import SubvolumeBounds

        for name in volumes:
            path = _per_volume_filename(bounds_input_file, name, len(volumes),
                                        "bounds input file")
            for bounds in SubvolumeBounds.iterable_from_csv(path, shape=volumes[name].shape):
                yield name, bounds
        return
    shape = subvolume_shape_for_moves(moves, config.model)
    generators = {
        name: volume.subvolume_bounds_generator(
            shape=shape, rng=make_rng(config.random_seed, "sparse-fill", name), config=config)
        for name, volume in volumes.items()}
    names = list(volumes)
    for i in range(DEFAULT_NUM_REGIONS if num_regions is None else int(num_regions)):
        name = names[i % len(names)]
        yield name, next(generators[name])


def _region_metrics(region) -> dict[str, float]:
    if region.target is None:
        nan = float("nan")
        return {"f_0.5": nan, "precision": nan, "recall": nan, "iou": nan}
    truth = np.asarray(region.target, dtype=bool)
    pred = region.get_final_mask()
    confusion = binary_confusion_matrix(truth, pred)
    tp, fp, fn = (int(confusion[1, 1]), int(confusion[0, 1]), int(confusion[1, 0]))
    return {
        "f_0.5": confusion_f_score(confusion, beta=0.5),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "iou": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
    }


def format_results_table(results: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of :func:`fill_region_with_model` results with a mean row."""
    header = (f"{'#':>3} {'volume':<14} {'seed (z, y, x)':<18} {'label':>10} {'moves':>6} "
              f"{'F0.5':>6} {'prec':>6} {'recall':>6} {'IoU':>6}")
    lines = [header, "-" * len(header)]
    for r in results:
        seed = ",".join(str(s) for s in r["seed_vox"])
        label = "-" if r["label_id"] is None else str(r["label_id"])
        lines.append(f"{r['region']:>3} {r['volume'][:14]:<14} {seed:<18} {label:>10} "
                     f"{r['moves']:>6} {r['f_0.5']:>6.3f} {r['precision']:>6.3f} "
                     f"{r['recall']:>6.3f} {r['iou']:>6.3f}")
    if results:
        def mean(key):
            values = [r[key] for r in results if not math.isnan(r[key])]
            return float(np.mean(values)) if values else float("nan")

        lines.append("-" * len(header))
        lines.append(f"{'':>3} {'mean':<14} {'':<18} {'':>10} "
                     f"{np.mean([r['moves'] for r in results]):>6.1f} {mean('f_0.5'):>6.3f} "
                     f"{mean('precision'):>6.3f} {mean('recall'):>6.3f} {mean('iou'):>6.3f}")
    return "\n".join(lines)


def _show_viewer(region, volume_name: str, index: int, resolution) -> None:
    try:
        from .util import WrappedViewer
    except ImportError as exc:  # pragma: no cover - neuroglancer is a dependency
        logger.warning("neuroglancer viewer unavailable: %s", exc)
        return
    viewer = WrappedViewer(voxel_size=np.asarray(resolution).tolist())
    viewer.add(region.image, name="image")
    if region.target is not None:
        viewer.add(np.asarray(region.target), name="label", kind="mask")
    viewer.add(np.nan_to_num(region.get_mask_array(), nan=0.0), name="mask")
    viewer.add(region.get_final_mask(), name="final mask", kind="mask")
    viewer.set_position(region.seed_vox)
    print(f"Region {index} of {volume_name}:")
    viewer.print_view_prompt()


def fill_region_with_model(  # noqa: PLR0913 - the documented public signature
    model_file,
    volumes: dict | None = None,
    partition: bool = False,
    augment: bool = False,
    bounds_input_file: str | None = None,
    bias: bool = True,
    move_batch_size: int = 1,
    max_moves: int | None = None,
    remask_interval: int | None = None,
    moves: Sequence[int] | None = None,
    num_regions: int | None = None,
    viewer: bool = False,
    animation_output_file: str | None = None,
    swc_output_file: str | None = None,
    config=None,
    progress: bool = True,
    print_table: bool = True,
) -> list[dict[str, Any]]:
    """Fill single objects from subvolume centre seeds with a model and score them.

    Parameters
    ----------
    model_file : str or path-like
        Diluvian ``.keras`` model file; its stored model settings fill the
        ``[model]`` keys that ``config`` does not set explicitly.
    volumes : dict, optional
        ``{name: Volume}``; defaults to the built-in synthetic dataset.
    partition : bool
        Fill only the validation partition of each volume
        (:func:`diluvian.volumes.partition_volumes`); otherwise volumes are
        downsampled to ``[volume] resolution``.
    augment : bool
        Apply the ``[training]`` augmentations
        (:func:`diluvian.training.make_augmentations`) to each subvolume,
        with a random stream of the configured seed.
    bounds_input_file : str, optional
        Bounds CSV written by :func:`generate_subvolume_bounds`
        (``{volume}`` replaced by each volume's name): every box is filled,
        in file order. Without it, random boxes of shape
        ``input_fov_shape + 2 * moves * move_step`` are drawn, cycling
        through the volumes.
    bias : bool
        Anti-merge bias update (see :meth:`diluvian.regions.Region.add_mask`).
    move_batch_size, max_moves, remask_interval
        As for :meth:`diluvian.regions.Region.fill`.
    moves : sequence of 3 int, optional
        Size of random boxes; defaults to :data:`DEFAULT_BOUNDS_NUM_MOVES`.
    num_regions : int, optional
        Fill at most this many regions in all; random boxes default to
        :data:`DEFAULT_NUM_REGIONS`, a bounds file to all its boxes.
    viewer : bool
        Show each filled region in a neuroglancer viewer and wait for Enter.
    animation_output_file : str, optional
        Write a ``.gif``/``.mp4`` animation of each fill; ``{volume}`` and
        ``{region}`` are replaced (missing ones are appended to the name when
        several regions are filled).
    swc_output_file : str, optional
        Write an SWC skeleton of each filled body, in nm (same naming).
    config : diluvian.config.Config, optional
        Defaults to :data:`diluvian.config.CONFIG`; it is copied, not
        changed.
    progress : bool
        Show a progress bar of regions.
    print_table : bool
        Print the per-region metrics table at the end.

    Returns
    -------
    list of dict
        One dict per region: ``volume``, ``region`` (index), ``seed_vox``
        (Z, Y, X in the filled volume), ``start`` and ``stop`` of the box,
        ``label_id``, ``moves``, ``early_termination``, ``mask_voxels``
        (voxels at least ``t_final``), ``f_0.5``, ``precision``, ``recall``
        and ``iou`` against the seed's label mask (NaN without labels).
    """
    from tqdm.auto import tqdm

    config = _config_or_default(config).copy()
    if num_regions is not None and int(num_regions) < 1:
        raise DiluvianError(f"--num-regions {num_regions} is invalid: expected at least 1")
    if move_batch_size < 1:
        raise DiluvianError(f"--move-batch-size {move_batch_size} is invalid: expected at least 1")
    if volumes is None:
        from .volumes import load_volumes

        volumes = load_volumes([], in_memory=True, config=config)
    if not volumes:
        raise DiluvianError("no volumes to fill")
    if partition:
        from .volumes import partition_volumes

        _, volumes = partition_volumes(volumes, downsample=True, config=config)
    else:
        volumes = {name: v.downsample(config.volume.resolution,
                                      label_mode=config.volume.label_downsampling)
                   for name, v in volumes.items()}

    if bounds_input_file is not None:
        # Bounds files are read and checked before the model is loaded.
        sources = list(_bounds_sources(volumes, bounds_input_file, num_regions, moves, config))
    model = _load_model(model_file, config)
    if bounds_input_file is None:
        sources = list(_bounds_sources(volumes, bounds_input_file, num_regions, moves, config))
    if num_regions is not None:
        sources = sources[:int(num_regions)]
    many = len(sources) > 1
    options = FillOptions.from_config(config, bias=bias, move_batch_size=int(move_batch_size),
                                      max_moves=max_moves, remask_interval=remask_interval)
    out = _SparseOutputs(animation_output_file, swc_output_file, viewer, many)
    augmentations = _Augmenter(config) if augment else None
    results: list[dict[str, Any]] = []
    bar = tqdm(sources, desc="Sparse filling", unit="region", disable=not progress)
    for index, (name, bounds) in enumerate(bar):
        result = _fill_subvolume(model, volumes[name], name, index, bounds,
                                 (options, augmentations), out)
        results.append(result)
        bar.set_postfix(moves=result["moves"], iou=f"{result['iou']:.3f}")
    bar.close()
    if print_table:
        print(format_results_table(results))
    return results


@dataclass(frozen=True)
class _SparseOutputs:
    """What ``sparse-fill`` writes or shows of each region."""

    animation_output_file: str | None
    swc_output_file: str | None
    viewer: bool
    many: bool


class _Augmenter:
    """The ``[training]`` augmentations of each subvolume (made for the first one)."""

    def __init__(self, config):
        self.config = config
        self.augmentations = None

    def __call__(self, subvolume, name: str, index: int):
        from .training.augment import apply_augmentations, make_augmentations

        config = self.config
        if self.augmentations is None:
            shapes = [subvolume.image.shape, config.model.input_fov_shape,
                      config.model.output_fov_shape]
            self.augmentations = make_augmentations(config.training, shapes=shapes,
                                                    config=config)
        rng = make_rng(config.random_seed, "sparse-fill-augment", name, index)
        return apply_augmentations(subvolume, self.augmentations, rng)


def _fill_subvolume(model, volume, name: str, index: int, bounds, how,
                    out: _SparseOutputs) -> dict[str, Any]:
    """Fill the object of one subvolume's centre seed; its result row."""
    from .regions import Region

    options, augment = how
    subvolume = volume.get_subvolume(bounds)
    if augment is not None:
        subvolume = augment(subvolume, name, index)
    sparse = int(np.prod(subvolume.image.shape)) > SPARSE_MASK_VOXELS
    region = Region.from_subvolume(
        subvolume, sparse_mask=sparse, model_config=options.model_config,
        rng=make_rng(options.random_seed, "sparse-fill-moves", name, index))
    # Region.fill batches FOVs through diluvian.regions.predict_requests, as dense filling does.
    fill_kwargs = {"move_batch_size": options.move_batch_size, "max_moves": options.max_moves,
                   "remask_interval": options.remask_interval, "bias": options.bias}
    if out.animation_output_file is not None:
        region.fill_animation(_region_filename(out.animation_output_file, name, index, out.many),
                              model, **fill_kwargs)
    else:
        region.fill(model, progress=False, **fill_kwargs)
    result = {
        "volume": name,
        "region": index,
        "seed_vox": (bounds.start + region.seed_vox).tolist(),
        "start": bounds.start.tolist(),
        "stop": bounds.stop.tolist(),
        "label_id": subvolume.label_id,
        "moves": int(region.num_moves),
        "early_termination": bool(region.early_termination),
        "mask_voxels": int(np.count_nonzero(region.get_final_mask())),
        **_region_metrics(region),
    }
    if out.swc_output_file is not None:
        region.to_body().to_swc(_region_filename(out.swc_output_file, name, index, out.many),
                                resolution=volume.resolution, offset_vox=bounds.start)
    if out.viewer:
        _show_viewer(region, name, index, volume.resolution)
    return result


# --------------------------------------------------------------------------
# Seeded single-object fills on labelled arrays (acceptance and benchmarks)
# --------------------------------------------------------------------------


def _label_boundaries(labels: np.ndarray) -> np.ndarray:
    """Voxels with a 6-neighbour of another label (both sides of every boundary)."""
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        differs = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        boundary[tuple(lo)] |= differs
        boundary[tuple(hi)] |= differs
    return boundary


def object_seeds(labels: np.ndarray, num_seeds: int, rng: np.random.Generator, *,
                 min_size_vox: int = 20000, margin_vox: int = 24,
                 sampling: Sequence[float] | None = None,
                 background: int = 0) -> list[dict[str, Any]]:
    """Seeds at distance-transform maxima of randomly chosen large ground-truth objects.

    Objects of at least ``min_size_vox`` voxels are visited in a random
    order drawn from ``rng``; each gives the voxel farthest from any label
    boundary (Euclidean distance transform, ``sampling`` per axis) among its
    voxels at least ``margin_vox`` from the volume border. Objects with no
    such voxel are passed over.

    Parameters
    ----------
    labels : ndarray of int
        Dense ground-truth labels, Z, Y, X.
    num_seeds : int
        Seeds wanted (fewer are returned if too few objects qualify).
    rng : numpy.random.Generator
        Chooses the objects.
    min_size_vox, margin_vox : int
        Smallest object, and the border kept free of seeds.
    sampling : sequence of float, optional
        Voxel size per axis for the distance transform (e.g. the resolution).
    background : int
        Label never seeded.

    Returns
    -------
    list of dict
        ``label_id``, ``seed_vox`` (Z, Y, X), ``distance_vox`` (the distance
        transform at the seed) and ``size_vox`` (the object's voxels).
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    ids, counts = np.unique(labels, return_counts=True)
    keep = (counts >= min_size_vox) & (ids != background)
    ids, counts = ids[keep], counts[keep]
    order = rng.permutation(len(ids))
    distance = ndimage.distance_transform_edt(~_label_boundaries(labels), sampling=sampling)
    inner = np.zeros(labels.shape, dtype=bool)
    inner[tuple(slice(margin_vox, max(margin_vox, n - margin_vox)) for n in labels.shape)] = True
    distance[~inner] = 0
    seeds = []
    for i in order:
        if len(seeds) >= num_seeds:
            break
        where = np.where(labels == ids[i], distance, -1.0)
        seed = np.unravel_index(int(np.argmax(where)), labels.shape)
        if where[seed] <= 0:
            continue
        seeds.append({"label_id": int(ids[i]), "seed_vox": [int(s) for s in seed],
                      "distance_vox": float(where[seed]), "size_vox": int(counts[i])})
    return seeds


def fill_seeded_objects(image, labels: np.ndarray, seeds: Sequence[dict[str, Any]], model,  # noqa: PLR0913
                        model_config, *, box_shape: Sequence[int] | None = None,
                        batch_size: int = 16, max_moves: int | None = None,
                        progress: bool = False) -> list[dict[str, Any]]:
    """Fill one object from each seed and score it against its ground-truth object.

    Each fill is confined to a box of ``box_shape`` centred on its seed
    (shifted to lie inside the volume; the whole volume when ``None``), the
    box edge padded as a volume edge, and is scored within that box. Regions
    are filled together in batches of ``batch_size`` FOVs
    (:func:`diluvian.regions.fill_regions`, one FOV per region per batch, so
    each fills exactly as it would alone).

    Parameters
    ----------
    image : array-like
        Image volume, Z, Y, X.
    labels : ndarray of int
        Ground-truth labels of the same shape.
    seeds : sequence of dict
        With ``seed_vox`` and ``label_id``, e.g. from :func:`object_seeds`.
    model : keras.Model or callable
        See :func:`diluvian.regions.as_predictor`.
    model_config : diluvian.config.ModelConfig
        FOV shapes, move step and thresholds.
    box_shape : sequence of int, optional
        Box each fill is confined to.
    batch_size : int
        FOVs per model call.
    max_moves : int, optional
        Cap on moves per region.
    progress : bool
        Show a progress bar of moves.

    Returns
    -------
    list of dict
        Each seed's dict with ``box_start``, ``box_stop``, ``moves``,
        ``iou``, ``precision``, ``recall`` and ``f_0.5`` added.
    """
    from .regions import Region, fill_regions

    shape = np.asarray(labels.shape, dtype=np.int64)
    box = shape if box_shape is None else np.minimum(np.asarray(box_shape, np.int64), shape)
    regions, boxes = [], []
    for seed in seeds:
        vox = np.asarray(seed["seed_vox"], dtype=np.int64)
        lo = np.clip(vox - box // 2, 0, shape - box)
        hi = lo + box
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        target = np.asarray(labels[sl]) == seed["label_id"]
        regions.append(Region(np.asarray(image[sl]), target=target, seed_vox=vox - lo,
                              model_config=model_config))
        boxes.append((lo, hi))
    fill_regions(regions, model, batch_size=batch_size, moves_per_region=1, progress=progress,
                 max_moves=max_moves)
    results = []
    for seed, region, (lo, hi) in zip(seeds, regions, boxes):
        results.append({**seed, "box_start": lo.tolist(), "box_stop": hi.tolist(),
                        "moves": int(region.num_moves), **_region_metrics(region)})
    return results
