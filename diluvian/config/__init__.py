"""Global configuration objects.

This module contains the configuration objects for storing, validating and
loading configuration state. A :class:`Config` holds ``random_seed`` and one
object per TOML table: ``[volume]`` (:class:`VolumeConfig`), ``[model]``
(:class:`ModelConfig`), ``[network]`` (:class:`NetworkConfig`),
``[optimizer]`` (:class:`OptimizerConfig`), ``[training]``
(:class:`TrainingConfig`), ``[postprocessing]``
(:class:`PostprocessingConfig`) and ``[fill]`` (:class:`FillConfig`).

Defaults live in ``diluvian/conf/default.toml``. Files given later override
only the keys they set. Every key is validated when loaded: an unknown
section or key, or a value of the wrong type or shape, raises
:class:`diluvian.util.DiluvianError` naming the file, the key and what was
expected (with the closest valid names for a misspelt key).

The command line builds one :class:`Config` and passes it down; the
module-level :data:`CONFIG` is only the documented default used when a Python
caller passes none.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from ..util import DiluvianError
from .fields import BaseConfig, _unknown_key_message, legacy_key
from .sections import (
    _SECTIONS,
    FillConfig,
    ModelConfig,
    NetworkConfig,
    OptimizerConfig,
    PostprocessingConfig,
    TrainingConfig,
    VolumeConfig,
)

__all__ = [
    "BaseConfig",
    "CONFIG",
    "Config",
    "FillConfig",
    "ModelConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "PostprocessingConfig",
    "TrainingConfig",
    "VolumeConfig",
    "default_config_path",
]


def default_config_path() -> Path:
    """Path of the packaged ``default.toml``."""
    return Path(str(resources.files("diluvian") / "conf" / "default.toml"))



def _read_toml(filename: str | Path) -> dict[str, Any]:
    path = Path(filename)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DiluvianError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise DiluvianError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DiluvianError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise DiluvianError(f"{path}: is not a text TOML file") from None


class Config:
    """A complete collection of configuration objects.

    Parameters
    ----------
    settings_collection : sequence of dict, optional
        Settings dicts (as parsed from TOML) layered, in order, over the
        packaged defaults. Each overrides only the keys it sets.
    sources : sequence of str, optional
        Name of each settings dict for error messages (e.g. its file name).

    Attributes
    ----------
    random_seed : int
        Seed for every random generator diluvian creates.
    volume, model, network, optimizer, training, postprocessing, fill
        The section objects.
    """

    SECTIONS = _SECTIONS

    def __init__(self, settings_collection=None, sources=None):
        self._build(list(settings_collection or []), list(sources or []))

    def _build(self, collection: list[dict], sources: list[str]) -> None:
        default_path = default_config_path()
        layers = [(str(default_path), _read_toml(default_path))]
        for i, settings in enumerate(collection):
            layers.append((sources[i] if i < len(sources) else "<settings>", settings))
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for source, settings in layers:
            if not isinstance(settings, dict):
                raise DiluvianError(f"{source}: expected a table of settings")
            for key, value in settings.items():
                if key == "random_seed":
                    merged[key] = value
                    origin[key] = source
                elif key in _SECTIONS:
                    if not isinstance(value, dict):
                        raise DiluvianError(f"{source}: [{key}] must be a table")
                    section = merged.setdefault(key, {})
                    for name, v in value.items():
                        name = legacy_key(key, name, source)
                        if name is None:
                            continue
                        section[name] = v
                        origin[f"{key}.{name}"] = source
                else:
                    valid = ["random_seed", *_SECTIONS]
                    raise DiluvianError(_unknown_key_message(source, "", key, valid).replace(
                        "unknown key", "unknown section or key"))
        seed = merged.get("random_seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise DiluvianError(f"{origin['random_seed']}: random_seed = {seed!r} is invalid: "
                                "expected a non-negative integer")
        self.random_seed = seed
        self._sources = origin
        for name, klass in _SECTIONS.items():
            section = merged.get(name, {})
            # Name the file that set each offending key in errors.
            key_sources = {k: origin[f"{name}.{k}"] for k in section}
            setattr(self, name, klass(section, source=key_sources))
        if self.network.resolution is None:
            self.network.resolution = self.volume.resolution.copy()
            self._network_resolution_default = True
        else:
            self._network_resolution_default = False

    @classmethod
    def from_toml(cls, *filenames) -> Config:
        """Build a Config from TOML files layered over the defaults.

        Parameters
        ----------
        *filenames : str or path-like
            TOML configuration files; later files override only the keys
            they set.
        """
        config = cls.__new__(cls)
        config._build([_read_toml(f) for f in filenames], [str(f) for f in filenames])
        return config

    def explicitly_set(self, dotted: str) -> bool:
        """Whether ``'section.key'`` (or ``'random_seed'``) was set by a file other than the defaults.

        Settings carried by a model file override only keys that are not
        explicitly set.
        """
        source = self._sources.get(dotted)
        return source is not None and source != str(default_config_path())

    def settings(self) -> dict[str, Any]:
        """Nested settings dict (TOML-ready) that re-creates this configuration."""
        out: dict[str, Any] = {}
        if self.random_seed is not None:
            out["random_seed"] = self.random_seed
        for name in _SECTIONS:
            section = getattr(self, name).settings()
            if name == "network" and self._network_resolution_default:
                section.pop("resolution", None)
            out[name] = section
        return out

    def to_toml(self, filename) -> None:
        """Write this configuration as TOML to ``filename`` (atomically)."""
        from ..util import atomic_output

        with atomic_output(filename) as tmp:
            tmp.write_text(str(self))

    def __str__(self) -> str:
        return tomli_w.dumps(self.settings())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self.settings() == other.settings()

    def __repr__(self) -> str:
        return f"Config(random_seed={self.random_seed!r})"

    def copy(self) -> Config:
        """An independent copy of this configuration."""
        return copy.deepcopy(self)

    def get(self, dotted: str) -> Any:
        """Value of a dotted property such as ``'training.gpu_batch_size'``.

        Raises
        ------
        DiluvianError
            If the section or key does not exist (naming the closest ones).
        """
        parts = dotted.split(".")
        if parts == ["random_seed"]:
            return self.random_seed
        section_name = parts[0]
        if section_name not in _SECTIONS:
            raise DiluvianError(_unknown_key_message(
                "check-config", "", section_name, ["random_seed", *_SECTIONS]).replace(
                    "unknown key", "unknown section"))
        section = getattr(self, section_name)
        if len(parts) == 1:
            return section.settings()
        value: Any = section
        for i, part in enumerate(parts[1:]):
            if i == 0:
                valid = list(section.FIELDS) + list(section._extra)
                if part not in valid and not hasattr(type(section), part):
                    raise DiluvianError(_unknown_key_message("check-config", section_name,
                                                             part, valid))
                value = getattr(section, part)
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                raise DiluvianError(f"check-config: {dotted!r} does not name a value")
        return value


#: The documented default configuration (``diluvian/conf/default.toml``).
#: Functions use it when a caller passes no ``config``; the command line
#: always builds and passes its own.
CONFIG = Config()
