"""Benchmark: ``diluvian.evaluation`` vs ``skimage.metrics`` on FIB-25 (250^3).

Both compute VOI split/merge and the adapted Rand error of the same
perturbed segmentation (merges, splits, relabelling); the script checks the
figures agree to 1e-6 and prints the speed ratio measured side by side.
Also times the border-masked CREMI evaluation, and a synthetic CREMI-sized
(125 x 1250 x 1250) table unless ``--no-cremi-size`` is given.

Run: ``python benchmarks/bench_evaluation.py [path/to/training_sample2.h5]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import h5py
import numpy as np
from skimage.metrics import adapted_rand_error, variation_of_information

from diluvian.evaluation import contingency_table, evaluate_arrays, metrics_from_table

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fib25" / "training_sample2.h5"


def perturb(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pred = gt.copy()
    labels = np.unique(gt)
    labels = labels[labels != 0]
    for a, b in rng.choice(labels, size=(20, 2), replace=False):
        pred[pred == b] = a
    fresh = int(gt.max()) + 1
    for label in rng.choice(labels, size=20, replace=False):
        sel = (gt == label) & (np.arange(gt.shape[2]) >= gt.shape[2] // 2)
        pred[sel] = fresh
        fresh += 1
    values, inverse = np.unique(pred, return_inverse=True)
    return (rng.permutation(len(values)).astype(np.uint64) + 1)[inverse].reshape(pred.shape)


def best_of(fn, repeats=3):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else DEFAULT
    with h5py.File(path, "r") as f:
        gt = f["volumes/labels/neuron_ids"][:]
    pred = perturb(gt, np.random.default_rng(0))
    print(f"FIB-25 labels {gt.shape}, {len(np.unique(gt))} ground truth objects")

    def ours():
        return metrics_from_table(contingency_table(gt, pred), convention="skimage")

    def reference():
        split, merge = variation_of_information(gt, pred, ignore_labels=[0])
        return split, merge, adapted_rand_error(gt, pred, ignore_labels=[0])[0]

    t_ours, figures = best_of(ours)
    t_ref, (split, merge, arand) = best_of(reference)
    diff = max(abs(figures["voi_split"] - split), abs(figures["voi_merge"] - merge),
               abs(figures["adapted_rand_error"] - arand))
    print(f"VOI split {split:.6f}  VOI merge {merge:.6f}  ARAND {arand:.6f}  "
          f"max |difference| {diff:.2e}")
    assert diff < 1e-6, "figures disagree with skimage"
    print(f"skimage.metrics: {t_ref:.2f} s   diluvian: {t_ours:.2f} s   "
          f"speed-up {t_ref / t_ours:.1f}x")
    t_border, _ = best_of(lambda: evaluate_arrays(gt, pred, (10, 10, 10), border_threshold=25.0),
                          repeats=1)
    print(f"CREMI evaluation with 25 nm border mask: {t_border:.2f} s "
          f"({t_ref / t_border:.1f}x faster than skimage without a mask)")

    if "--no-cremi-size" not in argv:
        rng = np.random.default_rng(1)
        shape = (125, 1250, 1250)
        blocks = rng.integers(1, 5000, size=(125, 25, 25), dtype=np.uint64)
        big_gt = np.repeat(np.repeat(blocks, 50, axis=1), 50, axis=2)
        big_pred = np.roll(big_gt, 7, axis=2) // np.uint64(2)
        start = time.perf_counter()
        table = contingency_table(big_gt, big_pred)
        figures = metrics_from_table(table)
        print(f"CREMI-sized {shape} table: {time.perf_counter() - start:.1f} s, "
              f"{table.counts.nnz} non-zero cells, VOI sum {figures['voi_sum']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
