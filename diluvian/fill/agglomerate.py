"""``diluvian agglomerate``: merge touching objects the network fills across.

Google FFN's resegmentation, simplified. For every pair of objects of a label
volume that touch over at least ``min_contact_vox`` voxel faces:

1. the **contact point** is the touching voxel face nearest the mean position
   of all the pair's faces (ties: the first in C order);
2. a **subvolume** of ``subvolume_shape`` voxels (default twice the input
   FOV, minus one) is centred on it and clipped to the volume;
3. in each object a **seed** is placed at the voxel deepest inside the
   object (largest distance to its boundary, in nm, within the subvolume)
   among its voxels within half an input FOV of the contact point;
4. the network fills a region from each seed in the subvolume (all regions
   of all pairs batched through :func:`diluvian.regions.iter_fill_regions`);
5. ``score_ab`` is the fraction of object ``b``'s voxels in the subvolume that
   the fill from ``a`` reaches (mask at least ``t_final``), ``score_ba`` the
   converse; the pair is **merged** when both are at least
   ``merge_threshold``. With ``early_stop`` (the default) a fill stops as
   soon as it reaches ``merge_threshold`` of the other object, and once one
   side of a pair has ended below it the other side stops too (the pair can
   no longer merge); such a side records the score it had when it stopped.

Merges are transitive (union-find, :class:`scipy.cluster.hierarchy.DisjointSet`):
each merged set takes the smallest label of its members. Every choice is
deterministic; region move orders use streams of the configured seed.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage
from scipy.cluster.hierarchy import DisjointSet

from ..util import DiluvianError, atomic_output, make_rng

__all__ = ["AgglomerationOptions", "Contact", "PairCrops", "agglomerate",
           "agglomerate_volume", "contacts", "merge_labels", "pair_crops", "score_pairs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgglomerationOptions:
    """Settings of an agglomeration.

    Attributes
    ----------
    min_contact_vox : int
        Pairs touching over fewer voxel faces are not tried.
    merge_threshold : float
        Both fills must reach at least this fraction of the other object
        (within the subvolume) for a merge.
    subvolume_shape : tuple of 3 int, optional
        Z, Y, X voxels around each contact; default ``2 * input_fov_shape - 1``.
    batch_size : int
        FOVs per model call, across pairs.
    max_moves : int, optional
        Stop each fill after this many moves.
    early_stop : bool
        Stop a fill once the pair's decision is known: when it reaches
        ``merge_threshold`` of the other object, or when the pair's other
        fill has ended below it. The recorded score of a stopped fill is
        its score at that point.
    pairs_per_task : int
        Pairs each Dask task fills (batched together) when agglomerating on
        Dask; every pair's result is the same however the pairs are split.
    """

    min_contact_vox: int = 10
    merge_threshold: float = 0.5
    subvolume_shape: tuple[int, int, int] | None = None
    batch_size: int = 8
    max_moves: int | None = None
    early_stop: bool = True
    pairs_per_task: int = 16

    def __post_init__(self):
        if self.min_contact_vox < 1:
            raise DiluvianError(f"minimum contact {self.min_contact_vox} is invalid: expected "
                                "at least 1 voxel face")
        if not 0.0 <= self.merge_threshold <= 1.0:
            raise DiluvianError(f"merge threshold {self.merge_threshold} is invalid: expected "
                                "a fraction from 0 to 1")
        if self.batch_size < 1:
            raise DiluvianError(f"batch size {self.batch_size} is invalid: expected at least 1")
        if self.pairs_per_task < 1:
            raise DiluvianError(f"pairs per task {self.pairs_per_task} is invalid: expected at "
                                "least 1")


@dataclass(frozen=True)
class Contact:
    """Two touching objects: labels ``a < b``, face count and a contact voxel of each."""

    a: int
    b: int
    area: int
    vox_a: tuple[int, int, int]
    vox_b: tuple[int, int, int]


def contacts(labels: np.ndarray, min_area: int = 1) -> list[Contact]:
    """Pairs of non-zero labels sharing at least ``min_area`` voxel faces.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2, 2, 0, 3]]])
    >>> contacts(labels)
    [Contact(a=1, b=2, area=1, vox_a=(0, 0, 1), vox_b=(0, 0, 2))]
    """
    labels = np.asarray(labels)
    lows, highs, here, there = [], [], [], []
    for axis in range(3):
        lo = labels[(slice(None),) * axis + (slice(0, -1),)]
        hi = labels[(slice(None),) * axis + (slice(1, None),)]
        where = np.argwhere((lo != hi) & (lo != 0) & (hi != 0))
        u, v = lo[tuple(where.T)].astype(np.int64), hi[tuple(where.T)].astype(np.int64)
        step = np.zeros(3, np.int64)
        step[axis] = 1
        lows.append(np.minimum(u, v))
        highs.append(np.maximum(u, v))
        # ``here`` is the voxel of the smaller label, ``there`` of the larger.
        swap = (u > v)[:, None]
        here.append(np.where(swap, where + step, where))
        there.append(np.where(swap, where, where + step))
    a, b = np.concatenate(lows), np.concatenate(highs)
    if a.size == 0:
        return []
    here, there = np.concatenate(here), np.concatenate(there)
    keys, pair, area = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True,
                                 return_counts=True)
    pair = pair.reshape(-1)
    centre = here + there  # twice the face centre
    mean = np.stack([np.bincount(pair, centre[:, i]) for i in range(3)], axis=1) / area[:, None]
    distance = np.sum((centre - mean[pair]) ** 2, axis=1)
    order = np.lexsort((np.arange(len(pair)), distance, pair))
    first = order[np.r_[0, np.flatnonzero(np.diff(pair[order])) + 1]]
    return [Contact(int(keys[i, 0]), int(keys[i, 1]), int(area[i]),
                    tuple(int(c) for c in here[f]), tuple(int(c) for c in there[f]))
            for i, f in enumerate(first) if area[i] >= min_area]


def _subvolume(centre, shape, volume_shape) -> tuple[slice, ...]:
    lo = np.clip(np.asarray(centre) - np.asarray(shape) // 2, 0, None)
    hi = np.minimum(lo + np.asarray(shape), volume_shape)
    lo = np.maximum(hi - np.asarray(shape), 0)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _seed(inside: np.ndarray, contact, radius, resolution) -> tuple[int, int, int]:
    """Deepest voxel of ``inside`` within ``radius`` voxels (per axis) of ``contact``."""
    depth = scipy.ndimage.distance_transform_edt(np.pad(inside, 1), sampling=resolution)
    depth = depth[1:-1, 1:-1, 1:-1]
    contact = np.clip(np.asarray(contact), 0, np.asarray(inside.shape) - 1)
    grid = np.indices(inside.shape) - contact.reshape(3, 1, 1, 1)
    near = np.sum((grid / np.maximum(np.asarray(radius), 1).reshape(3, 1, 1, 1)) ** 2, axis=0)
    depth[near > 1.0] = 0
    if depth.max() <= 0:
        return tuple(int(c) for c in contact)
    return tuple(int(c) for c in np.unravel_index(int(np.argmax(depth)), depth.shape))


@dataclass(frozen=True)
class PairCrops:
    """One pair's subvolume, as its two fills need it (all a Dask task is sent).

    ``index`` is the pair's place in :func:`contacts`' list, which keys the
    random streams of its fills; ``seeds`` are the seed voxels of ``a`` and
    ``b`` in the subvolume.
    """

    index: int
    a: int
    b: int
    image: np.ndarray
    labels: np.ndarray
    seeds: tuple


def pair_crops(image, labels, pairs, shape, radius, resolution):
    """Yield the :class:`PairCrops` of each contact of ``pairs`` (subvolumes of ``shape``)."""
    for index, contact in enumerate(pairs):
        box = _subvolume(contact.vox_a, shape, labels.shape)
        crop = np.asarray(labels[box])
        start = np.asarray([s.start for s in box])
        seeds = tuple(_seed(crop == label, np.asarray(vox) - start, radius, resolution)
                      for label, vox in ((contact.a, contact.vox_a), (contact.b, contact.vox_b)))
        yield PairCrops(index, contact.a, contact.b, np.asarray(image[box]), crop, seeds)


def score_pairs(model, crops, options: AgglomerationOptions, config,
                progress: bool = True) -> dict[int, tuple[float, float]]:
    """Fill both sides of each pair of ``crops``, batched; ``{pair index: (score_ab, score_ba)}``."""
    from ..regions import Region, iter_fill_regions

    t_final, threshold = float(config.model.t_final_value), options.merge_threshold
    scores, done, owner = {}, set(), {}

    def source():
        for pair in crops:
            scores[pair.index] = [0.0, 0.0]
            for side, (seed, other) in enumerate(zip(pair.seeds, (pair.b, pair.a))):
                target = pair.labels == other  # the other object's voxels, once per fill
                region = Region(pair.image, seed_vox=seed, model_config=config.model,
                                rng=make_rng(config.random_seed, "agglomerate", pair.index, side))
                owner[id(region)] = (pair.index, side, target, max(int(target.sum()), 1))
                yield region

    def score(region) -> tuple[int, int, float]:
        index, side, target, size = owner[id(region)]
        filled = np.nan_to_num(np.asarray(region.mask), nan=0.0) >= t_final
        return index, side, float(filled[target].sum()) / size

    def decided(region) -> bool:
        index, side, value = score(region)
        other = (index, 1 - side)
        return value >= threshold or (other in done and scores[index][1 - side] < threshold)

    for region in iter_fill_regions(source(), model, batch_size=options.batch_size,
                                    max_moves=options.max_moves, progress=progress,
                                    stopping_callback=decided if options.early_stop else None):
        index, side, scores[index][side] = score(region)
        done.add((index, side))
        owner.pop(id(region))
    return {index: (a, b) for index, (a, b) in scores.items()}


def _score_task(model, network_config, dtype_policy, tf_threads, crops, options, config):
    """A Dask task: the scores of a few pairs, with the worker's cached model."""
    from ..blockwise.workers import worker_model

    net = worker_model(model, network_config, dtype_policy, tf_threads)
    return score_pairs(net, crops, options, config, progress=False)


