"""Training throughput: diluvian's pipelines against bare Keras, and mixed precision.

For each network (``--networks``: the default U-Net, an FFN-style residual
stack, a tiny U-Net), measured side by side in one process with the same
shapes and batch:

- **single-FOV pipeline**: ``model.fit`` on ``make_tf_dataset`` (the
  seeded sampling and augmentation ``diluvian train`` uses without moves)
  against ``model.fit`` on in-memory arrays (aim: at least 0.95);
- **moving training**: :class:`diluvian.training.MovingTrainer` steps (read
  ahead, region updates, moves) against a bare ``train_on_batch`` +
  ``predict_on_batch`` on arrays, the same network work (aim: at least 0.95);
- **mixed precision**: ``model.fit`` on arrays under ``mixed_bfloat16`` (a
  CPU) or ``mixed_float16`` (a GPU) against float32 (aim: at least 1.8x on
  a CPU with native bfloat16).

The CPU flags that matter are printed first. Alternating rounds, medians.

Usage::

    python benchmarks/bench_training.py                          # convstack + tiny
    python benchmarks/bench_training.py --networks unet --steps 4  # minutes on CPU

Small synthetic volumes are generated in memory (no download, no cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_fill_fib25 import cpu_line  # noqa: E402

NETWORKS = {
    "unet": ({}, {}),
    "convstack": ({"factory": "diluvian.network.make_ffn_convstack", "num_modules": 4,
                   "convolution_filters": 24}, {"input_fov_shape": [25, 25, 25],
                                                "output_fov_shape": [25, 25, 25]}),
    "tiny": ({"num_modules": 1, "convolution_filters": 4, "unet_depth": 1}, {}),
}


def _volumes(shape):
    from diluvian.volumes import NdarrayVolume, make_synthetic_volume

    vols = {}
    for i, name in enumerate(("bench_a", "bench_b")):
        image, labels = make_synthetic_volume(1000 + i, shape=shape)
        vols[name] = NdarrayVolume((40, 16, 16), image_data=image, label_data=labels)
    return vols


def _timer():
    import keras

    class Timer(keras.callbacks.Callback):
        """Wall time of batches after the first ``skip`` (tracing, queue warm-up)."""

        skip = 2

        def on_train_begin(self, logs=None):
            self.stamps = []

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

        def samples_per_s(self, batch_size):
            t = self.stamps[self.skip:]
            return (len(t) - 1) * batch_size / (t[-1] - t[0])

    return Timer()


def _config(name: str, batch: int, steps: int, workers):
    from diluvian.config import Config

    network, model = NETWORKS[name]
    training = {"gpu_batch_size": batch, "training_size": steps * batch, "dtype_policy": "float32",
                "augment_use_both": False}
    if workers is not None:
        training["num_workers"] = workers
    if model:
        fov = model["input_fov_shape"]
        model = dict(model, training_subv_shape=[f + 12 for f in fov])
        training["partitions"] = {}
    return Config([{"network": network, "model": model, "training": training,
                    "volume": {"resolution": [40, 16, 16]}}])


def _model(config, policy=None):
    from diluvian.network import (
        compile_network,
        make_network,
        training_policy_scope,
        with_dtype_policy,
    )

    with training_policy_scope(policy):
        model = make_network(config.model, config.network)
        if policy is not None:
            model = with_dtype_policy(model, policy)
        return compile_network(model, config.optimizer)


def _fit_rate(model, inputs, batch: int) -> float:
    timer = _timer()
    model.fit(*inputs, epochs=1, shuffle=False, verbose=0, callbacks=[timer],
              **({"batch_size": batch} if isinstance(inputs[0], list) else {}))
    return timer.samples_per_s(batch)


def _moving_rates(model, config, training, steps: int) -> tuple[float, float]:
    """Samples/s of MovingTrainer steps and of bare train + predict on the same arrays."""
    from diluvian.training import MovingTrainer
    from diluvian.training.data import TrainingData

    data = TrainingData(training, config, subv_shape=config.model.training_subv_shape_value)
    trainer = MovingTrainer(model, data, config)
    try:
        _, x, y = trainer.next_batch()
        for _ in range(2):
            trainer.step()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        moving = steps * data.batch_size / (time.perf_counter() - start)
    finally:
        trainer.close()
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(list(x), y)
        model.predict_on_batch(list(x))
    bare = steps * data.batch_size / (time.perf_counter() - start)
    return moving, bare


def bench_network(name: str, args) -> None:
    import tensorflow as tf

    from diluvian.network import resolve_training_dtype_policy
    from diluvian.training.data import TrainingData, make_tf_dataset
    from diluvian.volumes import partition_volumes

    steps = args.steps + 2
    config = _config(name, args.batch, steps, args.workers)
    vol_shape = (64, 192, 192) if name != "convstack" else (48, 96, 96)
    training, _ = partition_volumes(_volumes(vol_shape), config=config)
    data = TrainingData(training, config)
    fov = config.model.input_fov_shape.tolist()
    print(f"\n[{name}] {config.network.factory}, FOV {fov}, batch {args.batch}, workers "
          f"{config.training.num_workers}", flush=True)
    model = _model(config)
    (images, masks), targets = data.batch(0)
    arrays_in = ([np.concatenate([images] * steps), np.concatenate([masks] * steps)],
                 np.concatenate([targets] * steps))
    arrays, pipeline, moving, bare = [], [], [], []
    for _ in range(args.rounds):
        arrays.append(_fit_rate(model, arrays_in, args.batch))
        dataset = make_tf_dataset(data, workers=config.training.num_workers).take(steps)
        pipeline.append(_fit_rate(model, (dataset,), args.batch))
        m, b = _moving_rates(model, config, training, args.steps)
        moving.append(m)
        bare.append(b)
    policy = resolve_training_dtype_policy("auto") or (
        "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    mixed_model = _model(config, policy)
    mixed, plain = [], []
    for _ in range(args.rounds):
        plain.append(_fit_rate(model, arrays_in, args.batch))
        mixed.append(_fit_rate(mixed_model, arrays_in, args.batch))
    med = {k: float(np.median(v)) for k, v in (("arrays", arrays), ("pipeline", pipeline),
                                                ("moving", moving), ("bare", bare),
                                                ("mixed", mixed), ("plain", plain))}
    print(f"  fit on arrays            {med['arrays']:8.1f} samples/s")
    print(f"  fit on the pipeline      {med['pipeline']:8.1f} samples/s   "
          f"ratio {med['pipeline'] / med['arrays']:.3f} (aim >= 0.95)")
    print(f"  bare train+predict       {med['bare']:8.1f} samples/s")
    print(f"  moving training          {med['moving']:8.1f} samples/s   "
          f"ratio {med['moving'] / med['bare']:.3f} (aim >= 0.95)")
    print(f"  float32 fit              {med['plain']:8.1f} samples/s")
    print(f"  {policy:15s} fit      {med['mixed']:8.1f} samples/s   "
          f"ratio {med['mixed'] / med['plain']:.2f} (aim >= 1.8 with native bfloat16)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS),
                        default=["convstack", "tiny"])
    parser.add_argument("--batch", type=int, default=8, help="gpu_batch_size")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run (+2 warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--workers", type=int, default=None, help="num_workers (default: config)")
    args = parser.parse_args(argv)
    print(cpu_line())
    for name in args.networks:
        bench_network(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
