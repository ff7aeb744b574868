"""Seeds of a block: the whole volume's seeds that lie in it.

A block that generated its own seeds from its own image would not get the
seeds the whole volume gets: the ``sobel`` generator thresholds the edge
magnitude and the intensity at Otsu's threshold of the image it is given,
and its distance transform and spacing rule see only that image. On the
second half of FIB-25 only 39-68% of the seeds that 128^3 blocks made for
themselves were seeds of the whole volume, and a fill that starts from other
seeds commits other bodies first.

So blockwise fills make the whole volume's seeds, block by block:

* ``sobel``: two cheap passes over the blocks first find the whole volume's
  Otsu thresholds: the range of the edge magnitude and of the smoothed
  intensity over all block cores, then their 256-bin histograms over that
  range, summed (``skimage.filters.threshold_otsu`` of the whole image uses
  exactly these bins). Each block computes the features of its core from the
  core grown by :func:`~diluvian.preprocessing.sobel_halo`, so they equal
  the whole volume's. The seeds are then made with those thresholds on the
  block's outer box grown by :data:`SEED_HALO` voxels (room for the distance
  transform and the spacing rule) and only those in the outer box are kept.
* ``grid``: the whole volume's lattice, clipped to the outer box.
* other (user) generators run on the block's image.
"""

from __future__ import annotations

import numpy as np

from ..preprocessing import (
    SEED_GENERATORS,
    grid_axes,
    grid_seeds,
    intensity_distance_seeds,
    sobel_features,
    sobel_halo,
)
from .layout import BlockLayout

__all__ = ["SEED_HALO", "block_seeds", "global_seeding", "needs_levels", "read_mask",
           "sobel_levels"]

#: Voxels added on each side of a block's outer box to make its ``sobel``
#: seeds: the distance transform and the spacing rule (100 nm) look this far.
SEED_HALO = 32

#: Histogram bins of the Otsu thresholds (``skimage.filters.threshold_otsu``'s default).
OTSU_BINS = 256


def global_seeding(seed_generator: str) -> bool:
    """Whether blocks can make the whole volume's seeds of this generator themselves."""
    return SEED_GENERATORS.get(seed_generator) in (intensity_distance_seeds, grid_seeds)


def needs_levels(seed_generator: str) -> bool:
    """Whether blocks need the whole volume's thresholds (:func:`sobel_levels`) for their seeds."""
    return SEED_GENERATORS.get(seed_generator) is intensity_distance_seeds


def read_mask(volume, box, ignore_mask: bool = False) -> np.ndarray | None:
    """The volume's mask in ``box`` as booleans; ``None`` without a mask or with ``ignore_mask``."""
    if ignore_mask or getattr(volume, "mask_data", None) is None:
        return None
    return np.asarray(volume.mask_data[box]).astype(bool)


def _core_features(volume, layout: BlockLayout, index, ignore_mask: bool):
    """Smoothed intensity and edge magnitude of a block core's (unmasked) voxels."""
    block = layout.block(index)
    halo = layout.grow(block.core, sobel_halo(volume.resolution))
    image, edges = sobel_features(np.asarray(volume.image_data[halo.to_slices()]),
                                  volume.resolution)
    core = block.core.shift(-halo.lo).to_slices()
    image, edges = image[core], edges[core]
    mask = read_mask(volume, block.core.to_slices(), ignore_mask)
    if mask is not None:
        image, edges = image[mask], edges[mask]
    return image.ravel(), edges.ravel()


def feature_range(volume, layout: BlockLayout, index, ignore_mask: bool = False):
    """``(edge min, edge max, intensity min, intensity max)`` of a block core (a Dask task);
    ``None`` when the core has no unmasked voxel."""
    image, edges = _core_features(volume, layout, index, ignore_mask)
    if image.size == 0:
        return None
    return edges.min(), edges.max(), image.min(), image.max()


def feature_histograms(volume, layout: BlockLayout, index, ranges,
                       ignore_mask: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """256-bin histograms of a block core's edge magnitude and intensity over ``ranges``
    (a Dask task)."""
    image, edges = _core_features(volume, layout, index, ignore_mask)
    e_lo, e_hi, i_lo, i_hi = ranges
    return (np.histogram(edges, bins=OTSU_BINS, range=(e_lo, e_hi))[0],
            np.histogram(image, bins=OTSU_BINS, range=(i_lo, i_hi))[0])


def _otsu(counts: np.ndarray, lo, hi) -> float:
    """Otsu's threshold of a histogram with ``np.histogram``'s bins over ``[lo, hi]``."""
    from skimage.filters import threshold_otsu

    if lo == hi:  # one value: threshold_otsu returns it
        return float(lo)
    edges = np.histogram_bin_edges(np.asarray([lo, hi]), bins=OTSU_BINS, range=(lo, hi))
    return float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2.0)))


def sobel_levels(run, volume, layout: BlockLayout, ignore_mask: bool = False):
    """The whole volume's ``sobel`` thresholds ``(edge threshold, intensity level)``.

    Parameters
    ----------
    run : callable
        ``run(function, *args) -> list``: calls ``function(volume, layout,
        index, *args)`` for every block (on Dask, or in this process) and
        returns the results in block order.

    Returns
    -------
    tuple of float, or None
        ``None`` when the volume gives no seeds (no unmasked voxel, or a
        constant edge magnitude), as :func:`intensity_distance_seeds` does.
    """
    found = [r for r in run(feature_range, ignore_mask) if r is not None]
    if not found:
        return None
    lows, highs = np.min(found, axis=0), np.max(found, axis=0)
    # Keep the features' float32 type: numpy's bin edges then equal those of
    # ``np.histogram`` over the whole image.
    ranges = (lows[0], highs[1], lows[2], highs[3])
    if ranges[1] <= ranges[0]:
        return None
    hists = run(feature_histograms, ranges, ignore_mask)
    edge_counts = np.sum([h[0] for h in hists], axis=0)
    intensity_counts = np.sum([h[1] for h in hists], axis=0)
    return (_otsu(edge_counts, ranges[0], ranges[1]),
            _otsu(intensity_counts, ranges[2], ranges[3]))


def block_seeds(volume, layout: BlockLayout, index, seed_generator: str, levels=None,
                ignore_mask: bool = False) -> np.ndarray:
    """The whole volume's seeds of ``seed_generator`` in a block's outer box (global Z, Y, X).

    ``levels`` are the ``sobel`` thresholds of :func:`sobel_levels` (``None``:
    no seeds). Only for generators where :func:`global_seeding` holds.
    """
    block = layout.block(index)
    lo, hi = np.asarray(block.outer_lo), np.asarray(block.outer_hi)
    generator = SEED_GENERATORS[seed_generator]
    if generator is grid_seeds:
        axes = [a[(a >= b) & (a < e)] for a, b, e in zip(grid_axes(layout.shape), lo, hi)]
        seeds = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        mask = read_mask(volume, block.outer.to_slices(), ignore_mask)
        if mask is not None and len(seeds):
            seeds = seeds[mask[tuple((seeds - lo).T)]]
        return seeds.astype(np.int64)
    if levels is None:
        return np.zeros((0, 3), dtype=np.int64)
    halo = layout.grow(block.outer, SEED_HALO)
    s_lo, box = halo.lo, halo.to_slices()
    seeds = intensity_distance_seeds(np.asarray(volume.image_data[box]), volume.resolution,
                                     mask=read_mask(volume, box, ignore_mask),
                                     threshold=levels[0], level=levels[1]) + s_lo
    inside = np.all((seeds >= lo) & (seeds < hi), axis=1)
    return seeds[inside].astype(np.int64)
