"""The watchdog and reload notifications of ``callrec/systemd.py``, over a real
unix datagram socket as systemd offers one."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator

import pytest

from callrec.clock import ManualClock
from callrec.systemd import feed_watchdog, reloading, watchdog_interval


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    name = f"callrec-test-{secrets.token_hex(8)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    try:
        yield "@" + name, sock
    finally:
        sock.close()


def test_pings_come_at_half_the_watchdog_timeout() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": mine}) == 15.0


def test_no_pings_without_a_watchdog_or_for_another_process() -> None:
    assert watchdog_interval({}) is None
    # A child that inherited the variables must not ping for its parent.
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert watchdog_interval(other, pid=4242) is None


@pytest.mark.parametrize("value", ["0", "-5", "30s", "²"])
def test_an_unusable_timeout_is_named_and_ignored(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="callrec.systemd")
    assert watchdog_interval({"WATCHDOG_USEC": value}) is None
    assert f"WATCHDOG_USEC={value} is no number of microseconds" in caplog.text


def test_a_reload_says_when_by_the_kernels_monotonic_clock() -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, stamp = reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert first == "RELOADING=1"
    key, _, usec = stamp.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


async def test_the_watchdog_is_fed_each_interval_until_cancelled(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    loop = asyncio.get_running_loop()
    clock = ManualClock()
    task = asyncio.create_task(feed_watchdog(15.0, clock))
    try:
        for _ in range(3):
            message = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            assert message == b"WATCHDOG=1"
            clock.advance(15.0)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clock.advance(15.0)
    await asyncio.sleep(0)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)  # nothing more once cancelled
