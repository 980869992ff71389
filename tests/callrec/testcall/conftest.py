from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The end-to-end rig (ARI simulator + Stasis app), shared with tests/ari_app.
from tests.ari_app.conftest import rig, running  # noqa: F401


def need_sipp() -> str:
    """sipp's path; a missing sipp fails in CI (CI=true) and skips elsewhere."""
    path = shutil.which("sipp")
    if path is None:
        message = "sipp is not installed (apt-get install sip-tester)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _uas(tmp_path: Path, scenario: list[str]) -> AsyncIterator[str]:
    binary = need_sipp()
    port = free_udp_port()
    proc = await asyncio.create_subprocess_exec(
        binary,
        *scenario,
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mp",
        str(free_udp_port()),
        "-nostdin",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.3)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


@pytest.fixture
async def sipp_uas(tmp_path: Path) -> AsyncIterator[str]:
    """A sipp UAS on loopback standing in for the PBX: answers and waits for BYE."""
    async for target in _uas(tmp_path, ["-sn", "uas"]):
        yield target


@pytest.fixture
async def sipp_uas_auth(tmp_path: Path) -> AsyncIterator[str]:
    """A UAS that challenges the INVITE (401) and accepts only tester / s3cret."""
    scenario = str(Path(__file__).with_name("uas_auth.xml"))
    async for target in _uas(tmp_path, ["-sf", scenario, "-m", "1"]):
        yield target
