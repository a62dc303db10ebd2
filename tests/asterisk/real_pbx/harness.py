"""The real chain against a real Asterisk: calls made inside the PBX over AMI (Local channels playing
tones, dialplan tests/asterisk/real_pbx/callrec-test.conf + the shipped hook), recorded by
AsteriskDriver → Recorder → PostgreSQL journal → FinalizeWorker (rx/tx joined, age-encrypted, stored),
then decrypted and checked by FFT.

Two AMI users: the DRIVER logs in with CALLREC_TEST_ASTERISK (host:port:user:secret — use the user of
the shipped asterisk_conf/manager.conf, which may not originate calls); the LAB client that places and
transfers the calls uses CALLREC_TEST_ASTERISK_LAB (user:secret with originate/call/system rights),
defaulting to the driver's credentials.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from panoramisk.message import Message

from controller.config import Config
from controller.drivers.ami_protocol import AmiProtocol, header
from controller.drivers.asterisk import AsteriskDriver
from controller.policy import Account, PolicySet, settings_from_dict
from controller.recorder import Recorder
from tests.real_pbx_common import finalize_stored, stored_timeline, wait_for
from tests.real_pbx_common import make_config as common_config

TARGET = os.environ.get("CALLREC_TEST_ASTERISK", "")
LAB_LOGIN = os.environ.get("CALLREC_TEST_ASTERISK_LAB", "")

DID = "+15557000100"
DID_EXTEN_HOOK = "7000100"  # callrec-test-inbound: Gosub(callrec-policy) then Dial agent 2001
DID_EXTEN_PLAIN = "5557000100"  # the same DID without the hook (direction and number inferred)
CUSTOMER = "+15551230001"
AGENT = "2001"
EXTERNAL = "9005551234"
AGENT2 = "3002"


def target() -> tuple[str, int, str, str]:
    host, port, user, secret = TARGET.split(":", 3)
    return host, int(port), user, secret


class LabAmi:
    """A plain AMI client (our framing, real socket) that places and transfers the test calls and
    keeps every event it sees, to find the channels Asterisk created."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self._changed = asyncio.Event()
        self.protocol: AmiProtocol | None = None

    async def connect(self) -> None:
        host, port, user, secret = target()
        if LAB_LOGIN:
            user, secret = LAB_LOGIN.split(":", 1)
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: AmiProtocol(self._on_event, lambda e: None), host, port)
        assert isinstance(proto, AmiProtocol) and proto.banner_seen is not None
        await asyncio.wait_for(proto.banner_seen, 5)
        self.protocol = proto
        reply = await self.action({"Action": "Login", "Username": user, "Secret": secret, "Events": "call"})
        assert reply.success, f"lab AMI login as {user} refused: {header(reply, 'Message')}"

    def _on_event(self, msg: Message) -> None:
        self.events.append(msg)
        self._changed.set()

    async def action(self, action: dict[str, Any]) -> Message:
        assert self.protocol is not None
        return await asyncio.wait_for(self.protocol.send(action), 10)

    async def checked(self, action: dict[str, Any]) -> Message:
        reply = await self.action(action)
        assert reply.success, f"{action['Action']} refused: {header(reply, 'Message')} (the lab user needs originate)"
        return reply

    async def wait_event(self, pred: Callable[[Message], bool], within: float = 15.0) -> Message:
        async with asyncio.timeout(within):
            seen = 0
            while True:
                for m in self.events[seen:]:
                    if pred(m):
                        return m
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        if self.protocol is not None:
            self.protocol.close()

    async def wait_test_calls_gone(self, within: float = 25.0) -> None:
        """Wait until every call the tests placed (channel names carry "callrec-test") has ended on its
        own, so a call still talking after its test is not seen — and decided — by the next test's
        controller. (A mass Hangup in the middle of Local-channel bridge changes crashed Asterisk 20.)"""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while loop.time() < end:
            reply = await self.action({"Action": "Command", "Command": "core show channels concise"})
            if "callrec-test" not in str(reply):
                return
            await asyncio.sleep(0.5)

    # ---- calls ----
    async def inbound(self, exten: str, *, cust_secs: int, agent_secs: int = 60) -> str:
        """The customer (440 Hz) calls the DID; returns the customer's PBX-side channel Uniqueid."""
        uid = f"callrec-t-{secrets.token_hex(5)}"
        await self.checked(
            {
                "Action": "Originate",
                "Channel": f"Local/{CUSTOMER.lstrip('+')}@callrec-test-customer-phone/n",
                "Context": "callrec-test-inbound",
                "Exten": exten,
                "Priority": "1",
                "CallerID": f'"Customer" <{CUSTOMER}>',
                "ChannelId": uid,
                "OtherChannelId": uid + "-phone",
                "Variable": [f"CUST_SECS={cust_secs}", f"__AGENT_SECS={agent_secs}"],
                "Async": "true",
                "Timeout": "30000",
            }
        )
        return uid

    async def outbound(self, number: str, *, cust_secs: int) -> str:
        """Agent 2001 (880 Hz) calls an external number (440 Hz customer); returns the agent's channel id."""
        uid = f"callrec-t-{secrets.token_hex(5)}"
        await self.checked(
            {
                "Action": "Originate",
                "Channel": f"Local/{AGENT}@callrec-test-agent-caller/n",
                "Context": "callrec-test-outbound",
                "Exten": number,
                "Priority": "1",
                "CallerID": f'"Agent {AGENT}" <{AGENT}>',
                "ChannelId": uid,
                "OtherChannelId": uid + "-phone",
                "Variable": [f"__CUST_SECS={cust_secs}"],
                "Async": "true",
                "Timeout": "30000",
            }
        )
        return uid

    def bridged(self, uid: str) -> bool:
        return any(header(m, "Event") == "BridgeEnter" and header(m, "Linkedid") == uid for m in self.events) and (
            sum(1 for m in self.events if header(m, "Event") == "BridgeEnter" and header(m, "Linkedid") == uid) >= 2
        )

    async def wait_bridged(self, uid: str) -> None:
        """Both PBX-side channels of the call are in one bridge."""
        await self.wait_event(lambda m: self.bridged(uid), within=15)

    def dialed_channel(self, uid: str, prefix: str) -> str:
        """Name of the channel the call with Linkedid `uid` dialed (DialBegin DestChannel)."""
        for m in self.events:
            if header(m, "Event") == "DialBegin" and header(m, "DestLinkedid") == uid:
                name = header(m, "DestChannel")
                if name.startswith(prefix) and name.endswith(";1"):
                    return name
        raise AssertionError(f"no dialed channel {prefix}* in call {uid}")

    async def gone(self, uid: str, within: float = 30) -> None:
        await self.wait_event(lambda m: header(m, "Event") == "Hangup" and header(m, "Uniqueid") == uid, within)


