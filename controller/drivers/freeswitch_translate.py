"""FreeSWITCH event translation (pure): ESL event headers → normalized events, and the live-channel
listing of `show channels` / `show calls` for a resync. No I/O; the driver (controller.drivers.freeswitch)
feeds it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from controller.events import (
    AnyEvent,
    Bridged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    FeatureCode,
    HoldChanged,
    LiveChannel,
    PolicyHint,
    RecordingStarted,
    RecordingStopped,
    TransferKind,
    Transferred,
    Unbridged,
)

SUBSCRIBED = (
    "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP_COMPLETE "
    "CHANNEL_HOLD CHANNEL_UNHOLD RECORD_START RECORD_STOP CUSTOM callrec::policy callrec::feature "
    "conference::maintenance"
)
VARIABLES_KEPT = (
    "dialed_user",
    "presence_id",
    "sip_hangup_disposition",
    "direction",
    "transfer_history",
    "endpoint_disposition",
)
RECORDING_ID_VAR = "callrec_recording_id"


def _user(value: str) -> str:
    """`2001@127.0.0.1` / `sip:9001@host` → `2001` / `9001`."""
    v = value.split(":", 1)[1] if value.startswith(("sip:", "sips:")) else value
    return v.split("@", 1)[0]


def _variables(h: Mapping[str, str], *, hooks: bool = False) -> dict[str, str]:
    """The variables we keep; `hooks` adds every callrec_* one (a scan of all ~150 headers, so only
    for CHANNEL_CREATE, the one event whose hook variables the state machine reads)."""
    # names first, values only of the headers kept (the driver's headers decode a value when read)
    out = {k[9:]: h[k] for k in h if k.startswith("variable_callrec_")} if hooks else {}
    for name in VARIABLES_KEPT:
        value = h.get("variable_" + name)
        if value:
            out[name] = value
    if "presence_id" in out and "dialed_user" not in out and h.get("Call-Direction") == "outbound":
        out["dialed_user"] = _user(out["presence_id"])
    return out


class Translator:
    """ESL event headers → normalized events. Holds only what translation needs (which transfer
    history entries were already reported), never call state or policy."""

    def __init__(self, pbx: str) -> None:
        self.pbx = pbx
        self._seen_history: dict[str, str] = {}
        self._conferences: dict[str, list[str]] = {}  # conference name → member legs, in joining order

    def __call__(self, h: Mapping[str, str], ts: float | None = None, wall: float | None = None) -> list[AnyEvent]:
        ts = time.monotonic() if ts is None else ts
        wall = time.time() if wall is None else wall
        name = h.get("Event-Name", "")
        uid = h.get("Unique-ID", "")
        p = self.pbx
        if name == "CHANNEL_CREATE":
            originator = h.get("variable_originating_leg_uuid") or (
                h.get("Other-Leg-Unique-ID") if h.get("Other-Type") == "originator" else None
            )
            return [
                ChannelCreated(
                    p,
                    ts,
                    wall,
                    leg=uid,
                    call_id=h.get("Channel-Call-UUID", uid),
                    caller=h.get("Caller-Caller-ID-Number", ""),
                    callee=h.get("Caller-Destination-Number", ""),
                    context=h.get("Caller-Context", ""),
                    channel_name=h.get("Channel-Name", ""),
                    originator=originator or None,
                    pbx_direction=h.get("Call-Direction", ""),
                    variables=_variables(h, hooks=True),
                )
            ]
        if name == "CHANNEL_ANSWER":
            return [ChannelAnswered(p, ts, wall, leg=uid, variables=_variables(h))]
        if name in ("CHANNEL_HOLD", "CHANNEL_UNHOLD"):
            # on the leg facing the phone that put its call on hold (S4: the agent leg after uuid_hold)
            return [HoldChanged(p, ts, wall, leg=uid, held=name == "CHANNEL_HOLD")]
        if name == "CUSTOM" and h.get("Event-Subclass") == "callrec::policy":
            values: dict[str, str] = {}
            for k in h:
                key = k[9:] if k.startswith("variable_") else k
                if key.startswith("callrec_") and (v := h[k]):
                    values[key[8:]] = v
            return [PolicyHint(p, ts, wall, leg=uid, values=values)]
        if name == "CUSTOM" and h.get("Event-Subclass") == "conference::maintenance":
            return self._conference(h, ts, wall)
        if name == "CUSTOM" and h.get("Event-Subclass") == "callrec::feature":
            # fired by the hook's bind_meta_app on the leg whose phone dialled the code
            return [FeatureCode(p, ts, wall, leg=uid, code=h.get("callrec_feature", ""))]
        if name == "CHANNEL_BRIDGE":
            a, b = h.get("Bridge-A-Unique-ID", uid), h.get("Bridge-B-Unique-ID", h.get("Other-Leg-Unique-ID", ""))
            out: list[AnyEvent] = []
            hist = self._new_history(a, h.get("variable_transfer_history", ""))
            if hist and ("att_xfer" in hist or "uuid_br" in hist):
                out.append(Transferred(p, ts, wall, leg=a, kind=TransferKind.ATTENDED))
            number_b = h.get("Other-Leg-Destination-Number", "") if h.get("Other-Leg-Unique-ID") == b else ""
            out.append(Bridged(p, ts, wall, leg_a=a, leg_b=b, number_b=number_b))
            return out
        if name == "CHANNEL_UNBRIDGE":
            a, b = h.get("Bridge-A-Unique-ID", uid), h.get("Bridge-B-Unique-ID", "")
            out = []
            raw = h.get("variable_transfer_history", "")
            # only a blind transfer is reported at the unbridge; a uuid_bridge (warm transfer completed
            # by a CTI client, real capture S4) stays new for the bridge that follows, which says so
            hist = self._new_history(a, raw) if "bl_xfer" in raw.rsplit("|:", 1)[-1] else ""
            if hist and "bl_xfer" in hist:
                dest = hist.rsplit("bl_xfer:", 1)[1]
                # `<exten>/<context>/<dialplan>`; an INLINE dialplan's "exten" is applications
                # (`bridge:loopback/…`), not a number: nothing names the target until the leg dials
                named = "" if dest.endswith("/inline") else dest.split("/", 1)[0]
                target = _user(h.get("variable_sip_refer_to", "")) or named
                out.append(Transferred(p, ts, wall, leg=a, kind=TransferKind.BLIND, target=target, transferer=b))
            # the leg the event is about already hangs up (its A leg's own hangup): the call ends here
            ending = uid if h.get("Answer-State") == "hangup" else ""
            out.append(Unbridged(p, ts, wall, leg_a=a, leg_b=b, hanging_up=ending))
            return out
        if name == "CHANNEL_HANGUP_COMPLETE":
            out = []
            disp = h.get("variable_endpoint_disposition", "")
            xfer_to = h.get("variable_transfer_to", "")
            if disp == "BLIND_TRANSFER" and xfer_to.startswith("blind:"):
                target = h.get("variable_transfer_destination", "").removeprefix("blind:")
                out.append(
                    Transferred(p, ts, wall, leg=xfer_to[6:], kind=TransferKind.BLIND, target=target, transferer=uid)
                )
            elif xfer_to.startswith("att:") and h.get("Other-Leg-Unique-ID"):
                out.append(
                    Transferred(p, ts, wall, leg=h["Other-Leg-Unique-ID"], kind=TransferKind.ATTENDED, transferer=uid)
                )
            self._seen_history.pop(uid, None)
            out.append(ChannelHungUp(p, ts, wall, leg=uid, cause=h.get("Hangup-Cause", ""), variables=_variables(h)))
            return out
        if name == "RECORD_START":
            rid = h.get("Recording-Variable-" + RECORDING_ID_VAR) or h.get("variable_" + RECORDING_ID_VAR, "")
            return [RecordingStarted(p, ts, wall, leg=uid, path=h.get("Record-File-Path", ""), recording_id=rid)]
        if name == "RECORD_STOP":
            rid = h.get("Recording-Variable-" + RECORDING_ID_VAR) or h.get("variable_" + RECORDING_ID_VAR, "")
            cause = "channel_hangup" if h.get("Answer-State") == "hangup" else h.get("Record-Completion-Cause", "")
            return [
                RecordingStopped(
                    p, ts, wall, leg=uid, path=h.get("Record-File-Path", ""), cause=cause, recording_id=rid
                )
            ]
        return []

    def _conference(self, h: Mapping[str, str], ts: float, wall: float) -> list[AnyEvent]:
        """mod_conference membership as bridges: a member joining is bridged with every member already
        there (`size` = members now, so a third one JOINS in the state machine), one leaving is
        unbridged from the others — the same events an Asterisk multi-party bridge gives."""
        action, uid, room = h.get("Action", ""), h.get("Unique-ID", ""), h.get("Conference-Name", "")
        members = self._conferences.setdefault(room, [])
        if action == "add-member" and uid and uid not in members:
            number = h.get("Caller-Caller-ID-Number", "")
            out: list[AnyEvent] = [
                Bridged(self.pbx, ts, wall, leg_a=uid, leg_b=m, number_a=number, size=len(members) + 1) for m in members
            ]
            members.append(uid)
            return out
        if action == "del-member" and uid in members:
            members.remove(uid)
            if not members:
                del self._conferences[room]
            gone = uid if h.get("Answer-State") == "hangup" else ""  # it leaves because it hangs up
            return [Unbridged(self.pbx, ts, wall, leg_a=uid, leg_b=m, hanging_up=gone) for m in members]
        return []

    def _new_history(self, leg: str, hist: str) -> str:
        """The transfer_history value if it changed since we last reported it for this leg."""
        if not hist or self._seen_history.get(leg) == hist:
            return ""
        self._seen_history[leg] = hist
        return hist.rsplit("|:", 1)[-1]


def parse_show_json(body: str) -> list[dict[str, Any]]:
    """`show channels as json` / `show calls as json` rows ([] for an empty list, in any of its forms)."""
    body = body.strip()
    if not body or body.startswith("-ERR") or body in ("0 total.", "+OK"):
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return []
    return list(data.get("rows") or [])


def live_channels_from(channels: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[LiveChannel]:
    partner: dict[str, str] = {}
    for c in calls:
        if c.get("uuid") and c.get("b_uuid"):
            partner[c["uuid"]], partner[c["b_uuid"]] = c["b_uuid"], c["uuid"]
    out = []
    for ch in channels:
        uid = ch.get("uuid", "")
        if not uid:
            continue
        variables = {"direction": ch.get("direction", "")}
        if ch.get("presence_id") and ch.get("direction") == "outbound":
            variables["dialed_user"] = _user(ch["presence_id"])
        out.append(
            LiveChannel(
                leg=uid,
                call_id=ch.get("call_uuid") or uid,
                caller=ch.get("cid_num", ""),
                callee=ch.get("dest", ""),
                context=ch.get("context", ""),
                answered=ch.get("callstate") in ("ACTIVE", "HELD", "EARLY") or uid in partner,
                bridged_to=partner.get(uid),
                channel_name=ch.get("name", ""),
                variables=variables,
            )
        )
    return out
