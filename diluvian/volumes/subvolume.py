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
    def iterable_from_csv(cls, filename, shape=None) -> list[SubvolumeBounds]:
        """Read bounds written by :meth:`iterable_to_csv`.

        Parameters
        ----------
        filename : path-like
            The CSV file (UTF-8, a header row naming the columns).
        shape : sequence of 3 int, optional
            Shape of the volume the bounds are for; boxes must lie inside it.

        Raises
        ------
        DiluvianError
            Naming the file and line, for a file that is not UTF-8 CSV text,
            a header with missing or unknown columns, a row with the wrong
            number of fields, values that are not integers, a negative or
            empty box, a box outside ``shape`` or a seed outside its box.
        """
        try:
            with open(filename, newline="", encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise DiluvianError(f"{filename}: bounds CSV file not found") from None
        except IsADirectoryError:
            raise DiluvianError(f"{filename}: is a folder, expected a bounds CSV file") from None
        except UnicodeDecodeError as exc:
            raise DiluvianError(f"{filename}: is not a UTF-8 text CSV file (byte "
                                f"{exc.start}: {exc.reason})") from None
        if "\0" in text:
            raise DiluvianError(f"{filename}: is a binary file, expected a bounds CSV file")
        try:
            rows = list(csv.reader(text.splitlines()))
        except csv.Error as exc:
            raise DiluvianError(f"{filename}: malformed CSV: {exc}") from None
        if not rows:
            raise DiluvianError(f"{filename}: empty file; expected a header row "
                                f"{','.join(cls._CSV_FIELDS)}")
        header = [h.strip() for h in rows[0]]
        unknown = [h for h in header if h not in cls._CSV_FIELDS]
        missing = [h for h in cls._CSV_FIELDS[:6] if h not in header]
        if unknown or missing or len(set(header)) != len(header):
            what = (f"unknown columns {unknown}" if unknown else
                    f"missing columns {missing}" if missing else "repeated columns")
            raise DiluvianError(f"{filename}:1: header has {what}; expected the columns "
                                f"{','.join(cls._CSV_FIELDS)} (at least the start_ and stop_ "
                                "ones)")
        out = []
        for line, values in enumerate(rows[1:], start=2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DiluvianError(f"{filename}:{line}: row has {len(values)} fields, the "
                                    f"header {len(header)}")
            row = dict(zip(header, (v.strip() for v in values)))
            try:
                def triple(prefix, row=row):
                    vals = [row.get(f"{prefix}_{a}", "") for a in "zyx"]
                    return None if all(v == "" for v in vals) else [int(v) for v in vals]

                start, stop = triple("start"), triple("stop")
                if start is None or stop is None:
                    raise ValueError("start and stop are required")
                label = row.get("label_id", "")
                bounds = cls(start, stop, seed=triple("seed"),
                             label_id=None if label == "" else int(label),
                             label_margin=triple("label_margin"))
            except (ValueError, TypeError, DiluvianError) as exc:
                raise DiluvianError(f"{filename}:{line}: invalid bounds row: {exc}") from None
            problem = bounds._problem(shape)
            if problem:
                raise DiluvianError(f"{filename}:{line}: {problem}")
            out.append(bounds)
        return out

    def _problem(self, shape=None) -> str | None:
        """Why this box can not be used in a volume of ``shape`` (None if it can)."""
        if np.any(self.start < 0):
            return f"negative start {self.start.tolist()}"
        if shape is not None and np.any(self.stop > np.asarray(shape)):
            return (f"box {self.start.tolist()}..{self.stop.tolist()} reaches outside the "
                    f"volume of shape {list(map(int, shape))}")
        if self.seed is not None and (np.any(self.seed < 0) or np.any(self.seed >= self.shape)):
            return (f"seed {self.seed.tolist()} (relative to start) lies outside the box of "
                    f"shape {self.shape.tolist()}")
        if self.label_margin is not None and np.any(self.label_margin < 0):
            return f"negative label margin {self.label_margin.tolist()}"
        return None


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
