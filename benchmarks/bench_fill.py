"""Dense filling benchmarks: overhead over the bare model, batching gain, FIB-25 quality.

Run ``python benchmarks/bench_fill.py`` (about 2 minutes on 2 cores). It prints:

(a) whole-fill overhead: wall time of :func:`diluvian.fill.fill_volume_with_model`
    over the time of the bare ``model.predict_on_batch`` for the same number of
    FOVs in the same batch sizes (aim: at most 1.05);
(b) batching gain: wall time with ``move_batch_size`` 1 over 16, same seeds and
    model;
(c) with ``--fib25 CROP`` (edge in voxels, centred) or ``--fib25 half`` (z
    125-250, as ``--partition-volumes`` fills): FIB-25 filled with Google's FFN
    model, VOI split/merge and adapted Rand error (skimage.metrics, every voxel
    counted) next to FFN's own published segmentation of the second Z half,
    and for a 96^3 crop our network evaluations and time next to FFN's code on
    2 cores (with our defaults, and with FFN's rule of FOVs inside the volume);
(d) reduced precision: bare-model time per FOV in float32 over that under the
    ``auto`` dtype policy (bfloat16 on CPUs with native bfloat16), and the
    largest difference of their predicted probabilities;
(e) with ``--policies crop`` (FFN's 96^3 crop z 140:236, y 77:173, x 77:173)
    or ``--policies cube`` (all of training_sample2): one row per fill policy
    (the quality setting ``inset_fovs = false`` at FFN's move step 8,
    ``full_context`` at step 8, the default's rules at step 8, the default: move
    step 11 as ``import-ffn`` stores it, ``inset_fovs``) and Google FFN's
    own row on the same voxels and weights: network evaluations, VOI split
    / merge, adapted Rand error (every voxel counted), labelled fraction,
    wall time, where the evaluations went, and the CPU flags; ``--rows
    default`` (or ``quality``, ``full_context``, ``step8``) runs only those
    rows;
(f) with ``--batch-sweep 1 4 16``: on FFN's 96^3 crop with the default
    policy, for each ``move_batch_size`` N, the fill's FOVs/s against bare
    ``predict_on_batch`` at the same N, the speed-up over N = 1, and the
    evaluations and scores of each N (where batching stops paying).

``--dtype-policy`` sets ``[fill] dtype_policy`` for (a)-(c) (default ``auto``).

Parts (a) and (b) use the imported FFN model on a centred crop of FIB-25 when
``../shared`` is there, else a tiny Keras model on a synthetic volume.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DILUVIAN_SHARED", ROOT.parent / "shared"))
FIB25 = SHARED / "data" / "fib25" / "training_sample2.h5"
CHECKPOINT = SHARED / "models" / "ffn_fib25" / "model.ckpt-27465036"

#: Google FFN's published segmentation of FIB-25 z 125-250, all voxels counted.
FFN_PUBLISHED = {"voi_split": 0.889, "voi_merge": 0.942, "arand": 0.103}
#: FFN's own code on a 96^3 crop with these weights, 2 CPU cores.
FFN_PEER_96 = {"objects": 63, "evaluations": 660, "seconds": 97.0}


def ffn_model_file(workdir: Path) -> Path:
    """``workdir/ffn_fib25.keras``, imported unless there with today's settings (a model
    imported before the move step of ``FFN_SETTINGS`` changed is imported again)."""
    from diluvian.network import FFN_SETTINGS, import_ffn_checkpoint, read_model_settings

    path = workdir / "ffn_fib25.keras"
    if not path.exists() or read_model_settings(path)["move_step"] != FFN_SETTINGS["move_step"]:
        import_ffn_checkpoint(CHECKPOINT, path)
    return path


def ffn_model(workdir: Path, dtype_policy: str = "auto", random_seed: int | None = None):
    from diluvian.config import Config
    from diluvian.fill import load_fill_model

    path = ffn_model_file(workdir)
    config = Config([{"volume": {"resolution": [10, 10, 10]},
                      "fill": {"dtype_policy": dtype_policy}}])
    if random_seed is not None:  # another seed order for the fill
        config.random_seed = int(random_seed)
    return load_fill_model(path, config), config


def precision_gain(workdir: Path, batch: int = 1, repeats: int = 5) -> None:
    """(d): float32 over the ``auto`` policy, per FOV, measured alternately."""
    from diluvian.network import resolve_dtype_policy

    policy = resolve_dtype_policy("auto")
    if policy is None:
        print("(d) reduced precision: the 'auto' dtype policy is float32 on this machine")
        return
    full, config = ffn_model(workdir, "float32")
    reduced, _ = ffn_model(workdir, "auto")
    fov = tuple(int(s) for s in config.model.input_fov_shape)
    rng = np.random.default_rng(0)
    x = [rng.random((batch, *fov, 1), dtype=np.float32),
         np.full((batch, *fov, 1), 0.05, np.float32)]
    x[1][:, 12:21, 12:21, 12:21] = 0.95
    out = {}
    seconds = {"full": 0.0, "reduced": 0.0}
    for name, model in (("full", full), ("reduced", reduced)):
        out[name] = np.asarray(model.predict_on_batch(x))  # warm-up
    for _ in range(repeats):
        for name, model in (("full", full), ("reduced", reduced)):
            start = time.perf_counter()
            model.predict_on_batch(x)
            seconds[name] += time.perf_counter() - start
    per = {k: v / (repeats * batch) for k, v in seconds.items()}
    print(f"(d) reduced precision ({policy}), batch {batch}: float32 {per['full'] * 1e3:.0f} "
          f"ms/FOV, {policy} {per['reduced'] * 1e3:.0f} ms/FOV -> speed-up "
          f"{per['full'] / per['reduced']:.2f}x; largest probability difference "
          f"{np.abs(out['full'] - out['reduced']).max():.4f}")


def tiny_model():
    """A one-layer model predicting 0.95 everywhere: every fill floods its FOVs."""
    import keras

    from diluvian.config import Config

    config = Config([{"model": {"input_fov_shape": [17, 33, 33],
                                "output_fov_shape": [17, 33, 33]}}])
    fov = tuple(int(s) for s in config.model.input_fov_shape)
    image = keras.Input((*fov, 1), name="image_input")
    mask = keras.Input((*fov, 1), name="mask_input")
    x = keras.layers.Concatenate()([image, mask])
    for _ in range(3):
        x = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(x)
    out = keras.layers.Conv3D(1, 1, activation="sigmoid", kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(3.0),
                              name="mask_output")(x)
    return keras.Model([image, mask], out), config


def fib25_crop(size: int | None, half: bool = False):
    import h5py

    with h5py.File(FIB25) as f:
        raw = f["volumes/raw"]
        if half:
            sl = (slice(raw.shape[0] // 2, raw.shape[0]), slice(None), slice(None))
        else:
            lo = [(s - size) // 2 for s in raw.shape]
            sl = tuple(slice(a, a + size) for a in lo)
        return raw[sl], f["volumes/labels/neuron_ids"][sl]


class Recorder:
    """A predictor recording the batch sizes the fill asked for."""

    def __init__(self, model):
        from diluvian.regions import as_predictor

        self.predict = as_predictor(model)
        self.sizes: list[int] = []

    def __call__(self, images, masks):
        self.sizes.append(len(images))
        return self.predict(images, masks)


def warm_up(model, config, batch: int) -> None:
    """Trace the model for every batch size up to ``batch`` (a one-off cost per process)."""
    fov = tuple(int(s) for s in config.model.input_fov_shape)
    for n in range(1, batch + 1):
        x = np.zeros((n, *fov, 1), np.float32)
        model.predict_on_batch([x, x])


def bare_gain(model, config, batch: int, repeats: int = 2) -> float:
    """Seconds per FOV of the bare model at batch 1 over at ``batch``."""
    fov = tuple(int(s) for s in config.model.input_fov_shape)
    per_fov = {}
    for n in (1, batch):
        x = [np.random.default_rng(0).random((n, *fov, 1), dtype=np.float32),
             np.full((n, *fov, 1), 0.05, np.float32)]
        start = time.perf_counter()
        for _ in range(repeats * (batch // n)):
            model.predict_on_batch(x)
        per_fov[n] = (time.perf_counter() - start) / (repeats * batch)
    return per_fov[1] / per_fov[batch]


def fill_once(model, volume, config, batch: int, seeds=None, progress: bool = False, **options):
    from diluvian.fill import fill_volume_with_model

    recorder = Recorder(model)
    start = time.perf_counter()
    labels, stats = fill_volume_with_model(recorder, volume, seeds=seeds, move_batch_size=batch,
                                           progress=progress, config=config, **options)
    return labels, stats, time.perf_counter() - start, recorder.sizes


def bare_model_seconds(model, config, sizes: list[int]) -> float:
    fov = tuple(int(s) for s in config.model.input_fov_shape)
    rng = np.random.default_rng(0)
    inputs = {n: [rng.random((n, *fov, 1), dtype=np.float32),
                  np.full((n, *fov, 1), 0.05, np.float32)] for n in set(sizes)}
    for n in inputs:  # warm up each batch shape, as the fill's first calls did
        model.predict_on_batch(inputs[n])
    start = time.perf_counter()
    for n in sizes:
        model.predict_on_batch(inputs[n])
    return time.perf_counter() - start


def scores(truth, labels) -> dict[str, float]:
    from skimage.metrics import adapted_rand_error, variation_of_information

    split, merge = variation_of_information(truth, labels, ignore_labels=())
    return {"voi_split": float(split), "voi_merge": float(merge),
            "arand": float(adapted_rand_error(truth, labels, ignore_labels=())[0])}


#: Google FFN's own inference code with the same weights, batch 1, its seed and
#: movement policies (issue 21), all voxels counted (skimage.metrics).
FFN_PEERS = {
    "crop": {"evaluations": 493, "voi_split": 0.405, "voi_merge": 0.604, "arand": 0.095,
             "labelled": 0.83},
    "cube": {"evaluations": 25799, "voi_split": 0.923, "voi_merge": 0.910, "arand": 0.158,
             "labelled": 13867123 / 250**3},
}
#: The references of the policy table: FFN's 96^3 crop and the whole cube.
POLICY_REGIONS = {"crop": (slice(140, 236), slice(77, 173), slice(77, 173)),
                  "cube": (slice(None),) * 3}
#: Rows of the policy table: key (``--rows``), name and fill options; a row's
#: ``move_step`` (8, FFN's deltas) replaces the imported model's (11).
POLICIES = (("quality", "quality (step 8, no inset)", {"inset_fovs": False, "move_step": 8}),
            ("full_context", "full_context (FFN's margin)",
             {"inset_fovs": False, "full_context": True, "move_step": 8}),
            ("step8", "step 8 (FFN's deltas, inset)", {"inset_fovs": True, "move_step": 8}),
            ("default", "default (step 11, inset)", {"inset_fovs": True}))


def policy_table(workdir: Path, region: str, dtype_policy: str = "auto",
                 rows: tuple = ()) -> None:
    """(e): one row per fill policy (those keyed in ``rows``; all if empty) and FFN's row."""
    import h5py
    from bench_train_fill_fib25 import cpu_line  # the same CPU line in every benchmark

    from diluvian.network.ffn_import import move_fraction
    from diluvian.volumes.base import NdarrayVolume

    model, config = ffn_model(workdir, dtype_policy)
    with h5py.File(FIB25) as f:
        sl = POLICY_REGIONS[region]
        image, truth = f["volumes/raw"][sl], f["volumes/labels/neuron_ids"][sl]
    volume = NdarrayVolume([10, 10, 10], image_data=image)
    peer = FFN_PEERS[region]
    where = ("96^3 crop z 140:236, y 77:173, x 77:173" if region == "crop"
             else "whole 250^3 cube")
    print(f"(e) FIB-25 {where}, imported FFN model, batch 1, all voxels counted; {cpu_line()}")
    print(f"    {'policy':30s}{'evals':>7s}{'x FFN':>7s}{'split':>7s}{'merge':>7s}"
          f"{'ARAND':>7s}{'label':>7s}{'wall s':>8s}")
    for key, name, options in POLICIES:
        if rows and key not in rows:
            continue
        options = dict(options)
        fraction = config.model.output_fov_move_fraction
        if "move_step" in options:
            config.model.output_fov_move_fraction = move_fraction(options.pop("move_step"))
        try:
            labels, stats, wall, _ = fill_once(model, volume, config, 1, **options)
        finally:
            config.model.output_fov_move_fraction = fraction
        s = scores(truth, labels)
        print(f"    {name:30s}{stats.moves:7d}{stats.moves / peer['evaluations']:7.2f}"
              f"{s['voi_split']:7.3f}{s['voi_merge']:7.3f}{s['arand']:7.3f}"
              f"{stats.labelled_voxels / labels.size:7.1%}{wall:8.0f}", flush=True)
        print(f"      evaluations near a face {stats.evals_near_face}, in committed bodies "
              f"{stats.evals_in_committed}, revisits {stats.evals_revisit}, in rejected bodies "
              f"{stats.evals_rejected}, cancelled {stats.evals_cancelled}; single-FOV seeds "
              f"{stats.single_fov_seeds}", flush=True)
    print(f"    {'Google FFN (its own code)':30s}{peer['evaluations']:7d}{1.0:7.2f}"
          f"{peer['voi_split']:7.3f}{peer['voi_merge']:7.3f}{peer['arand']:7.3f}"
          f"{peer['labelled']:7.1%}{'':>8s}")


