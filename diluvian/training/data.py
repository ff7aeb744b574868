"""Training samples: seeded subvolumes, targets, fill-factor weights and batches.

Every random choice of the static (non-moving) pipeline is a pure function
of ``(random_seed, stream, volume name, epoch, sample number)``, so batch
``i`` of epoch ``e`` is the same whichever worker thread builds it and in
whatever order: the same seed always gives the same batches.

Samples are drawn round robin across volumes (sample ``k`` comes from volume
``k % n``). With ``augment_use_both`` every drawn subvolume is used twice in
sequence, first as is and then augmented. Nothing here imports TensorFlow;
:func:`make_tf_dataset` (used by training) and :func:`make_py_dataset` wrap a
:class:`TrainingData` so that worker threads build batches while the network
trains.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import ndimage

from ..util import DiluvianError, make_rng
from ..volumes.subvolume import Subvolume, SubvolumeBounds
from .augment import Augmentation, apply_augmentations, make_augmentations
from .sampling import FillFractionSampler

__all__ = [
    "TrainingData",
    "center_crop",
    "erode_label_mask",
    "fill_factor_bin_weights",
    "fill_factor_weights",
    "make_py_dataset",
    "make_tf_dataset",
    "mask_seed_input",
    "prepare_subvolume",
    "seed_component",
    "soften",
]


# --------------------------------------------------------------------------
# Pure array helpers.
# --------------------------------------------------------------------------


def soften(mask: np.ndarray, v_true: float, v_false: float) -> np.ndarray:
    """Soft float32 targets: ``v_true`` where ``mask`` is set, ``v_false`` elsewhere."""
    return np.where(np.asarray(mask, dtype=bool), np.float32(v_true),
                    np.float32(v_false)).astype(np.float32)


def erode_label_mask(mask: np.ndarray, erosion: Sequence[int]) -> np.ndarray:
    """Erode a boolean mask with a box of ``2 * erosion + 1`` voxels per axis.

    Voxels beyond the array border count as inside the mask, so an object
    is not eaten away where it leaves the subvolume.

    Examples
    --------
    >>> m = np.zeros((1, 5, 5), bool); m[0, 1:4, 1:4] = True
    >>> erode_label_mask(m, [0, 1, 1]).sum()
    np.int64(1)
    """
    erosion = np.asarray(erosion, dtype=np.int64)
    if np.any(erosion < 0):
        raise DiluvianError(f"[training] label_erosion {erosion.tolist()} must not be negative")
    mask = np.asarray(mask, dtype=bool)
    if not erosion.any():
        return mask
    structure = np.ones(tuple(2 * erosion + 1), dtype=bool)
    return ndimage.binary_erosion(mask, structure=structure, border_value=1)


def seed_component(mask: np.ndarray, seed: Sequence[int]) -> np.ndarray:
    """The face-connected component of ``mask`` containing ``seed`` (empty if unset there)."""
    mask = np.asarray(mask, dtype=bool)
    seed = tuple(int(s) for s in seed)
    if any(s < 0 or s >= n for s, n in zip(seed, mask.shape)) or not mask[seed]:
        return np.zeros_like(mask)
    labels, _ = ndimage.label(mask)
    return labels == labels[seed]


def center_crop(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The central ``shape`` block of ``a`` (``a`` itself when the shapes match)."""
    shape = np.asarray(shape, dtype=np.int64)
    have = np.asarray(a.shape[:3], dtype=np.int64)
    if np.array_equal(shape, have):
        return a
    if np.any(shape > have):
        raise DiluvianError(f"cannot crop shape {have.tolist()} to larger {shape.tolist()}")
    lo = (have - shape) // 2
    return a[tuple(slice(int(o), int(o + s)) for o, s in zip(lo, shape))]


def mask_seed_input(shape: Sequence[int], seed: Sequence[int], v_true: float,
                    v_false: float) -> np.ndarray:
    """The FFN seed mask input: ``v_false`` everywhere but ``v_true`` at ``seed``."""
    mask = np.full(tuple(int(s) for s in shape), np.float32(v_false), dtype=np.float32)
    mask[tuple(int(s) for s in seed)] = np.float32(v_true)
    return mask


