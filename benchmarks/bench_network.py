"""Network prediction throughput on CPU: FOVs per second at batch 1 and batch 16.

Measures ``predict_on_batch`` of the default U-Net (``diluvian/conf/default.toml``)
and, when ``../shared/models/ffn_fib25`` is present, of the imported FFN model,
side by side in one run, and prints the batch gain (FOVs/s at batch 16 divided
by FOVs/s at batch 1) and the FFN/U-Net cost ratio.

Usage: ``python benchmarks/bench_network.py [--seconds 8] [--batch 16]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

FFN_CHECKPOINT = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "ffn_fib25" \
    / "model.ckpt-27465036"


def fovs_per_second(model, batch_size: int, seconds: float, rng: np.random.Generator) -> float:
    """FOVs per second of ``model.predict_on_batch`` at ``batch_size`` (after a warm-up call)."""
    shape = (batch_size, *model.inputs[0].shape[1:])
    image = rng.random(shape, dtype=np.float32)
    mask = np.full(shape, 0.05, dtype=np.float32)
    model.predict_on_batch([image, mask])  # trace / warm up
    calls = 0
    start = time.perf_counter()
    while True:
        model.predict_on_batch([image, mask])
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 2:
            break
    return calls * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="Seconds measured per model and batch size.")
    parser.add_argument("--batch", type=int, default=16, help="Large batch size.")
    args = parser.parse_args()

    from diluvian import network
    from diluvian.config import Config

    rng = np.random.default_rng(0)
    config = Config()
    models = {"default U-Net " + "x".join(map(str, config.model.input_fov_shape)):
              network.make_network(config.model, config.network)}
    if Path(str(FFN_CHECKPOINT) + ".index").exists():
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "ffn.keras"
            network.import_ffn_checkpoint(FFN_CHECKPOINT, out)
            models["imported FFN 33x33x33"] = network.load_model(out)
    else:
        print(f"(FFN checkpoint not found at {FFN_CHECKPOINT}; skipping the FFN model)")

    print(f"{'model':28s} {'FOVs/s b=1':>11s} {'FOVs/s b=' + str(args.batch):>12s} "
          f"{'batch gain':>10s}")
    rates = {}
    for name, model in models.items():
        one = fovs_per_second(model, 1, args.seconds, rng)
        many = fovs_per_second(model, args.batch, args.seconds, rng)
        rates[name] = (one, many)
        print(f"{name:28s} {one:11.2f} {many:12.2f} {many / one:10.2f}")
    if len(rates) == 2:
        (unet1, unet_n), (ffn1, ffn_n) = rates.values()
        print(f"U-Net / FFN throughput ratio: batch 1 {unet1 / ffn1:.2f}, "
              f"batch {args.batch} {unet_n / ffn_n:.2f}")


if __name__ == "__main__":
    main()
