"""Benchmark: random FOV-sized reads from a lazily read, chunked HDF5 volume.

Compares, on the same random 13 x 33 x 33 boxes of one chunked, compressed
HDF5 file (written to a temporary folder):

- raw h5py slicing (the baseline),
- ``HDF5Volume.image_data[box]`` (lazy volume access),
- ``HDF5Volume.get_subvolume(bounds)`` (image to float32 + label mask),
  against raw h5py reads of image and labels plus the same float conversion,
- the same through a ``PartitionedVolume`` view.

Prints the time per read and the ratio to the baseline (target: within
1.5x). Run: ``python benchmarks/bench_volumes.py [--reads N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from diluvian.util import to_float_image
from diluvian.volumes import HDF5Volume, SubvolumeBounds

SHAPE = (96, 512, 512)
BOX = np.array([13, 33, 33])


def _time(fn, boxes) -> float:
    t = time.perf_counter()
    for b in boxes:
        fn(b)
    return (time.perf_counter() - t) / len(boxes)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="random boxes per method")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        image = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        labels = (rng.integers(0, 50, SHAPE) // 7).astype(np.uint64)
        HDF5Volume.write_file(path, (40, 16, 16), image_data=image, label_data=labels)
        del image, labels
        starts = rng.integers(0, np.array(SHAPE) - BOX + 1, size=(args.reads, 3))
        boxes = [tuple(slice(int(a), int(a + n)) for a, n in zip(s, BOX)) for s in starts]
        bounds = [SubvolumeBounds(s, s + BOX) for s in starts]

        vol = HDF5Volume(path, "volumes/raw", "volumes/labels/neuron_ids")
        view = vol.partition([1, 1, 1], [0, 0, 0])
        with h5py.File(path, "r") as plain, h5py.File(
                path, "r", rdcc_nbytes=64 * 2 ** 20, rdcc_nslots=10007) as cached:
            results = {}
            for name, f in (("h5py (default chunk cache)", plain),
                            ("h5py (same 64 MiB chunk cache)", cached)):
                raw, lab = f["volumes/raw"], f["volumes/labels/neuron_ids"]
                results[name] = _time(lambda b, raw=raw: raw[b], boxes)

                def raw_subvolume(b, raw=raw, lab=lab):
                    img = to_float_image(raw[b])
                    centre = tuple(s.start + n // 2 for s, n in zip(b, BOX))
                    return img, lab[b] == lab[centre]

                results[name + ": image+labels"] = _time(raw_subvolume, boxes)
            base = results["h5py (same 64 MiB chunk cache)"]
            base_sv = results["h5py (same 64 MiB chunk cache): image+labels"]
            results["HDF5Volume.image_data[box]"] = _time(lambda b: vol.image_data[b], boxes)
            results["PartitionedVolume.image_data[box]"] = _time(
                lambda b: view.image_data[b], boxes)
            results["HDF5Volume.get_subvolume"] = _time(vol.get_subvolume, bounds)
            results["PartitionedVolume.get_subvolume"] = _time(view.get_subvolume, bounds)
    print(f"{args.reads} random {BOX.tolist()} reads from a chunked, gzip HDF5 volume {SHAPE}")
    for name, t in results.items():
        ref = base_sv if ("subvolume" in name or "image+labels" in name) else base
        print(f"  {name:48s} {t * 1e6:9.1f} us/read   ratio {t / ref:5.2f}")
    print("ratios: image reads vs h5py with the same cache; subvolumes vs h5py image+labels "
          "(target <= 1.5)")


if __name__ == "__main__":
    main()
