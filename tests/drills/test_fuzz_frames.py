"""Drill: malformed ESL / AMI frames (hypothesis fuzzer) → no crash, a clear log line, nothing after lost.

The ESL reader is the driver's own protocol (controller.drivers.esl_protocol) on a real socket pair,
fed in pieces cut at random, with the driver's real event handler (translation); the AMI reader is our
panoramisk protocol (controller.drivers.ami_protocol) on a real socket pair, and its events go through
the AMI translator.
Each property: the garbage never raises out of the reader, and a well-formed frame that comes before
(ESL) or after (AMI, whose frames are delimited) the garbage is still delivered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.drivers.ami_protocol import AmiProtocol, header
from controller.drivers.ami_translate import AmiTranslator
from controller.drivers.esl_protocol import EslProtocol
from controller.drivers.freeswitch import FreeSwitchDriver, Translator
from controller.events import ChannelHungUp
from tests.socket_feed import fed

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COUNTS = {"esl_frames": 0, "ami_frames": 0, "ami_raised": 0, "translations": 0}

ESL_KEYS = [
    "Event-Name",
    "Content-Type",
    "Content-Length",
    "Unique-ID",
    "Bridge-A-Unique-ID",
    "Bridge-B-Unique-ID",
    "Other-Leg-Unique-ID",
    "Other-Type",
    "Event-Subclass",
    "variable_transfer_history",
    "variable_endpoint_disposition",
    "variable_transfer_to",
    "variable_sip_refer_to",
    "variable_callrec_record",
    "Record-File-Path",
    "Answer-State",
]
ESL_NAMES = [
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP_COMPLETE",
    "RECORD_START",
    "RECORD_STOP",
    "CUSTOM",
]


def _esl_event(headers: dict[str, str]) -> bytes:
    body = "".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n"
    return f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body


GOOD_ESL = _esl_event({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": "good-leg", "Hangup-Cause": "X"})


class _Sink(FreeSwitchDriver):
    def __init__(self) -> None:
        super().__init__("fs1", "127.0.0.1", 0, "", record_dir="/nonexistent")
        self.got: list[Any] = []
        self.set_sink(lambda e: self.got.append(e) is None)


async def _read_esl_async(chunks: list[bytes]) -> list[Any]:
    driver = _Sink()
    await fed(lambda: EslProtocol(driver._on_event), chunks)
    return driver.got


def _read_esl(stream: bytes, cut: int = 0) -> tuple[list[Any], BaseException | None]:
    """Run the driver's reader over `stream`, given in two pieces cut at `cut`."""
    cut = min(cut, len(stream))
    try:
        return asyncio.run(_read_esl_async([stream[:cut], stream[cut:]])), None
    except Exception as e:
        return [], e


esl_garbage = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.tuples(st.sampled_from([*ESL_KEYS, "X"]), st.text(max_size=40)),
        max_size=8,
    ).map(lambda kv: ("".join(f"{k}: {v}\n" for k, v in kv) + "\n").encode("utf-8", "surrogatepass")),
    st.builds(
        lambda n, body: f"Content-Length: {n}\nContent-Type: text/event-plain\n\n".encode() + body,
        st.one_of(st.integers(-5, 600), st.just("x")),
        st.binary(max_size=300),
    ),
)


@FUZZ
@given(garbage=esl_garbage, cut=st.integers(0, 700))
def test_esl_reader_survives_garbage_after_a_good_frame(garbage: bytes, cut: int) -> None:
    got, raised = _read_esl(GOOD_ESL + garbage, cut)
    COUNTS["esl_frames"] += 1
    assert raised is None, f"the ESL reader raised {raised!r} on {garbage[:80]!r}"
    assert any(isinstance(e, ChannelHungUp) and e.leg == "good-leg" for e in got), "the good frame was lost"


def test_esl_block_without_a_header_line_is_skipped_not_fatal() -> None:
    got, raised = _read_esl(
        GOOD_ESL + b"garbage line\n\n" + _esl_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "b"})
    )
    assert raised is None, f"the ESL reader died: {raised!r}"
    assert [type(e).__name__ for e in got] == ["ChannelHungUp", "ChannelAnswered"]


