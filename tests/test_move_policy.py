"""Move policies of the flood-fill engine: FFN's ``face_max`` and skipping decided moves."""

from __future__ import annotations

import numpy as np
import pytest
from region_helpers import FOV, STEP, ball, model_config

from diluvian.config import Config
from diluvian.fill import fill_volume_with_model
from diluvian.network import apply_model_settings
from diluvian.network.ffn_import import FFN_SETTINGS
from diluvian.regions import Region
from diluvian.util import DiluvianError
from diluvian.volumes.base import NdarrayVolume

C = FOV // 2


def oracle(images, masks):
    """Object = bright voxels, whatever the mask says."""
    return np.where(images > 0.4, 0.95, 0.05).astype(np.float32)


@pytest.fixture
def snake():
    """A bent tube (along X, then down Z) in a dark 20x24x24 volume."""
    target = np.zeros((20, 24, 24), bool)
    target[4:7, 10:13, 3:20] = True
    target[4:17, 10:13, 17:20] = True
    return np.where(target, 200, 20).astype(np.uint8), target


def fill_recording(region, predictor=oracle):
    centres = []
    region.fill(predictor, stopping_callback=lambda r: centres.append(r.last_center_vox) and False)
    return centres


def test_face_max_moves_to_the_maximum_voxel_of_the_face():
    region = Region(np.zeros((20, 20, 20), np.uint8), seed_vox=(10, 10, 10),
                    model_config=model_config(move_policy="face_max"))
    request = region.next_requests(1)[0]
    prediction = np.full((FOV,) * 3, 0.1, np.float32)
    prediction[C + STEP, C + 1, C - 2] = 0.97  # on the +Z face, off its centre
    prediction[C, C - STEP, C] = 0.5  # -Y face, below t_move
    region.apply(request, prediction)
    assert [pos for pos, _ in region.queued_moves()] == [(12, 11, 8)]
    assert region.vox_to_cell((12, 11, 8)) == (1, 1, -1)  # halves round up


def test_face_max_centres_follow_the_object_and_each_cell_is_predicted_once(snake):
    image, target = snake
    region = Region(image, seed_vox=(5, 11, 4), model_config=model_config(move_policy="face_max"))
    centres = fill_recording(region)
    assert region.num_moves == len(centres) > 5
    assert all(target[c] for c in centres)  # every FOV is centred inside the tube
    cells = [region.vox_to_cell(c) for c in centres]
    assert len(set(cells)) == len(cells) and set(cells) == region.visited
    assert np.array_equal(region.get_final_mask(), target)


def test_lattice_centres_stay_on_the_seed_lattice(snake):
    image, target = snake
    region = Region(image, seed_vox=(5, 11, 4), model_config=model_config())
    centres = fill_recording(region)
    assert np.all((np.array(centres) - (5, 11, 4)) % STEP == 0)
    assert np.array_equal(region.get_final_mask(), target)


def test_face_max_recheck_skips_moves_whose_centre_fell_below_t_move():
    region = Region(np.zeros((20, 20, 20), np.uint8), seed_vox=(10, 10, 10),
                    model_config=model_config(move_policy="face_max"))
    prediction = np.full((FOV,) * 3, 0.1, np.float32)
    prediction[C + STEP, C, C] = 0.97
    region.apply(region.next_requests(1)[0], prediction)
    region.mask[12, 10, 10] = 0.3  # a later prediction took the move's centre out
    assert region.next_requests(1) == []
    assert region.num_skipped == 1 and region.done


def test_invalid_move_policy_is_a_config_error():
    with pytest.raises(DiluvianError, match="move_policy"):
        Config([{"model": {"move_policy": "wander"}}])


def test_imported_ffn_models_use_face_max():
    config = Config()
    assert config.model.move_policy == "lattice"
    apply_model_settings(config, FFN_SETTINGS)
    assert config.model.move_policy == "face_max"


@pytest.mark.parametrize("policy", ["lattice", "face_max"])
def test_skip_certain_saves_evaluations_and_gives_the_same_mask(policy):
    shape = (26, 26, 26)
    target = ball(shape, (13, 13, 13), 10)
    image = np.where(target, 200, 20).astype(np.uint8)
    # As FFN's geometry: the output FOV reaches two move steps from its centre.
    config = model_config(move_policy=policy, input_fov_shape=[9] * 3,
                          output_fov_shape=[9] * 3, output_fov_move_fraction=4)
    full = Region(image, seed_vox=(13, 13, 13), model_config=config)
    full.fill(oracle)
    lean = Region(image, seed_vox=(13, 13, 13), model_config=config, skip_certain=True)
    lean.fill(oracle)
    assert lean.num_certain > 0 and full.num_certain == 0
    assert lean.num_moves + lean.num_certain <= full.num_moves
    assert lean.num_moves < full.num_moves
    assert np.array_equal(lean.get_final_mask(), full.get_final_mask())
    assert np.array_equal(lean.get_final_mask(), target)


def test_skip_certain_never_skips_undecided_neighbourhoods():
    region = Region(np.zeros((20, 20, 20), np.uint8), seed_vox=(10, 10, 10),
                    model_config=model_config(), skip_certain=True)
    region.apply(region.next_requests(1)[0], np.full((FOV,) * 3, 0.95, np.float32))
    # The +Z move's cube reaches past the predicted block: unset voxels, so predicted.
    assert len(region.next_requests(6)) == 6 and region.num_certain == 0
    # Moves inside a decided box are read from the mask instead; those reaching out are not.
    inner = Region(np.zeros((20, 20, 20), np.uint8), seed_vox=(10, 10, 10),
                   model_config=model_config(), skip_certain=True)
    inner.mask[6:15, 6:15, 6:15] = 0.97
    inner.apply(inner.next_requests(1)[0], np.full((FOV,) * 3, 0.95, np.float32))
    requests = inner.next_requests(6)
    assert len(requests) == 6 and inner.num_certain >= 6
    for request in requests:
        lo = [v - STEP for v in request.center_vox]
        cube = inner.mask[tuple(slice(a, a + 2 * STEP + 1) for a in lo)]
        assert np.isnan(cube).any()


def test_dense_fill_with_skip_certain_matches_and_counts_certain_moves():
    labels = np.zeros((16, 32, 32), np.uint64)
    labels[1:15, 1:15, 1:31] = 1
    labels[1:15, 17:31, 1:31] = 2
    volume = NdarrayVolume([10, 10, 10], image_data=(labels * 90 + 20).astype(np.uint8))
    config = Config([{"model": {"input_fov_shape": [FOV] * 3, "output_fov_shape": [FOV] * 3,
                                "output_fov_move_fraction": FOV // STEP},
                      # Same labels with and without skip_certain holds for FOVs
                      # centred anywhere; FOVs moved inward from the faces
                      # (inset_fovs) are predicted in another order.
                      "fill": {"min_body_size": 0, "inset_fovs": False}}])

    def predict(images, masks):
        return np.where(images > 0.3, 0.95, 0.05).astype(np.float32)

    seeds = np.array([[8, 8, 16], [8, 24, 16]])
    results = {}
    for skip in (False, True):
        results[skip] = fill_volume_with_model(predict, volume, seeds=seeds, config=config,
                                               skip_certain=skip, progress=False)
    (plain, plain_stats), (lean, lean_stats) = results[False], results[True]
    assert np.array_equal(plain, lean)
    assert plain_stats.bodies == lean_stats.bodies == 2
    assert lean_stats.certain_moves > 0 and plain_stats.certain_moves == 0
    assert lean_stats.moves < plain_stats.moves
