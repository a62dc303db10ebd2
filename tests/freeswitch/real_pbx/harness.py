"""The real chain against a real FreeSWITCH: calls made inside the PBX over ESL (loopback legs playing
tones, routes tests/freeswitch/real_pbx/callrec_test.xml + our shipped hook), recorded by
FreeSwitchDriver → Recorder → PostgreSQL journal → FinalizeWorker (age-encrypted, stored), then
decrypted and checked by FFT.

The LAB connection (`LabEsl`, our own asyncio ESL framing on a real socket) places, transfers and
hangs up the calls and subscribes to the same events as the driver; with
CALLREC_TEST_FREESWITCH_CAPTURE=<dir> it keeps what it received as a `#@ESLCAP v1` transcript — the
raw material of the replay tests in the default suite (tests/fixtures/freeswitch/).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from controller.config import Config
from controller.drivers.freeswitch import SUBSCRIBED, FreeSwitchDriver, decode_event_plain
from controller.policy import Account, NumberOverride, PolicySet, settings_from_dict
from controller.recorder import Recorder
from tests.real_pbx_common import finalize_stored, stored_timeline, wait_for
from tests.real_pbx_common import make_config as common_config

ROUTES, PHONES = "callrec_test", "callrec_test_phones"
DID = "+15557000101"  # inbound DID → agent 2001 (880 Hz)
DID_NO_ANSWER = "+15557000199"  # the agent rings 3 s and never answers
CUSTOMER = "+15551230001"  # 440 Hz
OUTBOUND_CUSTOMER = "+15551230002"  # reached by the outbound route, 440 Hz
AGENT, AGENT2 = "2001", "3001"  # 880 Hz, 660 Hz
EXTERNAL = "+15559990001"  # 660 Hz
TAG = "lab_tag"  # copied to the loopback b-leg, so CHANNEL_BRIDGE names the test call


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LabEsl:
    """A plain ESL client (real socket) that places and steers the test calls and keeps every event."""

    def __init__(self, host: str, port: int, password: str, title: str = "") -> None:
        self.host, self.port, self.password = host, port, password
        self.events: list[dict[str, str]] = []
        self.raw: list[tuple[str, str, float, bytes]] = []  # (kind, utc, +s, bytes) for the transcript
        self.title = title
        self._t0 = time.monotonic()
        self._changed = asyncio.Event()
        self._replies: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._buf = b""

    def _keep(self, kind: str, data: bytes) -> None:
        self.raw.append((kind, _now(), time.monotonic() - self._t0, data))

    def note(self, text: str) -> None:
        self._keep("NOTE", text.encode())

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head, _ = await self._frame()
        assert head.get("Content-Type") == "auth/request", head
        self._send(f"auth {self.password}")
        head, _ = await self._frame()
        assert head.get("Reply-Text", "").startswith("+OK"), f"ESL login refused: {head}"
        self._send(f"event plain {SUBSCRIBED}")
        head, _ = await self._frame()
        assert head.get("Reply-Text", "").startswith("+OK"), head
        self._task = asyncio.create_task(self._read_loop())

    def _send(self, line: str) -> None:
        assert self._writer is not None
        data = f"{line}\n\n".encode()
        self._keep("TX", data)
        self._writer.write(data)

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _fill(self) -> None:
        assert self._reader is not None
        chunk = await self._reader.read(65536)
        if not chunk:
            raise ConnectionError("FreeSWITCH closed the lab connection")
        self._keep("RX", chunk)
        self._buf += chunk

    async def _frame(self) -> tuple[dict[str, str], str]:
        while b"\n\n" not in self._buf:
            await self._fill()
        raw, self._buf = self._buf.split(b"\n\n", 1)
        head = dict(line.split(": ", 1) for line in raw.decode().split("\n") if ": " in line)
        n = int(head.get("Content-Length", "0"))
        while len(self._buf) < n:
            await self._fill()
        body, self._buf = self._buf[:n], self._buf[n:]
        return head, body.decode("utf-8", "replace")

    async def _read_loop(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head, body = await self._frame()
                ctype = head.get("Content-Type", "")
                if ctype == "text/event-plain":
                    self.events.append(decode_event_plain(body.split("\n\n", 1)[0]))
                    self._changed.set()
                elif ctype in ("command/reply", "api/response"):
                    self._replies.put_nowait((head, body))

    async def command(self, line: str) -> str:
        async with self._lock:
            self._send(line)
            head, body = await asyncio.wait_for(self._replies.get(), 15)
        return body if head.get("Content-Type") == "api/response" else head.get("Reply-Text", "")

    async def api(self, line: str) -> str:
        reply = await self.command(f"api {line}")
        assert not reply.startswith("-"), f"api {line}: {reply.strip()}"
        return reply

    async def att_xfer(self, agent_leg: str, number: str) -> None:
        """The agent's leg starts an attended transfer to `number` (a loopback leg into the test phones
        that plays its tone for 40 s), as the phone's transfer key would."""
        self.note(f"STEP att_xfer by the agent leg to {number}")
        await self.api(
            f"uuid_broadcast {agent_leg} att_xfer::{{loopback_bowout=false,origination_caller_id_number={AGENT},"
            f"callrec_test_secs=40}}loopback/{number}/{PHONES} aleg"
        )

    async def wait_event(self, pred: Callable[[dict[str, str]], bool], within: float = 15.0) -> dict[str, str]:
        async with asyncio.timeout(within):
            seen = 0
            while True:
                for h in self.events[seen:]:
                    if pred(h):
                        return h
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    def write_transcript(self, path: Path) -> None:
        with path.open("wb") as f:
            f.write(f"#@ESLCAP v1 {_now()} {self.title}\n".encode())
            arrow = {"RX": ">>>", "TX": "<<<", "NOTE": "---"}
            for kind, utc, t, data in self.raw:
                f.write(f"#{arrow[kind]} {kind} {utc} +{t:.6f} {len(data)} bytes\n".encode() + data + b"\n")

    # ---- calls ----
    async def originate(self, dest: str, caller: str, tone_hz: int, secs: int = 40) -> tuple[str, str]:
        """A handset (loopback a-leg playing `tone_hz`) dials `dest` in the routes context: (tag, handset
        uuid). Tests end calls by killing a handset: a tone that runs out on a loopback leg ends in a
        burst of DTMF-like noise on the far side's recording, which is the lab's, not the product's."""
        tag = secrets.token_hex(5)
        handset = str(uuidlib.uuid4())
        vars_ = (
            f"origination_uuid={handset},origination_caller_id_number={caller},{TAG}={tag},"
            f"callrec_test_secs={secs},loopback_bowout=false"
        )
        self.note(f"STEP originate {dest} from {caller} ({tone_hz} Hz, {secs} s)")
        reply = await self.command(
            f"bgapi originate {{{vars_}}}loopback/{dest}/{ROUTES} &playback(tone_stream://%({secs * 1000},0,{tone_hz}))"
        )
        assert "Job-UUID" in reply, reply
        return tag, handset

    async def hangup(self, uuid: str) -> None:
        self.note(f"STEP hang up {uuid}")
        await self.command(f"api uuid_kill {uuid}")

    async def bridge_of(self, tag: str, within: float = 15.0, *, nth: int = 0) -> dict[str, str]:
        """The nth CHANNEL_BRIDGE event of the test call (headers)."""
        found: list[dict[str, str]] = []

        def match(h: dict[str, str]) -> bool:
            if h.get("Event-Name") == "CHANNEL_BRIDGE" and h.get(f"variable_{TAG}") == tag and h not in found:
                found.append(h)
            return len(found) > nth

        await self.wait_event(match, within)
        return found[nth]

    async def gone(self, uuid: str, within: float = 40.0) -> None:
        await self.wait_event(
            lambda h: h.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE" and h.get("Unique-ID") == uuid, within
        )


