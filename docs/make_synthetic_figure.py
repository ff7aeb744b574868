"""Write docs/images/synthetic_vs_fib25.png: a synthetic EM section beside FIB-25.

Run from the repository root: ``python docs/make_synthetic_figure.py
[FIB25_H5]``. The FIB-25 file defaults to ``../shared/data/fib25/
training_sample2.h5``; without it only the synthetic panels are drawn.
Both image panels show the same physical field of view (2.5 um).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from diluvian.volumes import DATASET_SEED, make_synthetic_volume
from diluvian.volumes.synthetic import SYNTHETIC_RESOLUTION

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "synthetic_vs_fib25.png"
FIELD_NM = 2500


def main(argv: list[str]) -> None:
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fib_path = Path(argv[0]) if argv else ROOT.parent / "shared" / "data" / "fib25" / \
        "training_sample2.h5"
    image, labels = make_synthetic_volume(DATASET_SEED)
    n = FIELD_NM // SYNTHETIC_RESOLUTION[1]
    z = image.shape[0] // 2
    section = labels[z, :n, :n]
    colors = np.random.default_rng(0).uniform(0.2, 1.0, (int(labels.max()) + 1, 3))
    panels = [(image[z, :n, :n], "gray", f"synthetic (z={z}, {SYNTHETIC_RESOLUTION[1]} nm/px)"),
              (colors[section], None, "synthetic labels")]
    if fib_path.exists():
        with h5py.File(fib_path, "r") as f:
            raw = f["volumes/raw"]
            res = float(np.asarray(raw.attrs.get("resolution", [10, 10, 10]))[1])
            m = int(FIELD_NM // res)
            panels.append((raw[raw.shape[0] // 2, :m, :m], "gray", f"FIB-25 ({res:g} nm/px)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), dpi=80)
    for ax, (data, cmap, title) in zip(axes, panels):
        ax.imshow(data, cmap=cmap, interpolation="nearest",
                  **({"vmin": 0, "vmax": 255} if cmap == "gray" else {}))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
