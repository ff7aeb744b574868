"""High-level operations behind the command line, importable from Python.

``fill_volumes_with_model`` and ``view_volumes`` live in their own modules and
are re-exported here under their documented names, resolved lazily so that
importing this module stays cheap.

``fill_volume_with_model``, ``fill_region_with_model``,
``generate_subvolume_bounds`` and ``evaluate_volume`` take diluvian 0.0.6's
signatures: each is a thin facade that turns 0.0.6's arguments into today's
options and calls the real code (:func:`diluvian.fill.fill_volume_with_model`,
:func:`diluvian.sparse_fill.fill_region_with_model`,
:func:`diluvian.sparse_fill.generate_subvolume_bounds`,
:func:`diluvian.evaluation.evaluate_volume`), which keep their own, newer
signatures.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np

_EXPORTS = {
    "fill_volumes_with_model": "diluvian.fill",
    "view_volumes": "diluvian.viewer",
}

__all__ = sorted([*_EXPORTS, "evaluate_volume", "fill_region_with_model",
                  "fill_volume_with_model", "generate_subvolume_bounds"])

logger = logging.getLogger(__name__)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'diluvian.diluvian' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__


def _config():
    from .config import CONFIG

    return CONFIG


def _resume_state(resume_prediction, volume, seed_generator, filter_seeds_by_mask, config):
    """A :class:`~diluvian.fill.FillState` from 0.0.6's ``resume_prediction``."""
    from .fill.state import FillState, read_fill_checkpoint

    if resume_prediction is None or isinstance(resume_prediction, FillState):
        return resume_prediction
    if isinstance(resume_prediction, (str, bytes)) or hasattr(resume_prediction, "__fspath__"):
        return read_fill_checkpoint(resume_prediction)[1]
    from .preprocessing import make_seeds

    labels = np.asarray(resume_prediction).astype(np.uint64)
    image = np.asarray(volume.image_data[...])
    mask = None
    if filter_seeds_by_mask and volume.mask_data is not None:
        mask = np.asarray(volume.mask_data[...], dtype=bool)
    seeds = make_seeds(seed_generator, image, volume.resolution, mask=mask)
    return FillState(labels=labels, excluded=np.zeros(labels.shape, bool), seeds=seeds,
                     next_id=int(labels.max()) + 1)


def fill_volume_with_model(
        model_file,
        volume,
        resume_prediction=None,
        checkpoint_filename=None,
        checkpoint_label_interval=20,
        seed_generator='sobel',
        background_label_id=0,
        bias=True,
        move_batch_size=1,
        max_moves=None,
        max_bodies=None,
        num_workers=None,
        worker_prequeue=1,
        filter_seeds_by_mask=True,
        reject_non_seed_components=True,
        reject_early_termination=False,
        remask_interval=None,
        shuffle_seeds=True):
    """Densely segment one volume with a model, with diluvian 0.0.6's signature.

    Parameters
    ----------
    model_file : str, path-like, keras.Model or callable
        A model file (its stored settings configure ``CONFIG.model``) or a
        model object / ``predictor(images, masks)``.
    volume : diluvian.volumes.Volume
    resume_prediction : ndarray, FillState or path, optional
        Labels of an earlier fill to continue (new bodies get higher ids), a
        :class:`~diluvian.fill.FillState`, or a fill checkpoint's TOML file.
    checkpoint_filename : str, optional
        Write the segmentation (HDF5 + TOML, see
        :func:`diluvian.fill.write_segmentation`) here every
        ``checkpoint_label_interval`` bodies and on interrupt.
    num_workers, worker_prequeue
        Accepted for compatibility: filling runs in one process, batching
        ``move_batch_size`` FOVs per model call, on the GPUs of
        ``CONFIG.training.num_gpus``.
    filter_seeds_by_mask : bool
        Only seed inside the volume's mask (today's ``ignore_mask=False``).
    reject_non_seed_components : bool
        Bodies are always the seed's connected component; ``False`` is not
        supported and only logged.

    Returns
    -------
    ndarray
        The label volume (``background_label_id`` where unlabelled).
    """
    from .fill.dense import fill_volume_with_model as fill

    config = _config()
    model = model_file
    if isinstance(model_file, (str, bytes)) or hasattr(model_file, "__fspath__"):
        from .fill.command import load_fill_model

        model = load_fill_model(model_file, config)
    if not reject_non_seed_components:
        logger.warning("reject_non_seed_components=False is not supported: bodies are always "
                       "the seed's connected component")
    checkpoint = None
    if checkpoint_filename is not None:
        from .fill.state import segmentation_paths, write_segmentation

        hdf5_path, toml_path = segmentation_paths(str(checkpoint_filename), "volume")
        image = None if volume.image_data is None else np.asarray(volume.image_data[...])

        def checkpoint(state):
            write_segmentation(hdf5_path, toml_path, "volume", None, image, volume.resolution,
                               state=state, background_label_id=background_label_id)

    resume = _resume_state(resume_prediction, volume, seed_generator, filter_seeds_by_mask,
                           config)
    labels, _ = fill(
        model, volume, seed_generator=seed_generator, shuffle_seeds=shuffle_seeds,
        ignore_mask=not filter_seeds_by_mask, background_label_id=background_label_id,
        bias=bias, move_batch_size=move_batch_size, max_moves=max_moves, max_bodies=max_bodies,
        remask_interval=remask_interval, reject_early_termination=reject_early_termination,
        resume=resume, checkpoint_interval=checkpoint_label_interval, checkpoint=checkpoint,
        progress=False, config=config)
    return labels