def bare_fovs_per_second(model, config, n: int, fovs: int = 64) -> float:
    """FOVs/s of bare ``predict_on_batch`` at batch ``n`` (after one warm-up call)."""
    fov = tuple(int(s) for s in config.model.input_fov_shape)
    x = [np.random.default_rng(0).random((n, *fov, 1), dtype=np.float32),
         np.full((n, *fov, 1), 0.05, np.float32)]
    model.predict_on_batch(x)
    calls = max(1, fovs // n)
    start = time.perf_counter()
    for _ in range(calls):
        model.predict_on_batch(x)
    return calls * n / (time.perf_counter() - start)


def batch_sweep(workdir: Path, sizes: list[int], dtype_policy: str = "auto") -> None:
    """(f): fill throughput against the bare model for each move_batch_size, on the crop."""
    import h5py
    from bench_train_fill_fib25 import cpu_line

    from diluvian.volumes.base import NdarrayVolume

    model, config = ffn_model(workdir, dtype_policy)
    with h5py.File(FIB25) as f:
        sl = POLICY_REGIONS["crop"]
        image, truth = f["volumes/raw"][sl], f["volumes/labels/neuron_ids"][sl]
    volume = NdarrayVolume([10, 10, 10], image_data=image)
    print(f"(f) batching, FIB-25 96^3 crop z 140:236, y 77:173, x 77:173, imported FFN model, "
          f"default policy; {cpu_line()}")
    print(f"    {'N':>4s}{'evals':>7s}{'calls':>7s}{'fill FOV/s':>11s}{'bare FOV/s':>11s}"
          f"{'fill/bare':>10s}{'x N=1':>7s}{'split':>7s}{'merge':>7s}{'ARAND':>7s}")
    first = None
    for n in sizes:
        warm_up(model, config, n)
        labels, stats, wall, calls = fill_once(model, volume, config, n)
        bare = bare_fovs_per_second(model, config, n)
        rate = stats.moves / wall
        first = first or rate
        sc = scores(truth, labels)
        print(f"    {n:4d}{stats.moves:7d}{len(calls):7d}{rate:11.2f}{bare:11.2f}"
              f"{rate / bare:10.2f}{rate / first:7.2f}{sc['voi_split']:7.3f}"
              f"{sc['voi_merge']:7.3f}{sc['arand']:7.3f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=40,
                        help="Edge of the FIB-25 crop for (a) and (b) (default 40).")
    parser.add_argument("--batch", type=int, default=16, help="Batched move_batch_size.")
    parser.add_argument("--fib25", default=None,
                        help="Also run (c): a crop edge in voxels (e.g. 96) or 'half'.")
    parser.add_argument("--fib25-batch", type=int, default=1,
                        help="move_batch_size for (c) (default 1: on a CPU batches gain nothing).")
    parser.add_argument("--skip-ab", action="store_true", help="Run only (c) and (d).")
    parser.add_argument("--save-labels", default=None, metavar="NPY",
                        help="Write the labels of (c) to this .npy file (for bench_blockwise.py "
                        "--single-labels).")
    parser.add_argument("--dtype-policy", default="auto",
                        help="[fill] dtype_policy for (a)-(c) (default 'auto').")
    parser.add_argument("--random-seed", type=int, default=None,
                        help="random_seed of (c) (the fill's seed order; default the "
                        "configuration's): run twice to see how much the seed order alone "
                        "moves the scores.")
    parser.add_argument("--policies", choices=sorted(POLICY_REGIONS), default=None,
                        help="Only (e): the fill policy table against Google FFN on its 96^3 "
                        "crop or the whole cube.")
    parser.add_argument("--rows", nargs="+", default=[], choices=[p[0] for p in POLICIES],
                        help="With --policies: only these policy rows (default all).")
    parser.add_argument("--batch-sweep", type=int, nargs="+", default=None, metavar="N",
                        help="Only (f): fill and bare-model FOVs/s at each move_batch_size N "
                        "on FFN's 96^3 crop.")
    args = parser.parse_args(argv)
    for part, run, what, extra in (("(f)", batch_sweep, args.batch_sweep, ()),
                                   ("(e)", policy_table, args.policies, (tuple(args.rows),))):
        if what:  # only this part
            if not (FIB25.exists() and Path(str(CHECKPOINT) + ".index").exists()):
                print(f"{part} skipped: ../shared is not available")
            else:
                run(Path(tempfile.mkdtemp(prefix="bench_fill.")), what, args.dtype_policy,
                    *extra)
            return 0

    from diluvian.preprocessing import make_seeds
    from diluvian.util import to_float_image
    from diluvian.volumes.base import NdarrayVolume

    have_shared = FIB25.exists() and Path(str(CHECKPOINT) + ".index").exists()
    workdir = Path(tempfile.mkdtemp(prefix="bench_fill."))
    if not args.skip_ab:
        if have_shared:
            model, config = ffn_model(workdir, args.dtype_policy)
            image, _ = fib25_crop(args.crop)
            what = f"FFN model, FIB-25 {args.crop}^3 crop"
            resolution = [10, 10, 10]
        else:
            from diluvian.volumes.synthetic import make_synthetic_volume

            model, config = tiny_model()
            image, _ = make_synthetic_volume(1, shape=(24, 64, 64))
            what = "tiny model, synthetic 24x64x64"
            resolution = [40, 16, 16]
        volume = NdarrayVolume(resolution, image_data=image)
        seeds = make_seeds("sobel", to_float_image(image), volume.resolution)
        print(f"(a, b) {what}: {len(seeds)} seeds")
        warm_up(model, config, args.batch)
        _, stats_b, wall_b, sizes_b = fill_once(model, volume, config, args.batch, seeds)
        bare = bare_model_seconds(model, config, sizes_b)
        print(f"(a) overhead, batch {args.batch}: fill {wall_b:.2f} s for {stats_b.moves} FOVs "
              f"in {len(sizes_b)} calls, bare model {bare:.2f} s -> ratio {wall_b / bare:.3f}; "
              f"model calls inside the fill took {stats_b.predict_seconds:.2f} s -> ratio "
              f"{wall_b / stats_b.predict_seconds:.3f}")
        labels_1, stats_1, wall_1, sizes_1 = fill_once(model, volume, config, 1, seeds)
        print(f"(b) batching: batch 1 {wall_1:.2f} s ({stats_1.moves} FOVs), batch {args.batch} "
              f"{wall_b:.2f} s ({stats_b.moves} FOVs, mean batch "
              f"{np.mean(sizes_b):.1f}) -> speed-up {wall_1 / wall_b:.2f}x; bare model "
              f"per-FOV gain of batch {args.batch} over 1: {bare_gain(model, config, args.batch):.2f}x")

    if have_shared:
        precision_gain(workdir)
    if args.fib25:
        if not have_shared:
            print("(c) skipped: ../shared is not available")
            return 0
        model, config = ffn_model(workdir, args.dtype_policy, args.random_seed)
        half = args.fib25 == "half"
        image, truth = fib25_crop(None if half else int(args.fib25), half=half)
        volume = NdarrayVolume([10, 10, 10], image_data=image)
        labels, stats, wall, sizes = fill_once(model, volume, config, args.fib25_batch,
                                               progress=True)
        if args.save_labels:
            np.save(args.save_labels, labels)
        s = scores(truth, labels)
        where = "z 125-250" if half else f"centred {args.fib25}^3 crop"
        print(f"(c) FIB-25 {where}, dtype policy {config.fill.dtype_policy}: {stats.bodies} "
              f"bodies, {stats.moves} network evaluations ({stats.wasted_moves} of them in "
              f"{stats.cancelled_regions} regions cancelled by an earlier body, "
              f"{stats.blocked_moves} moves into committed bodies skipped, "
              f"{stats.weak_seeds} regions stopped on a weak seed, "
              f"{stats.rejected_small} bodies under min_body_size), "
              f"{wall:.1f} s, {stats.labelled_voxels / labels.size:.1%} labelled")
        print(f"    where the evaluations went (overlapping): {stats.evals_near_face} near a "
              f"face, {stats.evals_in_committed} in committed bodies, {stats.evals_revisit} "
              f"revisits, {stats.evals_rejected} in rejected bodies, {stats.evals_cancelled} in "
              f"cancelled regions, {stats.single_fov_seeds} single-FOV seeds")
        print(f"    {'':14s}{'ours':>8s}{'FFN (z 125-250)':>18s}")
        for key, name in (("voi_split", "VOI split"), ("voi_merge", "VOI merge"),
                          ("arand", "adapted Rand")):
            print(f"    {name:14s}{s[key]:8.3f}{FFN_PUBLISHED[key]:18.3f}")
        if not half and int(args.fib25) == 96:
            p = FFN_PEER_96
            print(f"    96^3 peer (FFN code, 2 cores): {p['objects']} objects, "
                  f"{p['evaluations']} evaluations, {p['seconds']:.0f} s")
            print(f"    ours, defaults: {stats.bodies} objects, {stats.moves} evaluations, "
                  f"{wall:.0f} s (evaluations ratio {stats.moves / p['evaluations']:.2f}, "
                  f"time ratio {wall / p['seconds']:.2f})")
            # FFN keeps every FOV inside the volume: the same rule here.
            labels_c, stats_c, wall_c, _ = fill_once(model, volume, config, args.fib25_batch,
                                                     full_context=True)
            sc = scores(truth, labels_c)
            print(f"    ours, full_context (FFN's margin rule): {stats_c.bodies} objects, "
                  f"{stats_c.moves} evaluations, {wall_c:.0f} s (evaluations ratio "
                  f"{stats_c.moves / p['evaluations']:.2f}, time ratio "
                  f"{wall_c / p['seconds']:.2f}); VOI split {sc['voi_split']:.3f}, merge "
                  f"{sc['voi_merge']:.3f}, adapted Rand {sc['arand']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
