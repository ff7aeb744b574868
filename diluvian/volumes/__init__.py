"""Volumes: image, label and mask data, views over them, and dataset files.

- :class:`Volume` / :class:`NdarrayVolume`: data at a resolution, handing out
  :class:`Subvolume` boxes; :class:`DimOrder` names the ZYX axes.
- Lazy views that never copy their parent: :class:`VolumeView`,
  :class:`PartitionedVolume`, :class:`DownsampledVolume`,
  :class:`SparseWrappedVolume`.
- Formats: :class:`HDF5Volume`, :class:`ZarrVolume`, :class:`N5Volume`,
  :class:`ImageFolderVolume` (folders of PNG/TIFF slices) and
  :class:`ImageStackVolume` (0.0.6's tiled stacks: CATMAID tile sources).
- Dataset TOML files and the built-in synthetic EM dataset:
  :func:`load_volumes`, :func:`partition_volumes`,
  :func:`load_synthetic_volumes`; downloads into the cache:
  :func:`download_file`, :func:`cache_dir`.
"""

from .base import DimOrder, NdarrayVolume, Volume
from .chunked import N5Volume, ZarrVolume, write_n5_dataset
from .datasets import load_volumes, partition_volumes, volumes_from_toml
from .download import cache_dir, download_file, file_md5
from .generators import (
    ClipSubvolumeImageGenerator,
    ContrastAugmentGenerator,
    ErodedMaskGenerator,
    GaussianNoiseAugmentGenerator,
    MaskedArtifactAugmentGenerator,
    MirrorAugmentGenerator,
    MissingDataAugmentGenerator,
    PermuteAxesAugmentGenerator,
    RelabelSeedComponentGenerator,
    SubvolumeAugmentGenerator,
    SubvolumeBoundsGenerator,
    SubvolumeGenerator,
)
from .hdf5 import HDF5Volume
from .stacks import ImageFolderVolume
from .subvolume import Subvolume, SubvolumeBounds
from .synthetic import (
    DATASET_SEED,
    SYNTHETIC_VOLUMES,
    load_synthetic_volumes,
    make_synthetic_volume,
    synthetic_volume_files,
)
from .tiles import ImageStackVolume
from .views import DownsampledVolume, PartitionedVolume, SparseWrappedVolume, VolumeView

#: 0.0.6's nested name of :class:`SubvolumeBoundsGenerator`.
Volume.SubvolumeBoundsGenerator = SubvolumeBoundsGenerator

__all__ = [
    "ClipSubvolumeImageGenerator",
    "ContrastAugmentGenerator",
    "DATASET_SEED",
    "ErodedMaskGenerator",
    "GaussianNoiseAugmentGenerator",
    "MaskedArtifactAugmentGenerator",
    "MirrorAugmentGenerator",
    "MissingDataAugmentGenerator",
    "PermuteAxesAugmentGenerator",
    "RelabelSeedComponentGenerator",
    "SubvolumeAugmentGenerator",
    "SubvolumeBoundsGenerator",
    "SubvolumeGenerator",
    "DimOrder",
    "DownsampledVolume",
    "HDF5Volume",
    "ImageFolderVolume",
    "ImageStackVolume",
    "N5Volume",
    "NdarrayVolume",
    "PartitionedVolume",
    "SYNTHETIC_VOLUMES",
    "SparseWrappedVolume",
    "Subvolume",
    "SubvolumeBounds",
    "Volume",
    "VolumeView",
    "ZarrVolume",
    "cache_dir",
    "download_file",
    "file_md5",
    "load_synthetic_volumes",
    "load_volumes",
    "make_synthetic_volume",
    "partition_volumes",
    "synthetic_volume_files",
    "volumes_from_toml",
    "write_n5_dataset",
]
