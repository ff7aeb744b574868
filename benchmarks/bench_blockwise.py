"""Benchmark of blockwise filling on Dask (``python benchmarks/bench_blockwise.py``).

On a crop of FIB-25 (``../shared/data/fib25/training_sample2.h5``), side by side
in one run:

(a) Agreement: the single-process fill of the crop against a 2-worker
    blockwise fill of it, each scored against the ground truth (VOI split,
    merge, sum; the acceptance aim is a VOI sum within 0.05), and the
    blockwise fill scored against the single-process one (its VOI split
    there counts objects cut at block faces that the single fill kept whole).
(b) Scaling: wall time of the same blockwise job with 1 and 2 LocalCluster
    worker processes (ratio; 1.6x on 2 cores is the aim).
(c) Memory: peak resident memory of each worker process against the bytes
    of one block's outer box (image float32 + labels uint64).

``--predictor ffn`` uses Google's FFN checkpoint imported to Keras (slow on a
CPU: about 0.5-1 s per FOV evaluation on 2 cores, so use a small crop);
the default ``threshold`` predictor (a numpy threshold of the image, no
network) measures the blockwise machinery itself in well under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIB25 = ROOT.parent / "shared" / "data" / "fib25" / "training_sample2.h5"
FFN = ROOT.parent / "shared" / "models" / "ffn_fib25" / "model.ckpt-27465036"


def threshold_predictor(images, masks):
    """Cell interiors of FIB-25 are bright, membranes dark: a threshold of the image."""
    return np.where(images > 0.55, np.float32(0.95), np.float32(0.05))


def peak_rss_mib() -> float:
    """Peak resident memory of this process (``VmHWM``; unlike ``ru_maxrss`` it is not
    inherited from the parent a spawned worker was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def warm_up() -> float:
    """Import what a block task needs (outside the timing); return the RSS after it."""
    import diluvian.blockwise.run  # noqa: F401
    import diluvian.fill  # noqa: F401
    import diluvian.regions  # noqa: F401

    return peak_rss_mib()


def crop_volume(crop, tmp: Path, half: bool = False):
    import h5py

    from diluvian.volumes import HDF5Volume

    with h5py.File(FIB25, "r") as f:
        raw = f["volumes/raw"]
        if half:  # the second Z half, as ``--partition-volumes`` fills it
            sl = (slice(raw.shape[0] // 2, raw.shape[0]), slice(None), slice(None))
        else:
            lo = [(s - c) // 2 for s, c in zip(raw.shape, crop)]
            sl = tuple(slice(a, a + c) for a, c in zip(lo, crop))
        image = raw[sl]
        labels = f["volumes/labels/neuron_ids"][sl]
        resolution = raw.attrs.get("resolution", [10, 10, 10])
    path = tmp / "crop.h5"
    HDF5Volume.write_file(path, resolution, image_data=image, label_data=labels)
    return HDF5Volume(path, "volumes/raw", "volumes/labels/neuron_ids"), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", choices=("threshold", "ffn"), default="threshold")
    parser.add_argument("--crop", type=int, nargs=3, default=[48, 96, 96])
    parser.add_argument("--half", action="store_true",
                        help="fill the second Z half of FIB-25 (z 125-250) instead of a crop")
    parser.add_argument("--block-shape", type=int, nargs=3, default=[24, 48, 48])
    parser.add_argument("--block-overlap", type=int, nargs=3, default=[4, 8, 8])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to time (the first one's labels are scored)")
    parser.add_argument("--move-batch-size", type=int, default=1,
                        help="move_batch_size of every fill (default 1: on a CPU larger batches "
                        "gain little)")
    parser.add_argument("--single-labels", default=None, metavar="NPY",
                        help="labels of the single-process fill of the same volume and settings "
                        "(bench_fill.py --save-labels) instead of filling it again; where NPY "
                        "does not exist yet, the fill (run after the blockwise ones) is saved "
                        "there")
    parser.add_argument("--store-dir", default=None, metavar="DIR",
                        help="keep the crop, model and zarr stores in DIR (default: a new "
                        "temporary folder); a rerun on the same DIR resumes the stores, so "
                        "changed [fill] reconcile_* settings only reconcile again")
    parser.add_argument("--tf-threads", type=int, default=None,
                        help="TensorFlow threads per worker (default: the cores shared among "
                        "the workers, so 1 worker uses both cores of a 2-core machine); 1 "
                        "measures scaling per core")
    parser.add_argument("--reconcile-threshold", type=float, default=None)
    parser.add_argument("--reconcile-min-voxels", type=int, default=None)
    args = parser.parse_args()
    if not FIB25.exists():
        raise SystemExit(f"{FIB25} is not available")

    from dask.distributed import Client, LocalCluster

    from diluvian.blockwise import fill_volume_blockwise, read_labels
    from diluvian.config import Config
    from diluvian.evaluation import variation_of_information
    from diluvian.fill import fill_volume_with_model

    if args.store_dir:
        tmp = Path(args.store_dir)
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench_blockwise_"))
    volume, truth = crop_volume(args.crop, tmp, half=args.half)
    options = {"seed_generator": "sobel", "move_batch_size": args.move_batch_size}
    what = "z 125-250" if args.half else f"crop {args.crop}"
    if args.predictor == "ffn":
        from diluvian.network import apply_model_settings, read_model_settings
        from diluvian.network.ffn_import import import_ffn_checkpoint

        model = str(tmp / "ffn.keras")
        if not Path(model).exists():
            import_ffn_checkpoint(FFN, model)
        config = Config()
        apply_model_settings(config, read_model_settings(model))
        from diluvian.network import load_model, resolve_dtype_policy

        # As the block tasks do: the dtype policy of [fill] (``auto`` by default).
        single_model = load_model(model, network_config=config.network,
                                  dtype_policy=resolve_dtype_policy(config.fill.dtype_policy))
    else:
        model = single_model = threshold_predictor
        config = Config([{"model": {"input_fov_shape": [17, 33, 33],
                                    "output_fov_shape": [17, 33, 33]},
                          "fill": {"min_body_size": 100}}])

    threshold = args.reconcile_threshold or config.fill.reconcile_threshold
    min_voxels = args.reconcile_min_voxels or config.fill.reconcile_min_voxels
    print(f"{what} of FIB-25, blocks {args.block_shape} + overlap "
          f"{args.block_overlap}, predictor {args.predictor} "
          f"(dtype policy {config.fill.dtype_policy}), reconcile threshold {threshold}, "
          f"min voxels {min_voxels}", flush=True)
    timings, blockwise, rss, busy = {}, None, {}, {}
    for workers in args.workers:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            base = client.run(warm_up)
            t0 = time.perf_counter()
            result = fill_volume_blockwise(model, volume, tmp / f"w{workers}.zarr",
                                           block_shape=args.block_shape,
                                           block_overlap=args.block_overlap, client=client,
                                           fill_options=options, progress=False, config=config,
                                           reconcile_threshold=args.reconcile_threshold,
                                           reconcile_min_voxels=args.reconcile_min_voxels,
                                           tf_threads=args.tf_threads)
            timings[workers] = time.perf_counter() - t0
            if result.filled_blocks < result.blocks:
                print(f"    {workers} worker(s): {result.blocks - result.filled_blocks} blocks "
                      f"were already filled in {tmp}: wall time covers reconciling only",
                      flush=True)
            rss[workers] = (base, client.run(peak_rss_mib))
        times = [v["wall_seconds"] for v in result.block_stats.values()]
        busy[workers] = (sum(times), max(times))
        labels = read_labels(result.store)
        if blockwise is None:
            blockwise = labels
        else:
            assert np.array_equal(labels, blockwise), "1 and 2 workers disagree"

    def voi(gt, pred):
        split, merge = variation_of_information(gt, pred)
        return split, merge, split + merge

    s_block = voi(truth, blockwise)
    print(f"blockwise ({args.workers[0]} worker(s)) vs truth: VOI split {s_block[0]:.3f} merge "
          f"{s_block[1]:.3f} sum {s_block[2]:.3f}", flush=True)
    if args.single_labels and Path(args.single_labels).exists():
        single, t_single = np.load(args.single_labels), float("nan")
        if single.shape != truth.shape:
            raise SystemExit(f"{args.single_labels}: shape {list(single.shape)}, expected "
                             f"{list(truth.shape)}")
        print(f"single process: {len(np.unique(single)) - 1} bodies read from "
              f"{args.single_labels}", flush=True)
    else:
        t0 = time.perf_counter()
        single, single_stats = fill_volume_with_model(single_model, volume, progress=False,
                                                      config=config, **options)
        t_single = time.perf_counter() - t0
        if args.single_labels:
            np.save(args.single_labels, single)
        print(f"single process: {single_stats.bodies} bodies, {single_stats.moves} "
              f"evaluations, {t_single:.1f} s", flush=True)
    if args.half:
        from diluvian.evaluation import adapted_rand_error

        split, merge = variation_of_information(truth, single, background_label=None)
        arand = adapted_rand_error(truth, single, background_label=None, convention="skimage")
        print("    single process vs truth, all voxels counted (Google FFN's published "
              f"segmentation of z 125-250): VOI split {split:.3f} (0.889), VOI merge "
              f"{merge:.3f} (0.942), adapted Rand {arand:.3f} (0.103)", flush=True)

    s_single = voi(truth, single)
    cut, _, _ = voi(single, blockwise)
    print(f"(a) VOI vs truth  single: split {s_single[0]:.3f} merge {s_single[1]:.3f} "
          f"sum {s_single[2]:.3f} ({t_single:.1f} s)")
    print(f"    VOI vs truth  blockwise: split {s_block[0]:.3f} merge {s_block[1]:.3f} "
          f"sum {s_block[2]:.3f}")
    print(f"    VOI sum difference blockwise - single: {s_block[2] - s_single[2]:+.3f} "
          f"(aim |d| <= 0.05); VOI split difference {s_block[0] - s_single[0]:+.3f}")
    print(f"    blockwise vs single as reference: VOI split {cut:.3f} bits "
          f"(0 = no single-fill object cut)")
    print(f"    objects: single {len(np.unique(single)) - 1}, blockwise "
          f"{len(np.unique(blockwise)) - 1}")
    if 1 in timings and 2 in timings:
        threads = (f"{args.tf_threads} TensorFlow thread(s) per worker" if args.tf_threads
                   else f"TensorFlow threads per worker: {os.cpu_count()} cores // workers")
        print(f"(b) wall time 1 worker {timings[1]:.1f} s, 2 workers {timings[2]:.1f} s: "
              f"speed-up {timings[1] / timings[2]:.2f}x (aim >= 1.6x; {threads})")
        print(f"    block fill seconds summed: {busy[1][0]:.1f} s with 1 worker, "
              f"{busy[2][0]:.1f} s with 2 (their ratio is how much slower a block fills "
              f"with the 2-worker thread count); longest block {busy[2][1]:.1f} s, so load "
              f"balance allows {busy[2][0] / busy[2][1]:.1f}x")
    else:
        print(f"(b) wall time {timings}")
    outer = np.asarray(args.block_shape) + 2 * np.asarray(args.block_overlap)
    block_mib = float(np.prod(outer)) * (4 + 8) / 2**20
    for workers, (base, peak) in rss.items():
        grow = max(peak[w] - base[w] for w in peak)
        print(f"(c) {workers} worker(s): peak RSS per worker "
              f"{sorted(round(p) for p in peak.values())} MiB, "
              f"of which at most {grow:.1f} MiB beyond the idle worker; one outer block "
              f"(float32 image + uint64 labels) is {block_mib:.1f} MiB: ratio "
              f"{grow / block_mib:.1f}x")


if __name__ == "__main__":
    main()
