"""Neuroglancer's viewer with diluvian's small interface (:class:`WrappedViewer`).

It sits at the bottom of the layers (it needs only :mod:`diluvian.errors`
and neuroglancer, imported when a viewer is made), so that
:mod:`diluvian.util` can export it under 0.0.6's name
``diluvian.util.WrappedViewer``; :mod:`diluvian.viewer` builds on it.
"""

from __future__ import annotations

import logging
import webbrowser
from collections.abc import Callable, Sequence

import numpy as np

from .errors import DiluvianError

__all__ = ["LAYER_KINDS", "WrappedViewer"]

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
