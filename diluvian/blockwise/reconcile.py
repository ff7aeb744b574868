"""Reconciling object IDs of neighbouring blocks: the overlap rule and union-find.

The rule
--------
Let ``A`` and ``B`` be the labels two neighbouring blocks gave to the voxels
of the box where their filled (core + margin) boxes intersect. For an object
``a`` of ``A`` and an object ``b`` of ``B`` (both nonzero), let

* ``n(a, b)`` be the number of voxels of that box labelled ``a`` in ``A`` and
  ``b`` in ``B``;
* ``n(a)`` the voxels labelled ``a`` in ``A`` there, ``n(b)`` those labelled
  ``b`` in ``B`` there.

``a`` and ``b`` are the same object when
``n(a, b) >= threshold * min(n(a), n(b))`` (and ``n(a, b) > 0``): the shared
voxels make up at least ``threshold`` of the smaller of the two objects'
parts in the overlap. Merges are transitive (union-find), so an object seen
by several blocks, or one that a block merged and its neighbour split,
becomes one global object.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UnionFind", "consecutive_ids", "overlap_matches"]


def overlap_matches(labels_a: np.ndarray, labels_b: np.ndarray,
                    threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(a, b)`` of objects that the overlap rule (module docstring) declares the same.

    Parameters
    ----------
    labels_a, labels_b : ndarray of int
        Labels of the same box from two blocks (0 is background).
    threshold : float
        Fraction in ``(0, 1]`` of the smaller object's overlap voxels that
        must be shared.

    Returns
    -------
    list of (int, int)
        Matching pairs, sorted.

    Examples
    --------
    >>> a = np.array([[[1, 1, 1, 1, 2, 2]]])
    >>> b = np.array([[[7, 7, 7, 8, 8, 8]]])
    >>> overlap_matches(a, b, 0.5)
    [(1, 7), (2, 8)]
    """
    a = np.asarray(labels_a).ravel()
    b = np.asarray(labels_b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"label boxes differ in size: {a.size} and {b.size}")
    ids_a, size_a = np.unique(a[a != 0], return_counts=True)
    ids_b, size_b = np.unique(b[b != 0], return_counts=True)
    both = (a != 0) & (b != 0)
    if not both.any():
        return []
    pairs, shared = np.unique(np.stack([a[both], b[both]], axis=1), axis=0, return_counts=True)
    na = size_a[np.searchsorted(ids_a, pairs[:, 0])]
    nb = size_b[np.searchsorted(ids_b, pairs[:, 1])]
    keep = shared >= threshold * np.minimum(na, nb)
    return [(int(x), int(y)) for x, y in pairs[keep]]


class UnionFind:
    """Disjoint sets over integer keys (path halving, union by size).

    Examples
    --------
    >>> uf = UnionFind()
    >>> uf.union(1, 2); uf.union(3, 2)
    >>> uf.find(3) == uf.find(1), uf.find(4) == uf.find(1)
    (True, False)
    """

    def __init__(self):
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}

    def find(self, x: int) -> int:
        """The representative of ``x``'s set (``x`` is added if new)."""
        parent = self.parent
        if x not in parent:
            parent[x] = x
            self.size[x] = 1
            return x
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        """Merge the sets of ``x`` and ``y``."""
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return
        if self.size[rx] < self.size[ry]:
            rx, ry = ry, rx
        self.parent[ry] = rx
        self.size[rx] += self.size[ry]


def consecutive_ids(ids, merges) -> dict[int, int]:
    """Global IDs ``1..N`` for the components of ``ids`` joined by ``merges``.

    Parameters
    ----------
    ids : iterable of int
        Objects that need a global ID (e.g. those present in some block core).
    merges : iterable of (int, int)
        Pairs of the same object; they may name objects not in ``ids``, which
        then only link others.

    Returns
    -------
    dict
        ``{id: global id}`` for every member of ``ids``; components are
        numbered from 1 in the order of their smallest member of ``ids``.

    Examples
    --------
    >>> consecutive_ids([5, 9, 20, 30], [(9, 40), (40, 5)])
    {5: 1, 9: 1, 20: 2, 30: 3}
    """
    uf = UnionFind()
    for x, y in merges:
        uf.union(int(x), int(y))
    out: dict[int, int] = {}
    root_id: dict[int, int] = {}
    for x in sorted({int(v) for v in ids}):
        root = uf.find(x)
        if root not in root_id:
            root_id[root] = len(root_id) + 1
        out[x] = root_id[root]
    return out
