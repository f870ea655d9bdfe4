"""A headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
messages ended by NUL on fds 3 and 4), so that a test can run script in a page, wait for what the
page does (a promise in the page, not a sleep here) and take a screenshot, with no package beyond
the browser itself."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional


class Browser:
    def __init__(self, exe: str, width: int = 1400, height: int = 1000):
        to_child, from_us = os.pipe()
        to_us, from_child = os.pipe()
        high = [os.dup(fd) for fd in (to_child, from_child)]  # out of the way of 3 and 4 before dup2

        def fds() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4, *high),
            preexec_fn=fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for fd in (to_child, from_child, *high):
            os.close(fd)
        self._w, self._r = os.fdopen(from_us, "wb"), os.fdopen(to_us, "rb")
        self._id, self._buf = 0, b""
        self.events: list = []
        self.session: Optional[str] = None

    def _next(self) -> Dict[str, Any]:
        while b"\0" not in self._buf:
            chunk = self._r.read1(1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed its pipe: " + self.proc.stderr.read().decode()[-2000:])
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, session: bool = True) -> Dict[str, Any]:
        self._id += 1
        msg: Dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self._w.write(json.dumps(msg).encode() + b"\0")
        self._w.flush()
        while True:
            answer = self._next()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            if "method" in answer:  # an event, kept for wait()
                self.events.append(answer["method"])

    def wait(self, event: str) -> None:
        """Until the browser reports the event (one already reported counts)."""
        while event not in self.events:
            got = self._next()
            if "method" in got:
                self.events.append(got["method"])

    def open(self, url: str) -> None:
        """A new tab at url, once its load event has fired."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        """The value of an expression (a promise is awaited; an exception raises here)."""
        got = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in got:
            raise AssertionError(
                got["exceptionDetails"].get("exception", {}).get("description", got["exceptionDetails"])
            )
        return got["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
