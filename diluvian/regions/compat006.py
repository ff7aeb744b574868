"""diluvian 0.0.6's region names kept beside today's: thin doors onto :class:`Region`.

``mask_to_output_target``, ``EarlyFillTermination`` and the
``get_move_priority``, ``get_viewer``, ``render_body`` and ``fill_render``
methods (a mixin of :class:`~diluvian.regions.Region`).
"""

from __future__ import annotations

import numpy as np

from ..util import DiluvianError

__all__ = ["EarlyFillTermination", "RegionCompatMixin", "mask_to_output_target"]


class EarlyFillTermination(DiluvianError):
    """A fill stopped before its moves ran out (0.0.6's exception).

    Today's fills do not raise it: they set ``region.early_termination``
    (see :meth:`Region.fill`); raise it from a ``stopping_callback`` to
    abandon a fill.
    """


def mask_to_output_target(mask, v_true: float | None = None, v_false: float | None = None):
    """Soft training target of a boolean mask: ``v_true`` inside, ``v_false`` outside.

    The values default to ``CONFIG.model``'s (as in 0.0.6).
    """
    if v_true is None or v_false is None:
        from ..config import CONFIG

        v_true = CONFIG.model.v_true if v_true is None else v_true
        v_false = CONFIG.model.v_false if v_false is None else v_false
    return np.where(np.asarray(mask, dtype=bool), np.float32(v_true), np.float32(v_false))


class RegionCompatMixin:
    """0.0.6's region methods, each calling today's implementation."""

    def get_move_priority(self, pos, v: float | None = None) -> float:
        """Priority of queueing lattice position ``pos`` with face value ``v`` (higher first).

        ``pos`` may also be a 0.0.6 move dict with ``'pos'`` and ``'v'``.
        """
        if isinstance(pos, dict):
            pos, v = pos["pos"], pos["v"]
        return -self.policy.priority(tuple(int(p) for p in pos), float(v))

    def get_viewer(self, transpose: bool = False):
        """A :class:`~diluvian.viewer.WrappedViewer` of the image, mask and target."""
        from ..viewer import WrappedViewer

        viewer = WrappedViewer(voxel_coordinates=[int(v) for v in self.seed_vox])
        layers = {"image": np.asarray(self.image[...]), "mask": self.get_mask_array()}
        if self.target is not None:
            layers["target"] = np.asarray(self.target[...])
        for name, data in layers.items():
            viewer.add(np.transpose(data) if transpose else data, name=name)
        return viewer

    def render_body(self, filename=None):
        """Render the body (``mask >= t_final``) as a 3-D surface with matplotlib.

        Returns the figure; with ``filename`` it is also saved there.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from skimage.measure import marching_cubes

        body = self.to_body().get_seeded_component()
        fig = plt.figure(figsize=(6, 6))
        ax = fig.add_subplot(projection="3d")
        if body.any():
            verts, faces, _, _ = marching_cubes(np.pad(body, 1).astype(np.float32), 0.5)
            ax.plot_trisurf(verts[:, 2], verts[:, 1], faces, verts[:, 0], color="tab:orange")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("z")
        if filename is not None:
            fig.savefig(filename)
        return fig

    def fill_render(self, model, movie_file=None, **kwargs):
        """Fill with ``model``; with ``movie_file`` also write an animation of the fill.

        Keyword arguments go to :meth:`fill_animation` (or :meth:`fill`).
        """
        if movie_file is None:
            return self.fill(model, **kwargs)
        return self.fill_animation(movie_file, model, **kwargs)
