"""Beyond FFN (issue 19): plain fill, consensus, consensus + agglomeration on FIB-25.

Run ``python benchmarks/bench_beyond_ffn.py`` (the second Z half, z 125-250,
as ``--partition-volumes`` fills it; about an hour on 2 cores) or with
``--crop`` (FFN's 96^3 crop z 140:236, y 77:173, x 77:173; minutes). With
Google's imported FFN weights it prints one row per step, on the same voxels:

- plain fill (``diluvian fill``'s first seed order),
- consensus of that fill and a second fill in another seed order
  (``diluvian consensus``),
- consensus + agglomeration (``diluvian agglomerate`` of the consensus),

then Google FFN's published segmentation of the same voxels and the ground
truth against itself (the ERL upper bound). Columns: VOI split / merge and
adapted Rand error (skimage.metrics, every voxel counted), ERL in nm (FFN
paper's definition, strict merge rule, on ground-truth skeletons traced with
kimimaro and cached as SWC in the work folder), network evaluations and
wall time. Each row is also printed (``row:``) as soon as it is known. With
``--workdir`` the two fills are kept there and reused by the next run (for
example with another ``--min-contact``). ``--quality`` fills with ``[fill]
inset_fovs = false`` at FFN's move step of 8 voxels (the quality setting)
instead of the default (move step 11, as ``import-ffn`` stores it). The CPU
flags that matter are printed first.

Needs ``../shared`` (or ``$DILUVIAN_SHARED``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fill import FIB25, Recorder, ffn_model_file, scores  # noqa: E402
from bench_train_fill_fib25 import CROP, HALF, PUBLISHED, cpu_line  # noqa: E402


def load(region):
    """Image, truth and FFN's published labels of ``region`` of FIB-25."""
    import h5py

    with h5py.File(FIB25) as f:
        image, truth = f["volumes/raw"][region], f["volumes/labels/neuron_ids"][region]
    with h5py.File(PUBLISHED) as f:
        published = f["volumes/labels/neuron_ids"][region]
    return image, truth, published


def ground_truth_skeletons(truth, work: Path, tag: str):
    """kimimaro skeletons of ``truth``, cached as SWC files under ``work``."""
    from diluvian.skeletons import read_swc_folder, skeletons_from_labels, write_swc

    folder = work / f"skeletons_{tag}"
    if folder.is_dir() and any(folder.glob("*.swc")):
        return read_swc_folder(folder), None
    start = time.perf_counter()
    skeletons = skeletons_from_labels(truth, [10, 10, 10], progress=True)
    tmp = work / f"skeletons_{tag}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for s in skeletons:
        write_swc(s, tmp / f"{s.name}.swc")
    tmp.rename(folder)
    return skeletons, time.perf_counter() - start


def erl(skeletons, labels) -> float:
    from diluvian.skeletons import expected_run_length, node_segments

    segments = [node_segments(s.nodes_nm, labels, [10, 10, 10])[0] for s in skeletons]
    return expected_run_length(skeletons, segments)["erl_nm"]


def two_fills(model, image, config, cache: Path | None):
    """Two fills in two seed orders: [(labels, evaluations, seconds)] * 2.

    As ``diluvian consensus`` fills, the second reuses the first's evaluations of
    the same inputs (the plain fill's row is the first fill alone). With ``cache``
    (an ``.npz`` path) the fills are kept there and read back on the next run, so
    an agglomeration setting can be rerun without filling again.
    """
    import numpy as np

    if cache is not None and cache.exists():
        with np.load(cache) as f:
            return [(f[f"labels{i}"], int(f["evals"][i]), float(f["seconds"][i]))
                    for i in range(2)]
    from diluvian.fill import fill_volume_with_model
    from diluvian.predictor import MemoPredictor
    from diluvian.util import make_rng
    from diluvian.volumes.base import NdarrayVolume

    volume = NdarrayVolume([10, 10, 10], image_data=image)
    fills = []
    recorder = Recorder(model)
    memo = MemoPredictor(recorder)
    for stream in (("fib25",), ("fib25", "consensus")):
        before = sum(recorder.sizes)
        start = time.perf_counter()
        labels, _stats = fill_volume_with_model(
            memo, volume, shuffle_seeds=True, rng=make_rng(config.random_seed, "fill_seeds",
                                                           *stream),
            config=config, progress=True)
        fills.append((labels, sum(recorder.sizes) - before, time.perf_counter() - start))
    if cache is not None:
        tmp = cache.with_name(cache.stem + ".tmp.npz")
        np.savez_compressed(tmp, labels0=fills[0][0], labels1=fills[1][0],
                            evals=[f[1] for f in fills], seconds=[f[2] for f in fills])
        tmp.rename(cache)
    return fills


