"""High-level operations behind the command line, importable from Python.

``fill_volumes_with_model``, ``fill_region_with_model``,
``generate_subvolume_bounds``, ``evaluate_volume`` and ``view_volumes`` live in
their own modules and are re-exported here under their documented names.
They are resolved lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "fill_volumes_with_model": "diluvian.fill",
    "fill_volume_with_model": "diluvian.fill",
    "fill_region_with_model": "diluvian.sparse_fill",
    "generate_subvolume_bounds": "diluvian.sparse_fill",
    "evaluate_volume": "diluvian.evaluation",
    "view_volumes": "diluvian.viewer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'diluvian.diluvian' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__
