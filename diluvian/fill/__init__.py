"""Dense segmentation: flood fill every object of a volume from a list of seeds.

:func:`fill_volume_with_model` fills one volume in memory and returns its
label array (a facade: it builds one :class:`FillOptions` and runs a
:class:`DenseFill`, whose methods are the rules below); :func:`fill_volumes_with_model` is ``diluvian fill``: it loads
the model file, picks the volumes, writes each result as ``OUT.hdf5`` (CREMI
layout) with a dataset TOML ``OUT.toml`` beside it, checkpoints and resumes.

How seeds become bodies
-----------------------
Seeds are processed in a fixed order (the generator's, shuffled with a stream
of the configured random seed unless ``shuffle_seeds`` is false). Several
regions are filled at once (:func:`diluvian.regions.iter_fill_regions`), so
the model sees full batches of ``move_batch_size`` FOVs, but bodies are
*committed* strictly in seed order:

* a seed lying in a committed body (or in a rejected body, see below) is
  skipped; a region still filling whose seed becomes covered by a committed
  body is cancelled;
* each region is filled from its seed alone: committed bodies are **not**
  masked out of the network input or of the moves. A body is therefore a
  function of its seed only, and the segmentation is the same for any
  ``move_batch_size``, any number of concurrent regions and across an
  interruption and resume;
* a finished region is thresholded at ``t_final``, closed with
  ``[postprocessing] closing_shape`` and reduced to its seeded connected
  component (:class:`diluvian.postprocessing.Body`); the first body to claim a
  voxel keeps it (the voxels it would have taken from earlier bodies are
  counted as overlap);
* a body that claims fewer than ``[fill] min_body_size`` voxels is rejected:
  its voxels stay background but no later seed in them is tried (as FFN does).

Scheduling changes only the order of work, never the result, and aims to
waste few network evaluations: up to ``move_batch_size`` regions advance one
move each per model call (earliest seeds first); a seed lying inside the
current mask (at least ``t_final``) of an earlier region still filling is not
started yet; and a region overlapping an earlier one (either seed inside the
other's mask) is paused until the earlier one is committed, after which it is
cancelled if its seed was covered or resumes. Batches are therefore full only
when enough separate objects are being filled (``fill_batches`` also
advances paused regions to fill them, for GPUs).

Checkpoints
-----------
Every ``checkpoint_interval`` committed bodies, on SIGINT/SIGTERM and at the
end, ``OUT.hdf5`` is rewritten atomically with the labels so far, the image,
and a ``fill`` group (the ordered seeds, the voxels of rejected bodies, and a
JSON ``state`` attribute: next seed index, next body id, statistics). Given
back with ``--resume-file OUT.toml`` the fill continues after the last
committed body; regions that were still filling are redone, which by the
rule above gives the same bodies. A label volume without a ``fill`` group
(e.g. from another program) can also be resumed: seeds are generated again
and those inside labelled voxels are skipped.
"""


from .command import fill_volumes_with_model, load_fill_model
from .dense import fill_volume_with_model
from .engine import DenseFill
from .options import FillOptions
from .state import (
    FillState,
    FillStats,
    dataset_name,
    read_fill_checkpoint,
    segmentation_paths,
    write_segmentation,
)

#: Kept for callers of the earlier private name.
_load_model = load_fill_model

__all__ = [
    "DenseFill",
    "FillOptions",
    "FillState",
    "FillStats",
    "dataset_name",
    "fill_volume_with_model",
    "fill_volumes_with_model",
    "load_fill_model",
    "read_fill_checkpoint",
    "segmentation_paths",
    "write_segmentation",
]
