"""Headless Chromium driven over the DevTools protocol (Debian's chromium package).

Enough to open a page, let its JavaScript run, click a button by its text and take a
screenshot; no browser download, no Selenium or Playwright needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium process with a DevTools endpoint."""

    def __init__(self, width: int = 1600, height: int = 1000):
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/json/version", timeout=2
                ):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def screenshot(
        self,
        url: str,
        path: Path,
        wait_for_text: str | None = None,
        click_texts: tuple[str, ...] = (),
        settle: float = 2.0,
        timeout: float = 60.0,
    ) -> str:
        """Open ``url``, wait for ``wait_for_text`` in the page, click buttons showing
        ``click_texts`` (dialogs), save a PNG to ``path``; return the page's text."""
        return asyncio.run(
            self._screenshot(url, Path(path), wait_for_text, click_texts, settle, timeout)
        )

    async def _screenshot(self, url, path, wait_for_text, click_texts, settle, timeout) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            target = json.load(response)
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            counter = 0

            async def call(method: str, **params):
                nonlocal counter
                counter += 1
                await ws.send(json.dumps({"id": counter, "method": method, "params": params}))
                while True:
                    message = json.loads(await ws.recv())
                    if message.get("id") == counter:
                        if "error" in message:
                            raise RuntimeError(f"{method}: {message['error']}")
                        return message.get("result", {})

            async def page_text() -> str:
                result = await call(
                    "Runtime.evaluate", expression="document.body ? document.body.innerText : ''"
                )
                return result.get("result", {}).get("value", "")

            await call("Page.enable")
            await call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            text = ""
            while time.monotonic() < deadline:
                text = await page_text()
                if wait_for_text is None or wait_for_text in text:
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"{wait_for_text!r} never appeared on {url}:\n{text[:2000]}")
            for label in click_texts:
                script = (
                    "(() => { const b = [...document.querySelectorAll('button')]"
                    f".find(e => e.innerText.trim() === {json.dumps(label)});"
                    " if (b) { b.click(); return true; } return false; })()"
                )
                await call("Runtime.evaluate", expression=script)
            await asyncio.sleep(settle)
            shot = await call("Page.captureScreenshot", format="png")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(shot["data"]))
            return await page_text()
