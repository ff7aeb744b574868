"""Blockwise dense filling on Dask distributed with global ID reconciliation.

- :mod:`~diluvian.blockwise.layout`: block cores tiling the volume with
  clipped overlap margins (:class:`BlockLayout`).
- :mod:`~diluvian.blockwise.reconcile`: the overlap rule
  (:func:`overlap_matches`), :class:`UnionFind`, :func:`consecutive_ids`.
- :mod:`~diluvian.blockwise.seeds`: each block's share of the whole
  volume's seeds (:func:`~diluvian.blockwise.seeds.block_seeds`).
- :mod:`~diluvian.blockwise.run`: :func:`fill_volume_blockwise` (fill,
  reconcile, relabel as Dask tasks over a resumable zarr store) and
  :func:`dask_client`.
- :mod:`~diluvian.blockwise.store`: the zarr store's layout, per-block
  progress records and resume checks; :func:`read_labels`.
- :mod:`~diluvian.blockwise.cli`: :func:`fill_volumes_blockwise`, the
  blockwise ``diluvian fill``.

Nothing here imports Dask, zarr or TensorFlow at import time.
"""

from .cli import fill_volumes_blockwise, store_path, write_store_hdf5
from .layout import FACE_OFFSETS, FORWARD_OFFSETS, Block, BlockLayout, box_intersection, box_slices
from .reconcile import UnionFind, consecutive_ids, overlap_matches
from .run import BlockwiseOptions, BlockwiseResult, blockwise_options, fill_volume_blockwise
from .store import finished_blocks, read_labels
from .workers import dask_client

__all__ = [
    "FACE_OFFSETS",
    "FORWARD_OFFSETS",
    "Block",
    "BlockLayout",
    "BlockwiseOptions",
    "BlockwiseResult",
    "UnionFind",
    "blockwise_options",
    "box_intersection",
    "box_slices",
    "consecutive_ids",
    "dask_client",
    "fill_volume_blockwise",
    "fill_volumes_blockwise",
    "finished_blocks",
    "overlap_matches",
    "read_labels",
    "store_path",
    "write_store_hdf5",
]
