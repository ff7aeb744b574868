"""FIB-25 acceptance table: the imported Google FFN model filling 20 seeded objects.

Prints, per seed: the seed (Z, Y, X), the ground-truth object id and size,
the moves made, and IoU, precision and recall with the seeded object, then
the median IoU (the acceptance criterion is a median of at least 0.8) and
the fill throughput. Same protocol as ``tests/test_acceptance_fib25.py``:
objects of at least 20,000 voxels chosen with a fixed seed, each seeded at
its distance-transform maximum 24 voxels or more from the border, filled
with FFN's inference settings inside a box centred on the seed and scored
within that box (``--box 0`` fills in the whole volume; much slower).

    python benchmarks/bench_acceptance_fib25.py [--box 40] [--num-seeds 20]

Needs ``../shared`` (or ``$DILUVIAN_SHARED``). About 5 minutes on 2 cores
with the default 40^3 box.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DILUVIAN_SHARED", ROOT.parent / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box", type=int, default=40,
                        help="Edge of the box each fill is confined to (0: whole volume).")
    parser.add_argument("--num-seeds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="Random seed choosing objects.")
    parser.add_argument("--batch-size", type=int, default=16, help="FOVs per model call.")
    args = parser.parse_args()

    h5 = SHARED / "data" / "fib25" / "training_sample2.h5"
    checkpoint = SHARED / "models" / "ffn_fib25" / "model.ckpt-27465036"
    if not h5.exists() or not Path(f"{checkpoint}.index").exists():
        raise SystemExit(f"FIB-25 data or FFN checkpoint not found under {SHARED}")

    from diluvian.config import Config
    from diluvian.network import (
        apply_model_settings,
        import_ffn_checkpoint,
        load_model,
        read_model_settings,
    )
    from diluvian.sparse_fill import fill_seeded_objects, object_seeds
    from diluvian.util import make_rng
    from diluvian.volumes import load_volumes

    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "ffn_fib25.keras"
        import_ffn_checkpoint(checkpoint, model_file)
        config = Config()
        apply_model_settings(config, read_model_settings(model_file))
        model = load_model(model_file)
        toml = Path(tmp) / "fib25.toml"
        toml.write_text(f'[[dataset]]\nname = "fib25"\nhdf5_file = "{h5}"\n'
                        'image_dataset = "volumes/raw"\n'
                        'label_dataset = "volumes/labels/neuron_ids"\n')
        volume = load_volumes([toml], in_memory=True)["fib25"]

    image = np.asarray(volume.image_data)
    labels = np.asarray(volume.label_data)
    t0 = time.perf_counter()
    seeds = object_seeds(labels, args.num_seeds, make_rng(args.seed, "fib25-acceptance"))
    t_seeds = time.perf_counter() - t0
    box = None if args.box <= 0 else (args.box,) * 3
    t0 = time.perf_counter()
    results = fill_seeded_objects(image, labels, seeds, model, config.model, box_shape=box,
                                  batch_size=args.batch_size, progress=True)
    t_fill = time.perf_counter() - t0

    print(f"FIB-25 {list(labels.shape)}, FFN settings: move step "
          f"{config.model.move_step.tolist()}, t_move {config.model.t_move}, t_final "
          f"{config.model.t_final_value}; box {'whole volume' if box is None else list(box)}")
    header = (f"{'#':>2} {'seed (z, y, x)':<16} {'object':>8} {'size':>8} {'dist':>5} "
              f"{'moves':>6} {'IoU':>6} {'prec':>6} {'recall':>6}")
    print(header)
    print("-" * len(header))
    for i, r in enumerate(results):
        seed = ",".join(str(s) for s in r["seed_vox"])
        print(f"{i:>2} {seed:<16} {r['label_id']:>8} {r['size_vox']:>8} "
              f"{r['distance_vox']:>5.1f} {r['moves']:>6} {r['iou']:>6.3f} "
              f"{r['precision']:>6.3f} {r['recall']:>6.3f}")
    ious = np.array([r["iou"] for r in results])
    moves = sum(r["moves"] for r in results)
    print("-" * len(header))
    print(f"median IoU {np.median(ious):.3f} (mean {ious.mean():.3f}, min {ious.min():.3f}); "
          f"{int((ious >= 0.8).sum())}/{len(ious)} at least 0.8")
    print(f"{moves} FOVs in {t_fill:.1f} s ({moves / t_fill:.1f} FOV/s); seeds {t_seeds:.1f} s")


if __name__ == "__main__":
    main()
