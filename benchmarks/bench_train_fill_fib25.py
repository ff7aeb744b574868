"""Train on FIB-25 z 0-125, densely fill z 125-250, score against the truth: what training buys.

Every step is the command a user runs, so the figures are those of
``diluvian train``, ``diluvian fill`` (its defaults plus the settings the
model file carries) and ``diluvian evaluate`` (``--border-threshold 0``:
every voxel counted, the figures of ``skimage.metrics``):

1. ``diluvian train -c diluvian/conf/fib25_train.toml`` on the first Z half
   (z 0-125) for ``--minutes`` (``--init MODEL.keras`` fine-tunes that model
   instead of starting from scratch; ``--config`` replaces the recipe).
   Validation subvolumes are drawn from the same half, so the test half
   never chooses the model.
2. ``diluvian fill`` of the test voxels: the second Z half, or with
   ``--crop`` the 96^3 crop z 140:236, y 77:173, x 77:173 (the crop of the
   FFN peer figures).
3. ``diluvian evaluate``: VOI split / merge and adapted Rand error.

It prints, on the same voxels: the trained model (and, with ``--curve 15 30
60``, the checkpoints of the same run at those minutes), the imported Google
FFN model filled the same way (``--skip-ffn`` to leave it out; its labels
are kept in the work folder and reused), and Google FFN's published
segmentation. The CPU flags that matter are printed first.

Usage::

    python benchmarks/bench_train_fill_fib25.py --minutes 110 --workdir fib25-bench
    python benchmarks/bench_train_fill_fib25.py --minutes 30 --init ffn_fib25.keras
    python benchmarks/bench_train_fill_fib25.py --model trained.keras --crop   # score only
    python benchmarks/bench_train_fill_fib25.py --model trained.keras --train-crop \
        --fill-config strict.toml        # choose fill settings on training voxels

Needs ``../shared`` (or ``$DILUVIAN_SHARED``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DILUVIAN_SHARED", ROOT.parent / "shared"))
FIB25 = SHARED / "data" / "fib25" / "training_sample2.h5"
PUBLISHED = SHARED / "data" / "fib25" / "ffn_published_segmentation.h5"
CHECKPOINT = SHARED / "models" / "ffn_fib25" / "model.ckpt-27465036"
RECIPE = ROOT / "diluvian" / "conf" / "fib25_train.toml"
#: The 96^3 crop of the FFN peer figures (z, y, x).
CROP = (slice(140, 236), slice(77, 173), slice(77, 173))
#: A 96^3 crop of the training half (z 15:111), to choose fill settings on
#: voxels that are not tested.
TRAIN_CROP = (slice(15, 111), slice(77, 173), slice(77, 173))
HALF = (slice(125, 250), slice(None), slice(None))
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_line() -> str:
    """CPU model, cores and the flags that decide TensorFlow's speed."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
            elif line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags]
    return f"CPU: {model}, {os.cpu_count()} cores, flags: {' '.join(have) or 'none of ' + str(FLAGS)}"


def diluvian(*args: str, log: Path) -> float:
    """Run ``diluvian ARGS`` (its output to ``log``); wall seconds. Exits on failure."""
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"$ diluvian {' '.join(args)}\n")
        out.flush()
        run = subprocess.run([sys.executable, "-m", "diluvian", *args], stdout=out,
                             stderr=subprocess.STDOUT)
    if run.returncode != 0:
        raise SystemExit(f"diluvian {args[0]} failed (exit {run.returncode}); see {log}")
    return time.perf_counter() - start


def write_volume(path: Path, name: str, region, dataset: Path = FIB25,
                 label_key: str = "volumes/labels/neuron_ids") -> Path:
    """An HDF5 file of ``region`` of a FIB-25 file and its dataset TOML; returns the TOML."""
    import h5py

    h5 = path.with_suffix(".h5")
    if not h5.exists():
        with h5py.File(dataset) as src, h5py.File(h5, "w") as dst:
            keys = [label_key] if dataset != FIB25 else ["volumes/raw", label_key]
            for key in keys:
                d = dst.create_dataset(key, data=src[key][region])
                d.attrs["resolution"] = [10, 10, 10]
    toml = path.with_suffix(".toml")
    lines = [f'[[dataset]]\nname = "{name}"\nhdf5_file = "{h5.name}"\n']
    if dataset == FIB25:
        lines.append('image_dataset = "volumes/raw"\n')
    lines.append(f'label_dataset = "{label_key}"\n')
    toml.write_text("".join(lines))
    return toml