def _masked_relabelled(volume, use_mask: bool, relabel: bool):
    from .volumes import NdarrayVolume

    labels = np.asarray(volume.label_data[...])
    if use_mask and volume.mask_data is not None:
        labels = np.where(np.asarray(volume.mask_data[...], dtype=bool), labels, 0)
    if relabel:
        from scipy import ndimage

        out = np.zeros(labels.shape, np.uint64)
        next_id = 1
        for value in np.unique(labels):
            if value == 0:
                continue
            components, n = ndimage.label(labels == value)
            out[components > 0] = components[components > 0] + (next_id - 1)
            next_id += n
        labels = out
    return NdarrayVolume(volume.resolution, label_data=labels)


def evaluate_volume(volumes, gt_name, pred_name, partition=False, border_threshold=None,
                    use_gt_mask=True, relabel=False):
    """CREMI figures of a prediction against a ground truth, with diluvian 0.0.6's signature.

    Parameters
    ----------
    border_threshold : float, optional
        nm around ground-truth boundaries to ignore; ``None`` ignores none.
    use_gt_mask : bool
        Ground-truth voxels outside the ground truth volume's mask (if it has
        one) count as background.
    relabel : bool
        Relabel both volumes so that every connected component of a label
        is its own object.

    Returns
    -------
    dict
        As :func:`diluvian.evaluation.evaluate_volume`.
    """
    from .evaluation import evaluate_volume as evaluate

    if use_gt_mask or relabel:
        volumes = dict(volumes)
        volumes[gt_name] = _masked_relabelled(volumes[gt_name], use_gt_mask, relabel)
        volumes[pred_name] = _masked_relabelled(volumes[pred_name], False, relabel)
    threshold = 0.0 if border_threshold is None else float(border_threshold)
    return evaluate(volumes, gt_name, pred_name, partition=partition,
                    border_threshold=threshold, config=_config())


def _sparse_volumes(volumes, sparse: bool):
    if not sparse or volumes is None:
        return volumes
    return {k: v.sparse_wrapper() if hasattr(v, "sparse_wrapper") else v
            for k, v in volumes.items()}


def generate_subvolume_bounds(filename, volumes, num_bounds, sparse=False, moves=None):
    """Write random subvolume bounds per volume to CSV, with diluvian 0.0.6's signature.

    ``sparse`` reads the volumes through
    :class:`~diluvian.volumes.SparseWrappedVolume` (block-sparse caches of
    out-of-memory data). Returns ``{volume name: CSV path}``.
    """
    from .sparse_fill import generate_subvolume_bounds as generate

    return generate(filename, _sparse_volumes(volumes, sparse), num_bounds, moves=moves,
                    config=_config())


def fill_region_with_model(model_file, volumes=None, partition=False, augment=False,
                           bounds_input_file=None, bias=True, move_batch_size=1, max_moves=None,
                           remask_interval=None, sparse=False, moves=None):
    """Fill single objects from subvolume seeds and score them, with diluvian 0.0.6's signature.

    ``sparse`` reads the volumes through
    :class:`~diluvian.volumes.SparseWrappedVolume`. Returns the per-region
    results of :func:`diluvian.sparse_fill.fill_region_with_model`.
    """
    from .sparse_fill import fill_region_with_model as fill

    return fill(model_file, volumes=_sparse_volumes(volumes, sparse), partition=partition,
                augment=augment, bounds_input_file=bounds_input_file, bias=bias,
                move_batch_size=move_batch_size, max_moves=max_moves,
                remask_interval=remask_interval, moves=moves, config=_config(),
                progress=False)
