"""Reading a diluvian model file's settings without importing Keras or TensorFlow.

A ``.keras`` file is a zip archive; diluvian adds its model settings (FOV
shapes, move step, thresholds, the resolution trained at, ...) as the JSON
entry :data:`SETTINGS_ENTRY`. The command line reads them before it loads
volumes (a model trained at 10 nm fills at 10 nm) and long before
TensorFlow starts.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from .util import DiluvianError

__all__ = ["SETTINGS_ENTRY", "open_model_archive", "read_model_settings"]

#: Name of the settings entry inside a ``.keras`` archive.
SETTINGS_ENTRY = "diluvian.json"


def open_model_archive(filename) -> zipfile.ZipFile:
    """The ``.keras`` zip archive ``filename``, checked to be one (a one-line error if not)."""
    path = Path(filename)
    if not path.exists():
        raise DiluvianError(f"{path}: model file not found")
    if path.is_dir():
        raise DiluvianError(f"{path}: is a directory, expected a .keras model file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise DiluvianError(f"{path}: is not a Keras .keras model file (not a zip archive)"
                            ) from None
    if "config.json" not in zf.namelist():
        zf.close()
        raise DiluvianError(f"{path}: is not a Keras .keras model file (no config.json)")
    return zf


def read_model_settings(filename) -> dict[str, Any]:
    """The settings stored in a model file (empty for a ``.keras`` file saved without any).

    Raises
    ------
    DiluvianError
        If the file is missing, not a ``.keras`` archive, or its settings are
        not valid JSON.
    """
    with open_model_archive(filename) as zf:
        if SETTINGS_ENTRY not in zf.namelist():
            return {}
        try:
            settings = json.loads(zf.read(SETTINGS_ENTRY).decode("utf-8"))
        except (ValueError, zipfile.BadZipFile) as exc:
            raise DiluvianError(f"{filename}: corrupt {SETTINGS_ENTRY}: {exc}") from None
    if not isinstance(settings, dict):
        raise DiluvianError(f"{filename}: {SETTINGS_ENTRY} must hold a JSON object")
    return settings