def _score_on_dask(client, model, crops, options, config, progress) -> dict:
    """:func:`score_pairs` of ``crops`` split into tasks of ``options.pairs_per_task`` pairs."""
    from ..blockwise.workers import _local_tf_threads, run_tasks

    crops = list(crops)
    step = options.pairs_per_task
    args = (model, config.network, str(config.fill.dtype_policy), _local_tf_threads(client))
    futures = [client.submit(_score_task, *args, crops[i:i + step], options, config,
                             pure=False) for i in range(0, len(crops), step)]
    scores = {}
    for part in run_tasks(client, futures, "agglomerate", progress, unit="task"):
        scores.update(part)
    return scores


def agglomerate(model, image, labels, resolution=(1, 1, 1), *,
                options: AgglomerationOptions | None = None, config=None,
                progress: bool = True, client=None) -> tuple[np.ndarray, list[dict]]:
    """Merge touching objects of ``labels`` that the network fills across.

    Parameters
    ----------
    model : keras.Model, callable or model file
        The network, or ``predictor(images, masks) -> probs``; with a Dask
        ``client``, a model file is loaded once per worker.
    image, labels : ndarray, ZYX
        The image and a segmentation of it (0 is background).
    resolution : sequence of 3 float
        nm per voxel, Z, Y, X (for placing seeds deep inside objects).
    options : AgglomerationOptions, optional
    config : Config, optional
        ``[model]`` settings (FOVs, thresholds) and ``random_seed``.
    progress : bool
        Show a progress bar of moves (of pairs on Dask).
    client : dask.distributed.Client, optional
        Fill the pairs on this client's workers, ``options.pairs_per_task``
        pairs a task; the decisions are those of a single-process run.

    Returns
    -------
    merged : ndarray
        ``labels`` with each merged set given its smallest label.
    rows : list of dict
        One per pair tried: ``a``, ``b``, ``contact_area``, ``z``, ``y``,
        ``x`` (the contact voxel of ``a``), ``score_ab``, ``score_ba``,
        ``merged``.
    """
    if config is None:
        from ..config import CONFIG as config
    options = options or AgglomerationOptions()
    labels = np.asarray(labels)
    if tuple(np.shape(image)) != labels.shape:
        raise DiluvianError(f"image of shape {list(np.shape(image))} and labels of shape "
                            f"{list(labels.shape)}: expected the same shape")
    shape = options.subvolume_shape or tuple(2 * int(s) - 1 for s in
                                             config.model.input_fov_shape)
    pairs = contacts(labels, options.min_contact_vox)
    logger.info("%d touching pairs with at least %d faces", len(pairs), options.min_contact_vox)
    crops = pair_crops(image, labels, pairs, shape, np.asarray(config.model.input_fov_shape) // 2,
                       np.asarray(resolution, np.float64))
    if client is not None:
        found = _score_on_dask(client, model, crops, options, config, progress)
    else:
        found = score_pairs(model, crops, options, config, progress)
    scores = np.asarray([found[i] for i in range(len(pairs))]).reshape(-1, 2)
    decisions = np.all(scores >= options.merge_threshold, axis=1)
    rows = [{"a": c.a, "b": c.b, "contact_area": c.area, "z": c.vox_a[0], "y": c.vox_a[1],
             "x": c.vox_a[2], "score_ab": round(float(s[0]), 6), "score_ba": round(float(s[1]), 6),
             "merged": bool(m)} for c, s, m in zip(pairs, scores, decisions)]
    return merge_labels(labels, [(c.a, c.b) for c, m in zip(pairs, decisions) if m]), rows


