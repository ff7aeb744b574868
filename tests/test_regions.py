"""Tests of the flood-fill engine: move lattice, move checks, queue, bias, remask, batching."""

from __future__ import annotations

import numpy as np
import pytest
from region_helpers import FOV, STEP, ball, model_config

from diluvian.config import CONFIG
from diluvian.regions import FovRequest, Region, as_predictor, fill_regions, iter_fill_regions
from diluvian.util import DiluvianError, binary_f_score
from diluvian.volumes.subvolume import Subvolume

C = FOV // 2


def intensity_oracle(value: float):
    """Predicts the object whose image intensity is ``value`` (ignores the mask)."""
    def predict(images, masks):
        return np.where(np.abs(images - value) < 1e-3, 0.95, 0.05).astype(np.float32)
    return predict


def mask_dependent(images, masks):
    """Deterministic per-sample predictor whose output depends on the mask input."""
    spread = (masks + np.roll(masks, 1, axis=1) + np.roll(masks, -1, axis=2)) / 3.0
    return np.clip(0.9 * (images > 0.4) + 0.1 * spread, 0.0, 1.0).astype(np.float32)


def faces_prediction(values: dict[tuple[int, int, int], float], base: float = 0.1) -> np.ndarray:
    """An output block of ``base`` with the centre voxel of some move faces set."""
    block = np.full((FOV,) * 3, base, dtype=np.float32)
    for move, v in values.items():
        block[tuple(C + STEP * m for m in move)] = v
    return block


@pytest.fixture
def sphere_volume():
    shape = (24, 24, 24)
    target = ball(shape, (12, 12, 12), 8)
    image = np.where(target, 128, 32).astype(np.uint8)
    return image, target


def test_move_delta_is_config_move_step():
    assert np.array_equal(Region.MOVE_DELTA, CONFIG.model.move_step)
    region = Region(np.zeros((20, 20, 20), np.uint8), model_config=model_config())
    assert np.array_equal(region.MOVE_DELTA, [STEP] * 3)


def test_pos_vox_round_trip_and_bounds():
    region = Region(np.zeros((20, 20, 20), np.uint8), seed_vox=(5, 6, 7),
                    model_config=model_config())
    vox = region.pos_to_vox((1, -2, 3))
    assert vox.tolist() == [7, 2, 13]
    assert region.vox_to_pos(vox).tolist() == [1, -2, 3]
    assert region.pos_in_bounds((0, -3, 0))
    assert not region.pos_in_bounds((0, -4, 0))
    assert region.pos_in_bounds((7, 0, 0)) and not region.pos_in_bounds((8, 0, 0))


def test_get_block_bounds_centres_block_on_voxel():
    region = Region(np.zeros((20, 20, 20), np.uint8), model_config=model_config())
    start, stop = region.get_block_bounds((10, 10, 10), (FOV,) * 3)
    assert start.tolist() == [10 - C] * 3 and stop.tolist() == [10 - C + FOV] * 3
    start, _ = region.get_block_bounds((10, 10, 10), (3, 3, 3), offset=(1, 0, 0))
    assert start.tolist() == [10, 9, 9]


