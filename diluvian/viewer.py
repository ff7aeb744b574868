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
import webbrowser
from collections.abc import Callable, Sequence

import numpy as np

from .util import DiluvianError, atomic_output, make_rng

__all__ = [
    "WrappedViewer",
    "label_colors",
    "orthogonal_montage",
    "serve",
    "view_volumes",
    "write_montage_png",
]

logger = logging.getLogger(__name__)

#: Layer kinds :meth:`WrappedViewer.add` understands.
LAYER_KINDS = ("image", "segmentation", "mask")

_MASK_SHADER = """#uicontrol vec3 color color(default="#ff00ff")
#uicontrol float opacity slider(min=0, max=1, default=0.35)
void main() {
  emitRGBA(vec4(color, toRaw(getDataValue()) > 0.0 ? opacity : 0.0));
}
"""


def _zyx(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 3:
        raise DiluvianError(f"{name} {arr.tolist()!r} is invalid: expected 3 numbers (Z, Y, X)")
    return arr


class WrappedViewer:
    """A neuroglancer viewer with ZYX layers in nm.

    Parameters
    ----------
    voxel_size : sequence of 3 numbers
        Resolution (nm per voxel, ZYX) of the viewer's global coordinates.
    bind_address : str
        Address the neuroglancer web server binds to (default ``127.0.0.1``:
        only this machine can connect).
    port : int
        Server port (0: any free port). The server is shared by every viewer
        of the process, so only the first viewer's address and port apply.
    voxel_coordinates : sequence of 3 numbers, optional
        Initial position (ZYX voxels), as diluvian 0.0.6's
        ``WrappedViewer(voxel_coordinates=None, **kwargs)``.
    """

    def __init__(self, voxel_size: Sequence[float] = (1, 1, 1), bind_address: str = "127.0.0.1",
                 port: int = 0, voxel_coordinates: Sequence[float] | None = None):
        import neuroglancer

        self._ng = neuroglancer
        if not neuroglancer.is_server_running():
            neuroglancer.set_server_bind_address(bind_address, bind_port=int(port))
        self.voxel_size = _zyx(voxel_size, "voxel_size")
        self.viewer = neuroglancer.Viewer()
        with self.viewer.txn() as s:
            s.dimensions = self._space(self.voxel_size)
            # Arrays are ZYX, but the XY panel should show X across and Y down.
            s.display_dimensions = ["x", "y", "z"]
            s.layout = "4panel"
        if voxel_coordinates is not None:
            self.set_position(voxel_coordinates)

    def _space(self, resolution):
        return self._ng.CoordinateSpace(names=["z", "y", "x"], units="nm",
                                        scales=[float(r) for r in resolution])

    @property
    def layer_names(self) -> list[str]:
        """Names of the layers in the viewer state, in order."""
        return [layer.name for layer in self.viewer.state.layers]

    def add(self, data, name: str, resolution: Sequence[float] | None = None,
            kind: str = "image", offset: Sequence[int] = (0, 0, 0),
            shader: str | None = None, visible: bool = True) -> None:
        """Add a ZYX array as a layer.

        Parameters
        ----------
        data : array-like, ZYX
            Voxel data (read into memory).
        name : str
            Layer name (replaces a layer of the same name).
        resolution : sequence of 3 numbers, optional
            nm per voxel, ZYX; defaults to the viewer's ``voxel_size``.
        kind : {"image", "segmentation", "mask"}
            Images show grey values, segmentations colour each label id
            (0 is transparent), masks are a translucent colour over non-zero voxels.
        offset : sequence of 3 int
            Voxel offset of ``data[0, 0, 0]`` in its own resolution, ZYX.
        shader : str, optional
            A neuroglancer shader for image and mask layers.
        visible : bool
            Whether the layer starts visible.
        """
        if kind not in LAYER_KINDS:
            raise DiluvianError(f"layer kind {kind!r} is invalid: expected one of "
                                f"{', '.join(LAYER_KINDS)}")
        ng = self._ng
        resolution = self.voxel_size if resolution is None else _zyx(resolution, "resolution")
        array = np.asarray(data[...] if hasattr(data, "__getitem__") else data)
        if array.ndim != 3:
            raise DiluvianError(f"layer {name!r} has shape {array.shape}: expected ZYX (3D) data")
        if kind == "segmentation":
            if array.dtype.kind not in "ui":
                raise DiluvianError(f"layer {name!r} has dtype {array.dtype}: "
                                    "expected integer labels")
            array = array.astype(np.uint64 if array.dtype.itemsize > 4 else np.uint32, copy=False)
        elif kind == "mask":
            array = (array != 0).astype(np.uint8)
        elif array.dtype == bool:
            array = array.astype(np.uint8)
        source = ng.LocalVolume(
            data=array, dimensions=self._space(resolution),
            voxel_offset=[int(o) for o in offset],
            volume_type="segmentation" if kind == "segmentation" else "image")
        with self.viewer.txn() as s:
            if kind == "segmentation":
                s.layers[name] = ng.SegmentationLayer(source=source)
            else:
                layer = ng.ImageLayer(source=source)
                if shader is not None or kind == "mask":
                    layer.shader = shader or _MASK_SHADER
                s.layers[name] = layer
            s.layers[name].visible = bool(visible)

    def add_box(self, name: str, lower_zyx, upper_zyx, resolution=None,
                color: str = "#ffff00") -> None:
        """Add (or extend) an annotation layer with an axis-aligned box, ZYX voxels."""
        ng = self._ng
        resolution = self.voxel_size if resolution is None else _zyx(resolution, "resolution")
        with self.viewer.txn() as s:
            if name not in [layer.name for layer in s.layers]:
                s.layers[name] = ng.LocalAnnotationLayer(
                    dimensions=self._space(resolution), annotation_color=color)
            annotations = s.layers[name].annotations
            annotations.append(ng.AxisAlignedBoundingBoxAnnotation(
                id=f"box{len(annotations)}",
                point_a=[float(v) for v in lower_zyx], point_b=[float(v) for v in upper_zyx]))

    def set_position(self, position_zyx: Sequence[float]) -> None:
        """Centre the view on a position in the viewer's voxel coordinates, ZYX."""
        with self.viewer.txn() as s:
            s.position = [float(v) for v in position_zyx]

    def fit_view(self, extent_nm: Sequence[float], panel_px: int = 450) -> None:
        """Zoom the cross sections so that ``extent_nm`` (ZYX) fills a panel of ``panel_px``."""
        extent_vox = _zyx(extent_nm, "extent_nm")[1:] / self.voxel_size[1:]
        with self.viewer.txn() as s:
            s.cross_section_scale = float(max(extent_vox.max(), 1.0) / panel_px)

    def get_viewer_url(self) -> str:
        """URL of this viewer (starts the server if needed)."""
        return self.viewer.get_viewer_url()

    def get_json_state(self) -> dict:
        """The viewer state as a JSON-ready dict."""
        return self.viewer.state.to_json()

    def open_in_browser(self) -> None:
        """Open the viewer in the default web browser."""
        webbrowser.open_new_tab(self.get_viewer_url())

    def print_view_prompt(self, input_fn: Callable[[str], str] = input) -> None:
        """Print the viewer URL and wait: ``v`` + Enter opens a browser, Enter continues."""
        print(f"neuroglancer viewer: {self.get_viewer_url()}")
        while True:
            try:
                answer = input_fn("Press v and Enter to open in a browser, Enter to continue: ")
            except EOFError:
                return
            if answer.strip().lower() != "v":
                return
            self.open_in_browser()

    def __repr__(self) -> str:
        return f"<WrappedViewer {self.get_viewer_url()} layers={self.layer_names}>"


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
