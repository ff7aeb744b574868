"""What training shows besides its model: the history plot and the ``--viewer`` sample."""

from __future__ import annotations

import math

import numpy as np

from ..util import DiluvianError, atomic_output
from .data import TrainingData

__all__ = ["plot_history", "show_training_sample"]


def plot_history(history: list[dict[str, float]], filename) -> None:
    """Plot loss and metrics per epoch to a PNG file (matplotlib Agg), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    metrics = sorted({k for row in history for k in row
                      if k not in ("epoch", "loss", "val_loss")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("loss", "val_loss"):
        axes[0].plot(epochs, [row.get(key, math.nan) for row in history], marker="o", label=key)
    axes[0].set_xlabel("epoch")
    axes[0].set_title("loss")
    axes[0].legend()
    for key in metrics:
        axes[1].plot(epochs, [row.get(key, math.nan) for row in history], marker="o", label=key)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("metrics")
    if metrics:
        axes[1].legend()
    fig.tight_layout()
    with atomic_output(filename, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


#: Shader for probability layers (mask input, output) in the ``--viewer`` view.
_PROBABILITY_SHADER = """#uicontrol vec3 color color(default="#00ff00")
#uicontrol float opacity slider(min=0, max=1, default=0.6)
void main() {
  emitRGBA(vec4(color, opacity * clamp(toRaw(getDataValue()), 0.0, 1.0)));
}
"""


def _require(module: str, flag: str) -> None:
    """Raise a one-line :class:`DiluvianError` unless ``module`` can be imported."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise DiluvianError(f"{flag} needs the {module!r} package (pip install {module})") from None


def show_training_sample(model, data: TrainingData, viewer_class=None):
    """Show training sample 0 of epoch 0 and the model's output in a neuroglancer viewer.

    Layers (ZYX, in the sample's volume resolution): ``image`` (the input
    FOV), ``mask input`` (the seeded mask the network is given), ``target``
    (the object mask the output is trained towards) and ``output`` (the
    model's predicted probabilities), the last two placed at the output
    FOV's offset within the input FOV. Prints the viewer URL and waits for
    Enter (``v`` + Enter opens a browser).

    Parameters
    ----------
    model : keras.Model
    data : TrainingData
        The training samples (the first sample is shown).
    viewer_class : type, optional
        Defaults to :class:`diluvian.viewer.WrappedViewer`.

    Returns
    -------
    WrappedViewer
    """
    if viewer_class is None:
        from ..viewer import WrappedViewer as viewer_class
    subv = data.subvolume(0, epoch=0)
    image, mask, target, _ = data.sample_from_subvolume(subv)
    output = np.asarray(model.predict([image[None, ..., None], mask[None, ..., None]],
                                      verbose=0))[0, ..., 0]
    offset = (np.asarray(image.shape) - np.asarray(output.shape)) // 2
    volume = dict(data.volumes)[data.volume_name(0)]
    viewer = viewer_class(voxel_size=[float(r) for r in volume.resolution])
    viewer.add(image, name="image")
    viewer.add(mask, name="mask input", shader=_PROBABILITY_SHADER)
    viewer.add(target > 0.5, name="target", kind="mask", offset=offset)
    viewer.add(output, name="output", offset=offset, shader=_PROBABILITY_SHADER)
    viewer.print_view_prompt()
    return viewer