def test_fov_centres_lie_on_seed_lattice_and_are_visited_once(sphere_volume):
    image, target = sphere_volume
    seed = (11, 12, 13)
    region = Region(image, target=target, seed_vox=seed, model_config=model_config())
    centres = []
    region.fill(intensity_oracle(128 / 256), stopping_callback=lambda r: centres.append(
        r.last_center_vox) and False)
    assert len(centres) == region.num_moves > 10
    assert len(set(centres)) == len(centres)
    offsets = np.array(centres) - np.array(seed)
    assert np.all(offsets % STEP == 0)
    assert {tuple(p) for p in offsets // STEP} == region.visited


def test_get_moves_checks_faces_at_move_step():
    region = Region(np.zeros((20, 20, 20), np.uint8), model_config=model_config())
    block = np.zeros((FOV,) * 3, np.float32)
    block[C + STEP, C - STEP, C + STEP] = 0.7  # corner of the +Z face
    block[C + STEP - 1, C, C] = 0.99  # inside the cube: no face
    block[C, C + STEP + 1, C] = 0.99  # beyond the +Y face
    moves = region.get_moves(block)
    assert [m["move"].tolist() for m in moves] == [
        [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]
    v = [m["v"] for m in moves]
    assert v[0] == pytest.approx(0.7)
    assert v[2] == pytest.approx(0.0)
    # The corner voxel also lies on the -Y and +X faces.
    assert v[3] == pytest.approx(0.7) and v[4] == pytest.approx(0.7)
    assert v[1] == v[5] == 0.0


def test_move_check_thickness_thickens_faces_both_ways():
    # As in 0.0.6: a slab of 2 * thickness - 1 voxels centred on the face plane.
    block = np.zeros((FOV,) * 3, np.float32)
    block[C, C + STEP + 1, C] = 0.99  # outward of the +Y face
    block[C - STEP + 1, C, C] = 0.98  # inward of the -Z face
    block[C - STEP + 2, C, C] = 0.97  # two inward: outside a thickness-2 slab
    thin = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    thick = Region(np.zeros((20,) * 3, np.uint8),
                   model_config=model_config(move_check_thickness=2))
    assert thin.get_moves(block)[2]["v"] == 0.0
    assert thin.get_moves(block)[1]["v"] == 0.0
    assert thick.get_moves(block)[2]["v"] == pytest.approx(0.99)
    assert thick.get_moves(block)[1]["v"] == pytest.approx(0.98)
    # Changing the thickness of an existing region takes effect at once.
    thin.move_check_thickness = 2
    assert thin.get_moves(block)[1]["v"] == pytest.approx(0.98)
    thick.move_check_thickness = 1
    assert thick.get_moves(block)[2]["v"] == 0.0


def test_check_move_neighborhood_cube():
    region = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    block = np.zeros((FOV,) * 3, np.float32)
    block[C + STEP + 1, C, C] = 0.95
    assert not region.check_move_neighborhood(block)
    block[C + STEP, C + STEP, C - STEP] = 0.95
    assert region.check_move_neighborhood(block)


def _seed_request(region) -> FovRequest:
    (request,) = region.next_requests(1)
    assert request.position == (0, 0, 0)
    return request


def test_descending_priority_orders_by_face_probability_ties_by_insertion():
    region = Region(np.zeros((30,) * 3, np.uint8), model_config=model_config(move_recheck=False))
    region.apply(_seed_request(region), faces_prediction(
        {(1, 0, 0): 0.95, (0, 1, 0): 0.99, (0, 0, 1): 0.95, (0, 0, -1): 0.92}), bias=False)
    order = [r.position for r in region.next_requests(4)]
    assert order == [(0, 1, 0), (1, 0, 0), (0, 0, 1), (0, 0, -1)]


def test_proximity_priority_divides_by_l1_distance():
    def run(priority):
        region = Region(np.zeros((30,) * 3, np.uint8),
                        model_config=model_config(move_recheck=False, move_priority=priority))
        region.apply(_seed_request(region),
                     faces_prediction({(1, 0, 0): 0.95, (0, 1, 0): 0.91}), bias=False)
        (first,) = region.next_requests(1)
        assert first.position == (1, 0, 0)
        region.apply(first, faces_prediction({(1, 0, 0): 0.99}), bias=False)
        return region.next_requests(1)[0].position

    assert run("descending") == (2, 0, 0)
    assert run("proximity") == (0, 1, 0)


def test_random_priority_draws_from_given_generator():
    region = Region(np.zeros((30,) * 3, np.uint8), rng=np.random.default_rng(7),
                    model_config=model_config(move_recheck=False, move_priority="random"))
    region.apply(_seed_request(region), faces_prediction({}, base=0.95), bias=False)
    keys = np.random.default_rng(7).random(6)
    moves = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    expected = [moves[i] for i in np.argsort(keys, kind="stable")]
    assert [r.position for r in region.next_requests(6)] == expected


def test_priority_is_fixed_by_first_move_that_queues_position():
    region = Region(np.zeros((30,) * 3, np.uint8), model_config=model_config(move_recheck=False))
    region.apply(_seed_request(region),
                 faces_prediction({(1, 0, 0): 0.91, (0, 1, 0): 0.95}), bias=False)
    (a,) = region.next_requests(1)
    assert a.position == (0, 1, 0)
    region.apply(a, faces_prediction({(1, 0, 0): 0.99}), bias=False)
    (b,) = region.next_requests(1)
    assert b.position == (1, 1, 0)
    region.apply(b, faces_prediction({(0, -1, 0): 0.99}), bias=False)
    assert dict(region.queued_moves())[(1, 0, 0)] == pytest.approx(-0.91)


def test_bias_never_raises_voxel_at_or_below_half():
    region = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    vox = (10, 10, 10)
    block = np.full((FOV,) * 3, 0.3, np.float32)
    block[0, 0, 0] = 0.7
    region.add_mask(block, vox)
    region.add_mask(np.full((FOV,) * 3, 0.8, np.float32), vox)
    lo = 10 - C
    assert region.mask[lo + 1, lo, lo] == pytest.approx(0.3)  # locked low
    assert region.mask[lo, lo, lo] == pytest.approx(0.8)  # above 0.5: overwritten
    region.add_mask(np.full((FOV,) * 3, 0.2, np.float32), vox)
    assert region.mask[lo + 1, lo, lo] == pytest.approx(0.2)  # lower: written
    assert region.mask[lo, lo, lo] == pytest.approx(0.2)
    region.add_mask(np.full((FOV,) * 3, 0.9, np.float32), vox, bias=False)
    assert region.mask[lo + 1, lo, lo] == pytest.approx(0.9)


def test_bias_writes_unset_voxels():
    region = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    assert np.isnan(region.mask[0, 0, 0])
    region.add_mask(np.full((FOV,) * 3, 0.9, np.float32), (C, C, C))
    assert region.mask[0, 0, 0] == pytest.approx(0.9)


def test_seed_voxel_starts_at_v_true():
    region = Region(np.zeros((20,) * 3, np.uint8), seed_vox=(3, 4, 5),
                    model_config=model_config())
    assert region.mask[3, 4, 5] == pytest.approx(region.v_true)
    assert np.count_nonzero(~np.isnan(region.mask)) == 1


def test_unset_mask_fed_to_network_as_v_false():
    region = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    request = region.get_next_block()
    assert request.mask[C, C, C] == pytest.approx(region.v_true)
    request.mask[C, C, C] = region.v_false
    assert np.allclose(request.mask, region.v_false)


def test_recheck_skips_move_without_confident_neighbourhood_and_allows_requeue():
    region = Region(np.zeros((30,) * 3, np.uint8), model_config=model_config())
    region.apply(_seed_request(region),
                 faces_prediction({(1, 0, 0): 0.91, (0, 1, 0): 0.95}), bias=False)
    seed = region.seed_vox
    region.mask[:] = 0.1
    region.mask[seed[0], seed[1] + 2 * STEP, seed[2]] = 0.95  # near (0, 1, 0) only
    requests = region.next_requests(2)
    assert [r.position for r in requests] == [(0, 1, 0)]
    assert region.num_skipped == 1 and (1, 0, 0) not in region.visited
    region.apply(requests[0], faces_prediction({(1, 0, 0): 0.99}), bias=False)
    (b,) = region.next_requests(1)
    region.apply(b, faces_prediction({(0, -1, 0): 0.99}), bias=False)
    assert (1, 0, 0) in dict(region.queued_moves())


def test_remask_keeps_seeded_component_and_clips_the_rest():
    mask = np.full((20,) * 3, np.nan, np.float32)
    mask[5:10, 5:10, 5:10] = 0.95
    mask[12:15, 12:15, 12:15] = 0.97
    mask[0, 0, 0] = 0.3
    region = Region(np.zeros((20,) * 3, np.uint8), seed_vox=(7, 7, 7), mask=mask,
                    model_config=model_config())
    assert region.remask()
    assert np.all(region.mask[5:10, 5:10, 5:10] == np.float32(0.95))
    assert np.all(region.mask[12:15, 12:15, 12:15] < region.t_move)
    assert region.mask[0, 0, 0] == pytest.approx(0.3)
    assert np.isnan(region.mask[19, 19, 19])
    assert not region.get_final_mask()[13, 13, 13]


def test_remask_does_nothing_when_seed_below_threshold():
    mask = np.full((20,) * 3, 0.95, np.float32)
    region = Region(np.zeros((20,) * 3, np.uint8), mask=mask,
                    model_config=model_config(v_true=0.5))
    assert not region.remask()
    assert np.count_nonzero(region.mask == np.float32(0.95)) == 20 ** 3 - 1


def test_fill_remasks_every_interval(sphere_volume, monkeypatch):
    image, target = sphere_volume
    region = Region(image, model_config=model_config())
    calls = []
    original = region.remask
    monkeypatch.setattr(region, "remask", lambda: calls.append(region.num_moves) or original())
    region.fill(intensity_oracle(128 / 256), remask_interval=4)
    assert calls == list(range(4, region.num_moves + 1, 4))


def test_image_blocks_reflect_padded_at_volume_edge():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(12, 12, 12), dtype=np.uint8)
    region = Region(image, seed_vox=(0, 1, 11), model_config=model_config())
    request = region.get_next_block()
    float_image = image.astype(np.float32) / 256
    padded = np.pad(float_image, C, mode="reflect")
    z, y, x = (0 + C, 1 + C, 11 + C)
    assert np.array_equal(request.image, padded[z - C:z + C + 1, y - C:y + C + 1, x - C:x + C + 1])
    assert request.mask[0, C, C] == pytest.approx(region.v_false)  # outside: v_false


def test_image_blocks_constant_padded_when_asked():
    image = np.full((12, 12, 12), 200, np.uint8)
    region = Region(image, seed_vox=(0, 6, 6), block_padding="constant",
                    model_config=model_config())
    request = region.get_next_block()
    assert np.all(request.image[:C] == 0) and np.all(request.image[C:] > 0)


def test_fill_reaches_volume_edges_with_centres_inside():
    shape = (11, 14, 13)
    image = np.full(shape, 128, np.uint8)
    region = Region(image, seed_vox=(5, 7, 6), model_config=model_config())
    centres = []
    region.fill(intensity_oracle(0.5),
                stopping_callback=lambda r: centres.append(r.last_center_vox) and False)
    assert region.get_final_mask().all()
    assert all(0 <= c < n for centre in centres for c, n in zip(centre, shape))


def test_move_margin_keeps_fov_centres_away_from_faces():
    shape = (15, 18, 17)
    image = np.full(shape, 128, np.uint8)
    region = Region(image, seed_vox=(7, 9, 8), model_config=model_config(), move_margin=[C] * 3)
    centres = []
    region.fill(intensity_oracle(0.5),
                stopping_callback=lambda r: centres.append(r.last_center_vox) and False)
    assert len(centres) > 1
    assert all(C <= c < n - C for centre in centres for c, n in zip(centre, shape))
    # FOVs centred inside the margin still predict the voxels next to the faces.
    assert region.get_final_mask()[1:-1, 1:-1, 1:-1].all()


def test_move_margin_before_and_after_each_axis():
    shape = (15, 18, 17)
    image = np.full(shape, 128, np.uint8)
    margin = [[0, 0, 0], [C, C, C]]  # keep off the far faces only
    region = Region(image, seed_vox=(7, 9, 8), model_config=model_config(), move_margin=margin)
    centres = []
    region.fill(intensity_oracle(0.5),
                stopping_callback=lambda r: centres.append(r.last_center_vox) and False)
    assert all(0 <= c < n - C for centre in centres for c, n in zip(centre, shape))
    assert min(centre[0] for centre in centres) < C  # the near faces stay open
    assert region.move_margin == ((0, 0, 0), (C, C, C))
    with pytest.raises(DiluvianError, match="move_margin"):
        Region(image, seed_vox=(7, 9, 8), model_config=model_config(), move_margin=[1, 2])


def test_blocked_voxels_stop_moves_centred_on_them(sphere_volume):
    image, target = sphere_volume
    seed = (12, 12, 12)
    free = Region(image, seed_vox=seed, model_config=model_config())
    free.fill(intensity_oracle(128 / 256))
    blocked = np.zeros(image.shape, np.uint64)
    blocked[:, :, 14:] = 7  # another body claims the +X part of the sphere
    region = Region(image, seed_vox=seed, model_config=model_config(), blocked=blocked)
    centres = []
    region.fill(intensity_oracle(128 / 256),
                stopping_callback=lambda r: centres.append(r.last_center_vox) and False)
    assert region.num_blocked > 0
    assert region.num_moves < free.num_moves
    assert all(c[2] < 14 for c in centres)
    with pytest.raises(DiluvianError, match="blocked voxels shape"):
        Region(image, seed_vox=seed, model_config=model_config(), blocked=blocked[1:])


def test_stop_weak_seed_ends_region_that_loses_its_seed(sphere_volume):
    image, target = sphere_volume
    seed = (12, 12, 12)

    def forget_seed(images, masks):
        # Everything is object except the FOV centre of the very first move.
        out = np.full(images.shape, 0.95, np.float32)
        first = np.all(masks[:, C + 1:, C + 1:, C + 1:] <= 0.05 + 1e-6, axis=(1, 2, 3))
        out[first, C, C, C] = 0.05
        return out

    weak = Region(image, seed_vox=seed, model_config=model_config(), stop_weak_seed=True)
    weak.fill(forget_seed)
    assert weak.seed_weak and weak.stopped and not weak.early_termination
    assert weak.num_moves == 1
    going = Region(image, seed_vox=seed, model_config=model_config())
    going.fill(forget_seed)
    assert not going.seed_weak and going.num_moves > 1


def test_sparse_mask_gives_same_result_as_dense(sphere_volume):
    image, target = sphere_volume
    dense = Region(image, model_config=model_config())
    dense.fill(mask_dependent)
    sparse = Region(image, sparse_mask=True, model_config=model_config())
    sparse.fill(mask_dependent)
    assert type(sparse.mask).__name__ == "OctreeVolume"
    assert dense.num_moves == sparse.num_moves > 5
    assert np.array_equal(dense.get_mask_array(), sparse.get_mask_array(), equal_nan=True)
    assert sparse.remask()


def test_move_batch_size_matches_single_moves_for_mask_independent_predictor(sphere_volume):
    image, target = sphere_volume
    single = Region(image, model_config=model_config())
    single.fill(intensity_oracle(0.5))
    batched = Region(image, model_config=model_config())
    calls = []

    def predictor(images, masks):
        calls.append(len(images))
        return intensity_oracle(0.5)(images, masks)

    batched.fill(predictor, move_batch_size=4)
    assert max(calls) == 4
    assert batched.visited == single.visited
    assert np.array_equal(batched.get_mask_array(), single.get_mask_array(), equal_nan=True)


def _three_regions(**kwargs):
    shape = (20, 22, 24)
    rng = np.random.default_rng(3)
    image = (rng.random(shape) < 0.7).astype(np.uint8) * 200
    seeds = [(5, 5, 5), (10, 11, 12), (15, 16, 18)]
    return [Region(image, seed_vox=s, model_config=model_config(), **kwargs) for s in seeds]


def test_fill_regions_gives_each_region_its_single_fill_result():
    alone = _three_regions()
    for region in alone:
        region.fill(mask_dependent)
    together = _three_regions()
    sizes = []

    def predictor(images, masks):
        sizes.append(len(images))
        return mask_dependent(images, masks)

    fill_regions(together, predictor, batch_size=3)
    assert sizes[0] == 3 and max(sizes) == 3
    for a, b in zip(alone, together):
        assert a.num_moves == b.num_moves > 1
        assert np.array_equal(a.get_mask_array(), b.get_mask_array(), equal_nan=True)


def test_iter_fill_regions_pulls_lazily_and_yields_finished():
    regions = _three_regions()
    pulled = []

    def source():
        for region in regions:
            pulled.append(region)
            yield region

    finished = []
    for region in iter_fill_regions(source(), mask_dependent, batch_size=2):
        assert region.done
        finished.append(region)
        assert len(pulled) <= len(finished) + 2
    assert sorted(map(id, finished)) == sorted(map(id, regions))


def test_max_moves_stops_fill(sphere_volume):
    image, _ = sphere_volume
    region = Region(image, model_config=model_config())
    region.fill(intensity_oracle(0.5), max_moves=5)
    assert region.num_moves == 5 and region.early_termination


def test_stopping_callback_stops_fill(sphere_volume):
    image, _ = sphere_volume
    region = Region(image, model_config=model_config())
    region.fill(intensity_oracle(0.5), stopping_callback=lambda r: r.num_moves >= 3)
    assert region.num_moves == 3 and region.stopped


def test_complete_fill_is_not_early_termination(sphere_volume):
    image, _ = sphere_volume
    region = Region(image, model_config=model_config())
    region.fill(intensity_oracle(0.5))
    assert region.done and not region.early_termination


def test_oracle_fills_exactly_each_object_of_three():
    shape = (20, 30, 30)
    z, y, x = np.mgrid[:20, :30, :30]
    boundary1 = 10 + (3 * np.sin(z / 3.0)).astype(int)
    boundary2 = 20 + (2 * np.cos(y / 4.0)).astype(int)
    labels = np.where(x < boundary1, 1, np.where(x < boundary2, 2, 3))
    values = {1: 40, 2: 120, 3: 200}
    image = np.vectorize(values.get)(labels).astype(np.uint8)
    seeds = {1: (10, 15, 3), 2: (10, 15, 15), 3: (10, 15, 26)}
    assert shape == labels.shape
    for label, seed in seeds.items():
        target = labels == label
        region = Region(image, target=target, seed_vox=seed, model_config=model_config())
        region.fill(intensity_oracle(values[label] / 256))
        assert np.array_equal(region.get_final_mask(), target), label
        assert region.prediction_metric(binary_f_score) == 1.0


def test_progress_bar_off_by_default(sphere_volume, capsys):
    image, _ = sphere_volume
    Region(image, model_config=model_config()).fill(intensity_oracle(0.5), max_moves=3)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    Region(image, model_config=model_config()).fill(intensity_oracle(0.5), max_moves=3,
                                                      progress=True)
    assert "move" in capsys.readouterr().err


def test_predictor_shape_mismatch_is_reported():
    region = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    with pytest.raises(DiluvianError, match="expected"):
        region.fill(lambda images, masks: masks[:, :3])


def test_invalid_arguments_raise_diluvian_error():
    image = np.zeros((10,) * 3, np.uint8)
    with pytest.raises(DiluvianError, match="outside"):
        Region(image, seed_vox=(10, 0, 0), model_config=model_config())
    with pytest.raises(DiluvianError, match="block_padding"):
        Region(image, block_padding="edge", model_config=model_config())
    with pytest.raises(DiluvianError, match="mask shape"):
        Region(image, mask=np.zeros((5,) * 3, np.float32), model_config=model_config())


def test_from_subvolume_centres_smaller_label_mask():
    image = np.zeros((12,) * 3, np.float32)
    label = np.ones((8,) * 3, bool)
    region = Region.from_subvolume(Subvolume(image, label, np.array([6, 6, 6]), 3),
                                   model_config=model_config())
    assert region.target.shape == image.shape
    assert region.target[2:10, 2:10, 2:10].all() and not region.target[1].any()
    regions = list(Region.from_subvolume_generator(
        [Subvolume(image, None, np.array([1, 2, 3]), None)], model_config=model_config()))
    assert regions[0].seed_vox.tolist() == [1, 2, 3]


def test_unfilled_copy_has_empty_mask(sphere_volume):
    image, target = sphere_volume
    region = Region(image, target=target, seed_vox=(12, 11, 10), model_config=model_config())
    region.fill(intensity_oracle(0.5), max_moves=4)
    copy = region.unfilled_copy()
    assert copy.num_moves == 0 and copy.seed_vox.tolist() == [12, 11, 10]
    assert np.count_nonzero(~np.isnan(copy.mask)) == 1
    assert copy.target is region.target


def test_unfilled_copy_keeps_the_fill_rules(sphere_volume):
    image, target = sphere_volume
    blocked = np.zeros(image.shape, dtype=bool)
    region = Region(image, target=target, seed_vox=(12, 11, 10), model_config=model_config(),
                    blocked=blocked, move_margin=(1, 2, 3), stop_weak_seed=True,
                    skip_certain=True)
    copy = region.unfilled_copy()
    assert copy.blocked is blocked and copy.move_margin == (1, 2, 3)
    assert copy.stop_weak_seed and copy.skip_certain


def test_to_body_thresholds_at_t_final(sphere_volume):
    pytest.importorskip("diluvian.postprocessing")
    image, target = sphere_volume
    region = Region(image, target=target, model_config=model_config())
    region.fill(intensity_oracle(0.5))
    body = region.to_body()
    assert np.array_equal(np.asarray(body.mask, bool), target)
    assert body.is_seed_in_mask()


def test_prediction_metric_without_threshold_uses_probabilities(sphere_volume):
    image, target = sphere_volume
    region = Region(image, target=target, model_config=model_config())
    region.fill(intensity_oracle(0.5))
    seen = {}

    def metric(y, y_pred):
        seen["dtype"] = y_pred.dtype
        return float(np.abs(y - y_pred).max())

    assert region.prediction_metric(metric, threshold=False) == pytest.approx(0.05, abs=1e-6)
    assert seen["dtype"] == np.float32


def test_fill_animation_writes_gif(sphere_volume, tmp_path):
    image, _ = sphere_volume
    region = Region(image, model_config=model_config())
    out = tmp_path / "fill.gif"
    region.fill_animation(out, intensity_oracle(0.5), max_frames=4, dpi=20)
    assert out.read_bytes()[:3] == b"GIF"
    with pytest.raises(DiluvianError, match="gif"):
        region.unfilled_copy().fill_animation(tmp_path / "fill.avi", intensity_oracle(0.5))


def test_as_predictor_wraps_predict_on_batch():
    class Model:
        def predict_on_batch(self, inputs):
            images, masks = inputs
            assert images.shape[-1] == 1 and masks.shape[-1] == 1
            return masks * 0.5

    predictor = as_predictor(Model())
    out = predictor(np.zeros((2, 3, 3, 3), np.float32), np.ones((2, 3, 3, 3), np.float32))
    assert out.shape == (2, 3, 3, 3) and np.allclose(out, 0.5)
    with pytest.raises(TypeError):
        as_predictor(42)


@pytest.mark.slow
def test_keras_model_fills_by_duck_typing(sphere_volume):
    keras = pytest.importorskip("keras")
    image_input = keras.Input(shape=(FOV, FOV, FOV, 1))
    mask_input = keras.Input(shape=(FOV, FOV, FOV, 1))
    x = keras.layers.Concatenate()([image_input, mask_input])
    out = keras.layers.Conv3D(1, 1, activation="sigmoid", kernel_initializer="ones",
                              bias_initializer=keras.initializers.Constant(-0.5))(x)
    model = keras.Model([image_input, mask_input], out)
    image, _ = sphere_volume
    region = Region(image, model_config=model_config())
    region.fill(model, max_moves=3)
    assert region.num_moves >= 1
    values = region.get_mask_array()
    assert np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0
    request = region.unfilled_copy().get_next_block()
    expected = model.predict_on_batch([request.image[None, ..., None],
                                       request.mask[None, ..., None]])[..., 0]
    assert np.allclose(as_predictor(model)(request.image[None], request.mask[None]), expected)


def test_h5py_dataset_image_fills_like_numpy(sphere_volume, tmp_path):
    h5py = pytest.importorskip("h5py")
    image, target = sphere_volume
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        f.create_dataset("raw", data=image, chunks=(8, 8, 8))
    reference = Region(image, model_config=model_config())
    reference.fill(mask_dependent)
    with h5py.File(tmp_path / "vol.h5", "r") as f:
        region = Region(f["raw"], seed_vox=(12, 12, 12), model_config=model_config())
        region.fill(mask_dependent)
    assert np.array_equal(region.get_mask_array(), reference.get_mask_array(), equal_nan=True)


def test_get_next_block_returns_none_when_queue_empty():
    region = Region(np.zeros((20,) * 3, np.uint8), model_config=model_config())
    request = region.get_next_block()
    region.apply(request, np.full((FOV,) * 3, 0.1, np.float32))
    assert region.get_next_block() is None and region.done
