"""The four baresip lab phones (lab/softphone/phones.py) as the real-PBX tests drive them, for either
PBX: 1001 customer 440 Hz, 2001 agent 880 Hz (auto-answer), 3001 second agent 1000 Hz (auto-answer),
9001 external party 660 Hz (answers after ringing). Their control API is blocking: `run` calls it from
a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.softphone import phones as lab_phones


class Phones:
    """The four lab phones of one PBX ("freeswitch" | "asterisk")."""

    def __init__(self, out: Path, pbx: str = "freeswitch") -> None:
        self.out = out
        self.pbx = pbx
        self.manifest: dict[str, Any] = {}
        self.ph: dict[str, Any] = {}

    def start(self) -> None:
        self.manifest = lab_phones.setup(self.pbx, self.out)
        lab_phones.start(self.out)
        self.ph = {p["user"]: lab_phones.connect(self.manifest, p["user"]) for p in self.manifest["phones"]}
        lab_phones.wait_registered(self.ph, 20)

    def stop(self) -> None:
        for p in self.ph.values():
            p.close()
        lab_phones.stop(self.out)

    @classmethod
    @contextlib.contextmanager
    def running(cls, out: Path, pbx: str = "freeswitch") -> Iterator[Phones]:
        """The phones started for a test module (which fails, rather than errors, when they do not
        come up) and stopped after it."""
        phones = cls(out, pbx)
        try:
            phones.start()
        except lab_phones.PhoneError as e:
            phones.stop()
            pytest.fail(f"the baresip lab phones did not come up: {e}")
        try:
            yield phones
        finally:
            phones.stop()

    def uri(self, number: str) -> str:
        return lab_phones.sip_uri(self.manifest, number)

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def clear(self) -> None:
        for p in self.ph.values():
            p.events.clear()

    def dial(self, frm: str, to: str) -> None:
        self.ph[frm].command("dial", self.uri(to))

    def established(self, *users: str) -> None:
        for u in users:
            self.ph[u].wait_event(lab_phones.ESTABLISHED, timeout=15)

    def ring_then_accept(self, user: str) -> None:
        lab_phones.ring_then_accept(self.ph[user])

    def hangup(self, user: str) -> None:
        self.ph[user].command("hangup")

    def transfer(self, user: str, to: str) -> None:
        self.ph[user].command("transfer", self.uri(to))
        self.ph[user].wait_event(lab_phones.CLOSED, timeout=15)

    def closed(self, user: str) -> None:
        self.ph[user].wait_event(lab_phones.CLOSED, timeout=15)

    def send_code(self, user: str, code: str, gap: float = 0.25) -> None:
        """`user`'s phone keys `code` digit by digit, as a person would: baresip sends each as an
        RFC 4733 telephone-event (press, then release), `gap` seconds apart."""
        for digit in code:
            self.ph[user].command("sndcode", digit)
            time.sleep(gap)

    def events_until_closed(self, user: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Every call event `user`'s phone reported up to and with its CALL_CLOSED."""
        seen: list[dict[str, Any]] = []
        phone = self.ph[user]
        deadline = time.monotonic() + timeout
        while not seen or seen[-1].get("type") != "CALL_CLOSED":
            if not phone.events:
                if time.monotonic() >= deadline:
                    raise lab_phones.PhoneError(f"{user}: no CALL_CLOSED within {timeout} s")
                phone._pump(deadline)
                continue
            seen.append(phone.events.popleft())
        return seen

    def heard(self, user: str) -> Path:
        """What `user`'s phone played to its user in its last call: baresip's sndfile module dumps the
        decoded audio it received to <phone>/snd/dump-<time>-dec.wav (8 kHz mono)."""
        dumps = sorted((self.out / user / "snd").glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
        assert dumps, f"{user}: no sndfile dump"
        return dumps[-1]
