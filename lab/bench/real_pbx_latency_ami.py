"""The Asterisk side of lab.bench.real_pbx_latency: end-to-end recording start on a REAL Asterisk.

    .venv/bin/python -m lab.bench.real_pbx_latency --asterisk 127.0.0.1:5038:callrec:SECRET
        --asterisk-lab LABUSER:LABSECRET [--calls 100] [--blocks 2] [--rate 3] [--talk 2]

e2e = MixMonitorStart - the BridgeEnter that makes the call's bridge two-party, both the `Timestamp`
Asterisk puts in every event (manager.conf `timestampevents = yes`, µs, the PBX's clock, taken when
the event is raised; Asterisk 20 raises MixMonitorStart once MixMonitor has attached its audiohook).
They come to a SEPARATE AMI connection of the bench (the lab user, which may originate), so how
fast it reads does not count. The recorder (the service, or the bare panoramisk anchor of
lab.bench.anchors.run_asterisk) logs in as the service's user (`--asterisk`).

Calls, as tests/asterisk/real_pbx/harness.py places them: a Local-channel customer (440 Hz) dials the
DID route 7000100 of context `callrec-test-inbound` (tests/asterisk/real_pbx/callrec-test.conf: our
hook, then agent 2001 rings 1 s and answers); the customer's phone hangs up by itself `--talk` s after
the bridge (CUST_SECS). The call's key is its Linkedid, the customer channel's Uniqueid (ChannelId).
"""

from __future__ import annotations

import asyncio
import math
import secrets
from pathlib import Path

from panoramisk.message import Message

from controller.drivers.ami_protocol import AmiProtocol, header
from lab.bench.real_pbx_latency import Listener

CUSTOMER = "+15551230001"
DID_EXTEN = "7000100"  # callrec-test-inbound: Gosub(callrec-policy) then Dial agent 2001 (rings 1 s)


def micros(stamp: str) -> int:
    """AMI `Timestamp: 1795243282.123456` → µs since the epoch (exact, no float)."""
    sec, _, frac = stamp.partition(".")
    return int(sec) * 1_000_000 + int((frac + "000000")[:6])


class AmiListener(Listener):
    bridge_event, record_event, command = "BridgeEnter", "MixMonitorStart", "MixMonitor"

    def __init__(self, host: str, port: int, service: tuple[str, str], lab: tuple[str, str]) -> None:
        super().__init__()
        self.host, self.port, self.service, self.lab = host, port, service, lab
        self.proto: AmiProtocol | None = None
        self.calls: set[str] = set()  # Linkedids of the bench's calls

    async def open(self) -> str:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: AmiProtocol(self._on_event, lambda e: None), self.host, self.port
        )
        assert isinstance(proto, AmiProtocol) and proto.banner_seen is not None
        await asyncio.wait_for(proto.banner_seen, 5)
        self.proto = proto
        user, secret = self.lab
        reply = await self.action({"Action": "Login", "Username": user, "Secret": secret, "Events": "call"})
        if not reply.success:
            raise ConnectionError(f"AMI login as {user} refused: {header(reply, 'Message')}")
        if header(reply := await self.action({"Action": "CoreSettings"}), "AsteriskVersion"):
            return f"Asterisk {header(reply, 'AsteriskVersion')}"
        return "Asterisk"

    def close(self) -> None:
        if self.proto is not None:
            self.proto.close()

    def pbx_toml(self) -> str:
        user, secret = self.service
        return (
            f'[[pbx]]\nname = "ast-real"\ntype = "asterisk"\nhost = "{self.host}"\nport = {self.port}\n'
            f'username = "{user}"\nsecret = "{secret}"\n'
        )

    def anchor_argv(self, record_dir: Path, out: Path) -> list[str]:
        user, secret = self.service
        return ["asterisk", str(self.port), str(out), str(record_dir), "--username", user, "--password", secret]

    async def action(self, action: dict[str, object]) -> Message:
        assert self.proto is not None
        return await asyncio.wait_for(self.proto.send(action), 10)

    def _on_event(self, msg: Message) -> None:
        name, linked = header(msg, "Event"), header(msg, "Linkedid")
        stamp = header(msg, "Timestamp")
        if linked in self.calls and stamp:
            if name == "BridgeEnter" and header(msg, "BridgeNumChannels") == "2" and linked not in self.bridge:
                self.bridge[linked] = (linked, micros(stamp))
            elif name == "MixMonitorStart":
                self.record.setdefault(linked, micros(stamp))
        if name == "Hangup":
            self.gone.add(header(msg, "Uniqueid"))
        self.changed.set()

    async def call(self, talk: float, *, wait_record: float = 0.0) -> str:
        uid = f"callrec-bench-{secrets.token_hex(5)}"
        self.calls.add(uid)
        reply = await self.action(
            {
                "Action": "Originate",
                "Channel": f"Local/{CUSTOMER.lstrip('+')}@callrec-test-customer-phone/n",
                "Context": "callrec-test-inbound",
                "Exten": DID_EXTEN,
                "Priority": "1",
                "CallerID": f'"Customer" <{CUSTOMER}>',
                "ChannelId": uid,
                "OtherChannelId": uid + "-phone",
                # the customer answers at once; the agent rings 1 s: CUST_SECS ends the call `talk` after the bridge
                "Variable": [f"CUST_SECS={math.ceil(1 + talk)}", "__AGENT_SECS=60"],
                "Async": "true",
                "Timeout": "30000",
            }
        )
        if not reply.success:
            raise RuntimeError(f"Originate refused: {header(reply, 'Message')} (the lab user needs originate)")
        if await self.until(lambda: uid in self.bridge, 15) and wait_record:
            await self.until(lambda: uid in self.record, wait_record)
        await self.until(lambda: uid in self.gone, 30)
        return uid