def merge_labels(labels: np.ndarray, merges) -> np.ndarray:
    """``labels`` with each connected set of merged pairs given its smallest label.

    Examples
    --------
    >>> merge_labels(np.array([0, 1, 2, 3, 4]), [(3, 2), (4, 3)]).tolist()
    [0, 1, 2, 2, 2]
    """
    labels = np.asarray(labels)
    sets = DisjointSet()
    for a, b in merges:
        sets.add(int(a))
        sets.add(int(b))
        sets.merge(int(a), int(b))
    if not merges:
        return labels.copy()
    old = np.asarray([x for subset in sets.subsets() for x in subset], dtype=labels.dtype)
    new = np.asarray([min(subset) for subset in sets.subsets() for _ in subset],
                     dtype=labels.dtype)
    order = np.argsort(old)
    old, new = old[order], new[order]
    index = np.clip(np.searchsorted(old, labels), 0, len(old) - 1)
    return np.where(old[index] == labels, new[index], labels)


def _write_csv(path, rows: list[dict]) -> None:
    fields = ["a", "b", "contact_area", "z", "y", "x", "score_ab", "score_ba", "merged"]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**r, "merged": int(r["merged"])} for r in rows)


def agglomerate_volume(model_file, volume, name: str, output_file: str, *,
                       options: AgglomerationOptions | None = None, config=None,
                       dask: dict | None = None) -> list[dict]:
    """``diluvian agglomerate``: agglomerate a segmentation volume and write the results.

    ``volume`` needs image and label data (a ``diluvian fill`` output dataset
    has both). Writes ``OUTPUT.hdf5`` and ``OUTPUT.toml`` (as ``fill``, the
    merged labels and the image; the dataset is named ``NAME_segmentation``
    for a volume ``NAME`` or ``NAME_segmentation``) and ``OUTPUT.csv`` (one
    row per pair tried). ``{volume}`` in ``output_file`` becomes ``name``.
    ``dask`` (``scheduler`` and / or ``workers``, as ``fill --block-shape``
    takes them) fills the pairs on Dask workers, each loading the model once.
    """
    from .command import load_fill_model
    from .state import write_segmentation

    if config is None:
        from ..config import CONFIG as config
    if volume.image_data is None or volume.label_data is None:
        raise DiluvianError(f"volume {name!r} needs image and label data to agglomerate")
    model = load_fill_model(model_file, config)
    if config.explicitly_set("volume.resolution"):  # as ``diluvian fill`` resamples
        volume = volume.downsample(config.volume.resolution,
                                   label_mode=config.volume.label_downsampling)
    image = np.asarray(volume.image_data[...])
    labels = np.asarray(volume.label_data[...])
    if np.any(np.asarray(labels.shape) < np.asarray(config.model.input_fov_shape)):
        raise DiluvianError(f"volume {name!r} of shape {list(labels.shape)} is smaller than "
                            f"[model] input_fov_shape {list(config.model.input_fov_shape)}")
    dask = {k: v for k, v in (dask or {}).items() if v is not None}
    if dask:
        from ..blockwise.workers import dask_client

        with dask_client(dask.get("scheduler"), dask.get("workers")) as client:
            merged, rows = agglomerate(str(Path(model_file).resolve()), image, labels,
                                       volume.resolution, options=options, config=config,
                                       client=client)
    else:
        merged, rows = agglomerate(model, image, labels, volume.resolution, options=options,
                                   config=config)
    base = str(output_file).replace("{volume}", name)
    # A fill's output dataset ``NAME_segmentation`` stays ``NAME_segmentation``.
    source = name.removesuffix("_segmentation") or name
    write_segmentation(base + ".hdf5", base + ".toml", source, merged, image, volume.resolution)
    _write_csv(base + ".csv", rows)
    n = sum(r["merged"] for r in rows)
    print(f"{name}: {len(rows)} touching pairs tried, {n} merged -> {base}.hdf5, {base}.csv")
    return rows
