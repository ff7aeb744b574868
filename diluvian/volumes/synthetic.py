"""The built-in synthetic EM dataset: the default when no dataset file is given.

Each volume is a block of densely packed, branching neurites of varying
calibre that fill all space, drawn as serial-section EM at the default
anisotropic resolution [40, 16, 16] nm: light cytoplasm with fine texture,
dark membranes between neurites (smeared where they cross sections
obliquely), vesicle clouds in some boutons, dark mitochondria in thicker
processes, section-to-section brightness jitter, mild blur and noise. Labels
are dense neuron ids (branches share their neuron's id).

Generation is deterministic from :data:`DATASET_SEED`; volumes are written to
the cache folder (:func:`~diluvian.volumes.download.cache_dir`) on first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.signal import lfilter

__all__ = [
    "DATASET_SEED",
    "SYNTHETIC_RESOLUTION",
    "SYNTHETIC_SHAPE",
    "SYNTHETIC_VOLUMES",
    "load_synthetic_volumes",
    "make_synthetic_volume",
    "synthetic_volume_files",
]

#: Seed of the built-in dataset (independent of the configured random seed).
DATASET_SEED = 20170522
#: nm per voxel, Z, Y, X.
SYNTHETIC_RESOLUTION = (40, 16, 16)
#: ZYX shape of each volume.
SYNTHETIC_SHAPE = (64, 256, 256)
#: Names of the built-in volumes.
SYNTHETIC_VOLUMES = ("synthetic_a", "synthetic_b", "synthetic_c")
#: Bump when the generator changes, so stale caches are not used.
GENERATOR_VERSION = 1


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _walk(rng, start, direction, extent_nm, step_nm, persistence):
    """Points of a persistent random walk from ``start`` while inside the padded box."""
    pad = 600.0
    n_max = int(np.ceil(2.5 * np.linalg.norm(extent_nm) / step_nm))
    # Direction = initial direction plus a bounded (Ornstein-Uhlenbeck) wander.
    keep = 1.0 - persistence
    wander = lfilter([persistence], [1.0, -keep], rng.normal(0.0, 1.0, size=(n_max, 3)), axis=0)
    dirs = _unit(direction + 0.9 * wander / np.sqrt(persistence / (2 - persistence)))
    pts = start + np.cumsum(dirs * step_nm, axis=0)
    inside = np.all((pts > -pad) & (pts < extent_nm + pad), axis=1)
    if not inside.any():
        return pts[:0], dirs[:0]
    first = int(np.argmax(inside))
    outside = np.flatnonzero(~inside[first:])
    end = first + (int(outside[0]) if outside.size else n_max - first)
    return pts[first:end], dirs[first:end]


def _neurites(rng, extent_nm: np.ndarray):
    """Centreline points (nm), radii (nm) and neuron ids of all neurites, and their count."""
    volume_nm3 = float(np.prod(extent_nm))
    step_nm = 12.0
    all_pts, all_r, all_id, filled = [], [], [], 0.0
    neuron = 0
    while filled < 0.8 * volume_nm3:
        neuron += 1
        radius = float(np.clip(rng.lognormal(np.log(110.0), 0.55), 35.0, 450.0))
        # Most processes run across sections (round profiles), some lie in plane.
        if rng.random() < 0.6:
            d = _unit(np.array([1.0, *rng.normal(0, 0.45, 2)]))
        else:
            d = _unit(np.array([rng.normal(0, 0.3), *rng.normal(0, 1, 2)]))
        # Start behind a random point so the process crosses the box.
        start = rng.uniform(0, 1, 3) * extent_nm - d * extent_nm.max() * 0.5
        stack = [(start, d, radius)]
        while stack:
            s, d0, r = stack.pop()
            pts, dirs = _walk(rng, s, d0, extent_nm, step_nm, float(np.clip(3.0 / r, 0.01, 0.08)))
            if len(pts) == 0:
                continue
            # Calibre varies slowly along the process.
            wobble = ndimage.gaussian_filter1d(rng.normal(0, 1, len(pts)), 25, mode="nearest")
            rr = np.clip(r * (1 + 0.25 * wobble / (np.abs(wobble).max() + 1e-9)), 25, 500)
            all_pts.append(pts)
            all_r.append(rr)
            all_id.append(np.full(len(pts), neuron))
            inside = np.all((pts >= 0) & (pts < extent_nm), axis=1)
            filled += float(np.sum(np.pi * rr[inside] ** 2 * step_nm))
            if r > 70 and len(pts) > 40:
                for _ in range(rng.poisson(len(pts) * step_nm / 2500.0)):
                    i = int(rng.integers(10, len(pts) - 10))
                    side = _unit(np.cross(dirs[i], rng.normal(0, 1, 3)))
                    nd = _unit(dirs[i] + side * rng.uniform(0.7, 2.0))
                    stack.append((pts[i], nd, r * rng.uniform(0.35, 0.75)))
    return (np.concatenate(all_pts), np.concatenate(all_r), np.concatenate(all_id), neuron)


def make_synthetic_volume(seed: int, shape=SYNTHETIC_SHAPE,
                          resolution=SYNTHETIC_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic EM volume.

    Parameters
    ----------
    seed : int
        Generation seed.
    shape : sequence of 3 int
        ZYX shape in voxels.
    resolution : sequence of 3 int
        nm per voxel ZYX.

    Returns
    -------
    image : ndarray of uint8
    labels : ndarray of uint64
        Dense neuron ids, 1..N.
    """
    rng = np.random.default_rng(seed)
    shape = np.asarray(shape, np.int64)
    res = np.asarray(resolution, np.float64)
    pts, radii, ids, _ = _neurites(rng, shape * res)
    labels = _packed_labels(pts, radii, ids, shape, res)
    membrane = _membranes(labels)
    image, inverse = _cytoplasm(rng, labels)
    image = _mitochondria(rng, image, labels, (pts, radii, ids), shape, res)
    image = image * (1 - 0.85 * membrane) + 0.85 * 0.24 * membrane
    # Section-to-section jitter, blur, noise.
    image = image * rng.normal(1.0, 0.04, (shape[0], 1, 1)).astype(np.float32) \
        + rng.normal(0.0, 0.025, (shape[0], 1, 1)).astype(np.float32)
    image = ndimage.gaussian_filter(image, (0.3, 0.9, 0.9))
    image += rng.normal(0, 0.03, labels.shape).astype(np.float32)
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, (inverse + 1).astype(np.uint64)


