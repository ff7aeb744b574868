"""Neuroglancer viewing of volumes, and PNG montages for machines without a browser.

:class:`WrappedViewer` wraps :class:`neuroglancer.Viewer` with the small
interface the rest of diluvian uses (``add``, ``get_json_state``,
``open_in_browser``, ``print_view_prompt``); :func:`view_volumes` is the
``diluvian view`` command. Neuroglancer and matplotlib are imported only
inside the functions that use them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from .util import DiluvianError, atomic_output, make_rng
from .wrapped_viewer import LAYER_KINDS, WrappedViewer  # noqa: F401 - their documented home

__all__ = [
    "WrappedViewer",
    "label_colors",
    "orthogonal_montage",
    "serve",
    "view_volumes",
    "write_montage_png",
]

logger = logging.getLogger(__name__)


def serve(viewer: WrappedViewer, block: bool = True, poll_s: float = 0.5) -> str:
    """Print the viewer URL and, with ``block``, serve until Ctrl-C.

    Neuroglancer serves from a background thread; this only keeps the
    process alive. Returns the URL.
    """
    url = viewer.get_viewer_url()
    print(f"neuroglancer viewer: {url}")
    if block:
        print("Serving; press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(poll_s)
        except KeyboardInterrupt:
            print("Stopped.")
    return url


# ------------------------------------------------------------------ montage
def label_colors(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB colours (float, N x 3) for label ids: random but seeded, bright, 0 black.

    The same label gets the same colour whatever else is in the volume.

    Examples
    --------
    >>> c = label_colors(np.array([0, 5, 5]))
    >>> c[0].tolist(), bool((c[1] == c[2]).all())
    ([0.0, 0.0, 0.0], True)
    """
    import matplotlib.colors

    labels = np.asarray(labels).astype(np.uint64).ravel()
    hsv = np.empty((labels.size, 3))
    for i, label in enumerate(labels):
        rng = make_rng(seed, "label-color", int(label % np.uint64(2**31)))
        hsv[i] = (rng.random(), 0.55 + 0.45 * rng.random(), 0.75 + 0.25 * rng.random())
    rgb = matplotlib.colors.hsv_to_rgb(hsv)
    rgb[labels == 0] = 0.0
    return rgb


def _overlay(image2d: np.ndarray | None, labels2d: np.ndarray | None,
             mask2d: np.ndarray | None, alpha: float, seed: int) -> np.ndarray:
    from .util import to_float_image

    shape = next(a.shape for a in (image2d, labels2d, mask2d) if a is not None)
    if image2d is not None:
        grey = to_float_image(image2d).astype(np.float64)
        lo, hi = np.percentile(grey, [0.5, 99.5])
        grey = np.clip((grey - lo) / max(hi - lo, 1e-9), 0, 1)
    else:
        grey = np.full(shape, 0.5)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if labels2d is not None:
        values, inverse = np.unique(labels2d, return_inverse=True)
        colors = label_colors(values, seed)[inverse.reshape(shape)]
        labelled = (labels2d != 0)[..., None]
        rgb = np.where(labelled, (1 - alpha) * rgb + alpha * colors, rgb)
        # Outline label boundaries in their own colour for definition.
        edge = np.zeros(shape, bool)
        edge[1:, :] |= labels2d[1:, :] != labels2d[:-1, :]
        edge[:, 1:] |= labels2d[:, 1:] != labels2d[:, :-1]
        edge &= labels2d != 0
        rgb[edge] = colors[edge]
    if mask2d is not None:
        outside = ~np.asarray(mask2d, bool)
        rgb[outside] *= 0.45
    return rgb


def orthogonal_montage(image=None, labels=None, mask=None, center_zyx=None,
                       alpha: float = 0.45, seed: int = 0) -> dict[str, np.ndarray]:
    """RGB slices (XY, XZ, YZ) through a point of a volume, labels overlaid.

    Parameters
    ----------
    image, labels, mask : ndarray, ZYX, optional
        Co-registered data; at least one is needed. Masked-out voxels are darkened.
    center_zyx : sequence of 3 int, optional
        Where the slices cross (default: the centre).

    Returns
    -------
    dict
        ``{"XY": (Y, X, 3), "XZ": (Z, X, 3), "YZ": (Z, Y, 3)}`` float RGB arrays.
    """
    arrays = [None if a is None else np.asarray(a) for a in (image, labels, mask)]
    present = [a for a in arrays if a is not None]
    if not present:
        raise DiluvianError("nothing to draw: the volume has no image, label or mask data")
    shape = np.array(present[0].shape)
    center = shape // 2 if center_zyx is None else np.asarray(center_zyx, int)
    z, y, x = (int(v) for v in np.clip(center, 0, shape - 1))
    cuts = {"XY": (z, slice(None), slice(None)), "XZ": (slice(None), y, slice(None)),
            "YZ": (slice(None), slice(None), x)}
    return {key: _overlay(*(None if a is None else a[cut] for a in arrays), alpha, seed)
            for key, cut in cuts.items()}


