"""The typed ZYX box, :class:`diluvian.geometry.Box`, and the helpers built on it."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import diluvian.geometry
from diluvian.geometry import Box


def test_doctests():
    failed, _ = doctest.testmod(diluvian.geometry)
    assert failed == 0


def test_box_is_frozen_typed_and_compares_by_value():
    box = Box(np.array([0, 1, 2]), [3, 4, 5])
    assert box.start == (0, 1, 2) and all(type(v) is int for v in box.start)
    assert box == Box((0, 1, 2), (3, 4, 5))
    assert box != Box((0, 1, 2), (3, 4, 6))
    assert len({box, Box((0, 1, 2), (3, 4, 5))}) == 1
    with pytest.raises(AttributeError):
        box.start = (1, 1, 1)


def test_box_rejects_bad_corners():
    with pytest.raises(ValueError, match="differ"):
        Box((0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="integers"):
        Box((0.5, 0, 0), (1, 1, 1))


def test_shape_size_and_slices():
    box = Box((1, 2, 3), (4, 4, 4))
    assert box.shape == (3, 2, 1)
    assert box.size == 6
    a = np.arange(5 * 5 * 5).reshape(5, 5, 5)
    assert a[box.to_slices()].shape == box.shape
    assert Box((2, 0, 0), (1, 5, 5)).shape == (0, 5, 5)
    assert Box((2, 0, 0), (1, 5, 5)).empty


def test_intersect_grow_clip_contains():
    a, b = Box((0, 0, 0), (4, 4, 4)), Box((2, 3, -1), (6, 8, 2))
    assert a.intersect(b) == Box((2, 3, 0), (4, 4, 2))
    assert a.intersect(Box((4, 0, 0), (5, 4, 4))) is None
    assert a.grow((1, 2, 3)) == Box((-1, -2, -3), (5, 6, 7))
    assert a.grow(-1) == Box((1, 1, 1), (3, 3, 3))
    assert a.grow(2).clip((5, 6, 7)) == Box((0, 0, 0), (5, 6, 6))
    assert a.inside((4, 4, 4)) and not a.grow(1).inside((10, 10, 10))
    assert (3, 3, 3) in a and (4, 0, 0) not in a and (0, 0) not in a
    assert a.shift((1, 0, -1)) == Box((1, 0, -1), (5, 4, 3))
    assert Box.from_shape((2, 2, 2)) == Box((0, 0, 0), (2, 2, 2))


def test_blockwise_helpers_keep_their_results():
    from diluvian.blockwise import BlockLayout, box_intersection, box_slices

    assert box_slices((0, 1, 2), (3, 4, 5)) == (slice(0, 3), slice(1, 4), slice(2, 5))
    lo, hi = box_intersection((0, 0, 0), (4, 4, 4), (2, 3, -1), (6, 8, 2))
    assert lo.tolist() == [2, 3, 0] and hi.tolist() == [4, 4, 2]
    assert box_intersection((0, 0, 0), (4, 4, 4), (4, 0, 0), (5, 4, 4)) is None
    layout = BlockLayout((10, 20, 20), (5, 10, 10), (1, 2, 2))
    lo, hi = layout.grown((0, 5, 5), (5, 15, 15), 8)
    assert lo.tolist() == [0, 0, 0] and hi.tolist() == [10, 20, 20]
    lo, hi = layout.grown((2, 5, 5), (5, 15, 15), (1, 2, 3))
    assert lo.tolist() == [1, 3, 2] and hi.tolist() == [6, 17, 18]
