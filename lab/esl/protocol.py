"""The Event Socket wire format as FreeSWITCH 1.10 writes it: `Content-Type` framed replies, api
responses with `Content-Length`, and `text/event-plain` events whose header names and order follow
the real captures in tests/fixtures/freeswitch (URL-encoded values)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from lab.esl.model import CORE_UUID, DOMAIN, Channel


class Connection:
    """One ESL client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.authed = False
        self.events: set[str] = set()
        self.subclasses: set[str] = set()
        self.all_events = False

    def wants(self, name: str, subclass: str = "") -> bool:
        if not self.authed:
            return False
        if self.all_events:
            return True
        if name == "CUSTOM":
            return "CUSTOM" in self.events and (not self.subclasses or subclass in self.subclasses)
        return name in self.events

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def reply(self, text: str) -> None:
        self.send(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def api_response(self, body: str) -> None:
        raw = body.encode()
        self.send(f"Content-Type: api/response\nContent-Length: {len(raw)}\n\n".encode() + raw)


def event_base(name: str, subclass: str, seq: int, now_us: int) -> dict[str, str]:
    """The headers every event starts with."""
    h: dict[str, str] = {"Event-Name": name}
    if subclass:
        h["Event-Subclass"] = subclass
    h.update(
        {
            "Core-UUID": CORE_UUID,
            "FreeSWITCH-Hostname": "sim",
            "FreeSWITCH-Switchname": "sim",
            "FreeSWITCH-IPv4": DOMAIN,
            "Event-Date-Local": time.strftime("%Y-%m-%d %H:%M:%S"),
            "Event-Date-GMT": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "Event-Date-Timestamp": str(now_us),
            "Event-Calling-File": "switch_channel.c",
            "Event-Calling-Function": "switch_channel_perform_set_running_state",
            "Event-Calling-Line-Number": "1",
            "Event-Sequence": str(seq),
        }
    )
    return h


def event_frame(h: dict[str, str], body: str = "") -> bytes:
    """One `text/event-plain` frame (formatted once, sent to every subscriber)."""
    text = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in h.items())
    if body:
        text += f"Content-Length: {len(body.encode())}\n\n{body}"
    else:
        text += "\n"
    payload = text.encode()
    return f"Content-Length: {len(payload)}\nContent-Type: text/event-plain\n\n".encode() + payload


def channel_headers(ch: Channel, other: Channel | None) -> dict[str, str]:
    """A leg's state as every channel event carries it (`other` = its Other-Leg, if any)."""
    h = {
        "Channel-State": ch.state,
        "Channel-Call-State": ch.call_state,
        "Channel-Name": ch.name,
        "Unique-ID": ch.uuid,
        "Call-Direction": ch.direction,
        "Presence-Call-Direction": ch.direction,
        "Channel-HIT-Dialplan": "true" if ch.direction == "inbound" else "false",
        "Channel-Call-UUID": ch.call_uuid,
        "Answer-State": ch.answer_state,
        "Channel-Read-Codec-Name": "PCMU",
        "Channel-Read-Codec-Rate": "8000",
        "Channel-Write-Codec-Name": "PCMU",
        "Channel-Write-Codec-Rate": "8000",
        "Caller-Direction": ch.direction,
        "Caller-Logical-Direction": ch.direction,
        "Caller-Dialplan": "XML",
        "Caller-Caller-ID-Name": ch.caller_name,
        "Caller-Caller-ID-Number": ch.caller_num,
        "Caller-Orig-Caller-ID-Name": ch.caller_name,
        "Caller-Orig-Caller-ID-Number": ch.caller_num,
        "Caller-Network-Addr": DOMAIN,
        "Caller-ANI": ch.caller_num,
        "Caller-Destination-Number": ch.dest,
        "Caller-Unique-ID": ch.uuid,
        "Caller-Source": "mod_sofia",
        "Caller-Context": ch.context,
        "Caller-Channel-Name": ch.name,
        "Caller-Profile-Index": "1",
        "Caller-Profile-Created-Time": str(ch.created_us),
        "Caller-Channel-Created-Time": str(ch.created_us),
        "Caller-Channel-Answered-Time": str(ch.answered_us),
    }
    if other is not None and ch.other_type:
        h["Other-Type"] = ch.other_type
        h.update(
            {
                "Other-Leg-Direction": other.direction,
                "Other-Leg-Caller-ID-Name": other.caller_name,
                "Other-Leg-Caller-ID-Number": other.caller_num,
                "Other-Leg-Destination-Number": other.dest,
                "Other-Leg-Unique-ID": other.uuid,
                "Other-Leg-Context": other.context,
                "Other-Leg-Channel-Name": other.name,
            }
        )
    h["variable_direction"] = ch.direction
    h["variable_uuid"] = ch.uuid
    h["variable_call_uuid"] = ch.call_uuid
    h["variable_channel_name"] = ch.name
    for k, v in ch.variables.items():
        h["variable_" + k] = v
    return h
