"""``diluvian view`` in a real browser: headless Chromium renders the neuroglancer viewer.

The viewer runs in-process (non-blocking); Chromium is driven over the
DevTools protocol (tornado's websocket client, which neuroglancer already
depends on) so the test can wait for the canvas and for volume data before
taking a screenshot. Skipped only when no ``chromium`` executable is found.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import time
import types
import urllib.request

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--window-size=1024,768", "--remote-debugging-port=0", "--remote-allow-origins=*",
]


class DevTools:
    """Minimal Chrome DevTools protocol client for one page."""

    def __init__(self, ws_url: str):
        self.ws_url = ws_url
        self.loop = asyncio.new_event_loop()
        self.next_id = 0
        self.conn = self.loop.run_until_complete(self._connect())

    async def _connect(self):
        from tornado.websocket import websocket_connect

        return await websocket_connect(self.ws_url, max_message_size=1 << 28)

    async def _call(self, method: str, params: dict) -> dict:
        self.next_id += 1
        call_id = self.next_id
        await self.conn.write_message(json.dumps({"id": call_id, "method": method,
                                                  "params": params}))
        while True:
            message = await asyncio.wait_for(self.conn.read_message(), timeout=60)
            if message is None:
                raise RuntimeError("DevTools connection closed")
            reply = json.loads(message)
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def call(self, method: str, **params) -> dict:
        return self.loop.run_until_complete(self._call(method, params))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        import base64

        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self):
        self.conn.close()
        self.loop.close()


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium process; yields its DevTools HTTP endpoint."""
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and endpoint is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            if "DevTools listening on ws://" in line:
                endpoint = "http://" + line.split("ws://", 1)[1].split("/", 1)[0]
        if endpoint is None:
            pytest.fail("chromium did not start its DevTools endpoint")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tiny_volume():
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:16, 0:64, 0:64]
    image = (96 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 10, x.shape))
    labels = np.zeros(x.shape, np.uint32)
    labels[:, :32, :32] = 1
    labels[:, 32:, :] = 2
    labels[:, :32, 40:] = 3
    mask = np.ones(x.shape, bool)
    return types.SimpleNamespace(resolution=np.array([40, 8, 8]),
                                 image_data=np.clip(image, 0, 255).astype(np.uint8),
                                 label_data=labels, mask_data=mask)


def panel_fraction_with_data(png: bytes) -> float:
    """Fraction of pixels of the top-left (XY) panel that are neither background nor black.

    Neuroglancer paints the panel mid grey outside the volume (and black
    before anything loads); pixels of any other colour are rendered data.
    """
    import matplotlib.image

    rgb = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    h, w = rgb.shape[:2]
    panel = rgb[int(0.15 * h):int(0.5 * h), int(0.15 * w):int(0.4 * w)]
    grey = np.abs(panel - panel.mean(axis=-1, keepdims=True)).max(axis=-1) < 0.02
    background = grey & ((np.abs(panel[..., 0] - 0.5) < 0.03) | (panel[..., 0] < 0.03))
    return float(np.mean(~background))


def test_view_renders_volume_layers_in_headless_chromium(chromium, tmp_path, monkeypatch):
    import neuroglancer

    from diluvian.viewer import view_volumes

    fetches = []
    original = neuroglancer.LocalVolume.get_encoded_subvolume

    def counting(self, *args, **kwargs):
        fetches.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(neuroglancer.LocalVolume, "get_encoded_subvolume", counting)

    viewer = view_volumes({"tiny": tiny_volume()}, block=False)
    url = viewer.get_viewer_url()
    assert url.startswith("http://127.0.0.1:")
    names = [layer["name"] for layer in viewer.get_json_state()["layers"]]
    assert names == ["tiny", "tiny-labels", "tiny-mask"]

    targets = json.load(urllib.request.urlopen(f"{chromium}/json/list", timeout=30))
    page = next(t for t in targets if t.get("type") == "page")
    tools = DevTools(page["webSocketDebuggerUrl"])
    try:
        tools.call("Page.enable")
        tools.call("Page.navigate", url=url)
        deadline = time.monotonic() + 90
        png, lit = b"", 0.0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if not tools.evaluate("document.querySelectorAll('canvas').length > 0"):
                continue
            png = tools.screenshot()
            lit = panel_fraction_with_data(png)
            if fetches and lit > 0.5:
                break
        (tmp_path / "neuroglancer.png").write_bytes(png)
        page_layers = tools.evaluate(
            "Array.from(document.querySelectorAll('.neuroglancer-layer-item-label'))"
            ".map(e => e.textContent)")
    finally:
        tools.close()

    assert fetches, "the page never fetched volume data from the viewer"
    assert lit > 0.5, f"the XY panel is mostly blank ({lit:.0%} lit); see {tmp_path}"
    assert set(page_layers) >= set(names)
