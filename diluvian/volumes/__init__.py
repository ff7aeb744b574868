"""Volumes: image, label and mask data, views over them, and dataset files.

(Being built: see issue 3.)
"""

from .subvolume import Subvolume, SubvolumeBounds

__all__ = ["Subvolume", "SubvolumeBounds"]
