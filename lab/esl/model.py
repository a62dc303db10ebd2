"""The call state a FreeSWITCH holds: one `Channel` per leg (sofia legs, one per party), with the
fields its events and `show channels` report, and the recordings tapped on it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lab.esl.media import Recording
from lab.tones import ToneQueue

CORE_UUID = "5e1c0de5-0000-4000-8000-00000000c0de"
DOMAIN = "127.0.0.1"
TRUNK_HOST = "203.0.113.10"


@dataclass
class Channel:
    uuid: str
    name: str
    direction: str  # FreeSWITCH Call-Direction of this leg: inbound | outbound
    caller_num: str
    caller_name: str
    dest: str
    context: str
    call_uuid: str
    tone: int | None
    party: str  # number of the phone/party on this leg
    variables: dict[str, str] = field(default_factory=dict)
    answer_state: str = "ringing"
    call_state: str = "DOWN"
    state: str = "CS_INIT"
    created_us: int = 0
    answered_us: int = 0
    bridged_to: str | None = None
    other_type: str = ""
    other_leg: str | None = None
    held: bool = False
    conference: str = ""  # the mod_conference room this leg is a member of
    recordings: dict[str, Recording] = field(default_factory=dict)
    playing: ToneQueue = field(default_factory=ToneQueue)  # uuid_broadcast tone streams to this leg
    gone: bool = False


def now_us() -> int:
    return int(time.time() * 1_000_000)
