"""Command line interface: ``diluvian {train,fill,sparse-fill,...}``.

The parser is built by :func:`diluvian.cli.parser.make_main_parser` (one
function a command; ``_make_main_parser`` here is the same function); the
option checks live in :mod:`diluvian.cli.checks` and the command handlers in
:mod:`diluvian.cli.commands`. Handlers import heavy modules (TensorFlow,
Keras, neuroglancer, Dask) only inside the command that needs them:
``diluvian -h`` and ``diluvian check-config`` never import TensorFlow.

Errors caused by input (:class:`diluvian.util.DiluvianError`) print one line
on stderr and exit with status 2; ``-l DEBUG`` also shows the traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

# Keep TensorFlow's C++ start-up chatter off the terminal (``-l DEBUG`` lowers it again).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .cli.checks import _check_inputs, _check_options, _check_outputs  # noqa: E402
from .cli.commands import _load_config  # noqa: E402,F401 - re-exported for scripts
from .cli.parser import LOG_LEVELS  # noqa: E402,F401 - re-exported
from .cli.parser import make_main_parser as _make_main_parser  # noqa: E402
from .util import DiluvianError, Interrupted  # noqa: E402


def _os_error_message(exc: OSError) -> str:
    """``FILE: reason`` of an OS error, on one line."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename
    if name is None:
        return " ".join(str(exc).split()) or reason
    return f"{name}: {reason}"


def _on_sigterm(signum, frame):
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diluvian`` command; returns the exit status.

    Bad input (:class:`~diluvian.util.DiluvianError`, or an OS error such as
    a full disk) prints one line and returns 2; SIGINT returns 130 and
    SIGTERM 143, after the command saved what it could; any other failure
    prints one line and returns 1. ``-l DEBUG`` also logs the traceback.
    """
    parser = _make_main_parser()
    args = parser.parse_args(argv)
    if args.log_level == "DEBUG" and os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "2" \
            and "tensorflow" not in sys.modules:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    debug = args.log_level == "DEBUG"
    quiet = None if debug else _quiet_native_stderr()
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, debug)
    finally:
        if quiet is not None:
            quiet()


def _quiet_native_stderr():
    """Send native (C/C++) writes to stderr to /dev/null; Python's stay on the terminal.

    TensorFlow and absl log start-up lines straight to file descriptor 2
    before any setting can silence them. Python's ``sys.stderr`` (errors,
    warnings, progress bars) is moved to a copy of the original descriptor.
    Only done when ``sys.stderr`` is the process's own stderr. Returns a
    function that undoes it, or None.
    """
    try:
        if sys.stderr is not sys.__stderr__ or sys.stderr.fileno() != 2:
            return None
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError):
        return None
    python_stderr = os.fdopen(saved, "w", buffering=1, encoding=sys.stderr.encoding,
                              errors="backslashreplace")
    os.dup2(devnull, 2)
    os.close(devnull)
    old = sys.stderr
    sys.stderr = python_stderr

    def undo():
        sys.stderr.flush()
        os.dup2(saved, 2)
        sys.stderr = old

    return undo


def _run(args, debug: bool) -> int:
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    prefix = f"diluvian {args.command}"
    try:
        _check_options(args)
        _check_inputs(args)
        _check_outputs(args)
        return args.handler(args) or 0
    except DiluvianError as exc:
        if debug:
            logging.exception("%s failed", prefix)
        print(f"{prefix}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        if debug:
            logging.exception("%s failed", prefix)
        print(f"{prefix}: error: {_os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{prefix}: {'terminated' if signum == signal.SIGTERM else 'interrupted'}",
              file=sys.stderr)
        return 128 + int(signum)
    except MemoryError:
        print(f"{prefix}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a traceback
        if debug:
            logging.exception("%s failed", prefix)
        message = " ".join(str(exc).split())[:500]
        print(f"{prefix}: internal error: {type(exc).__name__}: {message} (run with -l DEBUG "
              "for the traceback)", file=sys.stderr)
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
