"""Training throughput: the real data pipeline against ``model.fit`` on in-memory arrays.

Both runs train the same network, shapes and batch size, measured side by
side in one process, and print the ratio (aim: at least 0.9, i.e. data
generation hides behind the training step). The pipeline run uses the
default configuration's augmentations and ``num_workers`` and, by default,
the ``tf.data`` pipeline ``diluvian train`` uses (``make_tf_dataset``, with
prefetching); ``--pipeline py`` measures the ``keras.utils.PyDataset``
(``make_py_dataset``), for which Keras turns tf.data prefetching off.

Usage::

    python benchmarks/bench_training.py                   # tiny U-Net: the pipeline's share shows
    python benchmarks/bench_training.py --unet --steps 4  # default U-Net (minutes on CPU)
    python benchmarks/bench_training.py --batch 32 --steps 20
    python benchmarks/bench_training.py --pipeline py     # the PyDataset, for comparison

Measured on the shared 2-core CPU machine (load average ~8, so noisy), with
the PyDataset pipeline training used then: tiny U-Net, FOV [13, 33, 33], batch 8, 4 workers: arrays 106 samples/s,
pipeline 92 samples/s, ratio 0.87 (0.97 and 1.4 in earlier single runs);
default U-Net, batch 8: arrays 1.7 samples/s, pipeline 1.5 samples/s,
ratio 0.88. Data generation alone runs at 1,300-2,900 samples/s on one
thread, so the gap is CPU contention on 2 shared cores, not data.

Small synthetic volumes are generated in memory (no download, no cache).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unet", action="store_true",
                        help="the default U-Net (minutes on CPU) instead of a tiny network")
    parser.add_argument("--batch", type=int, default=8, help="gpu_batch_size")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run (plus 2 warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--workers", type=int, default=None, help="num_workers (default: config)")
    parser.add_argument("--pipeline", choices=("tf", "py"), default="tf",
                        help="tf: make_tf_dataset (what training uses); py: make_py_dataset")
    args = parser.parse_args()

    from diluvian.config import Config
    from diluvian.network import compile_network, make_network
    from diluvian.training.data import TrainingData, make_py_dataset, make_tf_dataset
    from diluvian.volumes import partition_volumes

    settings = {"training": {"gpu_batch_size": args.batch}}
    if not args.unet:
        settings["network"] = {"num_modules": 1, "convolution_filters": 4, "unet_depth": 1}
    if args.workers is not None:
        settings["training"]["num_workers"] = args.workers
    steps = args.steps + 2
    settings["training"]["training_size"] = steps * args.batch  # per volume: plenty
    config = Config([settings])
    training, _ = partition_volumes(_volumes((64, 192, 192)), config=config)
    data = TrainingData(training, config)
    t = config.training
    fov = config.model.input_fov_shape.tolist()
    print(f"network: {config.network.factory if args.unet else 'tiny U-Net'}, FOV {fov}, batch "
          f"{t.batch_size}, workers {t.num_workers}, pipeline {args.pipeline}, augmentations "
          f"{[type(a).__name__ for a in data.augmentations]}")

    # Same model (weights reset between runs would not change the timing).
    model = compile_network(make_network(config.model, config.network), config.optimizer)

    # Pre-made in-memory arrays of the same shapes.
    (images, masks), targets = data.batch(0)
    reps = steps
    x_img = np.concatenate([images] * reps)
    x_mask = np.concatenate([masks] * reps)
    y = np.concatenate([targets] * reps)

    # Alternate the two runs so that changes in machine load hit both alike.
    arrays_runs, pipeline_runs = [], []
    for _ in range(args.rounds):
        timer = _timer()
        model.fit([x_img, x_mask], y, batch_size=t.batch_size, epochs=1, shuffle=False,
                  verbose=0, callbacks=[timer])
        arrays_runs.append(timer.samples_per_s(t.batch_size))
        if args.pipeline == "tf":
            dataset = make_tf_dataset(data, workers=t.num_workers).take(steps)
        else:
            dataset = make_py_dataset(data, workers=t.num_workers)
        timer = _timer()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
                  callbacks=[timer])
        pipeline_runs.append(timer.samples_per_s(t.batch_size))
    arrays, pipeline = float(np.median(arrays_runs)), float(np.median(pipeline_runs))

    t0 = time.perf_counter()
    for i in range(3):
        data.batch(100 + i)
    gen = 3 * t.batch_size / (time.perf_counter() - t0)

    print(f"in-memory arrays : {arrays:8.1f} samples/s (median of {args.rounds})")
    print(f"real pipeline    : {pipeline:8.1f} samples/s (median of {args.rounds})")
    print(f"data generation alone (one thread): {gen:8.1f} samples/s")
    print(f"ratio pipeline / arrays: {pipeline / arrays:.3f}  (aim >= 0.9)")


if __name__ == "__main__":
    main()