def policy(**settings: Any) -> PolicySet:
    return PolicySet(accounts={"main": Account("main", settings_from_dict(dict(settings)))})


@dataclass
class Chain:
    pool: asyncpg.Pool
    config: Config
    pbx: str
    settings: dict[str, Any] = field(default_factory=dict)
    driver: AsteriskDriver | None = None
    recorder: Recorder | None = None

    @property
    def spool(self) -> str:
        return str(self.config.spool_dir)

    async def start_controller(self) -> None:
        host, port, user, secret = target()
        self.driver = AsteriskDriver(self.pbx, host, port, user, secret, backoff_initial=0.1)
        ps = policy(**self.settings)
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

    async def recordings(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM recordings WHERE pbx = $1 ORDER BY started_at", self.pbx)

    async def wait_recording(self) -> asyncpg.Record:
        rows = await self.wait(self.recordings, 20)
        return rows[0]

    def live_call(self) -> dict[str, Any]:
        assert self.recorder is not None
        calls = [c for c in self.recorder.live_calls() if c["recording"]["id"]]
        assert len(calls) == 1, calls
        return calls[0]

    async def finalize(self, rec_id: Any, within: float = 40) -> asyncpg.Record:
        return await finalize_stored(self.pool, self.config, rec_id, within)

    async def stored_timeline(self, row: asyncpg.Record) -> list[tuple[float | None, ...]]:
        return await stored_timeline(self.config, row)


def make_config(tmp: Path) -> Config:
    return common_config(tmp, "real-asterisk")
