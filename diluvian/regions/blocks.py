"""Pure numpy helpers of the fill: voxel boxes, padded block reads and move-check faces.

Boxes are ``(lo, hi)`` Z, Y, X voxel corners (``hi`` exclusive) given as
sequences of Python ints; volumes are anything sliceable by three slices
(numpy arrays, h5py datasets, octree volumes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..util import face_margins, to_float_image

__all__ = [
    "MOVES",
    "box_slices",
    "centre_limits",
    "clip_box",
    "face_argmaxima",
    "face_maxima",
    "move_check_faces",
    "read_image_block",
    "read_mask_block",
]

#: Unit moves (Z, Y, X) in the order move checks report them: +Z, -Z, +Y, -Y, +X, -X.
MOVES = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def box_slices(lo: Sequence[int], hi: Sequence[int]) -> tuple[slice, slice, slice]:
    """The three slices of the box ``[lo, hi)``.

    The per-FOV fast path of :meth:`diluvian.geometry.Box.to_slices` (plain
    tuples, no :class:`~diluvian.geometry.Box` built).
    """
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def clip_box(lo, hi, shape) -> tuple[list[int], list[int], bool]:
    """Clip ``[lo, hi)`` to a volume of ``shape``; also say whether it was inside already.

    The per-FOV fast path of :meth:`diluvian.geometry.Box.clip` and
    :meth:`~diluvian.geometry.Box.inside`.
    """
    inside = (lo[0] >= 0 and lo[1] >= 0 and lo[2] >= 0 and hi[0] <= shape[0]
              and hi[1] <= shape[1] and hi[2] <= shape[2])
    if inside:
        return list(lo), list(hi), True
    return [max(a, 0) for a in lo], [min(b, n) for b, n in zip(hi, shape)], False


def read_image_block(image, lo, hi, padding: str = "reflect") -> np.ndarray:
    """Float32 image in ``[lo, hi)``, padded (``'reflect'`` or ``'constant'``) past the edge."""
    clo, chi, inside = clip_box(lo, hi, image.shape)
    block = to_float_image(image[box_slices(clo, chi)])
    if inside:
        return block
    pad = [(a - b, c - d) for a, b, c, d in zip(clo, lo, hi, chi)]
    return np.pad(block, pad, mode=padding)


def read_mask_block(mask, lo, hi, unset: float) -> np.ndarray:
    """Float32 mask in ``[lo, hi)`` with NaN (unset) voxels and voxels past the edge as ``unset``."""
    clo, chi, inside = clip_box(lo, hi, mask.shape)
    if inside:
        block = np.asarray(mask[box_slices(lo, hi)])
        return np.where(np.isnan(block), np.float32(unset), block)
    out = np.full([b - a for a, b in zip(lo, hi)], unset, dtype=np.float32)
    if all(b > a for a, b in zip(clo, chi)):
        block = np.asarray(mask[box_slices(clo, chi)])
        dst = box_slices([c - a for c, a in zip(clo, lo)], [c - a for c, a in zip(chi, lo)])
        out[dst] = np.where(np.isnan(block), np.float32(unset), block)
    return out


def move_check_faces(shape, centre, move_step, thickness: int = 1) -> list[tuple[slice, ...]]:
    """Slices of the six move-check faces of a block, in :data:`MOVES` order.

    The face for a move along +axis lies at ``centre + move_step`` along
    that axis and spans ``centre ± move_step`` along the other two (the
    whole face of the cube around the centre). As in diluvian 0.0.6 it is a
    slab of ``2 * thickness - 1`` voxels centred on that plane: thickened by
    ``thickness - 1`` voxels both inwards and outwards. Faces are clamped
    into the block so none comes out empty.

    Examples
    --------
    >>> move_check_faces((7, 7, 7), (3, 3, 3), (2, 2, 2))[0]
    (slice(5, 6, None), slice(1, 6, None), slice(1, 6, None))
    """
    t = int(thickness) - 1
    faces = []
    for move in MOVES:
        sl = []
        for axis in range(3):
            c, s, n = int(centre[axis]), int(move_step[axis]), int(shape[axis])
            if move[axis] > 0:
                lo, hi = c + s - t, c + s + t + 1
            elif move[axis] < 0:
                lo, hi = c - s - t, c - s + t + 1
            else:
                lo, hi = c - s, c + s + 1
            lo = min(max(lo, 0), n - 1)
            hi = max(min(hi, n), lo + 1)
            sl.append(slice(lo, hi))
        faces.append(tuple(sl))
    return faces


def face_maxima(block: np.ndarray, faces, unset: float) -> list[float]:
    """Maximum of ``block`` on each face; NaN (unset) voxels count as ``unset``."""
    values = []
    for face in faces:
        v = float(block[face].max())
        if v != v:
            v = float(np.max(np.nan_to_num(block[face], nan=unset)))
        values.append(v)
    return values


def face_argmaxima(block: np.ndarray, faces, unset: float) -> list[tuple[float, tuple[int, ...]]]:
    """Maximum of ``block`` on each face and the block index of its voxel.

    NaN (unset) voxels count as ``unset``. Of several voxels sharing the
    maximum (common in reduced precision) the one nearest the face centre
    is taken, so ties do not pull moves towards a corner.
    """
    out = []
    for face in faces:
        values = block[face]
        if np.isnan(values).any():
            values = np.nan_to_num(values, nan=unset)
        flat = values.ravel()
        best = int(np.argmax(flat))
        vmax = flat[best]
        ties = np.flatnonzero(flat == vmax)
        if len(ties) > 1:
            coords = np.stack(np.unravel_index(ties, values.shape), axis=1)
            centre = (np.asarray(values.shape) - 1) / 2.0
            best = int(ties[np.argmin(((coords - centre) ** 2).sum(axis=1))])
        idx = np.unravel_index(best, values.shape)
        out.append((float(vmax), tuple(int(sl.start) + int(i) for sl, i in zip(face, idx))))
    return out


def centre_limits(shape, move_margin=None, inset_margin=None):
    """Where a region's FOV centres may lie, from its ``move_margin`` and ``inset_margin``.

    Returns
    -------
    move_margin : tuple
        As given (one triple, or a ``(before, after)`` pair of triples).
    centre_lo, centre_hi : tuple of int
        Centres must lie in ``[centre_lo, centre_hi)`` (the move margin).
    inset_margin : tuple or None
        As given.
    inset : tuple of (int, int) per axis, or None
        Allowed centre range ``[lo, hi]`` per axis inside the inset margin; an
        axis shorter than both margins has one centre, its middle.
    """
    given = (0, 0, 0) if move_margin is None else move_margin
    before, after = face_margins(given, "move_margin").tolist()
    margin = tuple(before) if np.ndim(given) == 1 else (tuple(before), tuple(after))
    centre_lo = tuple(before)
    centre_hi = tuple(n - m for n, m in zip(shape, after))
    if inset_margin is None:
        return margin, centre_lo, centre_hi, None, None
    ins_before, ins_after = face_margins(inset_margin, "inset_margin").tolist()
    inset_given = (tuple(ins_before) if np.ndim(inset_margin) == 1
                   else (tuple(ins_before), tuple(ins_after)))
    inset = tuple((lo, n - 1 - hi) if n - 1 - hi >= lo else (n // 2, n // 2)
                  for lo, hi, n in zip(ins_before, ins_after, shape))
    return margin, centre_lo, centre_hi, inset_given, inset
