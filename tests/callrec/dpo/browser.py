"""A real headless Chromium, driven over the DevTools protocol, to open an export's page.

Debian's ``chromium`` (installed by ``.ci/run``) is started with
``--remote-debugging-port=0``; it writes the port it chose into
``DevToolsActivePort`` in its profile folder. One page target is driven
over its websocket (aiohttp): the page is loaded, every script exception,
console or log error and failed request is collected, and each ``<audio>``
element is asked for its duration once its metadata has loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")

# Waits for every <audio> to have its metadata (or an error), then says what each has.
_DURATIONS = """
Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
  const report = () => done({src: a.getAttribute('src'), duration: a.duration,
                             error: a.error ? a.error.code : null,
                             seconds: a.dataset.seconds});
  if (a.readyState >= 1 || a.error) { report(); return; }
  a.addEventListener('loadedmetadata', report);
  a.addEventListener('error', report);
  a.load();
}))).then(r => JSON.stringify(r))
"""


def chromium() -> str:
    """The browser's path; skips the test without one (fails it under CI=true)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = "no chromium on this machine (.ci/run installs Debian's chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class PageReport:
    """What the browser saw while loading one page."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    audio: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        await self.ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = json.loads(await self.ws.receive_str())
            if message.get("id") == number:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def until(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(await self.ws.receive_str()))


@asynccontextmanager
async def _browser() -> AsyncIterator[str]:
    """A running headless chromium; yields its DevTools HTTP address."""
    # Chromium's helper processes may still write into the profile after the
    # browser has exited: the whole process group goes before the folder does.
    with tempfile.TemporaryDirectory(
        prefix="callrec-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--mute-audio",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            async with asyncio.timeout(60):
                while not port_file.exists() or not port_file.read_text().strip():
                    if proc.returncode is not None:
                        raise AssertionError(f"chromium exited with {proc.returncode}")
                    await asyncio.sleep(0.1)
            yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
        finally:
            await _end_group(proc)


async def _end_group(proc: asyncio.subprocess.Process) -> None:
    """Stop chromium and every helper it started (its own session), then wait for them."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    for _ in range(50):  # helpers outliving the browser: at most 5 s, then killed
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def open_page(page: Path) -> PageReport:
    """Load ``page`` (a file) in a fresh headless chromium and report what it saw."""
    report = PageReport()
    async with _browser() as address, aiohttp.ClientSession() as http:
        async with http.get(f"{address}/json/list") as response:
            targets = await response.json()
        target = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            session = _Session(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                await session.call(f"{domain}.enable")
            async with asyncio.timeout(60):
                await session.call("Page.navigate", url=page.resolve().as_uri())
                await session.until("Page.loadEventFired")
                result = await session.call(
                    "Runtime.evaluate", expression=_DURATIONS, awaitPromise=True
                )
                text = await session.call("Runtime.evaluate", expression="document.body.innerText")
            report.audio = json.loads(result["result"]["value"])
            report.text = text["result"]["value"]
            _collect(session.events, report)
    return report


def _collect(events: list[dict[str, Any]], report: PageReport) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            report.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            report.errors.append(f"console: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            report.errors.append(f"log: {params['entry'].get('text')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            report.errors.append(f"request failed: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith("data:"):  # the browser's own media control icons
                report.requests.append(url)
