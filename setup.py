"""Thin shim so that ``python setup.py develop`` keeps working; see pyproject.toml."""

from setuptools import setup

setup()
