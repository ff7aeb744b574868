"""Benchmark: OctreeVolume writes and reads against a dense numpy array, side by side.

Prints time(octree) / time(numpy) for scalar point writes, vectorised point
writes, and FOV-sized (13 x 33 x 33) block writes and reads (numpy: a copy of the view) at random places
in a 128 x 512 x 512 float32 volume, for a few leaf shapes. "warm" means the
leaves the block touches are already allocated (the steady state of a
flood-fill mask); "cold" includes allocating them.

Run: ``python benchmarks/bench_octrees.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from diluvian.octrees import OctreeVolume

SHAPE = (128, 512, 512)
FOV = (13, 33, 33)


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def point_writes(target, points, values):
    for (z, y, x), v in zip(points, values):
        target[z, y, x] = v


def point_reads(target, points, _):
    for z, y, x in points:
        target[z, y, x]


def vector_point_writes(target, points, values):
    for k in range(0, len(points), 1000):
        p = points[k:k + 1000]
        target[p[:, 0], p[:, 1], p[:, 2]] = values[k:k + 1000]


def block_writes(target, starts, block):
    fz, fy, fx = FOV
    for z, y, x in starts:
        target[z:z + fz, y:y + fy, x:x + fx] = block


def block_reads(target, starts, _):
    # numpy basic slicing returns a view: copy it, as the octree returns a new array
    fz, fy, fx = FOV
    if isinstance(target, np.ndarray):
        for z, y, x in starts:
            target[z:z + fz, y:y + fy, x:x + fx].copy()
    else:
        for z, y, x in starts:
            target[z:z + fz, y:y + fy, x:x + fx]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--n", type=int, default=2000, help="operations per run")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.n
    # Points and blocks clustered in a 96 x 192 x 192 region, like one growing fill.
    lo = np.array([16, 160, 160])
    points = [tuple(int(c) for c in p) for p in rng.integers(lo, lo + [96, 192, 192], (n * 10, 3))]
    point_arr = np.array(points)
    values = rng.random(len(points)).astype(np.float32)
    starts = [tuple(int(c) for c in s)
              for s in rng.integers(lo, lo + [96, 192, 192] - np.array(FOV), (n, 3))]
    block = rng.random(FOV).astype(np.float32)

    print(f"volume {SHAPE} float32, FOV {FOV}, {n} blocks / {len(points)} points per run, "
          f"best of {args.repeats}")
    print(f"{'leaf shape':>14}  {'operation':<26} {'ratio octree/numpy':>18}")
    for leaf in [(32, 32, 32), (16, 64, 64), (64, 64, 64)]:
        cases = [
            ("block write (cold)", block_writes, starts, block, True),
            ("block write (warm)", block_writes, starts, block, False),
            ("block read (warm)", block_reads, starts, None, False),
            ("scalar block write (warm)", block_writes, starts, np.float32(0.5), False),
            ("point write (warm)", point_writes, points, values, False),
            ("point read (warm)", point_reads, points, None, False),
            ("vector point write (warm)", vector_point_writes, point_arr, values, False),
        ]
        for name, fn, where, what, cold in cases:
            best_o = best_d = float("inf")
            for _ in range(args.repeats):
                dense = np.full(SHAPE, np.nan, dtype=np.float32)
                octree = OctreeVolume(leaf, ((0, 0, 0), SHAPE), np.float32, fill_value=np.nan)
                if not cold:
                    block_writes(octree, starts, block)
                    block_writes(dense, starts, block)
                best_d = min(best_d, timed(fn, dense, where, what))
                best_o = min(best_o, timed(fn, octree, where, what))
            print(f"{str(leaf):>14}  {name:<26} {best_o / best_d:18.2f}"
                  f"   ({best_o / len(where) * 1e6:.2f} us vs {best_d / len(where) * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
