"""The AMI simulator cannot drift from real Asterisk: for the call shapes of the real SIP captures
(S7 inbound SIP call, S8 phone-initiated blind transfer) it emits the same event names in the same
order per channel, with the same header keys, as Asterisk 20.20.1 did."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from tests.asterisk.fixtures import recv_messages

# The events a recorder's view of a call is made of (the rest is dialplan/device/RTCP noise).
CALL_EVENTS = {
    "Newchannel", "Newstate", "DialBegin", "DialState", "DialEnd", "BridgeEnter", "BridgeLeave", "Hangup",
    "HangupRequest", "SoftHangupRequest", "MixMonitorStart", "MixMonitorStop", "MixMonitorMute", "BlindTransfer",
    "AttendedTransfer", "Hold", "Unhold", "MusicOnHoldStart", "MusicOnHoldStop",
}  # fmt: skip
Msg = list[tuple[str, str]]


def per_channel(msgs: list[Msg]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in msgs:
        name = m[0][1]
        if m[0][0] != "Event" or name not in CALL_EVENTS:
            continue
        chan = next((v for k, v in m if k in ("Channel", "TransfereeChannel")), None)
        if chan:
            out.setdefault(chan, []).append(name)
    return out


def keys_by_event(msgs: list[Msg]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in msgs:
        if m[0][0] == "Event":
            out.setdefault(m[0][1], {k for k, _ in m})
    return out


class RawClient:
    """A plain AMI client over TCP, as the capture tool was (Events: on)."""

    def __init__(self) -> None:
        self.frames: list[Msg] = []
        self._n = 0

    async def connect(self, sim: AmiSimulator) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", sim.port)
        assert (await self.reader.readline()).decode().startswith("Asterisk Call Manager/")
        self._task = asyncio.create_task(self._read())
        await self.send("Login", Username=sim.username, Secret=sim.secret, Events="on")
        async with asyncio.timeout(5):
            while not any(("Response", "Success") in f for f in self.frames):  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    async def _read(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                raw = (await self.reader.readuntil(b"\r\n\r\n")).decode()
                lines = raw.removesuffix("\r\n\r\n").split("\r\n")
                self.frames.append([(k, v.strip()) for k, _, v in (ln.partition(":") for ln in lines)])

    async def send(self, action: str, **headers: str) -> None:
        self._n += 1
        lines = [f"Action: {action}", f"ActionID: t-{self._n}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()


async def play_recorded(scenario: str, tmp_path: Path) -> list[Msg]:
    sim = AmiSimulator()
    await sim.start()
    client = RawClient()
    await client.connect(sim)
    try:

        async def on_step(step: sc.Step) -> None:
            if isinstance(step, sc.Answer):  # what the controller does at the bridge (as in S7/S8)
                (cust,) = [c for c in sim.channels.values() if c.name.startswith("SIP/trunk")]
                opts = f"i(CALLREC_MIXMON)r({tmp_path}/x-rx.wav)t({tmp_path}/x-tx.wav)"
                await client.send("MixMonitor", Channel=cust.name, Options=opts)
                assert await sim.wait_recording()

        await sim.play(sc.get(scenario), on_step, settle=False)
        await asyncio.sleep(0.05)
        return client.frames
    finally:
        await client.close()
        await sim.close()


def _roles(seq: dict[str, list[str]], customer_prefix: str, agent_prefix: str) -> tuple[list[str], list[str]]:
    cust = next(v for k, v in seq.items() if k.startswith(customer_prefix))
    agent = next(v for k, v in seq.items() if k.startswith(agent_prefix))
    return cust, agent


async def test_inbound_sip_call_matches_s7(tmp_path: Path) -> None:
    real = recv_messages("S7-sip-baresip")
    sim = await play_recorded("inbound_no_hook", tmp_path)
    real_cust, real_agent = _roles(per_channel(real), "SIP/1001-", "SIP/2001-")
    sim_cust, sim_agent = _roles(per_channel(sim), "SIP/trunk-", "SIP/2001-")
    assert sim_cust == real_cust
    assert sim_agent == real_agent
    real_keys, sim_keys = keys_by_event(real), keys_by_event(sim)
    for name in set(sim_keys) & set(real_keys) & (CALL_EVENTS | {"FullyBooted"}):
        assert sim_keys[name] == real_keys[name], name


async def test_phone_blind_transfer_matches_s8(tmp_path: Path) -> None:
    real = recv_messages("S8-refer-blind-external")
    sim = await play_recorded("blind_transfer_external_continue", tmp_path)
    real_seq, sim_seq = per_channel(real), per_channel(sim)
    real_cust, real_agent = _roles(real_seq, "SIP/1001-", "SIP/2001-")
    sim_cust, sim_agent = _roles(sim_seq, "SIP/trunk-", "SIP/2001-")
    assert sim_cust == real_cust
    assert sim_agent == real_agent
    real_target = next(v for k, v in real_seq.items() if k.endswith(";1"))
    sim_target = [v for k, v in sim_seq.items() if k.startswith("SIP/trunk-")][1]
    assert sim_target == real_target
    real_keys, sim_keys = keys_by_event(real), keys_by_event(sim)
    assert sim_keys["BlindTransfer"] == real_keys["BlindTransfer"]
    for name in set(sim_keys) & set(real_keys) & CALL_EVENTS:
        assert sim_keys[name] == real_keys[name], name
