"""The blockwise fill's zarr store: arrays, progress records, settings and resume.

Layout of a store (a zarr group folder, ``OUT.zarr``):

- ``labels`` (uint64, volume shape, chunk = block core): final global IDs,
  with the volume ``resolution`` attribute;
- ``blocks`` (uint64): scratch array with one slot per block holding the
  block's fill with block-unique IDs (see
  :class:`~diluvian.blockwise.layout.BlockLayout`);
- ``finished`` (uint8, block grid): 1 where a block's fill has landed;
- ``block_stats`` (float64, block grid x counters): each finished block's
  :class:`~diluvian.fill.FillStats` counters, named by its ``fields``
  attribute;
- the group attribute :data:`STATE_ATTR`: the settings the store was made
  with, and once reconciled ``complete``, ``objects`` and ``merges``.

Recording a landed block rewrites one small chunk of ``finished`` and of
``block_stats``: the cost does not grow with the grid. Version-1 stores,
which listed finished blocks in the group attribute, are converted when
resumed.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from ..geometry import Box
from ..util import DiluvianError
from .layout import BlockLayout
from .seeds import global_seeding

__all__ = [
    "BLOCK_STATS",
    "FINISHED",
    "LABELS",
    "SCRATCH",
    "STATE_ATTR",
    "STORE_VERSION",
    "finished_blocks",
    "read_labels",
]

#: Group attribute holding the blockwise fill state (settings and the final outcome).
STATE_ATTR = "diluvian_blockwise"
LABELS = "labels"
SCRATCH = "blocks"
#: uint8 array over the block grid: 1 where a block's fill has landed.
FINISHED = "finished"
#: float64 array over the block grid and the counters named by its ``fields`` attribute.
BLOCK_STATS = "block_stats"
#: Version 1 kept ``finished_blocks`` and ``block_stats`` in the attributes
#: (rewritten whole for every block); such stores are converted when resumed.
STORE_VERSION = 2


def _open(store, name: str, mode: str = "r+"):
    import zarr

    return zarr.open_group(str(store), mode=mode)[name]


#: Settings of the reconciliation only: a store resumed with other values keeps its
#: block fills and is reconciled again.
RECONCILE_KEYS = ("reconcile_threshold", "reconcile_min_voxels")


def _store_settings(layout: BlockLayout, resolution, threshold: float, min_voxels: int, model,
                    fill_options: dict, seed_stream, random_seed) -> dict:
    return {
        "version": STORE_VERSION,
        "shape": list(layout.shape),
        "block_shape": list(layout.block_shape),
        "block_overlap": list(layout.block_overlap),
        "resolution": np.asarray(resolution).tolist(),
        "reconcile_threshold": float(threshold),
        "reconcile_min_voxels": int(min_voxels),
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "fill_options": {k: fill_options[k] for k in sorted(fill_options)},
        "seed_stream": [str(s) for s in seed_stream],
        "random_seed": random_seed,
        # How blocks make their seeds (see diluvian.blockwise.seeds).
        "seeding": "whole volume" if global_seeding(fill_options.get("seed_generator", "sobel"))
        else "per block",
    }


def _stats_fields() -> list[str]:
    from ..fill.state import FillStats

    return [f.name for f in fields(FillStats)]


def _create_progress_arrays(group, layout: BlockLayout, names: list[str]) -> None:
    """The ``finished`` flags and ``block_stats`` arrays (small chunks: O(1) per block)."""
    group.create_array(FINISHED, shape=layout.grid_shape,
                       chunks=tuple(min(g, 16) for g in layout.grid_shape), dtype="uint8",
                       fill_value=0)
    stats = group.create_array(BLOCK_STATS, shape=(*layout.grid_shape, len(names)),
                               chunks=(*(min(g, 4) for g in layout.grid_shape), len(names)),
                               dtype="float64", fill_value=0.0)
    stats.attrs["fields"] = names


def _upgrade_v1(group, layout: BlockLayout, state: dict) -> None:
    """Move a version-1 store's ``finished_blocks``/``block_stats`` attributes into arrays."""
    names = _stats_fields()
    _create_progress_arrays(group, layout, names)
    flags = np.zeros(layout.grid_shape, dtype=np.uint8)
    stats = np.zeros((*layout.grid_shape, len(names)), dtype=np.float64)
    for key in state.pop("finished_blocks", []):
        index = tuple(int(i) for i in key.split("_"))
        flags[index] = 1
        block = state.get("block_stats", {}).get(key, {})
        stats[index] = [float(block.get(n, 0)) for n in names]
    state.pop("block_stats", None)
    group[FINISHED][...] = flags
    group[BLOCK_STATS][...] = stats
    state["settings"]["version"] = STORE_VERSION
    _save_state(group, state)