def _packed_labels(pts, radii, ids, shape, res) -> np.ndarray:
    """Rasterise centrelines, grow tubes of each radius, fill the rest by nearest tube."""
    vox = np.floor(pts / res).astype(np.int64)
    keep = np.all((vox >= 0) & (vox < shape), axis=1)
    vox, radii_k, ids_k = vox[keep], radii[keep], ids[keep]
    seeds = np.zeros(tuple(shape), np.int32)
    seeds[tuple(vox.T)] = ids_k
    rad = np.zeros(tuple(shape), np.float32)
    rad[tuple(vox.T)] = radii_k
    dist, idx = ndimage.distance_transform_edt(seeds == 0, sampling=res, return_indices=True)
    near = tuple(idx)
    core = np.where(dist <= rad[near], seeds[near], 0)
    del dist
    idx = ndimage.distance_transform_edt(core == 0, sampling=res, return_distances=False,
                                         return_indices=True)
    return core[tuple(idx)]


def _edges(labels: np.ndarray, axes) -> np.ndarray:
    """Voxels next to a label change along any of ``axes``."""
    out = np.zeros(labels.shape, bool)
    for axis in axes:
        diff = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        out[tuple(lo)] |= diff
        out[tuple(hi)] |= diff
    return out


def _membranes(labels: np.ndarray) -> np.ndarray:
    """Membrane darkness (0-1), falling off with the distance to a label change.

    In-plane membranes are sharp; where a membrane runs nearly parallel to the
    section (labels change along Z) it shows as a wider, fainter grey smear.
    """
    in_plane = _edges(labels, (1, 2))
    membrane = np.minimum(1.0, 2.4 * ndimage.gaussian_filter(
        in_plane.astype(np.float32), (0, 0.75, 0.75)))
    across = ndimage.gaussian_filter(_edges(labels, (0,)).astype(np.float32) * ~in_plane,
                                     (0, 0.8, 0.8))
    return np.maximum(membrane, 0.35 * across)


