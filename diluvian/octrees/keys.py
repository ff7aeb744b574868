"""Key parsing and leaf bookkeeping for :class:`~diluvian.octrees.OctreeVolume`.

Pure functions of a key and the volume's geometry, shared by reads and
writes: ``origin`` and ``end`` are the Z, Y, X clip bounds ``[origin, end)``
of the volume, ``leaf_shape`` its leaf shape and ``axes`` the per-axis
``(origin, leaf size, end)`` triples.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "check_point",
    "fancy_points",
    "fast_box",
    "group_points",
    "parse_key",
    "segments",
]

_Int = (int, np.integer)


def check_point(point, origin, end) -> tuple[int, int, int]:
    p = tuple(int(c) for c in point)
    if not all(a <= c < b for c, a, b in zip(p, origin, end)):
        raise IndexError(f"point {p} is outside the octree bounds {origin} - {end}")
    return p


def parse_key(key, origin, end):
    """Return ``(start, stop, squeeze_axes)`` for a box key, or None for fancy points."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
    if len(key) < 3:
        key = key + (slice(None),) * (3 - len(key))
    if len(key) != 3:
        raise IndexError(f"an octree volume takes 3 indices, got {len(key)}")
    start, stop, squeeze = [], [], []
    for axis, (k, lo, hi) in enumerate(zip(key, origin, end)):
        if isinstance(k, slice):
            if k.step not in (None, 1):
                raise IndexError(f"octree slices need step 1, got {k.step} on axis {axis}")
            a = lo if k.start is None else int(k.start)
            b = hi if k.stop is None else int(k.stop)
            if a < lo or b > hi:
                raise IndexError(f"slice {a}:{b} on axis {axis} is outside the octree "
                                 f"bounds {lo}:{hi}")
            start.append(a)
            stop.append(max(a, b))
        elif isinstance(k, _Int) or (isinstance(k, np.ndarray) and k.ndim == 0
                                     and np.issubdtype(k.dtype, np.integer)):
            k = int(k)
            if not lo <= k < hi:
                raise IndexError(f"index {k} on axis {axis} is outside the octree "
                                 f"bounds {lo}:{hi}")
            start.append(k)
            stop.append(k + 1)
            squeeze.append(axis)
        else:
            return None
    return tuple(start), tuple(stop), tuple(squeeze)


def segments(start, stop, axes):
    """Per axis, the leaves a box meets: ``(leaf index, leaf slice, box slice, covers)``."""
    out = []
    for s, e, (o, ls, b) in zip(start, stop, axes):
        i0 = (s - o) // ls
        i1 = (e - 1 - o) // ls
        l0 = o + i0 * ls
        if i0 == i1:
            l1 = l0 + ls
            out.append(((i0, slice(s - l0, e - l0), slice(0, e - s),
                         s == l0 and e == (l1 if l1 < b else b)),))
            continue
        segs = []
        for i in range(i0, i1 + 1):
            lo = s if s > l0 else l0
            l1 = l0 + ls
            hi = e if e < l1 else l1
            segs.append((i, slice(lo - l0, hi - l0), slice(lo - s, hi - s),
                         lo == l0 and hi == (l1 if l1 < b else b)))
            l0 = l1
        out.append(segs)
    return out


def fast_box(key, origin, end):
    """``(start, stop)`` for a key of 3 plain in-bounds slices, else None (the slow parser)."""
    z, y, x = key
    if type(z) is slice and type(y) is slice and type(x) is slice:
        start = (z.start, y.start, x.start)
        stop = (z.stop, y.stop, x.stop)
        if (type(start[0]) is int and type(start[1]) is int and type(start[2]) is int
                and type(stop[0]) is int and type(stop[1]) is int and type(stop[2]) is int
                and z.step is None and y.step is None and x.step is None):
            (oz, oy, ox), (bz, by, bx) = origin, end
            if (oz <= start[0] < stop[0] <= bz and oy <= start[1] < stop[1] <= by
                    and ox <= start[2] < stop[2] <= bx):
                return start, stop
    return None


def fancy_points(key, origin, end):
    if not isinstance(key, tuple) or len(key) != 3:
        raise IndexError("octree keys are 3 slices or ints, or 3 integer arrays of points")
    try:
        pts = np.broadcast_arrays(*[np.asarray(k) for k in key])
    except ValueError as exc:
        raise IndexError(f"point index arrays do not broadcast: {exc}") from None
    for axis, (p, lo, hi) in enumerate(zip(pts, origin, end)):
        if not np.issubdtype(p.dtype, np.integer):
            raise IndexError(f"point indices must be integers, got {p.dtype} on axis {axis}")
        if p.size and (p.min() < lo or p.max() >= hi):
            raise IndexError(f"point indices on axis {axis} fall outside the octree "
                             f"bounds {lo}:{hi}")
    return [p.astype(np.int64) for p in pts]


def group_points(flat, origin, end, leaf_shape):
    """Sort points by leaf.

    Returns ``order`` (a stable permutation sorting the points by leaf),
    the sorted leaf-local coordinates, and ``(leaf index, a, b)`` for each
    leaf's run ``[a, b)`` of sorted points.
    """
    idx, local = [], []
    for c, o, ls in zip(flat, origin, leaf_shape):
        q, r = np.divmod(c - o, ls)
        idx.append(q)
        local.append(r)
    n = [((b - o) + ls - 1) // ls for o, b, ls in zip(origin, end, leaf_shape)]
    lin = (idx[0] * n[1] + idx[1]) * n[2] + idx[2]
    order = np.argsort(lin, kind="stable")
    lin = lin[order]
    local = [c[order] for c in local]
    if not len(lin):
        return order, local, []
    starts = [0, *(np.flatnonzero(np.diff(lin)) + 1).tolist()]
    ends = [*starts[1:], len(lin)]
    groups = []
    for a, b in zip(starts, ends):
        u = int(lin[a])
        groups.append(((u // (n[1] * n[2]), (u // n[2]) % n[1], u % n[2]), a, b))
    return order, local, groups
