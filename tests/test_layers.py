"""The import layers of pyproject.toml's ``[tool.importlinter]`` hold (``lint-imports``).

A change that makes a lower layer import a higher one (e.g. ``diluvian.util``
importing ``diluvian.viewer``, or ``diluvian.blockwise`` importing the
``diluvian fill`` shell) fails here; see docs/architecture.rst.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUN_LINT = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")


def test_import_layers_are_kept():
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = subprocess.run([sys.executable, "-c", RUN_LINT], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout


def test_util_does_not_import_the_viewer_or_training():
    """``diluvian.util`` is the bottom of the layers; 0.0.6's names still resolve."""
    code = ("import sys, diluvian.util as u; "
            "assert 'diluvian.viewer' not in sys.modules, 'viewer'; "
            "assert 'diluvian.training' not in sys.modules, 'training'; "
            "import diluvian.viewer as v; assert u.WrappedViewer is v.WrappedViewer; "
            "from diluvian.training import write_history_csv; "
            "assert write_history_csv is u.write_history_csv")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