def _cytoplasm(rng, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron brightness, fine texture and vesicle clouds; and the label index volume."""
    uniq, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape)
    base = rng.uniform(0.62, 0.76, len(uniq)).astype(np.float32)
    image = base[inverse]
    noise = rng.normal(0, 1, labels.shape).astype(np.float32)
    coarse = ndimage.gaussian_filter(noise, (0.6, 2.5, 2.5))
    fine = ndimage.gaussian_filter(noise, (0.3, 1.0, 1.0))
    image += 0.35 * coarse + 0.08 * fine
    del noise, coarse, fine
    # Vesicle clouds in some neurons (boutons): many small dark dots.
    bouton = rng.random(len(uniq)) < 0.25
    dots = (rng.random(labels.shape) < 0.05) & bouton[inverse]
    image -= 0.35 * ndimage.gaussian_filter(dots.astype(np.float32), (0.3, 0.7, 0.7))
    return image, inverse


def _mitochondria(rng, image, labels, neurites, shape, res) -> np.ndarray:
    """Dark elongated blobs inside thicker processes, with a dark double membrane."""
    pts, radii, ids = neurites
    thick = np.flatnonzero(radii > 130)
    n_mito = rng.poisson(len(thick) * 12.0 / 800.0) if len(thick) else 0
    organelle = np.zeros(labels.shape, bool)
    zz, yy, xx = (np.arange(n) * r for n, r in zip(shape, res))
    for i in rng.choice(thick, size=min(n_mito, len(thick)), replace=False) if n_mito else []:
        c = pts[i]
        j = min(i + 1, len(pts) - 1)
        axis_dir = _unit(pts[j] - pts[i] + 1e-9)
        a, b = radii[i] * rng.uniform(0.35, 0.55), rng.uniform(150, 450)
        lo = np.maximum(np.floor((c - b) / res).astype(int), 0)
        hi = np.minimum(np.ceil((c + b) / res).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        g = np.stack(np.meshgrid(zz[lo[0]:hi[0]], yy[lo[1]:hi[1]], xx[lo[2]:hi[2]],
                                 indexing="ij"), -1) - c
        along = g @ axis_dir
        across = np.linalg.norm(g - along[..., None] * axis_dir, axis=-1)
        inside = (along / b) ** 2 + (across / a) ** 2 <= 1.0
        box = tuple(slice(int(p), int(q)) for p, q in zip(lo, hi))
        inside &= labels[box] == ids[i]
        organelle[box] = np.maximum(organelle[box], inside)
    mito = organelle > 0
    if mito.any():
        # Darker, finely textured matrix inside a dark double membrane.
        rim = mito & ~ndimage.binary_erosion(mito, np.ones((1, 3, 3), bool))
        cristae = ndimage.gaussian_filter(rng.normal(0, 1, labels.shape).astype(np.float32),
                                          (0.3, 0.7, 0.7))
        image = np.where(mito, 0.72 * image + 0.25 * cristae, image)
        image = np.where(rim, 0.3, image)
    return image


def synthetic_volume_files(progress: bool = True) -> dict[str, Path]:
    """Cached HDF5 files of the built-in volumes, generating missing ones.

    Parameters
    ----------
    progress : bool
        Show a progress bar while generating.
    """
    from tqdm.auto import tqdm

    from .download import cache_dir
    from .hdf5 import HDF5Volume

    folder = cache_dir("synthetic", f"v{GENERATOR_VERSION}_seed{DATASET_SEED}")
    files = {name: folder / f"{name}.h5" for name in SYNTHETIC_VOLUMES}
    missing = [name for name, f in files.items() if not f.exists()]
    for name in tqdm(missing, desc="Generating synthetic EM volumes",
                     disable=not progress or not missing):
        image, labels = make_synthetic_volume(DATASET_SEED + SYNTHETIC_VOLUMES.index(name))
        HDF5Volume.write_file(files[name], SYNTHETIC_RESOLUTION, image_data=image,
                              label_data=labels)
    return files


def load_synthetic_volumes(in_memory: bool = True, progress: bool = True) -> dict:
    """The built-in synthetic dataset as ``{name: volume}``.

    Parameters
    ----------
    in_memory : bool
        Load into :class:`~diluvian.volumes.NdarrayVolume` objects (else
        lazily read :class:`~diluvian.volumes.HDF5Volume` objects).
    progress : bool
        Show a progress bar while generating on first use.
    """
    from .hdf5 import DATASET_PATHS, HDF5Volume

    volumes = {}
    for name, path in synthetic_volume_files(progress=progress).items():
        vol = HDF5Volume(path, DATASET_PATHS["image_data"], DATASET_PATHS["label_data"])
        volumes[name] = vol.to_memory_volume() if in_memory else vol
    return volumes
