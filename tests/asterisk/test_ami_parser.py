"""The AMI framing (panoramisk + our incremental decoder) parses the real captures' raw bytes exactly
as the capture tool did — whole, split at random points, and one byte per read."""

from __future__ import annotations

import random

import pytest
from panoramisk.message import Message

from controller.drivers.ami_protocol import AmiProtocol, chan_variables, header, header_last
from tests.asterisk.fixtures import SCENARIOS, recv_blocks, recv_messages
from tests.socket_feed import fed


async def _parse(chunks: list[bytes]) -> tuple[AmiProtocol, list[Message]]:
    got: list[Message] = []
    proto = await fed(lambda: AmiProtocol(got.append, lambda e: None), chunks)
    return proto, got


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 700)
        out.append(data[i : i + n])
        i += n
    return out


def _as_pairs(msg: Message) -> dict[str, list[str]]:
    return {k: (v if isinstance(v, list) else [v]) for k, v in msg.items() if k != "content"}


def _expected(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in headers:
        out.setdefault(k, []).append(v.strip() if k == headers[-1][0] else v)
    return out


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("mode", ["whole", "random", "bytewise"])
async def test_fixture_stream_parses_like_the_capture(name: str, mode: str) -> None:
    data = b"".join(recv_blocks(name))
    chunks = {"whole": [data], "random": _split(data, random.Random(name)), "bytewise": [bytes([x]) for x in data]}[
        mode
    ]
    if mode == "bytewise" and len(data) > 80_000:
        chunks = _split(data, random.Random(1))  # keep the suite fast; still many tiny splits below
        chunks = [bytes([x]) for c in chunks[:40] for x in c] + chunks[40:]
    proto, events = await _parse(chunks)
    assert proto.banner == "Asterisk Call Manager/9.0.0"
    expected = [m for m in recv_messages(name) if m[0][0] == "Event"]
    assert [header(e, "Event") for e in events] == [m[0][1] for m in expected]
    for got, want in zip(events, expected, strict=True):
        exp = _expected(want)
        assert set(_as_pairs(got)) == set(exp), header(got, "Event")
        for k, vals in exp.items():
            assert [v.strip() for v in _as_pairs(got)[k]] == [v.strip() for v in vals], (header(got, "Event"), k)


async def test_repeated_headers_are_normalised() -> None:
    """S6: ChanVariable repeats, and the UserEvent body repeats CallerIDNum (NOTES §6.9)."""
    _, events = await _parse(recv_blocks("S6-dialplan-policy-hook"))
    user = [e for e in events if header(e, "Event") == "UserEvent"]
    assert len(user) == 2
    first = user[0]
    assert isinstance(first["ChanVariable"], list)
    assert chan_variables(first) == {"recpolicy": "record", "customer_id": "C-1001", "lab_role": "customer"}
    assert header_last(first, "UserEvent") == "RecordingPolicy"
    assert header_last(first, "Policy") == "record"
    assert header_last(user[1], "Policy") == "skip"


async def test_multibyte_character_split_across_reads_survives() -> None:
    frame = "Event: UserEvent\r\nUniqueid: 1.1\r\nUserEvent: CallrecPolicy\r\nCallrecAgent: Zoë\r\n\r\n".encode()
    cut = frame.index("ë".encode()) + 1
    _, events = await _parse([b"Asterisk Call Manager/9.0.0\r\n", frame[:cut], frame[cut:]])
    assert header(events[0], "CallrecAgent") == "Zoë"


async def test_garbage_frame_is_skipped_and_the_next_one_parsed(caplog: pytest.LogCaptureFixture) -> None:
    _, events = await _parse(
        [b"Asterisk Call Manager/9.0.0\r\n", b"this is not AMI\r\n\r\n", b"Event: Hangup\r\nUniqueid: 9.9\r\n\r\n"]
    )
    assert [header(e, "Event") for e in events] == ["Hangup"]
    assert "without Event/Response" in caplog.text
