"""Flood filling networks for segmenting electron microscopy of neural tissue.

Importing :mod:`diluvian` is cheap: heavy dependencies (TensorFlow, Keras,
neuroglancer, Dask) are imported only by the modules and commands that use
them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