def run_steps(model, image, config, agg_options, cache=None, report=None):
    """The three rows: (name, labels, evaluations, seconds); ``report`` gets each row."""
    from diluvian.fill.agglomerate import agglomerate
    from diluvian.fill.consensus import consensus_labels

    report = report or (lambda row: None)
    fills = two_fills(model, image, config, cache)
    report(("plain fill", fills[0][0], fills[0][1], fills[0][2]))
    start = time.perf_counter()
    consensus = consensus_labels(fills[0][0], fills[1][0], int(config.fill.min_body_size))
    both = (fills[0][1] + fills[1][1], fills[0][2] + fills[1][2] + time.perf_counter() - start)
    report(("consensus (2 seed orders)", consensus, *both))
    recorder = Recorder(model)
    start = time.perf_counter()
    merged, decisions = agglomerate(recorder, image, consensus, [10, 10, 10],
                                    options=agg_options, config=config)
    agg = (both[0] + sum(recorder.sizes), both[1] + time.perf_counter() - start)
    merges = sum(bool(r["merged"]) for r in decisions)
    print(f"agglomeration: {len(decisions)} touching pairs tried, {merges} merged, "
          f"{sum(recorder.sizes)} evaluations", flush=True)
    report(("consensus + agglomeration", merged, *agg))
    return [("plain fill", fills[0][0], fills[0][1], fills[0][2]),
            ("consensus (2 seed orders)", consensus, *both),
            ("consensus + agglomeration", merged, *agg)]


def format_row(row, truth, skeletons) -> str:
    """One table line: scores of ``row`` = (name, labels, evaluations, seconds)."""
    name, labels, evals, seconds = row
    s = scores(truth, labels)
    return (f"{name:28s}{s['voi_split']:7.3f}{s['voi_merge']:7.3f}"
            f"{s['voi_split'] + s['voi_merge']:7.3f}{s['arand']:7.3f}"
            f"{erl(skeletons, labels):9.0f}{'' if evals is None else evals:>8}"
            f"{'' if seconds is None else f'{seconds:.0f}':>8}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", action="store_true", help="FFN's 96^3 crop, not the half.")
    parser.add_argument("--quality", action="store_true",
                        help="Fill with [fill] inset_fovs = false at move step 8 "
                             "(the quality setting).")
    parser.add_argument("--min-contact", type=int, default=10, help="Agglomeration contact.")
    parser.add_argument("--merge-threshold", type=float, default=0.5)
    parser.add_argument("--dtype-policy", default="auto")
    parser.add_argument("--workdir", type=Path, help="Keep the model and skeletons here.")
    args = parser.parse_args(argv)
    if not FIB25.exists():
        print(f"skipped: {FIB25} not found")
        return 0
    from diluvian.config import Config
    from diluvian.fill import load_fill_model
    from diluvian.fill.agglomerate import AgglomerationOptions
    from diluvian.network import FFN_DELTAS, FFN_SETTINGS
    from diluvian.network.ffn_import import move_fraction

    print(cpu_line(), flush=True)
    region, where, tag = ((CROP, "96^3 crop z 140:236, y 77:173, x 77:173", "crop") if args.crop
                          else (HALF, "second Z half z 125-250", "half"))
    image, truth, published = load(region)
    step = FFN_DELTAS if args.quality else FFN_SETTINGS["move_step"][0]
    setting = (f"quality setting (move step {step}, inset_fovs = false)" if args.quality
               else f"default fill (move step {step})")
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        path = ffn_model_file(work)
        skeletons, traced = ground_truth_skeletons(truth, work, tag)
        if traced is not None:
            print(f"traced {len(skeletons)} ground-truth skeletons in {traced:.0f} s", flush=True)
        config = Config([{"volume": {"resolution": [10, 10, 10]},
                          "model": {"output_fov_move_fraction": move_fraction(step)},
                          "fill": {"dtype_policy": args.dtype_policy,
                                   "inset_fovs": not args.quality}}])
        model = load_fill_model(path, config)
        cache = (work / f"fills_{tag}_{'quality' if args.quality else 'default'}"
                        f"_step{step}_{args.dtype_policy}.npz") if args.workdir else None

        def report(row):
            print("row: " + format_row(row, truth, skeletons), flush=True)

        rows = run_steps(model, image, config, AgglomerationOptions(
            min_contact_vox=args.min_contact, merge_threshold=args.merge_threshold),
            cache=cache, report=report)
    print(f"\nFIB-25 {where}, imported FFN model, {setting}; all voxels counted "
          "(skimage.metrics); ERL on kimimaro skeletons of the ground truth; "
          f"agglomeration contact >= {args.min_contact} faces")
    print(f"{'segmentation':28s}{'split':>7s}{'merge':>7s}{'sum':>7s}{'ARAND':>7s}"
          f"{'ERL nm':>9s}{'evals':>8s}{'wall s':>8s}")
    rows += [("FFN published", published, None, None), ("ground truth (ERL bound)", truth,
                                                         None, None)]
    for row in rows:
        print(format_row(row, truth, skeletons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
