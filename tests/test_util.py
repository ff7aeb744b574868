"""Small utilities: atomic outputs."""

from __future__ import annotations

import os
import stat

import pytest

from diluvian.util import atomic_output


def test_atomic_output_file_gets_the_usual_mode(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_output(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o640


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
