"""The Event Socket client on the asyncio loop (controller.drivers.esl_protocol) against small real TCP
servers that misbehave the ways a PBX or a network can: replies matched to commands in order even
after a waiter gave up, a PBX that stops reading, an ACL rejection, a frame cut at every byte."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from controller.drivers.esl_protocol import EslLinkLost, EslProtocol, connect, parse_event_plain

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"Content-Type: auth/request\n\n")
    await reader.readuntil(b"\n\n")
    writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")


def _api_response(body: str) -> bytes:
    return f"Content-Type: api/response\nContent-Length: {len(body)}\n\n{body}".encode()


async def test_a_late_reply_goes_to_the_command_it_answers_not_to_the_next_one() -> None:
    """The first command's waiter gives up; its reply arrives late and must not be taken as the
    second command's (which would e.g. confirm a recording start that FreeSWITCH refused)."""
    go = asyncio.Event()

    async def pbx(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _login(reader, writer)
        await reader.readuntil(b"\n\n")  # api slow
        await reader.readuntil(b"\n\n")  # api fast
        await go.wait()
        writer.write(_api_response("-ERR slow one\n") + _api_response("+OK fast one\n"))
        await writer.drain()
        await reader.read()

    server, port = await _server(pbx)
    proto = await connect("127.0.0.1", port, "pw", lambda h: None)
    try:
        slow = proto.send("api slow")
        fast = proto.send("api fast")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow, 0.05)
        go.set()
        assert await asyncio.wait_for(fast, 5) == "+OK fast one\n"
    finally:
        proto.abort()
        server.close()


async def test_a_pbx_that_stops_reading_gets_its_link_cut_and_waiters_fail() -> None:
    """Commands pile up in the socket when the PBX no longer reads: after `write_timeout` the link is
    cut with a reason, and the commands still waiting fail instead of hanging."""

    async def pbx(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _login(reader, writer)
        await asyncio.sleep(30)  # never reads again

    server, port = await _server(pbx)
    proto = await connect("127.0.0.1", port, "pw", lambda h: None, wait=0.3)
    waiting = []
    try:
        big = "api uuid_setvar x callrec_note " + "x" * 60_000
        while proto.is_open and len(waiting) < 2000:
            waiting.append(proto.send(big))
            await asyncio.sleep(0)
        reason = await asyncio.wait_for(asyncio.shield(proto.closed), 10)
        assert reason == "ESL socket not writable"
        for fut in waiting:
            with pytest.raises(EslLinkLost):
                await fut
    finally:
        proto.abort()
        server.close()


async def test_an_acl_rejection_is_reported_with_freeswitchs_words() -> None:
    text = "Access Denied, go away.\n"

    async def pbx(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"Content-Type: text/rude-rejection\nContent-Length: {len(text)}\n\n{text}".encode())
        await writer.drain()
        writer.close()

    server, port = await _server(pbx)
    try:
        with pytest.raises(ConnectionError, match="rejected by FreeSWITCH: Access Denied, go away"):
            await connect("127.0.0.1", port, "pw", lambda h: None)
    finally:
        server.close()


async def test_frames_cut_at_any_byte_give_the_same_events_and_replies() -> None:
    body = "Event-Name: CHANNEL_ANSWER\nUnique-ID: leg%201\nvariable_x: a%3Ab\n\n"
    stream = (
        f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n{body}".encode()
        + _api_response("+OK\n")
        + b"\n"  # a stray empty line between frames
        + b"Content-Type: command/reply\nReply-Text: +OK done\n\n"
    )
    for cut in range(1, len(stream)):
        got: list[dict[str, str]] = []
        proto = EslProtocol(got.append)
        proto._replies.extend([asyncio.get_running_loop().create_future() for _ in range(2)])
        first, second = list(proto._replies)
        proto.data_received(stream[:cut])
        proto.data_received(stream[cut:])
        assert [(h["Event-Name"], h["Unique-ID"], h["variable_x"]) for h in got] == [
            ("CHANNEL_ANSWER", "leg 1", "a:b")
        ], cut
        assert (first.result(), second.result()) == ("+OK\n", "+OK done"), cut


@pytest.mark.parametrize(
    ("tail", "said"),
    [
        (
            b"Content-Length: 500\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_",
            "socket closed mid-frame (20 of 500 body bytes)",
        ),
        (b"Content-Length: 500\nContent-Ty", "socket closed mid-frame (a header block cut off after 30 bytes)"),
    ],
)
async def test_a_socket_closed_mid_frame_says_so(tail: bytes, said: str) -> None:
    async def pbx(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _login(reader, writer)
        writer.write(tail)
        await writer.drain()
        writer.close()

    server, port = await _server(pbx)
    proto = await connect("127.0.0.1", port, "pw", lambda h: None)
    try:
        reason = await asyncio.wait_for(asyncio.shield(proto.closed), 5)
        assert reason == said
        with pytest.raises(EslLinkLost):
            proto.send("api status")
    finally:
        server.close()


def test_event_values_are_decoded_one_by_one_and_an_encoded_newline_stays_in_its_value() -> None:
    """A channel variable may hold a newline (FreeSWITCH sends it as %0A): it must neither cut the
    value nor turn the rest of it into a header of its own (greenswitch's whole-body decode does)."""
    body = b"Event-Name: CUSTOM\nvariable_note: first%0AUnique-ID: forged\nUnique-ID: real%20leg\nEmpty: \n\n"
    headers = parse_event_plain(body)
    assert headers is not None
    assert dict(headers) == {
        "Event-Name": "CUSTOM",
        "variable_note": "first\nUnique-ID: forged",
        "Unique-ID": "real leg",
        "Empty": "",
    }
    assert headers.get("Unique-ID") == "real leg" and headers.get("missing", "-") == "-"
    assert parse_event_plain(b"not a header line\nEvent-Name: X\n") is None
