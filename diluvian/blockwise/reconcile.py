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

``a`` and ``b`` are the same object when both

* ``n(a, b) >= threshold * min(n(a), n(b))``: the shared voxels make up at
  least ``threshold`` of the smaller of the two objects' parts in the
  overlap, and
* ``n(a, b) >= min_voxels``: the evidence is more than a few voxels. Without
  this an object that barely pokes into the overlap (one voxel, say) would
  be joined to whatever covers that voxel in the other block; on FIB-25 one
  such single-voxel match merged two neurons of 105k and 132k voxels.

Only blocks that share a face are compared. The box two blocks share across
an edge or a corner lies inside the boxes they share with their common face
neighbours, so it adds no match that transitivity does not already make, but
objects there are cut on two or three sides, and on FIB-25 a 234-voxel
sliver in such a box merged two neurons.

Merges are transitive (union-find), so an object seen by several blocks, or
one that a block split and its neighbour kept whole, becomes one global
object. The flip side: an object that one block merged with a neighbour
joins both objects everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UnionFind", "consecutive_ids", "overlap_matches"]


def overlap_matches(labels_a: np.ndarray, labels_b: np.ndarray, threshold: float,
                    min_voxels: int = 1) -> list[tuple[int, int]]:
    """Pairs ``(a, b)`` of objects that the overlap rule (module docstring) declares the same.

    Parameters
    ----------
    labels_a, labels_b : ndarray of int
        Labels of the same box from two blocks (0 is background).
    threshold : float
        Fraction in ``(0, 1]`` of the smaller object's overlap voxels that
        must be shared.
    min_voxels : int
        Fewest shared voxels for a match.

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

    Object 3 has a single voxel in the overlap, shared with 9:

    >>> a = np.array([[[1, 1, 1, 3]]])
    >>> b = np.array([[[9, 9, 9, 9]]])
    >>> overlap_matches(a, b, 0.5), overlap_matches(a, b, 0.5, min_voxels=2)
    ([(1, 9), (3, 9)], [(1, 9)])
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
    keep = (shared >= threshold * np.minimum(na, nb)) & (shared >= min_voxels)
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
