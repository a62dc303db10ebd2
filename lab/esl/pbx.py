"""The leg life cycle of a simulated FreeSWITCH, each change sent as the events FreeSWITCH sends
(CHANNEL_ANSWER, CHANNEL_BRIDGE/UNBRIDGE, CHANNEL_HANGUP, CHANNEL_HANGUP_COMPLETE, CHANNEL_DESTROY,
RECORD_STOP), `show channels|calls`, and simulated time: `_elapse(legs, ms)` writes `ms` of audio to
the recordings tapped on those legs only, so each call's files are as long as the call."""

from __future__ import annotations

import asyncio
import json
import uuid as uuidlib
from typing import Any

from lab.esl import protocol as wire
from lab.esl.media import Recording
from lab.esl.model import Channel, now_us
from lab.esl.server import EslServer
from lab.tones import Earpieces


class EslPbx(EslServer):
    def __init__(self, *, time_scale: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.time_scale = time_scale  # real seconds per simulated second (0 = as fast as possible)
        self.channels: dict[str, Channel] = {}
        self.handles: dict[str, Any] = {}  # customer leg uuid → its scenario call (lab.esl.calls.CallHandle)
        self.earpieces: Earpieces | None = None  # set to keep what every leg hears (tests)

    async def close(self) -> None:
        await super().close()
        for ch in self.channels.values():
            for rec in ch.recordings.values():
                rec.writer.close()
        if self.earpieces is not None:
            self.earpieces.close()

    def _emit(
        self, name: str, ch: Channel | None, extra: dict[str, str] | None = None, subclass: str = "", body: str = ""
    ) -> None:
        chan = None
        if ch is not None:
            chan = wire.channel_headers(ch, self.channels.get(ch.other_leg or ""))
        self._publish(name, chan, extra, subclass, body)

    def _chan(self, uid: str) -> Channel:
        ch = self.channels.get(uid)
        if ch is None or ch.gone:
            raise KeyError(uid)
        return ch

    def _close_recording(self, ch: Channel, rec: Recording, cause: str = "success-silence") -> None:
        rec.writer.close()
        ch.recordings.pop(rec.path, None)
        ms = int(rec.writer.duration_ms)
        self._emit(
            "RECORD_STOP",
            ch,
            {
                "Record-File-Path": rec.path,
                "Record-Completion-Cause": cause,
                **{f"Recording-Variable-{k}": v for k, v in rec.variables.items()},
                "variable_record_seconds": str(ms // 1000),
                "variable_record_ms": str(ms),
            },
        )
        self._changed.set()

    def _show(self, what: str) -> str:
        live = [c for c in self.channels.values() if not c.gone]
        if what == "channels":
            rows = [self._show_row(c) for c in live]
        else:
            rows = []
            seen: set[str] = set()
            for c in live:
                if c.uuid in seen:
                    continue
                row = self._show_row(c)
                partner = self.channels.get(c.bridged_to or "")
                if partner and not partner.gone:
                    seen.add(partner.uuid)
                    row.update({"b_" + k: v for k, v in self._show_row(partner).items() if k != "call_uuid"})
                rows.append(row)
                seen.add(c.uuid)
        if not rows:
            return json.dumps({"row_count": 0})
        return json.dumps({"row_count": len(rows), "rows": rows})

    @staticmethod
    def _show_row(c: Channel) -> dict[str, str]:
        return {
            "uuid": c.uuid,
            "direction": c.direction,
            "created_epoch": str(c.created_us // 1_000_000),
            "name": c.name,
            "state": c.state,
            "cid_name": c.caller_name,
            "cid_num": c.caller_num,
            "dest": c.dest,
            "context": c.context,
            "callstate": c.call_state,
            "call_uuid": c.call_uuid,
            "presence_id": c.variables.get("presence_id", ""),
        }

    # ---- call model ----
    def _new_channel(self, **kw: Any) -> Channel:
        ch = Channel(uuid=str(uuidlib.uuid4()), created_us=now_us(), **kw)
        if not ch.call_uuid:
            ch.call_uuid = ch.uuid
        self.channels[ch.uuid] = ch
        return ch

    def _answer(self, ch: Channel) -> None:
        ch.answer_state, ch.call_state, ch.state = "answered", "ACTIVE", "CS_EXECUTE"
        ch.answered_us = now_us()
        self._emit("CHANNEL_ANSWER", ch)

    def _bridge(self, a: Channel, b: Channel, extra_a: dict[str, str] | None = None) -> None:
        a.bridged_to, b.bridged_to = b.uuid, a.uuid
        a.other_leg, b.other_leg = b.uuid, a.uuid
        a.other_type, b.other_type = "originatee", "originator"
        self._emit("CHANNEL_BRIDGE", a, {"Bridge-A-Unique-ID": a.uuid, "Bridge-B-Unique-ID": b.uuid, **(extra_a or {})})

    def _unbridge(self, a: Channel, b: Channel, extra: dict[str, str] | None = None) -> None:
        if a.bridged_to == b.uuid:
            a.bridged_to = None
        if b.bridged_to == a.uuid:
            b.bridged_to = None
        self._emit("CHANNEL_UNBRIDGE", a, {"Bridge-A-Unique-ID": a.uuid, "Bridge-B-Unique-ID": b.uuid, **(extra or {})})

    def _conference_member(self, ch: Channel, room: str, action: str) -> None:
        """mod_conference's CUSTOM conference::maintenance add-member / del-member for `ch`."""
        ch.conference = room if action == "add-member" else ""
        size = sum(1 for c in self.channels.values() if c.conference == room and not c.gone)
        extra = {"Conference-Name": room, "Conference-Size": str(size), "Action": action}
        self._emit("CUSTOM", ch, extra, subclass="conference::maintenance")

    def _hangup(self, ch: Channel, cause: str, disposition: str, extra: dict[str, str] | None = None) -> None:
        ch.answer_state, ch.call_state, ch.state = "hangup", "HANGUP", "CS_HANGUP"
        ch.variables["sip_hangup_disposition"] = disposition
        self._emit("CHANNEL_HANGUP", ch, {"Hangup-Cause": cause, **(extra or {})})

    def _hangup_complete(self, ch: Channel, cause: str, extra: dict[str, str] | None = None) -> None:
        for rec in list(ch.recordings.values()):
            self._close_recording(ch, rec, "success-silence" if rec.writer.samples else "empty-file")
        ch.state = "CS_REPORTING"
        self._emit("CHANNEL_HANGUP_COMPLETE", ch, {"Hangup-Cause": cause, **(extra or {})})

    def _destroy(self, ch: Channel) -> None:
        ch.state = "CS_DESTROY"
        self._emit("CHANNEL_DESTROY", ch)
        ch.gone = True
        self.channels.pop(ch.uuid, None)
        self.handles.pop(ch.uuid, None)
        self._changed.set()

    async def _hangup_leg(self, uid: str, cause: str, disposition: str) -> None:
        ch = self.channels.get(uid)
        if ch is None or ch.gone:
            return
        partner = self.channels.get(ch.bridged_to or "")
        self._hangup(ch, cause, disposition)
        if partner:
            self._hangup(partner, cause, "send_bye")
            self._hangup_complete(partner, cause)
            self._unbridge(ch, partner)
            self._destroy(partner)
        self._hangup_complete(ch, cause)
        self._destroy(ch)

    # ---- audio and simulated time ----
    def _write_audio(self, legs: list[Channel], ms: int) -> None:
        """The leg's read stream (its own party) LEFT and its write stream RIGHT: what is sent to the
        leg, i.e. its bridge partner, or a tone uuid_broadcast plays to it (which the party hears and
        a recording tapped on that leg holds, while a recording on the partner's leg does not)."""
        for ch in legs:
            if ch.gone:
                continue
            partner = self.channels.get(ch.bridged_to or "")
            right = partner.tone if partner is not None and not partner.held and not ch.held else None
            if ch.conference:  # a conference mixes every other member for each member
                room = [c.tone for c in self.channels.values() if c.conference == ch.conference and c is not ch]
                tones = tuple(sorted({t for t in room if t}))
                right = tones[0] if len(tones) == 1 else (tones or None)  # type: ignore[assignment]
            heard = ch.playing.split(ms, right)
            if self.earpieces is not None:
                self.earpieces.write(ch.uuid, heard)
            for rec in ch.recordings.values():
                if rec.masked:
                    rec.writer.write((None, None), ms)
                else:
                    for hz, part in heard:
                        rec.writer.write((ch.tone, hz), part)

    def ring_wall(self, ring_ms: float) -> float:
        """Wall seconds a controller is given to act on a transfer announcement before the target
        answers: as long as it rings, less what the ring itself takes on this clock (none in
        simulated time, all of it in real time), at least 50 ms."""
        return max(0.05, ring_ms / 1000 * (1 - min(self.time_scale, 1.0)))

    async def _elapse(self, legs: list[Channel], ms: int) -> None:
        """Simulated time passes for one call's `legs` only (never the calls beside it). With a
        time_scale the wall clock keeps pace: sleeps go to a deadline, so the audio does not fall
        behind the controller's timestamps under load."""
        loop = asyncio.get_running_loop()
        start, done = loop.time(), 0
        step = 100 if self.time_scale else 500  # in real time, audio is written at most 100 ms ahead
        while done < ms:
            chunk = min(step, ms - done)
            self._write_audio(legs, chunk)
            done += chunk
            await asyncio.sleep(max(0.0, start + done / 1000 * self.time_scale - loop.time()))