def prepare_subvolume(subv: Subvolume, label_erosion: Sequence[int] = (0, 0, 0),
                      relabel_seed_component: bool = False) -> Subvolume:
    """Apply ``relabel_seed_component`` then ``label_erosion`` to a subvolume's label mask."""
    if subv.label_mask is None:
        raise DiluvianError("training subvolumes need label data; the volume has none")
    label = subv.label_mask
    if relabel_seed_component:
        label = seed_component(label, subv._label_seed())
    label = erode_label_mask(label, label_erosion)
    return replace(subv, label_mask=label)


def fill_factor_bin_weights(f_a: Sequence[float], bins: Sequence[float]) -> np.ndarray:
    """Inverse-frequency weight of each fill-factor bin, estimated from samples ``f_a``.

    Bins are ``np.digitize(f_a, bins)`` (``len(bins) + 1`` of them). Each
    occupied bin gets weight ``1 / frequency``, scaled so that the mean
    weight over the samples is 1; empty bins get the largest weight.

    Examples
    --------
    >>> fill_factor_bin_weights([0.1, 0.1, 0.1, 0.9], [0.5]).round(3).tolist()
    [0.667, 2.0]
    """
    f_a = np.asarray(f_a, dtype=np.float64)
    idx = np.digitize(f_a, np.asarray(bins, dtype=np.float64))
    counts = np.bincount(idx, minlength=len(bins) + 1).astype(np.float64)
    weights = np.zeros_like(counts)
    occupied = counts > 0
    weights[occupied] = f_a.size / counts[occupied]
    if occupied.any():
        weights /= weights[idx].mean()
        weights[~occupied] = weights[occupied].max()
    else:
        weights[:] = 1.0
    return weights


def fill_factor_weights(f_a: Sequence[float], bins: Sequence[float],
                        bin_weights: np.ndarray | None = None) -> np.ndarray:
    """Sample weights for fill factors ``f_a``: inverse frequency of their bin.

    ``bin_weights`` (from :func:`fill_factor_bin_weights`) defaults to the
    frequencies within ``f_a`` itself.
    """
    if bin_weights is None:
        bin_weights = fill_factor_bin_weights(f_a, bins)
    idx = np.digitize(np.asarray(f_a, dtype=np.float64), np.asarray(bins, dtype=np.float64))
    return np.asarray(bin_weights, dtype=np.float32)[idx]


def _volume_items(volumes) -> list[tuple[str, Any]]:
    if isinstance(volumes, Mapping):
        items = sorted(volumes.items())
    else:
        items = [(str(i), v) for i, v in enumerate(volumes)]
    if not items:
        raise DiluvianError("no volumes to train on")
    return items


# --------------------------------------------------------------------------
# Samples.
# --------------------------------------------------------------------------


