"""Small shared helpers: errors, atomic output, seeded randomness and metrics.

Everything here is a plain function over arrays or paths, importable without
TensorFlow. Data flows config -> volumes -> network -> regions -> training or
fill -> postprocessing -> evaluate / view; this module sits before all of them.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DiluvianError
from .wrapped_viewer import WrappedViewer  # noqa: F401 - 0.0.6's diluvian.util.WrappedViewer

__all__ = [
    "DiluvianError",
    "Interrupted",
    "check_input_file",
    "check_output_path",
    "atomic_output",
    "binary_confusion_matrix",
    "binary_crossentropy",
    "binary_f_score",
    "confusion_f_score",
    "extend_keras_history",
    "get_color_shader",
    "get_function",
    "get_nonzero_aabb",
    "make_rng",
    "pad_dims",
    "Roundrobin",
    "to_float_image",
    "write_keras_history_to_csv",
]


class Interrupted(KeyboardInterrupt):
    """Work stopped by a signal (SIGINT or SIGTERM) after saving what it could.

    The command line exits with ``128 + signum`` (130 for SIGINT, 143 for
    SIGTERM).
    """

    def __init__(self, signum: int, message: str | None = None):
        super().__init__(message or f"interrupted by signal {signum}")
        self.signum = int(signum)


def _first_existing(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def check_output_path(path, what: str = "output", folder: bool = False) -> None:
    """Check, before any work, that ``path`` can be written (nothing is created).

    The nearest existing ancestor of ``path`` must be a folder in which a
    file can be created (tested with a temporary file, removed at once), and
    ``path`` itself must not be a folder (a file when ``folder`` is true).
    Placeholders such as ``{volume}`` in a path component are allowed: the
    check then stops at the component before them.

    Raises
    ------
    DiluvianError
        Naming ``path`` and what is wrong with it.

    Examples
    --------
    >>> import tempfile, os
    >>> check_output_path(os.path.join(tempfile.mkdtemp(), "new", "out_{volume}.hdf5"))
    """
    if path is None:
        return
    text = str(path)
    if not text.strip():
        raise DiluvianError(f"{what} file name is empty")
    target = Path(text)
    if "{" in text:
        parts = target.parts
        keep = next((i for i, part in enumerate(parts) if "{" in part), len(parts))
        target = Path(*parts[:keep]) / "_" if keep else Path("_")
    if os.path.lexists(target) and not target.is_symlink():
        if target.is_dir() and not folder:
            raise DiluvianError(f"{text}: {what} is a folder, expected a file name")
        if not target.is_dir() and folder:
            raise DiluvianError(f"{text}: {what} exists and is not a folder")
    parent = _first_existing(target.parent if target.parent != Path("") else Path("."))
    if not parent.is_dir():
        raise DiluvianError(f"{text}: cannot write the {what} here: {parent} is a file, "
                            "not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".diluvian-write-test.", dir=parent)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DiluvianError(f"{text}: cannot write the {what} here: folder {parent} is not "
                            f"writable ({reason})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_input_file(path, what: str = "input file") -> Path:
    """Check that ``path`` names an existing, readable file; return it as a Path.

    Raises
    ------
    DiluvianError
        If it is missing, a folder or unreadable.
    """
    p = Path(str(path))
    if not p.exists():
        raise DiluvianError(f"{p}: {what} not found")
    if p.is_dir():
        raise DiluvianError(f"{p}: {what} is a folder, expected a file")
    if not os.access(p, os.R_OK):
        raise DiluvianError(f"{p}: {what} is not readable")
    return p


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is left as it
    was, so no half-written output is ever visible under the final name.

    Parameters
    ----------
    path : str or path-like
        Final file name.
    suffix : str, optional
        Suffix for the temporary file (some writers pick a format by suffix);
        defaults to the suffix of ``path``.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_output(os.path.join(d, "x.txt")) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> open(os.path.join(d, "x.txt")).read()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the usual mode (0666 less umask).
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def make_rng(seed: int | None, *stream: int | str) -> np.random.Generator:
    """Return an independent generator for one named stream of a seed.

    Every random choice in diluvian flows from the configured
    ``random_seed``: each volume, worker or task asks for its own stream, so
    streams never share state and results do not depend on scheduling.

    Parameters
    ----------
    seed : int or None
        The configured random seed (``None`` gives fresh entropy).
    *stream : int or str
        Keys naming the stream, e.g. ``("training", volume_name, worker)``.

    Examples
    --------
    >>> a = make_rng(1, "train", 0).integers(1000, size=3)
    >>> b = make_rng(1, "train", 0).integers(1000, size=3)
    >>> bool((a == b).all())
    True
    """
    keys = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in stream]
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective avalanche of uint64 values (wrapping)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def voxel_hash(points, key: int) -> np.ndarray:
    """Keyed 64-bit hashes of integer points, e.g. voxel coordinates.

    The hash depends only on ``key`` and each point's coordinates, so sorting
    points by it gives a random order that any subset of the points (a crop,
    a block) shares with the whole set.

    Examples
    --------
    >>> h = voxel_hash([[0, 0, 0], [5, 6, 7], [0, 0, 0]], key=1)
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    pts = np.asarray(points, dtype=np.int64)
    pts = pts.reshape(len(pts), -1).astype(np.uint64)
    h = np.full(len(pts), np.uint64(int(key) % (1 << 64)), dtype=np.uint64)
    for axis in range(pts.shape[1]):
        salt = np.uint64(0x9E3779B97F4A7C15 * (axis + 1) % (1 << 64))
        h = _mix64(h ^ _mix64(pts[:, axis] + salt))
    return h


