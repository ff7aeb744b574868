"""Optional: train for a few minutes on the first Z half of FIB-25, fill objects in the second.

Prints the validation loss and F0.5 (the configured ``validation_metric``)
of the network before and after training, side by side, on fixed seeded
subvolumes of the second Z half (``partitions = [2, 1, 1]``). Needs
``../shared/data/fib25/training_sample2.h5`` (or ``--fib25 PATH``); skipped
when it is absent.

Usage::

    python benchmarks/bench_train_fib25.py --minutes 3

Measured once on the shared 2-core CPU machine (``--minutes 2``, tiny U-Net,
FOV [17, 17, 17] at 10 nm, 64 validation subvolumes): untrained val_loss
0.693, F0.5 0.619 (the untrained net says ~0.5 everywhere, i.e. all
foreground at ``t_move = 0.5``); trained val_loss 0.502, F0.5 0.753 (x1.22).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_FIB25 = (Path(__file__).resolve().parents[2] / "shared" / "data" / "fib25"
                 / "training_sample2.h5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fib25", default=str(DEFAULT_FIB25))
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall time")
    parser.add_argument("--filters", type=int, default=8, help="convolution_filters")
    args = parser.parse_args()
    if not Path(args.fib25).exists():
        print(f"skipped: {args.fib25} not found")
        return

    import keras

    from diluvian.config import Config, OptimizerConfig
    from diluvian.network import compile_network, make_network
    from diluvian.training.data import TrainingData, make_py_dataset
    from diluvian.training.validation import ValidationSet
    from diluvian.volumes import HDF5Volume, partition_volumes

    config = Config([{
        "random_seed": 1,
        "volume": {"resolution": [10, 10, 10]},
        "model": {"input_fov_shape": [17, 17, 17], "output_fov_shape": [17, 17, 17],
                  "t_move": 0.5},
        "network": {"num_modules": 1, "convolution_filters": args.filters, "unet_depth": 2,
                    "unet_downsample_rate": [1, 1, 1], "dropout_probability": 0.0},
        "training": {"gpu_batch_size": 8, "training_size": 4000, "validation_size": 64,
                     "partitions": {".*": [2, 1, 1]}, "label_erosion": [1, 1, 1]},
    }])
    config.optimizer = OptimizerConfig({"klass": "Adam", "learning_rate": 0.003,
                                        "loss": "binary_crossentropy"})
    volume = HDF5Volume(args.fib25, image_dataset="volumes/raw",
                        label_dataset="volumes/labels/neuron_ids").to_memory_volume()
    training, validation = partition_volumes({"fib25": volume}, config=config)
    data = TrainingData(training, config)
    val = ValidationSet(validation, config)

    keras.utils.set_random_seed(1)
    model = compile_network(make_network(config.model, config.network), config.optimizer)
    before = val.evaluate(model, batch_size=32)

    deadline = time.monotonic() + 60 * args.minutes

    class StopAtDeadline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() > deadline:
                self.model.stop_training = True

    t0 = time.monotonic()
    history = model.fit(make_py_dataset(data, workers=config.training.num_workers), epochs=1000,
                        callbacks=[StopAtDeadline()], verbose=0)
    trained_s = time.monotonic() - t0
    after = val.evaluate(model, batch_size=32)
    print(f"trained {trained_s / 60:.1f} min, {len(history.history['loss'])} epoch(s) of "
          f"{data.steps_per_epoch} steps; last loss {history.history['loss'][-1]:.4f}")
    print(f"{'':10}  {'val_loss':>9}  {'F0.5':>7}   ({len(val)} subvolumes, second Z half)")
    print(f"{'untrained':10}  {before['loss']:9.4f}  {before['metric']:7.4f}")
    print(f"{'trained':10}  {after['loss']:9.4f}  {after['metric']:7.4f}")
    print(f"F0.5 trained / untrained: {after['metric'] / max(before['metric'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
