"""Configuration building blocks: typed fields and the section base class."""

from __future__ import annotations

import copy
import difflib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import tomli_w

from ..util import DiluvianError

__all__ = ["ALIASES", "RETIRED", "BaseConfig", "Field", "legacy_key"]

#: Key names of diluvian 0.0.6 accepted for today's keys: ``(section, old) -> new``.
ALIASES = {("optimizer", "lr"): "learning_rate"}

#: Keys diluvian 0.0.6 wrote that no longer mean anything; loading one logs a
#: one-line deprecation warning and drops it: ``(section, key) -> hint``.
RETIRED = {
    ("network", "unet_num_layers"): "the U-Net depth is [network] unet_depth",
}

_log = logging.getLogger("diluvian.config")


def legacy_key(section: str, name: str, source: str) -> str | None:
    """Today's name of key ``name`` of ``[section]``, or ``None`` to drop a retired key.

    0.0.6's ``[optimizer] lr`` becomes ``learning_rate``; a retired key logs
    a one-line warning naming it. Every other key is returned unchanged (and
    stays an error if unknown).
    """
    hint = RETIRED.get((section, name))
    if hint is not None:
        _log.warning("%s: [%s] %s is a retired diluvian 0.0.6 key and is ignored (%s)",
                     source, section, name, hint)
        return None
    return ALIASES.get((section, name), name)


@dataclass(frozen=True)
class Field:
    """A configuration key: its kind, whether it may be unset, and options."""

    kind: str  # int, float, bool, str, vec (int vector), fvec, dict, list, any
    optional: bool = False
    length: int | None = None  # for vectors
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.kind == "vec":
            return f"a list of {self.length or 'N'} integers"
        if self.kind == "fvec":
            return "a list of numbers"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "dict": "a table",
            "list": "a list",
            "any": "a value",
        }[self.kind]

    def convert(self, value: Any) -> Any:
        """Return the stored form of ``value``, or raise ``ValueError``."""
        k = self.kind
        if k == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
            return value
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            return float(value)
        if k == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if k == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise ValueError
            return value
        if k in ("vec", "fvec"):
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise ValueError
            items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
            if self.length is not None and len(items) != self.length:
                raise ValueError
            if k == "vec":
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                    raise ValueError
                return np.array(items, dtype=np.int64)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                raise ValueError
            return [float(v) for v in items]
        if k == "dict":
            if not isinstance(value, dict):
                raise ValueError
            return copy.deepcopy(value)
        if k == "list":
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return copy.deepcopy(list(value))
        return copy.deepcopy(value)


def _to_toml_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_toml_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_toml_value(v) for v in value]
    return value


class BaseConfig:
    """Base class for configuration objects.

    A section is built from a settings dict; every key must be one of the
    section's ``FIELDS``. String representation yields TOML that parses back
    to a dictionary that initializes an equal configuration object.
    """

    SECTION: str = ""
    FIELDS: dict[str, Field] = {}
    #: Whether unknown keys are kept (only :class:`OptimizerConfig`).
    PASSTHROUGH = False

    def __init__(self, settings: dict[str, Any], source: str | dict[str, str] = "<settings>"):
        self._extra: dict[str, Any] = {}
        sources = source if isinstance(source, dict) else {}
        default_source = (", ".join(sorted(set(sources.values()))) or "<settings>") if isinstance(
            source, dict) else source
        for name, value in settings.items():
            source = sources.get(name, default_source)
            name = legacy_key(self.SECTION, name, source)
            if name is None:
                continue
            field = self.FIELDS.get(name)
            if field is None:
                if self.PASSTHROUGH:
                    self._extra[name] = copy.deepcopy(value)
                    setattr(self, name, copy.deepcopy(value))
                    continue
                raise DiluvianError(_unknown_key_message(source, self.SECTION, name, self.FIELDS))
            try:
                setattr(self, name, field.convert(value))
            except ValueError:
                raise DiluvianError(
                    f"{source}: [{self.SECTION}] {name} = {value!r} is invalid: "
                    f"expected {field.describe()}"
                ) from None
        source = default_source
        for name, field in self.FIELDS.items():
            if name not in settings:
                if not field.optional:
                    raise DiluvianError(f"{source}: [{self.SECTION}] is missing the key {name!r}")
                setattr(self, name, None)
        self._validate(source)

    def _validate(self, source: str) -> None:
        """Check relations between keys; raise :class:`DiluvianError` on failure."""

    def settings(self) -> dict[str, Any]:
        """Settings dict (TOML-ready) that re-creates this object; unset keys are omitted."""
        out = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = _to_toml_value(value)
        for name in self._extra:
            out[name] = _to_toml_value(getattr(self, name))
        return out

    def __str__(self) -> str:
        return tomli_w.dumps({self.SECTION: self.settings()})

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.settings() == other.settings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings()!r})"


def _unknown_key_message(source: str, section: str, name: str, valid) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"; valid keys: {', '.join(sorted(valid))}"
    )
    where = f"[{section}] " if section else ""
    return f"{source}: unknown key {where}{name!r}{hint}"