def face_margins(value, name: str) -> np.ndarray:
    """Margins at the faces of a 3-D box as an int array of shape (2, 3).

    ``value`` holds three non-negative integers (the same before and after
    each axis) or two rows of three (before, after). ``name`` is the setting
    named in the error.

    Examples
    --------
    >>> face_margins([1, 2, 3], "margin").tolist()
    [[1, 2, 3], [1, 2, 3]]
    """
    given = np.asarray(value)
    if (given.shape not in ((3,), (2, 3)) or not np.issubdtype(given.dtype, np.integer)
            or given.min() < 0):
        raise DiluvianError(f"{name} {given.tolist()} must be three non-negative integers, "
                            "or two rows of three (before, after each axis)")
    return np.broadcast_to(given, (2, 3)).astype(np.int64)


def get_function(name: str):
    """Return the object named by a dotted path, e.g. ``"diluvian.util.binary_f_score"``.

    Raises
    ------
    DiluvianError
        If the module cannot be imported or has no such attribute.
    """
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        raise DiluvianError(f"{name!r} is not a dotted name of the form 'module.function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DiluvianError(f"cannot import module {module_name!r} for {name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise DiluvianError(f"module {module_name!r} has no attribute {attr!r}") from None


def get_nonzero_aabb(a: np.ndarray) -> tuple[list[int], list[int]]:
    """Axis-aligned bounding box of the nonzero entries of ``a``.

    Returns
    -------
    (min, max) : tuple of list of int
        Inclusive lower and exclusive upper corner. Both are all zeros for an
        array with no nonzero entry.

    Examples
    --------
    >>> a = np.zeros((4, 5)); a[1, 2] = a[2, 3] = 1
    >>> get_nonzero_aabb(a)
    ([1, 2], [3, 4])
    """
    a = np.asarray(a)
    if not a.any():
        return [0] * a.ndim, [0] * a.ndim
    lo, hi = [], []
    for axis in range(a.ndim):
        other = tuple(i for i in range(a.ndim) if i != axis)
        idx = np.flatnonzero(np.any(a, axis=other))
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    return lo, hi


def binary_confusion_matrix(y: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2x2 confusion matrix ``[[TN, FP], [FN, TP]]`` of two boolean arrays."""
    y = np.asarray(y, dtype=bool).ravel()
    y_pred = np.asarray(y_pred, dtype=bool).ravel()
    tp = int(np.count_nonzero(y & y_pred))
    fp = int(np.count_nonzero(~y & y_pred))
    fn = int(np.count_nonzero(y & ~y_pred))
    tn = y.size - tp - fp - fn
    return np.array([[tn, fp], [fn, tp]], dtype=np.int64)


def confusion_f_score(confusion: np.ndarray, beta: float = 1.0) -> float:
    """F-beta score ``(1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)`` of a confusion matrix.

    A prediction and truth that are both empty score 1.

    Examples
    --------
    >>> confusion_f_score(np.array([[5, 0], [0, 5]]), beta=0.5)
    1.0
    """
    confusion = np.asarray(confusion)
    tp, fp, fn = confusion[1, 1], confusion[0, 1], confusion[1, 0]
    b2 = beta * beta
    denom = (1.0 + b2) * tp + b2 * fn + fp
    if denom == 0:
        return 1.0
    return float((1.0 + b2) * tp / denom)


def binary_f_score(y: np.ndarray, y_pred: np.ndarray, beta: float = 1.0) -> float:
    """F-beta score of a boolean prediction against boolean truth.

    Examples
    --------
    >>> binary_f_score(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), beta=1.0)
    0.6666666666666666
    """
    return confusion_f_score(binary_confusion_matrix(y, y_pred), beta=beta)


def binary_crossentropy(y: np.ndarray, y_pred: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities ``y_pred`` against targets ``y``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(y_pred, dtype=np.float64), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def to_float_image(image: np.ndarray) -> np.ndarray:
    """Return image data as float32 in [0, 1): integers are divided by their range.

    ``uint8`` is divided by 256, ``uint16`` by 65536; floating point data is
    assumed to be in [0, 1) already and is only cast.

    Examples
    --------
    >>> to_float_image(np.array([0, 128, 255], dtype=np.uint8)).tolist()
    [0.0, 0.5, 0.99609375]
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return (image.astype(np.float32) - info.min) / np.float32(info.max - info.min + 1)
    return image.astype(np.float32, copy=False)


def pad_dims(x) -> np.ndarray:
    """``x`` with a length-1 axis added before and after (batch and channel axes).

    Examples
    --------
    >>> pad_dims(np.zeros((2, 3))).shape
    (1, 2, 3, 1)
    """
    return np.asarray(x)[np.newaxis, ..., np.newaxis]


def get_color_shader(channel: int, normalized: bool = True) -> str:
    """A neuroglancer shader showing an image layer in red, green or blue (``channel`` 0, 1, 2)."""
    rgb = ["0.0", "0.0", "0.0"]
    rgb[int(channel)] = "1.0"
    value = "toNormalized(getDataValue())" if normalized else "getDataValue()"
    return f"void main() {{\n  emitRGB(vec3({', '.join(rgb)}) * {value});\n}}\n"


class Roundrobin:
    """Iterate over several iterables in turn, dropping each as it is exhausted.

    ``Roundrobin('AB', 'C', 'DEF')`` yields ``A C D B E F``.

    Parameters
    ----------
    *iterables
    name : str, optional
        A label for logging and ``repr``.
    """

    def __init__(self, *iterables, name: str | None = None):
        self.iterables = iterables
        self.name = name
        self._iterators = [iter(it) for it in iterables]
        self._index = 0

    def __iter__(self):
        return self

    def __next__(self):
        while self._iterators:
            self._index %= len(self._iterators)
            try:
                item = next(self._iterators[self._index])
            except StopIteration:
                del self._iterators[self._index]
                continue
            self._index += 1
            return item
        raise StopIteration

    def reset(self) -> None:
        """Start again from the first item of each iterable (they must be re-iterable)."""
        self._iterators = [iter(it) for it in self.iterables]
        self._index = 0

    def __repr__(self) -> str:
        return f"Roundrobin(name={self.name!r}, {len(self.iterables)} iterables)"


def extend_keras_history(a, b):
    """Append Keras ``History`` ``b`` (its epochs and metric lists) to ``a``; returns ``a``."""
    a.epoch.extend(b.epoch)
    for key, values in b.history.items():
        a.history.setdefault(key, []).extend(values)
    return a


def write_history_csv(history: list[dict[str, float]], filename) -> None:
    """Write history rows (dicts with an ``epoch`` key) to CSV, atomically."""
    keys: list[str] = ["epoch", "loss", "val_loss"]
    for row in history:
        for k in row:
            if k not in keys:
                keys.append(k)
    with atomic_output(filename) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, restval="")
        writer.writeheader()
        for row in history:
            writer.writerow(row)


def write_keras_history_to_csv(history, filename) -> None:
    """Write a Keras ``History`` (``epoch`` and ``history``) to CSV, one row per epoch.

    The rows are those :func:`diluvian.training.write_history_csv` writes.
    """
    epochs = list(getattr(history, "epoch", None) or range(len(next(
        iter(history.history.values()), []))))
    rows = [{"epoch": e, **{k: v[i] for k, v in history.history.items() if i < len(v)}}
            for i, e in enumerate(epochs)]
    write_history_csv(rows, filename)
