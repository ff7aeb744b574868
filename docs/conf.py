"""Sphinx configuration for diluvian's documentation."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("."))

project = "diluvian"
author = "diluvian developers"
copyright = "2026, diluvian developers"

import diluvian  # noqa: E402

version = release = diluvian.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "cli_reference",
]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_mock_imports = []
nitpicky = False
suppress_warnings = ["ref.python"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]


def _skip_nested_aliases(app, what, name, obj, skip, options):
    # Volume.SubvolumeBoundsGenerator is 0.0.6's nested name of
    # diluvian.volumes.generators.SubvolumeBoundsGenerator, documented there.
    if what == "class" and name == "SubvolumeBoundsGenerator":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_nested_aliases)
