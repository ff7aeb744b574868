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
wall time. ``--quality`` fills with ``[fill] inset_fovs = false`` (the
quality setting) instead of the default. The CPU flags that matter are
printed first.

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

from bench_fill import FIB25, Recorder, scores  # noqa: E402
from bench_train_fill_fib25 import CHECKPOINT, CROP, HALF, PUBLISHED, cpu_line  # noqa: E402


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


def run_steps(model, image, config, agg_options):
    """The three rows: (name, labels, evaluations, seconds)."""
    from diluvian.fill import fill_volume_with_model
    from diluvian.fill.agglomerate import agglomerate
    from diluvian.fill.consensus import consensus_labels
    from diluvian.predictor import MemoPredictor
    from diluvian.util import make_rng
    from diluvian.volumes.base import NdarrayVolume

    volume = NdarrayVolume([10, 10, 10], image_data=image)
    fills = []
    # As diluvian consensus fills: two seed orders, the second reusing the first's
    # evaluations of the same inputs (the plain fill's row is the first fill alone).
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
    start = time.perf_counter()
    consensus = consensus_labels(fills[0][0], fills[1][0], int(config.fill.min_body_size))
    both = (fills[0][1] + fills[1][1], fills[0][2] + fills[1][2] + time.perf_counter() - start)
    recorder = Recorder(model)
    start = time.perf_counter()
    merged, decisions = agglomerate(recorder, image, consensus, [10, 10, 10],
                                    options=agg_options, config=config)
    agg = (both[0] + sum(recorder.sizes), both[1] + time.perf_counter() - start)
    merges = sum(bool(r["merged"]) for r in decisions)
    print(f"agglomeration: {len(decisions)} touching pairs tried, {merges} merged, "
          f"{sum(recorder.sizes)} evaluations", flush=True)
    return [("plain fill", fills[0][0], fills[0][1], fills[0][2]),
            ("consensus (2 seed orders)", consensus, *both),
            ("consensus + agglomeration", merged, *agg)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", action="store_true", help="FFN's 96^3 crop, not the half.")
    parser.add_argument("--quality", action="store_true",
                        help="Fill with [fill] inset_fovs = false (the quality setting).")
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
    from diluvian.network import import_ffn_checkpoint

    print(cpu_line(), flush=True)
    region, where, tag = ((CROP, "96^3 crop z 140:236, y 77:173, x 77:173", "crop") if args.crop
                          else (HALF, "second Z half z 125-250", "half"))
    image, truth, published = load(region)
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        path = work / "ffn_fib25.keras"
        if not path.exists():
            import_ffn_checkpoint(CHECKPOINT, path)
        config = Config([{"volume": {"resolution": [10, 10, 10]},
                          "fill": {"dtype_policy": args.dtype_policy,
                                   "inset_fovs": not args.quality}}])
        model = load_fill_model(path, config)
        rows = run_steps(model, image, config, AgglomerationOptions(
            min_contact_vox=args.min_contact, merge_threshold=args.merge_threshold))
        skeletons, traced = ground_truth_skeletons(truth, work, tag)
        if traced is not None:
            print(f"traced {len(skeletons)} ground-truth skeletons in {traced:.0f} s", flush=True)
    setting = "quality setting (inset_fovs = false)" if args.quality else "default fill"
    print(f"\nFIB-25 {where}, imported FFN model, {setting}; all voxels counted "
          "(skimage.metrics); ERL on kimimaro skeletons of the ground truth")
    print(f"{'segmentation':28s}{'split':>7s}{'merge':>7s}{'sum':>7s}{'ARAND':>7s}"
          f"{'ERL nm':>9s}{'evals':>8s}{'wall s':>8s}")
    rows += [("FFN published", published, None, None), ("ground truth (ERL bound)", truth,
                                                         None, None)]
    for name, labels, evals, seconds in rows:
        s = scores(truth, labels)
        print(f"{name:28s}{s['voi_split']:7.3f}{s['voi_merge']:7.3f}"
              f"{s['voi_split'] + s['voi_merge']:7.3f}{s['arand']:7.3f}{erl(skeletons, labels):9.0f}"
              f"{'' if evals is None else evals:>8}{'' if seconds is None else f'{seconds:.0f}':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
