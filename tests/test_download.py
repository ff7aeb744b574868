"""Downloading dataset files (against a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from diluvian.util import DiluvianError
from diluvian.volumes import HDF5Volume, cache_dir, download_file, file_md5, load_volumes


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www; ``/short/...`` claims more bytes than it sends."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 (http.server naming)
            if self.path.startswith("/short/"):
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_writes_file_after_md5_check(server, tmp_path):
    url, root = server
    payload = bytes(range(256)) * 100
    (root / "f.bin").write_bytes(payload)
    dest = tmp_path / "out" / "f.bin"
    assert download_file(f"{url}/f.bin", dest, md5=hashlib.md5(payload).hexdigest(),
                         progress=False) == dest
    assert dest.read_bytes() == payload
    assert file_md5(dest) == hashlib.md5(payload).hexdigest()
    assert _leftovers(dest.parent) == ["f.bin"]


def test_download_with_wrong_md5_leaves_no_file(server, tmp_path):
    url, root = server
    (root / "f.bin").write_bytes(b"data")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(DiluvianError, match="MD5 .* expected 0000") as err:
        download_file(f"{url}/f.bin", dest, md5="0" * 32, progress=False)
    assert "\n" not in str(err.value) and str(dest) in str(err.value)
    assert _leftovers(dest.parent) == []


def test_download_http_error_says_what_to_do(server, tmp_path):
    url, _ = server
    dest = tmp_path / "out" / "missing.bin"
    with pytest.raises(DiluvianError, match="HTTP 404.*place it at"):
        download_file(f"{url}/missing.bin", dest, progress=False)
    assert not dest.exists()


def test_interrupted_download_leaves_no_file(server, tmp_path):
    url, _ = server
    dest = tmp_path / "out" / "cut.bin"
    with pytest.raises(DiluvianError):
        download_file(f"{url}/short/cut.bin", dest, progress=False)
    assert _leftovers(dest.parent) == []


def test_unreachable_server_is_a_one_line_error(tmp_path):
    with pytest.raises(DiluvianError, match="could not download") as err:
        download_file("http://127.0.0.1:9/none", tmp_path / "x", progress=False, timeout_s=2)
    assert "\n" not in str(err.value)


def test_existing_file_is_not_downloaded_again(tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"kept")
    assert download_file("http://127.0.0.1:9/none", dest, progress=False) == dest
    assert dest.read_bytes() == b"kept"


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DILUVIAN_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir("datasets") == tmp_path / "c" / "datasets"
    assert (tmp_path / "c" / "datasets").is_dir()


def test_dataset_entry_downloads_into_cache(server, tmp_path, monkeypatch):
    url, root = server
    monkeypatch.setenv("DILUVIAN_CACHE_DIR", str(tmp_path / "cache"))
    image = np.arange(64, dtype=np.uint8).reshape(1, 8, 8)
    HDF5Volume.write_file(root / "sample.hdf", (40, 4, 4), image_data=image)
    md5 = file_md5(root / "sample.hdf")
    toml = tmp_path / "sets.toml"
    toml.write_text(f"""
[[dataset]]
name = "remote"
hdf5_file = "sample.hdf"
image_dataset = "volumes/raw"
download_url = "{url}/sample.hdf"
download_md5 = "{md5}"
""")
    vol = load_volumes([toml], in_memory=True)["remote"]
    np.testing.assert_array_equal(vol.image_data, image)
    assert (tmp_path / "cache" / "datasets" / "sample.hdf").exists()


def test_cremi_dataset_file_lists_three_samples():
    import tomllib

    from diluvian.config import default_config_path

    with open(default_config_path().parent / "cremi_datasets.toml", "rb") as f:
        entries = tomllib.load(f)["dataset"]
    assert [e["name"] for e in entries] == ["Sample A", "Sample B", "Sample C"]
    for e in entries:
        assert e["resolution"] == [40, 4, 4]
        assert e["image_dataset"] == "volumes/raw"
        assert e["label_dataset"] == "volumes/labels/neuron_ids"
        assert e["download_url"].startswith("https://cremi.org/")