class TrainingData:
    """Seeded training (or validation) samples from a set of volumes.

    Parameters
    ----------
    volumes : dict of str to Volume
        The (partitioned) volumes, by name.
    config : Config
        Model FOVs and soft targets, ``[training]`` sizes, label processing
        and augmentations.
    stream : str
        Random stream name (``'training'`` or ``'validation'``).
    augment : bool
        Whether to augment (for validation, ``augment_validation``).
    subv_shape : sequence of int, optional
        Shape of the drawn subvolumes; defaults to the input FOV.
    num_samples : int, optional
        Samples per epoch; defaults to ``training_size`` per volume.
    artifact_volumes : dict, optional
        Pre-loaded artifact volumes by file (see :func:`make_augmentations`).

    Attributes
    ----------
    augmentations : list of callable
        The augmentation pipeline.
    bin_weights : ndarray or None
        Fill-factor bin weights when ``fill_factor_bins`` is set.
    """

    def __init__(self, volumes, config, stream: str = "training", augment: bool = True,
                 subv_shape: Sequence[int] | None = None, num_samples: int | None = None,
                 artifact_volumes: dict | None = None):
        self.volumes = _volume_items(volumes)
        self.seed = config.random_seed
        self.stream = stream
        m, t = config.model, config.training
        self.input_fov_shape = np.asarray(m.input_fov_shape, dtype=np.int64)
        self.output_fov_shape = np.asarray(m.output_fov_shape, dtype=np.int64)
        self.subv_shape = (self.input_fov_shape.copy() if subv_shape is None
                           else np.asarray(subv_shape, dtype=np.int64))
        self.v_true, self.v_false = float(m.v_true), float(m.v_false)
        self.label_erosion = np.asarray(t.label_erosion, dtype=np.int64)
        self.relabel = bool(t.relabel_seed_component)
        self.batch_size = int(t.batch_size)
        self.num_samples = int(num_samples if num_samples is not None
                               else t.training_size * len(self.volumes))
        self.augmentations: list[Augmentation] = []
        if augment:
            self.augmentations = make_augmentations(
                t, shapes=[self.subv_shape, self.input_fov_shape, self.output_fov_shape],
                config=config, artifact_volumes=artifact_volumes)
        self.use_both = bool(augment and t.augment_use_both and self.augmentations)
        self.sampling = str(t.sampling)
        self.sampling_bins = list(t.sampling_bins)
        self._samplers: dict[str, FillFractionSampler] = {}
        self._sampler_lock = threading.Lock()
        self.bins = None if t.fill_factor_bins is None else list(t.fill_factor_bins)
        self.bin_weights = None
        if self.bins is not None:
            n = min(max(self.num_samples, 1), 128)
            f_a = [center_crop(self.raw_subvolume(k, epoch="fill_factor").label_mask, self.output_fov_shape)
                   .mean() for k in range(n)]
            self.bin_weights = fill_factor_bin_weights(f_a, self.bins)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: ``num_samples // batch_size`` (at least one)."""
        return max(1, self.num_samples // self.batch_size)

    def rng(self, volume_name: str, epoch: int | str, *keys) -> np.random.Generator:
        """The generator for one drawn subvolume (see the module docstring)."""
        return make_rng(self.seed, self.stream, volume_name, epoch, *keys)

    def volume_name(self, k: int) -> str:
        """Name of the volume sample ``k`` is drawn from."""
        draw = k // 2 if self.use_both else k
        return self.volumes[draw % len(self.volumes)][0]

    def _sampler(self, name: str, volume) -> FillFractionSampler:
        with self._sampler_lock:
            sampler = self._samplers.get(name)
            if sampler is None:
                if volume.label_data is None:
                    raise DiluvianError(f"volume {name!r}: [training] sampling = "
                                        "'fill_fraction' needs label data")
                sampler = FillFractionSampler(np.asarray(volume.label_data[...]),
                                              self.input_fov_shape, self.subv_shape,
                                              self.sampling_bins)
                self._samplers[name] = sampler
        return sampler

    def bounds(self, draw: int, epoch: int | str = 0) -> SubvolumeBounds:
        """Bounds of the ``draw``-th subvolume of an epoch (``[training] sampling``)."""
        name, volume = self.volumes[draw % len(self.volumes)]
        rng = self.rng(name, epoch, draw, "bounds")
        if self.sampling != "fill_fraction":
            return next(iter(volume.subvolume_bounds_generator(shape=self.subv_shape, rng=rng)))
        centre = self._sampler(name, volume).draw(rng)
        half = self.subv_shape // 2
        label_id = int(np.asarray(volume.label_data[tuple(
            slice(int(c), int(c) + 1) for c in centre)]).ravel()[0])
        return SubvolumeBounds(centre - half, centre - half + self.subv_shape, seed=half,
                               label_id=label_id)

    def raw_subvolume(self, draw: int, epoch: int | str = 0) -> Subvolume:
        """The ``draw``-th subvolume of an epoch, labels prepared but not augmented."""
        volume = self.volumes[draw % len(self.volumes)][1]
        subv = volume.get_subvolume(self.bounds(draw, epoch))
        return prepare_subvolume(subv, self.label_erosion, self.relabel)

    def subvolume(self, k: int, epoch: int = 0) -> Subvolume:
        """The ``k``-th sample subvolume of an epoch (augmented as configured)."""
        draw, variant = (k // 2, k % 2) if self.use_both else (k, 1)
        subv = self.raw_subvolume(draw, epoch)
        if variant and self.augmentations:
            name = self.volumes[draw % len(self.volumes)][0]
            subv = apply_augmentations(subv, self.augmentations,
                                       self.rng(name, epoch, draw, "augment"))
        return subv

    def sample_from_subvolume(self, subv: Subvolume):
        """Network input image, mask input, soft target and weight for a seeded subvolume."""
        image = center_crop(subv.image, self.input_fov_shape)
        offset = (np.asarray(subv.image.shape) - self.input_fov_shape) // 2
        mask = mask_seed_input(self.input_fov_shape, subv.seed - offset, self.v_true,
                               self.v_false)
        label = center_crop(subv.label_mask, self.output_fov_shape)
        target = soften(label, self.v_true, self.v_false)
        weight = 1.0
        if self.bins is not None:
            weight = float(fill_factor_weights([label.mean()], self.bins, self.bin_weights)[0])
        return image, mask, target, weight

    def sample(self, k: int, epoch: int = 0):
        """Input image, mask input, soft target and weight of sample ``k``."""
        return self.sample_from_subvolume(self.subvolume(k, epoch))

    def batch(self, index: int, epoch: int = 0):
        """Batch ``index``: ``((images, masks), targets)`` plus weights if fill factors are binned.

        Arrays have a trailing channel axis: ``(N, z, y, x, 1)``; weights are
        ``(N, 1, 1, 1)``.
        """
        samples = [self.sample(index * self.batch_size + j, epoch)
                   for j in range(self.batch_size)]
        images = np.stack([s[0] for s in samples])[..., None]
        masks = np.stack([s[1] for s in samples])[..., None]
        targets = np.stack([s[2] for s in samples])[..., None]
        if self.bins is None:
            return (images, masks), targets
        weights = np.array([s[3] for s in samples], dtype=np.float32).reshape(-1, 1, 1, 1)
        return (images, masks), targets, weights


def make_py_dataset(data: TrainingData, workers: int = 1, reset_generators: bool = False,
                    max_queue_size: int = 10):
    """A ``keras.utils.PyDataset`` over ``data``'s batches, built by ``workers`` threads.

    Each epoch draws new samples unless ``reset_generators`` is set. The
    last few batches are cached, since Keras reads the first batches once
    more to learn their shapes.
    """
    import keras

    class _Dataset(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=max(1, workers), use_multiprocessing=False,
                             max_queue_size=max_queue_size)
            self.epoch = 0
            self._cache: OrderedDict = OrderedDict()

        def __len__(self) -> int:
            return data.steps_per_epoch

        def __getitem__(self, index: int):
            key = (self.epoch, int(index))
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            batch = data.batch(int(index), self.epoch)
            self._cache[key] = batch
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
            return batch

        def on_epoch_end(self):
            if not reset_generators:
                self.epoch += 1

    return _Dataset()


def make_tf_dataset(data: TrainingData, workers: int = 1, reset_generators: bool = False,
                    queue_size: int = 8, prefetch: int = 2):
    """A ``tf.data.Dataset`` of one epoch of ``data``'s batches, built ahead by ``workers`` threads.

    Each iteration of the dataset (Keras starts one per epoch) is the next
    epoch, drawing new samples unless ``reset_generators`` is set (then
    every epoch is epoch 0). Batches come in order, so the same seed gives
    the same batches whatever the number of workers. Unlike a
    ``keras.utils.PyDataset`` with workers (for which Keras turns tf.data
    prefetching off), ``prefetch`` batches are kept ready as tensors, so
    handing a batch to the training step overlaps the previous step.

    Parameters
    ----------
    data : TrainingData
    workers : int
        Threads building batches.
    reset_generators : bool
        Draw the same samples every epoch.
    queue_size : int
        Batches submitted to the threads beyond one per worker.
    prefetch : int
        Batches tf.data keeps ready (0: none).
    """
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf

    epochs = itertools.count()
    steps = data.steps_per_epoch
    workers = max(1, int(workers))
    ahead = workers + max(0, int(queue_size))

    def spec(shape):
        return tf.TensorSpec((data.batch_size, *(int(n) for n in shape), 1), tf.float32)

    signature = ((spec(data.input_fov_shape), spec(data.input_fov_shape)),
                 spec(data.output_fov_shape))
    if data.bins is not None:
        signature += (tf.TensorSpec((data.batch_size, 1, 1, 1), tf.float32),)

    def epoch_batches():
        epoch = 0 if reset_generators else next(epochs)
        pending: deque = deque()
        submitted = 0
        with ThreadPoolExecutor(workers, thread_name_prefix="diluvian-batches") as pool:
            try:
                for _ in range(steps):
                    while submitted < steps and len(pending) < ahead:
                        pending.append(pool.submit(data.batch, submitted, epoch))
                        submitted += 1
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    dataset = tf.data.Dataset.from_generator(epoch_batches, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    if prefetch > 0:
        dataset = dataset.prefetch(int(prefetch))
    return dataset
