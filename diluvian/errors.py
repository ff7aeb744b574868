"""The error raised for bad user input, at the bottom of the layers.

:class:`DiluvianError` is documented and imported as
``diluvian.util.DiluvianError``; it lives here so that the modules below
:mod:`diluvian.util` (:mod:`diluvian.wrapped_viewer`) can raise it too.
"""

from __future__ import annotations

__all__ = ["DiluvianError"]


class DiluvianError(Exception):
    """An error caused by user input (a file, key or value).

    The command line prints its message as one line and exits with status 2;
    no traceback is shown unless logging is at ``DEBUG``.
    """
