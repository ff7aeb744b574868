"""FillOptions (one validated value for the dense fill) and where a fill's evaluations go."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
from test_fill import (  # the dense fill tests' volumes and oracles
    blob_labels,
    exact_oracle,
    fill,
    greedy_oracle,
    grid_seeds,
    small_config,
    touching_labels,
    volume_of,
)

from diluvian.fill import FillStats, read_fill_checkpoint, write_segmentation
from diluvian.fill.engine import DenseFill
from diluvian.fill.options import FillOptions
from diluvian.util import DiluvianError

# --------------------------------------------------------------------------
# FillOptions
# --------------------------------------------------------------------------


def test_options_come_from_the_config_unless_given():
    config = small_config(skip_committed=True, min_body_size=7)
    options = FillOptions.from_config(config, move_batch_size=4, skip_committed=None,
                                      full_context=True)
    assert options.move_batch_size == 4
    assert options.skip_committed is True  # None: the configuration's value
    assert options.full_context is True
    assert options.min_body_size == 7
    assert options.checkpoint_interval == 100
    assert options.input_fov_shape == (5, 9, 9)
    assert options.t_final == pytest.approx(float(config.model.t_final_value))
    variant = dataclasses.replace(options, max_moves=3)
    assert variant.max_moves == 3 and options.max_moves is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_moves = 3


@pytest.mark.parametrize("bad, name", [
    ({"move_batch_size": 0}, "move_batch_size"),
    ({"max_moves": 0}, "max_moves"),
    ({"max_bodies": -1}, "max_bodies"),
    ({"remask_interval": 1.5}, "remask_interval"),
    ({"checkpoint_seconds": -1.0}, "checkpoint_seconds"),
    ({"bias": "yes"}, "bias"),
    ({"sparse_mask": 2}, "sparse_mask"),
    ({"closing_shape": (1, 2)}, "closing_shape"),
    ({"seed_generator": 3}, "seed_generator"),
])
def test_bad_options_are_one_line_errors_naming_the_option(bad, name):
    with pytest.raises(DiluvianError, match=f"fill option {name} = .*expected") as info:
        FillOptions.from_config(small_config(), **bad)
    assert "\n" not in str(info.value)


def test_unknown_option_is_refused():
    with pytest.raises(DiluvianError, match="unknown fill option.*max_bodys"):
        FillOptions.from_config(small_config(), max_bodys=3)


def test_dense_fill_object_gives_the_facade_labels():
    truth = blob_labels()
    labels, stats = fill(truth, move_batch_size=2)
    options = FillOptions.from_config(small_config(), move_batch_size=2)
    again, stats2 = DenseFill(exact_oracle, volume_of(truth), options, progress=False).run(
        grid_seeds(truth.shape))
    assert np.array_equal(labels, again)
    assert stats.moves == stats2.moves


# --------------------------------------------------------------------------
# Where evaluations go
# --------------------------------------------------------------------------


def nothing(images, masks):
    return np.full(images.shape, 0.01, dtype=np.float32)


def test_evaluation_counters_of_seeds_that_find_nothing():
    # Each region makes one evaluation (its seed FOV), finds no body and is
    # rejected. The FOV is 5x9x9: centres within (2, 4, 4) of a face read padding.
    labels = blob_labels()
    seeds = np.array([[6, 16, 16], [0, 0, 0], [11, 31, 31], [2, 27, 4]])
    _, stats = fill(labels, nothing, seeds=seeds, shuffle_seeds=False, inset_fovs=False)
    assert stats.moves == 4
    assert stats.single_fov_seeds == 4
    assert stats.rejected_small == 4 and stats.evals_rejected == 4
    assert stats.evals_near_face == 2  # (2, 27, 4) is just inside on every axis
    assert stats.evals_in_committed == stats.evals_revisit == stats.evals_cancelled == 0


class RecordingFill(DenseFill):
    """Records the FOV centres of each region, in order."""

    def predict(self, batch):
        for request in batch:
            self.centres.append((tuple(request.region.seed_vox), request.center_vox))
        super().predict(batch)


def test_evaluations_in_committed_bodies_are_counted():
    # Object 2 (brighter) is committed first; the greedy region seeded in the
    # darker object 1, which touches it, then also fills object 2: its FOVs
    # centred on object 2's body are evaluations in a committed body. With one
    # FOV per model call the regions fill one after the other, and labels only
    # grow, so those are the centres of region 1 in the final body of object 2.
    labels = touching_labels()
    seeds = np.array([[6, 8, 24], [6, 8, 8]])  # objects 2, then 1
    options = FillOptions.from_config(small_config(), shuffle_seeds=False, skip_committed=False,
                                      inset_fovs=False)
    fill = RecordingFill(greedy_oracle, volume_of(labels), options, progress=False)
    fill.centres = []
    out, stats = fill.run(seeds)
    body_2 = out[6, 8, 24]
    region_1 = [c for seed, c in fill.centres if seed == (6, 8, 8)]
    expected = sum(1 for c in region_1 if out[c] == body_2)
    assert expected > 0
    assert stats.evals_in_committed == expected
    assert stats.moves == len(fill.centres)
    assert stats.evals_revisit == 0  # a region predicts each lattice cell at most once

    options = dataclasses.replace(options, skip_committed=True)
    _, skipping = DenseFill(greedy_oracle, volume_of(labels), options, progress=False).run(seeds)
    assert skipping.evals_in_committed == 0 and skipping.blocked_moves > 0


def test_evaluations_of_cancelled_regions_are_the_wasted_moves():
    labels = touching_labels()
    rng = np.random.default_rng(0)
    seeds = np.stack([rng.integers(1, 11, 40), rng.integers(1, 31, 40),
                      rng.integers(1, 31, 40)], axis=1)
    _, stats = fill(labels, greedy_oracle, seeds=seeds, move_batch_size=4, fill_batches=True,
                    skip_committed=False)
    assert stats.evals_cancelled == stats.wasted_moves


def test_new_counters_are_checkpointed_and_old_checkpoints_load(tmp_path):
    labels = blob_labels()
    seeds = np.array([[6, 16, 16], [0, 0, 0]])
    states = []
    _, stats = fill(labels, nothing, seeds=seeds, checkpoint=states.append, inset_fovs=False)
    state = states[-1]
    hdf5, toml = tmp_path / "o.hdf5", tmp_path / "o.toml"
    write_segmentation(hdf5, toml, "v", None, None, [1, 1, 1], state=state)
    _, loaded, _ = read_fill_checkpoint(toml)
    assert loaded.stats.single_fov_seeds == 2 and loaded.stats.evals_near_face == 1
    # A checkpoint written before the counters existed loads them as 0.
    with h5py.File(hdf5, "r+") as f:
        info = json.loads(f["fill"].attrs["state"])
        for name in ("evals_near_face", "evals_in_committed", "evals_revisit",
                     "evals_rejected", "evals_cancelled", "single_fov_seeds"):
            del info["stats"][name]
        f["fill"].attrs["state"] = json.dumps(info)
    _, old, _ = read_fill_checkpoint(toml)
    assert old.stats.single_fov_seeds == 0 and old.stats.moves == stats.moves
    # Resuming adds to them.
    _, resumed = fill(labels, nothing, resume=loaded, seeds=None, inset_fovs=False)
    assert resumed.single_fov_seeds == 2
    assert isinstance(resumed, FillStats)
