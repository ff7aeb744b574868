"""Downloading dataset files into the user cache folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..util import DiluvianError, atomic_output

__all__ = ["cache_dir", "download_file", "file_md5"]

#: Bytes read per chunk while downloading or hashing.
CHUNK_BYTES = 1 << 20


def cache_dir(*parts: str) -> Path:
    """The diluvian cache folder (created), optionally a subfolder of it.

    ``$DILUVIAN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/diluvian``, else
    ``~/Library/Caches/diluvian`` on macOS, ``%LOCALAPPDATA%\\diluvian\\Cache`` on
    Windows and ``~/.cache/diluvian`` elsewhere.
    """
    env = os.environ.get("DILUVIAN_CACHE_DIR")
    if env:
        base = Path(env)
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "diluvian"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "diluvian"
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"]) / "diluvian" / "Cache"
    else:
        base = Path.home() / ".cache" / "diluvian"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_md5(path) -> str:
    """Hex MD5 digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest, md5: str | None = None, progress: bool = True,
                  timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` already exists.

    The data is written under a temporary name beside ``dest``, its MD5
    checked against ``md5`` (if given), and only then renamed to ``dest``;
    a failed or interrupted download leaves nothing under ``dest``.

    Parameters
    ----------
    url : str
    dest : str or path-like
    md5 : str, optional
        Expected hex MD5 digest.
    progress : bool
        Show a tqdm progress bar.
    timeout_s : float
        Socket timeout.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DiluvianError
        If the download fails or the checksum differs (one line saying what
        to do).
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    if dest.exists():
        return dest
    hint = f"check the network and retry, or download {url} yourself and place it at {dest}"
    h = hashlib.md5()
    try:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(dest))
            response = stack.enter_context(urllib.request.urlopen(url, timeout=timeout_s))
            total = response.headers.get("Content-Length")
            bar = stack.enter_context(tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True,
                unit_divisor=1024, desc=f"Downloading {dest.name}", disable=not progress))
            with open(tmp, "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            if total and tmp.stat().st_size != int(total):
                raise DiluvianError(f"download of {url} was cut short "
                                    f"({tmp.stat().st_size} of {total} bytes); {hint}")
            if md5 is not None and h.hexdigest() != md5.lower():
                raise DiluvianError(f"download of {url} has MD5 {h.hexdigest()}, expected {md5}; "
                                    f"{hint}")
    except urllib.error.HTTPError as exc:
        raise DiluvianError(f"could not download {url}: HTTP {exc.code} {exc.reason}; "
                            f"{hint}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DiluvianError(f"could not download {url}: {reason}; {hint}") from None
    return dest