def _open_store(path: Path, layout: BlockLayout, settings: dict):
    """Open (resume) or create the store; return ``(group, state)``."""
    import zarr

    if path.exists():
        try:
            group = zarr.open_group(str(path), mode="r+")
            state = dict(group.attrs[STATE_ATTR])
        except Exception as exc:  # zarr raises several types for a foreign store
            raise DiluvianError(f"{path}: exists but is not a blockwise fill store ({exc}); "
                                "remove it or choose another output") from None
        old = state.get("settings", {})
        version = old.get("version")
        if version not in (1, STORE_VERSION):
            raise DiluvianError(f"{path}: blockwise store version {version!r}; this diluvian "
                                f"reads versions 1 and {STORE_VERSION}")
        for key, value in settings.items():
            if key not in (*RECONCILE_KEYS, "version") and old.get(key) != value:
                raise DiluvianError(f"{path}: was started with {key} = {old.get(key)!r}, not "
                                    f"{value!r}; remove it or choose another output")
        if any(old.get(key) != settings[key] for key in RECONCILE_KEYS):
            state["complete"] = False  # the fills stay valid; reconcile again
        state["settings"] = settings
        if version == 1:
            _upgrade_v1(group, layout, state)
        return group, state
    group = zarr.open_group(str(path), mode="w")
    labels = group.create_array(LABELS, shape=layout.shape, chunks=layout.block_shape,
                                dtype="uint64", fill_value=0)
    labels.attrs["resolution"] = settings["resolution"]
    group.create_array(SCRATCH, shape=layout.scratch_shape, chunks=layout.slot_shape,
                       dtype="uint64", fill_value=0)
    _create_progress_arrays(group, layout, _stats_fields())
    state = {"settings": settings, "complete": False, "objects": 0, "merges": 0}
    group.attrs[STATE_ATTR] = state
    return group, state


def _save_state(group, state: dict) -> None:
    group.attrs[STATE_ATTR] = state


def finished_blocks(group) -> np.ndarray:
    """Flags over the block grid of a store: true where the block's fill has landed."""
    return np.asarray(group[FINISHED][...]) != 0


def _mark_finished(group, index, stats: dict) -> None:
    """Record one landed block: one small chunk of each progress array is rewritten."""
    array = group[BLOCK_STATS]
    names = array.attrs["fields"]
    array[tuple(index)] = np.array([float(stats.get(n, 0)) for n in names])
    group[FINISHED][tuple(index)] = 1


def _read_block_stats(group, layout: BlockLayout) -> dict:
    """``{block key: stats dict}`` of the finished blocks."""
    array = group[BLOCK_STATS]
    names = array.attrs["fields"]
    values = np.asarray(array[...])
    done = finished_blocks(group)
    return {layout.block(index).key: dict(zip(names, values[index].tolist()))
            for index in zip(*np.nonzero(done))}


def _sum_stats(block_stats: dict):
    from ..fill.state import FillStats

    total = FillStats()
    names = {f.name for f in fields(FillStats)}
    kinds = {f.name: f.type for f in fields(FillStats)}
    for s in block_stats.values():
        for k, v in s.items():
            if k in names and k != "complete":
                if kinds[k] in (int, "int"):
                    v = int(v)
                setattr(total, k, getattr(total, k) + v)
    total.complete = True
    return total


def read_labels(store, lo=None, hi=None) -> np.ndarray:
    """The final labels of a blockwise store, or its box ``[lo, hi)``."""
    labels = _open(store, LABELS, "r")
    if lo is None:
        return np.asarray(labels[...])
    return np.asarray(labels[Box(lo, hi).to_slices()])