def score(work: Path, test_toml: Path, pred_toml: Path, pred_name: str, res: Path) -> dict:
    """``diluvian evaluate`` of a prediction against the test truth, all voxels counted."""
    out = work / f"{pred_name}.json"
    diluvian("evaluate", "-c", str(res), "-v", str(test_toml), "-v", str(pred_toml),
             "--border-threshold", "0", "--json", str(out), "fib25_test", pred_name,
             log=work / "bench.log")
    return json.loads(out.read_text())


def fill_and_score(work: Path, tag: str, model: Path, test_toml: Path, res: Path,
                   fill_configs: tuple = ()) -> dict:
    """Fill the test voxels with ``model`` (reusing an earlier fill) and score it.

    ``fill_configs`` are extra ``-c`` files of the fill (and name its labels).
    """
    base = work / "_".join([f"seg_{tag}", *(Path(c).stem for c in fill_configs)])
    seconds = None
    if not Path(f"{base}_fib25_test.toml").exists():
        extra = [arg for c in fill_configs for arg in ("-c", str(c))]
        seconds = diluvian("fill", "-m", str(model), "-c", str(res), *extra, "-v",
                           str(test_toml), f"{base}_{{volume}}", log=work / "bench.log")
    pred_toml = Path(f"{base}_fib25_test.toml")
    import tomllib

    entry = tomllib.loads(pred_toml.read_text())["dataset"][0]
    result = score(work, test_toml, pred_toml, entry["name"], res)
    result["fill_seconds"] = seconds
    result["evaluations"] = fill_evaluations(pred_toml)
    return result


def fill_evaluations(pred_toml: Path) -> int:
    """Network evaluations of a ``diluvian fill`` output (its FillStats ``moves``)."""
    from diluvian.fill.state import read_fill_checkpoint

    return int(read_fill_checkpoint(pred_toml)[1].stats.moves)


def figures(result: dict) -> tuple[float, float, float]:
    """VOI split, VOI merge and adapted Rand error of an evaluate JSON."""
    return (float(result["voi_split"]), float(result["voi_merge"]),
            float(result["adapted_rand_error"]))


def checkpoints_at(history: Path, minutes: list[float], pattern: str) -> list[tuple]:
    """The last epoch checkpoint at or before each of ``minutes`` of the run."""
    rows = list(csv.DictReader(open(history)))
    out = []
    for m in minutes:
        done = [r for r in rows if float(r["minutes"]) <= m + 1e-9]
        if done:
            epoch = int(done[-1]["epoch"])
            out.append((m, float(done[-1]["minutes"]), Path(pattern.format(epoch=epoch))))
    return out


