"""sd_notify over a real unix datagram socket, as systemd offers one."""

from __future__ import annotations

import logging
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from callrec.systemd import READY, STOPPING, notify, notify_address


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        yield Path(folder)


def _listen(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_ready_reaches_a_socket_file(socket_dir: Path) -> None:
    path = str(socket_dir / "notify")
    with _listen(path) as sock:
        assert notify(READY, "STATUS=connected", environ={"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1\nSTATUS=connected"


def test_an_at_sign_names_an_abstract_socket() -> None:
    name = f"callrec-test-{secrets.token_hex(8)}"
    with _listen("\0" + name) as sock:
        assert notify(STOPPING, environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_outside_systemd_nothing_is_sent() -> None:
    assert not notify(READY, environ={})
    assert not notify(READY, environ={"NOTIFY_SOCKET": ""})


def test_a_socket_nobody_listens_on_is_logged_not_raised(
    socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="callrec.systemd")
    assert not notify(READY, environ={"NOTIFY_SOCKET": str(socket_dir / "gone")})
    assert "cannot notify systemd" in caplog.text


def test_an_address_that_is_no_unix_socket_is_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="callrec.systemd")
    assert notify_address("vsock:2:1234") is None
    assert not notify(READY, environ={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert "NOTIFY_SOCKET=vsock:2:1234 is not a unix socket" in caplog.text
    assert notify_address("@x") == "\0x" and notify_address("/run/n") == "/run/n"
