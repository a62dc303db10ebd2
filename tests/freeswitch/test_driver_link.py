"""The ESL link fails in the ways it fails in production; the driver logs one clear line per
failure, retries with backoff and never crashes — and once the PBX is back, records again."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from controller.drivers.base import PbxUnavailable
from controller.drivers.freeswitch import FreeSwitchDriver
from controller.events import AnyEvent, LinkDown, LinkUp, Resync
from lab.esl_sim import EslSimulator


async def _wait(cond: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _collect(driver: FreeSwitchDriver, out: list[AnyEvent]) -> None:
    it: AsyncIterator[AnyEvent] = driver.events()
    async for ev in it:
        out.append(ev)


def _esl_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "callrec.freeswitch" and r.levelno >= logging.WARNING]


async def test_wrong_password_logs_and_retries_until_it_is_fixed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "callrec.freeswitch")
    sim = EslSimulator(password="right-one")
    await sim.start()
    driver = FreeSwitchDriver("fs-pw", "127.0.0.1", sim.port, "wrong-one", record_dir="/tmp", backoff_initial=0.05)
    await driver.start()
    try:
        await _wait(lambda: len(_esl_lines(caplog)) >= 2)
        assert not driver.connected
        lines = _esl_lines(caplog)
        assert all("authentication failed" in line for line in lines), lines
        assert all("wrong-one" not in line for line in lines), "the password must never be logged"
        with pytest.raises(PbxUnavailable):
            await driver.api("status")
        sim.password = "wrong-one"  # the admin fixes the PBX side
        await _wait(lambda: driver.connected)
        assert "UP" in await driver.api("status")
    finally:
        await driver.close()
        await sim.close()


async def test_refused_connection_then_pbx_comes_up(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    driver = FreeSwitchDriver("fs-down", "127.0.0.1", port, "pw", record_dir="/tmp", backoff_initial=0.05)
    events: list[AnyEvent] = []
    await driver.start()
    task = asyncio.create_task(_collect(driver, events))
    sim = EslSimulator(password="pw", port=port)
    try:
        await _wait(lambda: len(_esl_lines(caplog)) >= 2)
        assert all("refused" in line.lower() for line in _esl_lines(caplog)), _esl_lines(caplog)
        await sim.start()
        await _wait(lambda: driver.connected)
        await _wait(lambda: any(isinstance(e, Resync) for e in events))
        assert isinstance(events[0], LinkUp)
    finally:
        task.cancel()
        await driver.close()
        await sim.close()


async def test_socket_closed_mid_frame_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    """First connection: handshake, then half an event frame and the socket closes. Second: a
    normal simulator session."""
    sim = EslSimulator(password="pw")
    await sim.start()
    attempts = 0

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        if attempts > 1:  # later connections go to the real simulator
            up_r, up_w = await asyncio.open_connection("127.0.0.1", sim.port)

            async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
                w.close()

            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer), return_exceptions=True)
            return
        writer.write(b"Content-Type: auth/request\n\n")
        await reader.readuntil(b"\n\n")
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        await reader.readuntil(b"\n\n")
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
        for _ in range(2):
            await reader.readuntil(b"\n\n")
            writer.write(b'Content-Type: api/response\nContent-Length: 15\n\n{"row_count":0}')
        body = b"Event-Name: CHANNEL_CREATE\nUnique-ID: abc\n" * 20
        writer.write(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body[:100])
        await writer.drain()
        writer.transport.abort()

    proxy = await asyncio.start_server(flaky, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    driver = FreeSwitchDriver("fs-mid", "127.0.0.1", port, "pw", record_dir="/tmp", backoff_initial=0.05)
    events: list[AnyEvent] = []
    await driver.start()
    task = asyncio.create_task(_collect(driver, events))
    try:
        # `connected` is set by the driver's supervisor task; the events reach `events` only when the
        # collector task runs, so wait for the LinkDown too (a busy loop may not have run it yet)
        await _wait(lambda: driver.connects >= 2 and driver.connected and LinkDown in [type(e) for e in events])
        kinds = [type(e) for e in events]
        assert kinds[:3] == [LinkUp, Resync, LinkDown]
        assert any("mid-frame" in line for line in _esl_lines(caplog)), _esl_lines(caplog)
        assert "UP" in await driver.api("status")
    finally:
        task.cancel()
        await driver.close()
        proxy.close()
        await sim.close()
