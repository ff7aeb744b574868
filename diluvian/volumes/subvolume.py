"""Subvolume bounds and subvolumes: the boxes and arrays handed to training and filling.

All coordinates are voxel indices in Z, Y, X order, local to the volume they
were made for; ``stop`` is exclusive.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..util import DiluvianError, atomic_output

__all__ = ["Subvolume", "SubvolumeBounds"]


def _vec(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.int64).reshape(3)


@dataclass(eq=False)
class SubvolumeBounds:
    """Sufficient parameters to extract a subvolume from a volume.

    Attributes
    ----------
    start, stop : ndarray of int
        Z, Y, X voxel box ``[start, stop)`` in the volume's local coordinates.
    seed : ndarray of int, optional
        Seed location relative to ``start``; defaults to the box centre.
    label_id : int, optional
        Label of the seeded object; defaults to the label at the seed.
    label_margin : ndarray of int, optional
        Margin by which the label box extends beyond the image box (for
        networks whose output is smaller than their input).
    """

    start: np.ndarray
    stop: np.ndarray
    seed: np.ndarray | None = None
    label_id: int | None = None
    label_margin: np.ndarray | None = field(default=None)

    def __post_init__(self):
        self.start = _vec(self.start)
        self.stop = _vec(self.stop)
        self.seed = _vec(self.seed)
        self.label_margin = _vec(self.label_margin)
        if self.label_id is not None:
            self.label_id = int(self.label_id)
        if np.any(self.stop <= self.start):
            raise DiluvianError(
                f"subvolume bounds stop {self.stop.tolist()} must exceed start "
                f"{self.start.tolist()} on every axis")

    @property
    def shape(self) -> np.ndarray:
        """Shape of the box in voxels."""
        return self.stop - self.start

    @property
    def seed_or_center(self) -> np.ndarray:
        """The seed, or the box centre when no seed is set (relative to start)."""
        return self.shape // 2 if self.seed is None else self.seed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubvolumeBounds):
            return NotImplemented

        def same(a, b):
            return (a is None and b is None) or (
                a is not None and b is not None and np.array_equal(a, b))

        return (same(self.start, other.start) and same(self.stop, other.stop)
                and same(self.seed, other.seed) and self.label_id == other.label_id
                and same(self.label_margin, other.label_margin))

    _CSV_FIELDS = ("start_z", "start_y", "start_x", "stop_z", "stop_y", "stop_x",
                   "seed_z", "seed_y", "seed_x", "label_id", "label_margin_z",
                   "label_margin_y", "label_margin_x")

    @classmethod
    def iterable_to_csv(cls, bounds: Iterable[SubvolumeBounds], filename) -> None:
        """Write bounds to a CSV file (atomically), one row per box."""
        with atomic_output(filename) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(cls._CSV_FIELDS)
            for b in bounds:
                row = [*b.start.tolist(), *b.stop.tolist()]
                row += b.seed.tolist() if b.seed is not None else ["", "", ""]
                row += ["" if b.label_id is None else b.label_id]
                row += b.label_margin.tolist() if b.label_margin is not None else ["", "", ""]
                writer.writerow(row)

    @classmethod
    def iterable_from_csv(cls, filename) -> list[SubvolumeBounds]:
        """Read bounds written by :meth:`iterable_to_csv`."""
        try:
            with open(filename, newline="") as f:
                rows = list(csv.DictReader(f))
        except FileNotFoundError:
            raise DiluvianError(f"{filename}: bounds CSV file not found") from None
        out = []
        for line, row in enumerate(rows, start=2):
            try:
                def triple(prefix, row=row):
                    vals = [row.get(f"{prefix}_{a}", "") for a in "zyx"]
                    return None if all(v in ("", None) for v in vals) else [int(v) for v in vals]

                start, stop = triple("start"), triple("stop")
                if start is None or stop is None:
                    raise ValueError("start and stop are required")
                label = row.get("label_id", "")
                out.append(cls(start, stop, seed=triple("seed"),
                               label_id=None if label in ("", None) else int(label),
                               label_margin=triple("label_margin")))
            except (ValueError, TypeError) as exc:
                raise DiluvianError(f"{filename}:{line}: invalid bounds row: {exc}") from None
        return out


@dataclass(eq=False)
class Subvolume:
    """A subvolume of image data and an optional ground truth object mask.

    Attributes
    ----------
    image : ndarray of float32
        Image in [0, 1), Z, Y, X.
    label_mask : ndarray of bool, optional
        Ground truth mask of the seeded object (may be smaller than the image
        by ``label_margin`` on each side).
    seed : ndarray of int
        Seed location relative to the image origin.
    label_id : int or None
        Label of the seeded object.
    """

    image: np.ndarray
    label_mask: np.ndarray | None
    seed: np.ndarray
    label_id: int | None

    def __post_init__(self):
        self.seed = np.asarray(self.seed, dtype=np.int64)

    @property
    def f_a(self) -> float:
        """Filling fraction: the fraction of the label mask inside the object."""
        if self.label_mask is None or self.label_mask.size == 0:
            return 0.0
        return float(np.count_nonzero(self.label_mask)) / self.label_mask.size

    def _label_seed(self) -> np.ndarray:
        margin = (np.array(self.image.shape) - np.array(self.label_mask.shape)) // 2
        return self.seed - margin

    def has_seed_in_mask(self) -> bool:
        """Whether the seed voxel lies inside the label mask."""
        if self.label_mask is None:
            return False
        s = self._label_seed()
        if np.any(s < 0) or np.any(s >= self.label_mask.shape):
            return False
        return bool(self.label_mask[tuple(s)])

    def has_uniform_seed_margin(self, seed_margin: float = 20.0) -> bool:
        """Whether the label mask is uniformly set in a margin around the seed.

        Parameters
        ----------
        seed_margin : float or sequence of float
            Margin in voxels on each side of the seed (per axis or for all).
        """
        if self.label_mask is None:
            return False
        margin = np.ceil(np.broadcast_to(np.asarray(seed_margin, dtype=float), (3,))).astype(int)
        s = self._label_seed()
        lo = s - margin
        hi = s + margin + 1
        if np.any(lo < 0) or np.any(hi > self.label_mask.shape):
            return False
        return bool(np.all(self.label_mask[tuple(slice(a, b) for a, b in zip(lo, hi))]))

    def __iter__(self) -> Iterator:
        """Unpack as ``image, label_mask, seed, label_id``."""
        return iter((self.image, self.label_mask, self.seed, self.label_id))