def train(args, work: Path, train_toml: Path) -> tuple[Path, dict]:
    """Run ``diluvian train``; the model file and figures of the run."""
    bench_cfg = work / "bench-training.toml"
    # FIB-25 is 10 nm isotropic here; a model file's own resolution (the
    # recipe's) still wins, and an imported FFN model carries none.
    bench_cfg.write_text("[volume]\nresolution = [10, 10, 10]\n\n"
                         "[training]\npartitions = {}\ntraining_partition = {}\n"
                         "validation_partition = {}\n")
    base = work / "trained"
    cmd = ["train", "-c", str(args.config), "-c", str(bench_cfg), "-v", str(train_toml),
           "-mo", str(base), "--max-minutes", str(args.minutes),
           "--model-checkpoint-file", str(work / "trained.{epoch:03d}.keras")]
    if args.init:
        cmd += ["-m", str(args.init)]
    seconds = diluvian(*cmd, log=work / "train.log")
    rows = list(csv.DictReader(open(f"{base}.csv")))
    samples = float(rows[-1].get("samples") or "nan")
    return Path(f"{base}.keras"), {"seconds": seconds, "epochs": len(rows), "samples": samples,
                                   "samples_per_s": samples / (60 * float(rows[-1]["minutes"]))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0, help="Training wall time.")
    parser.add_argument("--init", type=Path, help="Fine-tune this model instead.")
    parser.add_argument("--model", type=Path, help="Score this model; do not train.")
    parser.add_argument("--config", type=Path, default=RECIPE, help="Training config.")
    parser.add_argument("--crop", action="store_true", help="Fill the 96^3 crop, not the half.")
    parser.add_argument("--train-crop", action="store_true",
                        help="Fill a 96^3 crop of the training half (z 15:111): for "
                             "choosing fill settings without the test voxels.")
    parser.add_argument("--fill-config", type=Path, action="append", default=[],
                        help="Extra config for the trained model's fills (repeatable); "
                             "the imported FFN model is filled with the defaults.")
    parser.add_argument("--curve", type=float, nargs="*", default=[],
                        help="Also score the run's checkpoints at these minutes.")
    parser.add_argument("--skip-ffn", action="store_true", help="Leave out the imported FFN.")
    parser.add_argument("--workdir", type=Path, help="Keep files here (reused when rerun).")
    args = parser.parse_args(argv)
    if not FIB25.exists():
        print(f"skipped: {FIB25} not found")
        return 0
    print(cpu_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        region, where, tag = (
            (TRAIN_CROP, "96^3 crop of the training half z 15:111, y 77:173, x 77:173",
             "traincrop") if args.train_crop
            else (CROP, "96^3 crop z 140:236, y 77:173, x 77:173", "crop") if args.crop
            else (HALF, "z 125-250", "half"))
        train_toml = write_volume(work / "train", "fib25_train", (slice(0, 125),) * 1)
        test_toml = write_volume(work / f"test_{tag}", "fib25_test", region)
        res = work / "res10.toml"
        res.write_text("[volume]\nresolution = [10, 10, 10]\n")
        rows = []
        run = None
        model = args.model
        if model is None:
            model, run = train(args, work, train_toml)
            print(f"trained {run['epochs']} epochs, {run['samples']:.0f} samples in "
                  f"{run['seconds'] / 60:.1f} min: {run['samples_per_s']:.1f} samples/s",
                  flush=True)
            for _m, at, ckpt in checkpoints_at(work / "trained.csv", args.curve,
                                              str(work / "trained.{epoch:03d}.keras")):
                rows.append((f"trained, {at:.0f} min", fill_and_score(
                    work, f"{tag}_min{at:.0f}", ckpt, test_toml, res, args.fill_config)))
        rows.append(("trained (best)" if run else f"model {model.name}",
                     fill_and_score(work, f"{tag}_{'trained' if run else model.stem}", model,
                                    test_toml, res, args.fill_config)))
        if not args.skip_ffn:
            ffn = work / "ffn_fib25.keras"
            if not ffn.exists():
                diluvian("import-ffn", str(CHECKPOINT), "-o", str(ffn), log=work / "bench.log")
            rows.append(("imported FFN model", fill_and_score(work, f"{tag}_ffn", ffn,
                                                               test_toml, res)))
        pub_toml = write_volume(work / f"published_{tag}", "ffn_published", region,
                                dataset=PUBLISHED)
        rows.append(("FFN published", score(work, test_toml, pub_toml, "ffn_published", res)))
        print(f"\nFIB-25 {where}, all voxels counted (diluvian evaluate --border-threshold 0)")
        print(f"{'segmentation':24} {'VOI split':>9} {'VOI merge':>9} {'sum':>6} "
              f"{'ARAND':>6} {'evals':>7} {'fill s':>7}")
        for name, result in rows:
            split, merge, arand = figures(result)
            secs, evals = result.get("fill_seconds"), result.get("evaluations")
            print(f"{name:24} {split:9.3f} {merge:9.3f} {split + merge:6.3f} {arand:6.3f} "
                  f"{'' if evals is None else evals:>7} {'' if secs is None else f'{secs:7.0f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
