"""Benchmark of the flood-fill engine (``python benchmarks/bench_regions.py``).

(a) Fill overhead: wall time of ``Region.fill`` with the default network
    (``[network] factory``, the U-Net) divided by the time of bare
    ``predict_on_batch`` calls on the very FOVs the fill sent to the model.
    An untrained network would stop after the seed, so the predictor calls
    the real model (its full cost is paid) and then answers with a
    threshold of the image; that extra numpy work counts as overhead.
(b) Bookkeeping speed: moves per second of a whole fill with a trivial
    numpy predictor (a threshold of the image), for a dense and a sparse
    (octree) mask, one region and many regions batched together, with the
    share of time spent outside the predictor.

Everything runs on one process; ratios are measured side by side (interleaved,
best of ``--repeats``).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from diluvian.config import CONFIG  # noqa: E402
from diluvian.regions import Region, fill_regions  # noqa: E402


def synthetic_volume(shape, seed=0):
    """uint8 image of a few thick tubes (value 200) on a noisy background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[tuple(slice(0, s) for s in shape)]
    inside = np.zeros(shape, dtype=bool)
    for i in range(4):
        cy, cx = shape[1] * (i + 1) / 5, shape[2] * (0.3 + 0.4 * (i % 2))
        wobble = 0.15 * shape[2] * np.sin(z / 7.0 + i)
        inside |= (y - cy) ** 2 / 1.5 + (x - cx - wobble) ** 2 < (0.09 * shape[1]) ** 2
    inside |= (np.abs(y - shape[1] / 2) < 0.06 * shape[1]) & (np.abs(z - shape[0] / 2) < 6)
    noise = rng.integers(0, 40, size=shape, dtype=np.uint8)
    return np.where(inside, 200, 40).astype(np.uint8) + noise // 4, inside


def threshold_predictor(images, masks):
    return np.where(images > 0.6, np.float32(0.95), np.float32(0.05))


def seed_in(inside, n, rng):
    idx = np.argwhere(inside)
    return [tuple(int(v) for v in idx[i]) for i in rng.choice(len(idx), size=n, replace=False)]


def bench_overhead(args) -> None:
    try:
        from diluvian.network import make_network

        model = make_network(CONFIG.model, CONFIG.network)
        name = CONFIG.network.factory
    except Exception as exc:  # pragma: no cover - stand-in while the network is unavailable
        import keras

        print(f"(default network unavailable: {exc}; using a stand-in Conv3D stack)")
        fov = tuple(int(s) for s in CONFIG.model.input_fov_shape)
        a, b = keras.Input((*fov, 1)), keras.Input((*fov, 1))
        x = keras.layers.Concatenate()([a, b])
        for _ in range(6):
            x = keras.layers.Conv3D(32, 3, padding="same", activation="relu")(x)
        model = keras.Model([a, b], keras.layers.Conv3D(1, 1, activation="sigmoid")(x))
        name = "stand-in"
    image, inside = synthetic_volume((48, 160, 160))
    seed = seed_in(inside, 1, np.random.default_rng(1))[0]
    fov = tuple(int(s) for s in CONFIG.model.input_fov_shape)
    warm = np.zeros((1, *fov, 1), np.float32)
    for _ in range(3):
        model.predict_on_batch([warm, warm])

    recorded: list[tuple[np.ndarray, np.ndarray]] = []

    def predictor(images, masks):
        model.predict_on_batch([images[..., None], masks[..., None]])
        recorded.append((images, masks))
        return threshold_predictor(images, masks)

    fill_times, bare_times = [], []
    base = Region(image, seed_vox=seed)
    for _ in range(args.repeats):
        recorded.clear()
        region = base.unfilled_copy()
        t0 = time.perf_counter()
        region.fill(predictor, max_moves=args.moves)
        fill_times.append(time.perf_counter() - t0)
        fovs = list(recorded)
        t0 = time.perf_counter()
        for images, masks in fovs:
            model.predict_on_batch([images[..., None], masks[..., None]])
        bare_times.append(time.perf_counter() - t0)
    n = len(fovs)
    tf, tb = min(fill_times), min(bare_times)
    print(f"(a) fill overhead, {name}, {n} moves, FOV {list(fov)}:")
    print(f"    Region.fill {tf:.2f} s, bare predict_on_batch {tb:.2f} s "
          f"({1000 * tb / n:.1f} ms/FOV)")
    print(f"    ratio fill / bare = {tf / tb:.3f}   (aim <= 1.05)")


def timed_fill(make_regions, predictor, **kwargs):
    calls = [0.0]

    def timed(images, masks):
        t0 = time.perf_counter()
        out = predictor(images, masks)
        calls[0] += time.perf_counter() - t0
        return out

    regions = make_regions()
    t0, c0 = time.perf_counter(), time.process_time()
    if len(regions) == 1 and "batch_size" not in kwargs:
        regions[0].fill(timed, **kwargs)
    else:
        fill_regions(regions, timed, **kwargs)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return sum(r.num_moves for r in regions), total, calls[0], cpu


def bench_bookkeeping(args) -> None:
    image, inside = synthetic_volume((64, 256, 256), seed=2)
    seeds = seed_in(inside, 16, np.random.default_rng(3))
    cases = {
        "dense mask, 1 region": (lambda: [Region(image, seed_vox=seeds[0])], {}),
        "sparse mask, 1 region": (
            lambda: [Region(image, seed_vox=seeds[0], sparse_mask=True)], {}),
        "dense mask, 1 region, move_batch_size 8": (
            lambda: [Region(image, seed_vox=seeds[0])], {"move_batch_size": 8}),
        "dense masks, 16 regions, fill_regions batch 16": (
            lambda: [Region(image, seed_vox=s) for s in seeds],
            {"batch_size": 16, "max_moves": args.region_moves}),
    }
    print("(b) bookkeeping with a trivial numpy predictor (aim >= 2,000 moves/s):")
    for label, (make, kwargs) in cases.items():
        best = None
        for _ in range(args.repeats):
            result = timed_fill(make, threshold_predictor, **kwargs)
            if best is None or result[1] < best[1]:
                best = result
        moves, total, predict, cpu = best
        print(f"    {label:48s} {moves:6d} moves  {moves / total:7.0f} moves/s wall, "
              f"{moves / cpu:7.0f} per CPU s  ({100 * (total - predict) / total:.0f}% outside "
              "predictor)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40, help="moves of the overhead fill")
    parser.add_argument("--region-moves", type=int, default=300,
                        help="moves per region of the batched bookkeeping case")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-network", action="store_true", help="only run (b)")
    args = parser.parse_args()
    bench_bookkeeping(args)
    if not args.skip_network:
        bench_overhead(args)


if __name__ == "__main__":
    main()
