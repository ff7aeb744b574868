"""Where a dense fill's network evaluations go, and the rules that save them (issue 21)."""

from __future__ import annotations

import numpy as np
import pytest
from test_fill import blob_labels, fill, grid_seeds, relabel_equal

HALF = (2, 4, 4)  # half of test_fill's 5 x 9 x 9 FOV


def face_labels() -> np.ndarray:
    """:func:`blob_labels` plus object 5, a slab in the first two sections only.

    Every voxel of object 5 lies nearer the Z face than half a FOV: FFN's rule
    (``full_context``) can seed it nowhere.
    """
    labels = blob_labels()
    labels[2:11] = labels[1:10].copy()
    labels[0:2, 1:31, 1:31] = 5
    labels[2] = 0
    return labels


def mask_oracle(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Predict the object under the mask input's confident voxels (not the FOV centre's).

    A FOV moved inward may have its seed off centre; a network, like this
    oracle, follows the mask.
    """
    out = np.full(images.shape, 0.01, np.float32)
    for k, (image, mask) in enumerate(zip(images, masks)):
        inside = image[mask > 0.5]
        inside = inside[inside > 0]
        if inside.size:
            value = np.bincount(np.round(inside * 255).astype(int)).argmax() / 255
            out[k][np.abs(image - value) < 2e-3] = 0.99
    return out


def face_seeds() -> np.ndarray:
    """Grid seeds two voxels apart: sections 1, 3, ... put seeds in object 5."""
    return grid_seeds(face_labels().shape, step=2)


def centres_of(truth, **kwargs):
    """Labels, stats and every FOV centre (the seed's first FOV included)."""
    from diluvian.regions import Region

    centres = []
    original = Region.next_requests

    def next_requests(self, max_n=1):
        out = original(self, max_n)
        centres.extend(r.center_vox for r in out)
        return out

    Region.next_requests = next_requests
    try:
        labels, stats = fill(truth, seeds=face_seeds(), predictor=mask_oracle, **kwargs)
    finally:
        Region.next_requests = original
    return labels, stats, centres


def test_inset_fovs_keep_every_fov_inside_and_still_fill_objects_at_the_faces():
    truth = face_labels()
    labels, stats, centres = centres_of(truth, inset_fovs=True)
    assert centres and len(centres) == stats.moves
    for centre in centres:
        for c, h, n in zip(centre, HALF, truth.shape):
            assert h <= c <= n - 1 - h
    # Object 5 is seeded at the face and filled from FOVs centred further in.
    assert relabel_equal(labels, truth)
    assert stats.bodies == 5
    # FFN's rule cannot start it.
    cut, cut_stats = fill(truth, seeds=face_seeds(), predictor=mask_oracle,
                           full_context=True)
    assert cut_stats.bodies == 4 and not np.any(cut[truth == 5])


def test_inset_fovs_spend_fewer_evaluations_than_centring_fovs_at_the_faces():
    truth = face_labels()
    _, plain = fill(truth, seeds=face_seeds(), predictor=mask_oracle, inset_fovs=False)
    _, inset = fill(truth, seeds=face_seeds(), predictor=mask_oracle, inset_fovs=True)
    assert inset.moves <= plain.moves
    assert inset.bodies == plain.bodies == 5


@pytest.mark.parametrize("policy", ["lattice", "face_max"])
def test_inset_fovs_are_not_repeated(policy):
    from region_helpers import model_config

    from diluvian.regions import Region

    shape = (12, 32, 32)
    image = np.full(shape, 0.5, np.float32)
    config = model_config(move_policy=policy)
    half = [f // 2 for f in config.input_fov_shape]
    region = Region(image, seed_vox=(0, 0, 0), model_config=config, inset_margin=half)
    seen = []
    while True:
        requests = region.next_requests(1)
        if not requests:
            break
        for request in requests:
            seen.append(request.center_vox)
            region.apply(request, np.full(region.output_fov_shape, 0.99, np.float32), bias=False)
    assert seen[0] == tuple(min(max(0, h), n - 1 - h) for h, n in zip(half, shape))
    if policy == "lattice":  # one FOV per centre
        assert len(seen) == len(set(seen))
    else:  # one FOV per move-step cell (an unmoved move may revisit the seed's cell)
        cells = [region.vox_to_cell(c) for c in seen]
        assert len(cells) - len(set(cells)) <= 1
    assert all(h <= c <= n - 1 - h for centre in seen for c, h, n in zip(centre, half, shape))


def test_inset_margin_is_checked():
    from diluvian.regions import Region
    from diluvian.util import DiluvianError

    with pytest.raises(DiluvianError, match="inset_margin"):
        Region(np.zeros((8, 8, 8), np.float32), inset_margin=[1, -1, 0])


def test_face_seeds_reach_the_face_slab():
    # The tests above rely on seeds in the face slab.
    assert np.any(face_labels()[tuple(face_seeds().T)] == 5)