ACCOUNT_NUMBER = "+15557000100"  # the caller ID outbound calls present


def policy(**settings: Any) -> PolicySet:
    """Only THIS test's numbers record (other clients may place calls on the same PBX at the same time)."""
    off = {"record_inbound": False, "record_outbound": False}
    return PolicySet(
        accounts={"main": Account("main", settings_from_dict({**off, **settings}))},
        numbers={
            DID: ("main", NumberOverride(record_inbound=True)),
            ACCOUNT_NUMBER: ("main", NumberOverride(record_outbound=True)),
        },
    )


@dataclass
class Chain:
    pool: asyncpg.Pool
    config: Config
    pbx: str
    target: tuple[str, int, str]
    settings: dict[str, Any] = field(default_factory=dict)
    policy_set: PolicySet | None = None  # instead of policy(**settings)
    driver: FreeSwitchDriver | None = None
    recorder: Recorder | None = None

    @property
    def spool(self) -> str:
        return str(self.config.spool_dir)

    async def start_controller(self) -> None:
        host, port, password = self.target
        self.driver = FreeSwitchDriver(self.pbx, host, port, password, record_dir=self.spool, backoff_initial=0.1)
        ps = self.policy_set or policy(**self.settings)
        self.recorder = Recorder(self.pool, [self.driver], lambda: ps, spool_dir=self.spool)
        await self.driver.start()
        await self.recorder.start()
        await self.wait(lambda: self.driver is not None and self.driver.connected, 10)

    async def stop_controller(self) -> None:
        if self.recorder:
            await self.recorder.close()
        if self.driver:
            await self.driver.close()
        self.recorder = self.driver = None

    async def wait(self, cond: Callable[[], Any], within: float = 20.0) -> Any:
        return await wait_for(cond, within)

    async def recordings_of(self, customer_leg: str) -> list[asyncpg.Record]:
        """This test call's recordings (another client may place calls on the same PBX meanwhile)."""
        return await self.pool.fetch(
            "SELECT * FROM recordings WHERE pbx = $1 AND customer_leg = $2 ORDER BY started_at", self.pbx, customer_leg
        )

    async def recording_of(self, customer_leg: str, within: float = 10.0) -> asyncpg.Record:
        rows = await self.wait(lambda: self.recordings_of(customer_leg), within)
        assert len(rows) == 1, [dict(r) for r in rows]
        return rows[0]

    def live_call(self, customer_leg: str) -> dict[str, Any]:
        assert self.recorder is not None
        for node in self.recorder.nodes.values():
            call = node.tracker.call_for_leg(customer_leg)
            if call is not None:
                view = self.recorder.live_call(call.id)
                assert view is not None
                return view
        raise AssertionError(f"no live call for leg {customer_leg}")

    async def finalize(self, rec_id: Any, within: float = 60) -> asyncpg.Record:
        return await finalize_stored(self.pool, self.config, rec_id, within)

    async def stored_timeline(self, row: asyncpg.Record) -> list[tuple[float | None, ...]]:
        return await stored_timeline(self.config, row)


def make_config(tmp: Path) -> Config:
    return common_config(tmp, "real-freeswitch")
