"""Animations of a region being filled: orthogonal slices of the mask over the image.

Matplotlib is imported only when an animation is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..util import DiluvianError, atomic_output, to_float_image

if TYPE_CHECKING:
    from .region import Region

__all__ = ["fill_animation"]


def _planes(volume, seed) -> list[np.ndarray]:
    """YX, ZX and ZY planes through ``seed``."""
    z, y, x = (int(s) for s in seed)
    return [np.asarray(volume[z:z + 1, :, :])[0], np.asarray(volume[:, y:y + 1, :])[:, 0],
            np.asarray(volume[:, :, x:x + 1])[:, :, 0]]


def fill_animation(
    region: Region,
    filename,
    model: Any,
    *,
    max_frames: int = 200,
    fps: int = 10,
    dpi: int = 80,
    stopping_callback=None,
    **fill_kwargs,
) -> None:
    """Fill ``region`` with ``model`` and write an animation of the fill.

    Each frame shows the YX, ZX and ZY planes through the seed: the image in
    grey with the mask probability overlaid (unset voxels clear), and the FOV centre of the last
    move when it lies in the plane. When a fill has more moves than
    ``max_frames``, frames are kept at a regular stride of moves.

    Parameters
    ----------
    region : Region
        An unfilled region.
    filename : str or path-like
        Output ``.gif`` (Pillow) or ``.mp4`` (needs ffmpeg); written
        atomically.
    model : keras.Model or callable
        See :meth:`Region.fill`.
    max_frames, fps, dpi : int
        Animation size and speed.
    stopping_callback : callable, optional
        As for :meth:`Region.fill`.
    **fill_kwargs
        Other keyword arguments of :meth:`Region.fill`.
    """
    from matplotlib import animation
    from matplotlib.figure import Figure

    path = Path(filename)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        writer = animation.PillowWriter(fps=fps)
    elif suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise DiluvianError(f"{path}: writing .mp4 animations needs ffmpeg; use a .gif name")
        writer = animation.FFMpegWriter(fps=fps)
    else:
        raise DiluvianError(f"{path}: animation file name must end in .gif or .mp4")

    frames: list[tuple[list[np.ndarray], tuple | None]] = []
    stride = [1]

    def record(r: Region) -> None:
        if r.num_moves % stride[0]:
            return
        frames.append((_planes(r.mask, r.seed_vox), r.last_center_vox))
        if len(frames) > max_frames:
            del frames[1::2]
            stride[0] *= 2

    def callback(r: Region) -> bool:
        record(r)
        return bool(stopping_callback(r)) if stopping_callback is not None else False

    record(region)
    region.fill(model, stopping_callback=callback, **fill_kwargs)
    final = (_planes(region.mask, region.seed_vox), region.last_center_vox)
    if not frames or frames[-1][1] != final[1]:
        frames.append(final)

    images = [to_float_image(p) for p in _planes(region.image, region.seed_vox)]
    seed = region.seed_vox
    fig = Figure(figsize=(12, 4))
    axes = fig.subplots(1, 3)
    overlays, markers = [], []
    titles = [f"YX (z={seed[0]})", f"ZX (y={seed[1]})", f"ZY (x={seed[2]})"]
    for ax, image, title in zip(axes, images, titles):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        overlays.append(ax.imshow(np.ma.masked_all(image.shape), cmap="inferno", vmin=0, vmax=1,
                                  alpha=0.5, interpolation="nearest"))
        (marker,) = ax.plot([], [], "c+", markersize=10)
        markers.append(marker)
        ax.set_title(title)
        ax.set_axis_off()
    fig.tight_layout()
    # Which two volume axes each plane shows, and which axis is fixed.
    plane_axes = [((1, 2), 0), ((0, 2), 1), ((0, 1), 2)]

    def draw(i: int):
        planes, centre = frames[i]
        for overlay, marker, plane, (shown, fixed) in zip(overlays, markers, planes, plane_axes):
            overlay.set_data(np.ma.masked_invalid(plane))  # unset voxels stay clear
            if centre is not None and centre[fixed] == seed[fixed]:
                marker.set_data([centre[shown[1]]], [centre[shown[0]]])
            else:
                marker.set_data([], [])
        return [*overlays, *markers]

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), blit=False)
    with atomic_output(path) as tmp:
        anim.save(str(tmp), writer=writer, dpi=dpi)
