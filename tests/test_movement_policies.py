"""Movement policies as classes: each policy's queue on small mask blocks, and the registry."""

from __future__ import annotations

import numpy as np
import pytest
from region_helpers import FOV, STEP, model_config

from diluvian.config import Config, ModelConfig
from diluvian.regions import (
    MOVE_POLICIES,
    FaceMaxPolicy,
    LatticePolicy,
    MovePolicy,
    Region,
    movement,
    register_move_policy,
)
from diluvian.util import DiluvianError

C = FOV // 2
SEED = (10, 10, 10)


def seeded(policy: str = "lattice", shape=(20, 20, 20), seed=SEED, **kwargs) -> Region:
    """A region whose seed FOV has been handed out (so the queue is empty)."""
    region = Region(np.zeros(shape, np.uint8), seed_vox=seed,
                    model_config=model_config(move_policy=policy), **kwargs)
    (request,) = region.next_requests(1)
    assert request.center_vox == tuple(seed) and not region.queue_size
    return region


def block(values: dict | None = None, base: float = 0.1) -> np.ndarray:
    """An output-FOV mask block of ``base`` with the given voxels (block indices) set."""
    out = np.full((FOV,) * 3, base, np.float32)
    for idx, v in (values or {}).items():
        out[idx] = v
    return out


# ----------------------------------------------------------------------
# LatticePolicy
# ----------------------------------------------------------------------


def test_region_builds_the_policy_its_config_names():
    assert type(Region(np.zeros((9,) * 3, np.uint8), model_config=model_config()).policy) \
        is LatticePolicy
    region = Region(np.zeros((9,) * 3, np.uint8), model_config=model_config(move_policy="face_max"))
    assert type(region.policy) is FaceMaxPolicy and region.policy.region is region


def test_lattice_first_move_is_the_seed_position():
    region = Region(np.zeros((20,) * 3, np.uint8), seed_vox=SEED, model_config=model_config())
    policy = region.policy
    assert policy.queued_moves() == [((0, 0, 0), -np.inf)] and policy.queued == {(0, 0, 0)}
    assert policy.locate((0, 0, 0)) == ((0, 0, 0), SEED)
    assert policy.locate((1, -2, 0)) == ((1, -2, 0), (10 + STEP, 10 - 2 * STEP, 10))


def test_lattice_queues_a_neighbour_per_face_at_least_t_move():
    region = seeded()
    mask = block({(C + STEP, C - 1, C + 1): 0.95, (C, C, C - STEP): 0.92, (C, C - STEP, C): 0.5})
    region.policy.enqueue_from_block((0, 0, 0), SEED, mask)
    assert region.queued_moves() == [((1, 0, 0), pytest.approx(-0.95)),
                                     ((0, 0, -1), pytest.approx(-0.92))]
    region.policy.enqueue_from_block((0, 0, 0), SEED, mask)  # queued already: no duplicates
    assert region.queue_size == 2


def test_lattice_skips_visited_and_out_of_bounds_positions():
    region = seeded(seed=(1, 10, 10))
    region.policy.visited.add((0, 1, 0))
    mask = block({(C - STEP, C, C): 0.95, (C, C + STEP, C): 0.95, (C, C, C + STEP): 0.95})
    region.policy.enqueue_from_block((0, 0, 0), (1, 10, 10), mask)
    # -Z would centre on voxel -1; +Y is visited.
    assert [pos for pos, _ in region.queued_moves()] == [(0, 0, 1)]


def test_lattice_recheck_looks_one_move_step_around_the_centre():
    region = seeded()
    policy = region.policy
    region.mask[:] = 0.1
    assert not policy.recheck((10, 10, 10))
    region.mask[10 + STEP, 10 - STEP, 10] = 0.95  # a corner of the cube
    assert policy.recheck((10, 10, 10))
    assert not policy.recheck((10, 10, 10 + STEP + 1))


# ----------------------------------------------------------------------
# FaceMaxPolicy
# ----------------------------------------------------------------------


def test_face_max_first_move_is_the_seed_voxel_and_positions_are_cells():
    region = Region(np.zeros((20,) * 3, np.uint8), seed_vox=SEED,
                    model_config=model_config(move_policy="face_max"))
    policy = region.policy
    assert policy.queued_moves() == [(SEED, -np.inf)] and policy.queued == {SEED}
    assert policy.locate(SEED) == ((0, 0, 0), SEED)
    assert policy.locate((11, 10, 7)) == ((1, 0, -1), (11, 10, 7))  # halves round up


def test_face_max_queues_the_maximum_voxel_of_each_face():
    region = seeded("face_max")
    mask = block({(C + STEP, C + 1, C - 2): 0.97, (C + STEP, C, C): 0.96,
                  (C + 1, C - STEP, C): 0.93, (C, C, C + STEP): 0.5})
    region.policy.enqueue_from_block((0, 0, 0), SEED, mask)
    assert region.queued_moves() == [((12, 11, 8), pytest.approx(-0.97)),
                                     ((11, 8, 10), pytest.approx(-0.93))]