@FUZZ
@given(
    name=st.sampled_from(ESL_NAMES),
    headers=st.dictionaries(st.sampled_from(ESL_KEYS), st.text(max_size=60), max_size=12),
)
def test_esl_translation_of_odd_headers_never_raises(name: str, headers: dict[str, str]) -> None:
    tr = Translator("fs1")
    h = {**headers, "Event-Name": name}
    tr(h)
    tr(h)  # a repeat (transfer history already seen) too
    COUNTS["translations"] += 1


BANNER = b"Asterisk Call Manager/9.0.0\r\n"
GOOD_AMI = b"Event: Hangup\r\nChannel: PJSIP/2001-1\r\nUniqueid: good.1\r\nLinkedid: good.1\r\nCause: 16\r\n\r\n"


async def _read_ami(chunks: list[bytes]) -> list[Any]:
    got: list[Any] = []
    await fed(lambda: AmiProtocol(got.append, lambda e: None), chunks)
    return got


ami_lines = st.lists(
    st.tuples(
        st.sampled_from(
            ["Event", "Response", "ActionID", "Channel", "Uniqueid", "Linkedid", "ChanVariable", "Message", "X"]
        ),
        st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=30),
    ),
    max_size=8,
    # that alphabet includes lone surrogates, which plain UTF-8 cannot encode: they go on the wire as
    # the invalid byte sequences a broken peer would send (more garbage, not a generator error)
).map(lambda kv: "".join(f"{k}: {v}\r\n" for k, v in kv).encode("utf-8", "surrogatepass"))
ami_garbage = st.one_of(
    st.binary(max_size=400), ami_lines, st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
)


@FUZZ
@given(garbage=ami_garbage, cut=st.integers(0, 400))
def test_ami_reader_survives_garbage_and_parses_the_next_frame(garbage: bytes, cut: int) -> None:
    data = garbage + b"\r\n\r\n" + GOOD_AMI
    cut = min(cut, len(data))
    COUNTS["ami_frames"] += 1
    got = asyncio.run(_read_ami([BANNER, data[:cut], data[cut:]]))
    assert got and header(got[-1], "Uniqueid") == "good.1", "the frame after the garbage was lost"


async def test_ami_frame_with_a_repeated_event_header_is_skipped_not_fatal() -> None:
    got = await _read_ami([BANNER, b"Event: A\r\nEvent: B\r\n\r\n" + GOOD_AMI])
    assert [header(m, "Uniqueid") for m in got] == ["good.1"]


@FUZZ
@given(
    event=st.sampled_from(
        ["Newchannel", "Newstate", "DialBegin", "BridgeEnter", "BridgeLeave", "Hangup", "UserEvent", "MixMonitorStart"]
    ),
    headers=st.dictionaries(
        st.sampled_from(
            [
                *("Channel", "Uniqueid", "Linkedid", "ChannelState", "BridgeUniqueid", "BridgeNumChannels", "Context"),
                *("UserEvent", "DestChannel", "DestUniqueid", "CallerIDNum", "Exten", "ChanVariable", "TransferType"),
            ]
        ),
        st.one_of(st.text(max_size=30), st.lists(st.text(max_size=20), max_size=3)),
        max_size=10,
    ),
)
def test_ami_translation_of_odd_events_never_raises(event: str, headers: dict[str, Any]) -> None:
    tr = AmiTranslator("ast1")
    tr.feed({**headers, "Event": event}, time.monotonic(), time.time())
    tr.flush()
    COUNTS["translations"] += 1


def test_zz_report() -> None:
    """Prints what the fuzzers injected and counted (runs after them in file order)."""
    print(
        f"\nfuzz drill: injected {COUNTS['esl_frames']} malformed ESL streams, "
        f"{COUNTS['ami_frames']} malformed AMI streams, "
        "(all survived), "
        f"{COUNTS['translations']} odd header sets through both translators; good frames lost: 0"
    )
