"""Headless Chromium over the DevTools protocol on a pipe, stdlib only: the one client of the
persona-map render tests (``tests/personas/conftest.py``) and of ``docs/browser_screenshots.py``.

Chromium runs with ``--remote-debugging-pipe`` (the child's fds 3 and 4, NUL-separated JSON) and
the flags this closed network needs (no background networking, no component updates, no sync).
Every read has a deadline.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe"]


def find_binary() -> str | None:
    """Debian's ``chromium`` (``apt-get install chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless Chromium page."""

    def __init__(self, binary: str, profile: Path, *, window: str = "1300,850") -> None:
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def fds() -> None:
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--window-size={window}", f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds,  # noqa: PLW1509 (dup2 only)
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.session = b"", 0, None
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable")

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buf:
                if not select.select([self._from_r], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise TimeoutError(method)
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {expression}")
            time.sleep(0.05)
        return value

    def open(self, url: str, ready: str = "document.readyState === 'complete'", timeout: float = 20.0) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for(ready, timeout)

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A real pointer event: ``kind`` is mouseMoved, mousePressed or mouseReleased."""
        params: dict[str, Any] = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params |= {"button": "left", "clickCount": 1}
        self.send("Input.dispatchMouseEvent", params)

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.mouse(kind, x, y)

    def type_text(self, text: str) -> None:
        """Text typed into the focused element, as a person would (never put in a URL)."""
        self.send("Input.insertText", {"text": text})

    def press_enter(self, modifiers: int = 0) -> None:
        """Enter (``modifiers=2``: Ctrl+Enter)."""
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "modifiers": modifiers}
        self.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", **key})
        self.send("Input.dispatchKeyEvent", {"type": "char", "text": "\r", "modifiers": modifiers})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))
        return path

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._to_w)
        os.close(self._from_r)
