"""Validation: fill seeded subvolumes with the region engine and score them.

Validation subvolumes are drawn once, from fixed seeded bounds (stream
``'validation'``), so scores are comparable across epochs. Each is filled
from its seed by :func:`diluvian.regions.fill_regions` (all regions batched
together), then scored with the configured ``validation_metric`` against
the (processed) label mask, and with the binary cross-entropy of the filled
mask against the soft target. A fill makes at most
``ModelConfig.validation_subv_moves`` moves: the number of move lattice
positions whose FOV fits inside the subvolume (one by default).

With ``[training] validation_fill_shape``, :class:`DenseValidation` also
segments a box at the centre of each validation volume densely (as
``diluvian fill`` does) and scores it by VOI, so that the model can be
chosen by what dense segmentation will give: single-object scores do not
see merges between objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..util import binary_crossentropy, get_function
from ..volumes.subvolume import Subvolume
from .data import TrainingData, center_crop, soften

__all__ = ["DenseValidation", "ValidationSet", "metric_name", "score_masks"]


def metric_name(training_config) -> str:
    """Short name of the validation metric, e.g. ``'binary_f_score'``."""
    return str(training_config.validation_metric.get("metric", "metric")).rpartition(".")[2]


def score_masks(label_masks: Sequence[np.ndarray], probs: Sequence[np.ndarray], config
                ) -> tuple[float, float, list[float], list[float]]:
    """Loss and metric of predicted probability masks against label masks.

    Returns
    -------
    loss, metric : float
        Means over the masks.
    losses, metrics : list of float
        Per mask.
    """
    vm = config.training.validation_metric
    metric = get_function(vm.get("metric", "diluvian.util.binary_f_score"))
    args = dict(vm.get("args", {}))
    threshold = bool(vm.get("threshold", True))
    t_final = config.model.t_final_value
    v_true, v_false = config.model.v_true, config.model.v_false
    losses, metrics = [], []
    for label, prob in zip(label_masks, probs):
        target = soften(label, v_true, v_false)
        losses.append(binary_crossentropy(target, prob))
        if threshold:
            metrics.append(float(metric(label, prob >= t_final, **args)))
        else:
            metrics.append(float(metric(target, prob, **args)))
    return float(np.mean(losses)), float(np.mean(metrics)), losses, metrics


class ValidationSet:
    """Fixed seeded validation subvolumes of a set of volumes.

    Parameters
    ----------
    volumes : dict of str to Volume
        Validation partitions by name.
    config : Config
        Uses ``validation_size`` per volume, ``validation_subv_shape``,
        ``augment_validation`` and the label processing keys.
    """

    def __init__(self, volumes, config):
        t = config.training
        self.config = config
        data = TrainingData(volumes, config, stream="validation",
                            augment=bool(t.augment_validation),
                            subv_shape=config.model.validation_subv_shape_value,
                            num_samples=t.validation_size * len(volumes))
        self.subvolumes: list[Subvolume] = [data.subvolume(k, epoch=0)
                                            for k in range(data.num_samples)]
        self.names = [data.volume_name(k) for k in range(data.num_samples)]
        self.dense = (DenseValidation(volumes, config)
                      if t.validation_fill_shape is not None and volumes else None)

    def __len__(self) -> int:
        return len(self.subvolumes)

    def fill(self, model: Any, batch_size: int = 32, progress: bool = False
             ) -> list[np.ndarray]:
        """Fill every subvolume from its seed; probability masks cropped to the label masks."""
        from ..regions import Region, fill_regions

        regions = [Region.from_subvolume(s, model_config=self.config.model)
                   for s in self.subvolumes]
        model = _single_device_predictor(model)
        # At most as many moves as lattice positions whose FOV fits the subvolume
        # (one for the default validation_subv_shape = input_fov_shape).
        fill_regions(regions, model, batch_size=batch_size, progress=progress,
                     max_moves=self.config.model.validation_subv_moves)
        out = []
        for region, subv in zip(regions, self.subvolumes):
            prob = np.asarray(region.get_mask_array(), dtype=np.float32)
            prob = np.where(np.isnan(prob), np.float32(self.config.model.v_false), prob)
            out.append(center_crop(prob, subv.label_mask.shape))
        return out

    def evaluate(self, model: Any, batch_size: int = 32, progress: bool = False
                 ) -> dict[str, Any]:
        """Loss and metric overall and per volume.

        Returns
        -------
        dict
            ``{'loss', 'metric', 'volumes': {name: {'loss', 'metric', 'count'}}}``,
            and ``'dense'`` (:meth:`DenseValidation.evaluate`) when set.
        """
        result = self._score_objects(model, batch_size, progress)
        if self.dense is not None:
            result["dense"] = self.dense.evaluate(model)
        return result

    def _score_objects(self, model: Any, batch_size: int, progress: bool) -> dict[str, Any]:
        """Loss and metric of the seeded subvolumes, overall and per volume (NaN if none)."""
        if not self.subvolumes:  # validation_size = 0: only the dense box, if any
            return {"loss": float("nan"), "metric": float("nan"), "volumes": {}}
        probs = self.fill(model, batch_size=batch_size, progress=progress)
        labels = [s.label_mask for s in self.subvolumes]
        loss, metric, losses, metrics = score_masks(labels, probs, self.config)
        per_volume: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(self.names):
            idx = [i for i, n in enumerate(self.names) if n == name]
            per_volume[name] = {"loss": float(np.mean([losses[i] for i in idx])),
                                "metric": float(np.mean([metrics[i] for i in idx])),
                                "count": len(idx)}
        return {"loss": loss, "metric": metric, "volumes": per_volume}


class DenseValidation:
    """A box at the centre of each validation volume, densely segmented and scored by VOI.

    Parameters
    ----------
    volumes : dict of str to Volume
        Validation partitions by name (with image and label data).
    config : Config
        ``[training] validation_fill_shape`` (the box, clipped to each
        volume), ``[model]`` and ``[fill]`` (the fill) and ``random_seed``
        (each box's seed order, stream ``'validation_fill'``).
    """

    def __init__(self, volumes, config):
        from ..volumes.base import NdarrayVolume

        self.config = config
        shape = np.asarray(config.training.validation_fill_shape, dtype=np.int64)
        self.boxes = {}
        for name, volume in volumes.items():
            size = np.minimum(shape, np.asarray(volume.shape))
            lo = (np.asarray(volume.shape) - size) // 2
            box = tuple(slice(int(a), int(a + n)) for a, n in zip(lo, size))
            image = np.asarray(volume.image_data[box])
            self.boxes[name] = (NdarrayVolume(volume.resolution, image_data=image),
                                np.asarray(volume.label_data[box]))

    def evaluate(self, model: Any) -> dict[str, float]:
        """``val_voi`` (split + merge), ``val_voi_split``, ``val_voi_merge``: means over boxes."""
        # Lazily: training sits below the fill engine (see the import contract).
        from skimage.metrics import variation_of_information

        from ..fill.dense import fill_volume_with_model
        from ..util import make_rng

        predictor = _single_device_predictor(model)
        splits, merges = [], []
        for name, (volume, truth) in self.boxes.items():
            labels, _ = fill_volume_with_model(
                predictor, volume, rng=make_rng(self.config.random_seed, "validation_fill", name),
                progress=False, config=self.config)
            split, merge = variation_of_information(truth, labels, ignore_labels=())
            splits.append(float(split))
            merges.append(float(merge))
        split, merge = float(np.mean(splits)), float(np.mean(merges))
        return {"val_voi": split + merge, "val_voi_split": split, "val_voi_merge": merge}


def _single_device_predictor(model: Any) -> Any:
    """A predictor calling ``model`` directly when it was built under a multi-replica strategy.

    ``predict_on_batch`` of a model built in a ``MirroredStrategy`` scope
    returns one copy of the batch's predictions per replica; validation
    batches are small, so an eager call of the model is used instead.
    """
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or getattr(strategy, "num_replicas_in_sync", 1) <= 1:
        return model

    def predictor(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        out = model([images[..., None], masks[..., None]], training=False)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return np.asarray(out)[..., 0]

    return predictor