def test_face_max_skips_voxels_of_visited_cells_queued_voxels_and_margins():
    region = seeded("face_max", move_margin=(0, 0, 9))  # centres need 9 <= x < 11
    region.policy.visited.add((0, 1, 0))
    mask = block({(C, C + STEP, C): 0.95, (C, C, C - STEP): 0.95, (C, C, C + STEP): 0.95,
                  (C - STEP, C, C): 0.95})
    region.policy.enqueue_from_block((0, 0, 0), SEED, mask)
    # +Y lands in visited cell (0, 1, 0); -X and +X at x = 8 and 12 lie in the margin.
    assert [vox for vox, _ in region.queued_moves()] == [(8, 10, 10)]
    region.policy.enqueue_from_block((0, 0, 0), SEED, mask)
    assert region.queue_size == 1


def test_face_max_recheck_reads_the_centre_voxel_only():
    region = seeded("face_max")
    region.mask[:] = 0.95
    region.mask[12, 10, 10] = 0.3
    assert region.policy.recheck((12, 10, 11)) and not region.policy.recheck((12, 10, 10))


# ----------------------------------------------------------------------
# Shared rules: priority and skip_certain
# ----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["lattice", "face_max"])
def test_take_certain_reads_moves_of_a_decided_cube_from_the_mask(policy):
    region = seeded(policy, skip_certain=True)
    vox = (10, 10, 10 + STEP)
    assert not region.policy.take_certain((0, 0, 1), vox)  # unset voxels: undecided
    region.mask[:] = 0.05
    region.mask[6:15, 6:15, 6:15] = 0.95
    assert region.policy.take_certain((0, 0, 1), vox)
    assert (0, 0, 1) in region.visited and region.num_certain == 1
    cells = {region.policy.locate(item)[0] for item, _ in region.queued_moves()}
    assert cells == {(1, 0, 1), (-1, 0, 1), (0, 1, 1), (0, -1, 1), (0, 0, 2)}


@pytest.mark.parametrize("order, expected", [("descending", -0.9), ("proximity", -0.3)])
def test_priority_follows_move_priority(order, expected):
    region = Region(np.zeros((9,) * 3, np.uint8),
                    model_config=model_config(move_priority=order))
    assert region.policy.priority((1, -2, 0), 0.9) == pytest.approx(expected)


# ----------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------


class PlusX(MovePolicy):
    """A toy third policy: one lattice step along +X after every prediction, whatever the mask."""

    def first_item(self):
        return (0, 0, 0)

    def locate(self, item):
        return item, tuple(s + p * d for s, p, d in zip(self._seed, item, self._step))

    def recheck(self, vox):
        return True

    def enqueue_from_block(self, pos, centre_vox, block):
        new = (pos[0], pos[1], pos[2] + 1)
        if new not in self.visited and new not in self.queued and self.region.pos_in_bounds(new):
            self.push(new, 0.0)


@pytest.fixture
def plus_x(monkeypatch):
    """``plus_x`` registered for one test (the registry and config choices restored after)."""
    monkeypatch.setattr(movement, "MOVE_POLICIES", dict(MOVE_POLICIES))
    monkeypatch.setitem(ModelConfig.FIELDS, "move_policy", ModelConfig.FIELDS["move_policy"])
    register_move_policy("plus_x", PlusX)
    return PlusX


def test_a_registered_policy_fills_a_region_unchanged(plus_x):
    config = Config([{"model": {"input_fov_shape": [FOV] * 3, "output_fov_shape": [FOV] * 3,
                                "output_fov_move_fraction": FOV // STEP,
                                "move_policy": "plus_x"}}])
    region = Region(np.zeros((20,) * 3, np.uint8), seed_vox=(10, 10, 3),
                    model_config=config.model)
    assert type(region.policy) is plus_x
    region.fill(lambda images, masks: np.full(images.shape, 0.95, np.float32))
    assert region.visited == {(0, 0, k) for k in range(9)}  # x = 3 + 2 * 8 = 19 is the last
    assert region.num_moves == 9 and region.done


def test_unknown_policy_names_the_value_and_the_registered_choices(plus_x):
    config = model_config()
    config.move_policy = "wander"
    with pytest.raises(DiluvianError, match="'wander' is invalid: expected 'lattice', "
                                            "'face_max' or 'plus_x'"):
        Region(np.zeros((9,) * 3, np.uint8), model_config=config)
    with pytest.raises(DiluvianError, match="move_policy.*'plus_x'"):
        Config([{"model": {"move_policy": "wander"}}])


def test_unregistered_names_stay_invalid_in_configs():
    assert "plus_x" not in MOVE_POLICIES
    with pytest.raises(DiluvianError, match="move_policy"):
        Config([{"model": {"move_policy": "plus_x"}}])


def test_only_move_policy_classes_can_be_registered():
    with pytest.raises(DiluvianError, match="MovePolicy subclass"):
        register_move_policy("dict", dict)
    with pytest.raises(DiluvianError, match="non-empty string"):
        register_move_policy("", PlusX)
    with pytest.raises(TypeError):
        MovePolicy(Region(np.zeros((9,) * 3, np.uint8), model_config=model_config()))