def write_montage_png(path, panels: dict[str, dict], resolutions: dict[str, Sequence[float]],
                      title: str | None = None) -> None:
    """Write one row of XY / XZ / YZ slices per volume to a PNG (atomically).

    Parameters
    ----------
    path : str or path-like
        Output PNG file.
    panels : dict of str to dict
        Per volume name, the output of :func:`orthogonal_montage`.
    resolutions : dict of str to sequence of 3 numbers
        Per volume name, nm per voxel ZYX (sets the aspect ratio).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = list(panels)
    fig = Figure(figsize=(13, 4.6 * len(names)), dpi=110, facecolor="#111111")
    axes = fig.subplots(len(names), 3, squeeze=False)
    for row, name in enumerate(names):
        rz, ry, rx = (float(r) for r in resolutions[name])
        aspects = {"XY": ry / rx, "XZ": rz / rx, "YZ": rz / ry}
        for col, key in enumerate(("XY", "XZ", "YZ")):
            ax = axes[row, col]
            ax.imshow(panels[name][key], interpolation="nearest", aspect=aspects[key])
            ax.set_title(f"{name}: {key}", color="white", fontsize=11)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("#444444")
    if title:
        fig.suptitle(title, color="white", fontsize=13)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", facecolor=fig.get_facecolor())


# ------------------------------------------------------------------ command
def _validation_volumes(volumes: dict, config) -> dict:
    from .volumes import partition_volumes

    if config is None:
        from .config import CONFIG as config
    return partition_volumes(volumes, downsample=False, config=config)[1]


def _read(data):
    return None if data is None else np.asarray(data[...])


def _partition_box(volume) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner of a (partition) volume on its root grid, voxels ZYX."""
    shape = np.asarray(volume.label_data.shape if volume.label_data is not None
                       else (volume.image_data if volume.image_data is not None
                             else volume.mask_data).shape)
    to_world = getattr(volume, "local_coord_to_world", lambda a: np.asarray(a))
    return np.asarray(to_world(np.zeros(3, np.int64))), np.asarray(to_world(shape))


def view_volumes(
    volumes: dict,
    partition: bool = False,
    bind_address: str = "127.0.0.1",
    port: int = 0,
    png_file: str | None = None,
    config=None,
    block: bool = True,
) -> WrappedViewer | None:
    """Show volumes in neuroglancer, or write a PNG montage of them.

    Every volume gets an image layer (``NAME``), a segmentation layer of its
    labels (``NAME-labels``) and a mask layer (``NAME-mask``), each at the
    volume's resolution.

    Parameters
    ----------
    volumes : dict of str to Volume
        Volumes by name (``resolution``, ``image_data``, ``label_data``,
        ``mask_data``; the data may be ``None``).
    partition : bool
        Centre the view on the validation partitions and outline them
        (an annotation layer ``validation``); the montage is then cut
        through the first validation partition.
    bind_address, port : str, int
        Where the neuroglancer server listens (default: this machine only, any port).
    png_file : str, optional
        Instead of serving, write a PNG montage of orthogonal slices here.
    config : Config, optional
        Configuration (for the partitioning); defaults to ``diluvian.config.CONFIG``.
    block : bool
        Serve until Ctrl-C (``False`` returns at once with the server running
        in the background, for tests and notebooks).

    Returns
    -------
    WrappedViewer or None
        The viewer (``None`` when a PNG was written).
    """
    if not volumes:
        raise DiluvianError("no volumes to view: the volume name regex matched no volume")
    validation = _validation_volumes(volumes, config) if partition else {}

    if png_file is not None:
        panels, resolutions = {}, {}
        for name, volume in volumes.items():
            source = validation.get(name, volume)
            panels[name] = orthogonal_montage(_read(source.image_data),
                                              _read(source.label_data),
                                              _read(source.mask_data))
            resolutions[name] = np.asarray(volume.resolution).tolist()
        write_montage_png(png_file, panels, resolutions,
                          title="validation partitions" if partition else None)
        print(f"wrote {png_file}")
        return None

    first = next(iter(volumes.values()))
    viewer = WrappedViewer(voxel_size=np.asarray(first.resolution), bind_address=bind_address,
                           port=port)
    for name, volume in volumes.items():
        resolution = np.asarray(volume.resolution)
        if volume.image_data is not None:
            viewer.add(volume.image_data, name, resolution=resolution, kind="image")
        if volume.label_data is not None:
            viewer.add(volume.label_data, f"{name}-labels", resolution=resolution,
                       kind="segmentation")
        if volume.mask_data is not None:
            viewer.add(volume.mask_data, f"{name}-mask", resolution=resolution, kind="mask")
    extents = [np.asarray(v.resolution) * np.asarray(_partition_box(v)[1]) for v in volumes.values()]
    viewer.fit_view(np.max(extents, axis=0))
    if validation:
        centers = []
        for name, part in validation.items():
            lower, upper = _partition_box(part)
            scale = np.asarray(volumes[name].resolution) / viewer.voxel_size
            viewer.add_box("validation", lower * scale, upper * scale)
            centers.append((lower + upper) / 2 * scale)
        viewer.set_position(centers[0])
    serve(viewer, block=block)
    return viewer
