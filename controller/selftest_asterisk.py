"""`callrec selftest` on Asterisk: originate Local-channel test calls over an AMI connection of its own.

Every call stays inside Asterisk (dialplan/asterisk/callrec-selftest.conf). A phone is the ;2 half of
a Local channel playing a tone; the ;1 half is the PBX-side channel the recorder records.

  inbound   Originate Channel=Local/<customer>@callrec-selftest-phones/n Context=callrec-selftest Exten=<DID>
                      CallerID=<customer> ChannelId=U (the customer's PBX-side channel)
            → the DID route calls our hook (Gosub callrec-policy: UserEvent CallrecPolicy) and
              Dial(Local/2901@callrec-selftest-phones/n): agent rings 1 s, 880 Hz; the customer plays 440 Hz.
  outbound  Originate Channel=Local/2901@callrec-selftest-phones/n Context=callrec-selftest Exten=<customer>
            → the outbound route presents +15550100101, calls the hook, dials the customer phone (440 Hz).
  transfer  BlindTransfer Channel=<agent channel> Exten=+15550130001 Context=callrec-selftest (660 Hz)
  attended  Atxfer Channel=<agent channel> Exten=15550140486 Context=callrec-selftest (always busy:
              the agent is back with the customer; needs features.conf atxfer and Dial option t/T)
  hangup    Hangup Channel=<the calling phone's PBX-side channel>

The AMI user needs write=originate (Originate) and call (BlindTransfer, Hangup) besides what the
driver needs, and read=call,user — the least-privilege `callrec` user of asterisk_conf/manager.conf
cannot originate; use an admin user for the selftest.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

from panoramisk.message import Message

from controller.drivers.ami_protocol import AmiProtocol, header, header_last
from controller.selftest import AGENT_EXT, AST_CONTEXT, AST_PHONES, DID_RECORD, PlacedCall, SelftestError


class AsteriskOriginator:
    kind = "asterisk"
    redirect_named = False  # a Redirect sends no transfer event: the transfer mute must show

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.host, self.port, self.username, self._secret = host, port, username, secret
        self.events: list[Message] = []
        self._changed = asyncio.Event()
        self.protocol: AmiProtocol | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: AmiProtocol(self._on_event, lambda e: None), self.host, self.port
        )
        assert isinstance(proto, AmiProtocol) and proto.banner_seen is not None
        await asyncio.wait_for(proto.banner_seen, 5)
        self.protocol = proto
        reply = await self.action(
            {"Action": "Login", "Username": self.username, "Secret": self._secret, "Events": "call,user"}
        )
        if not reply.success:
            raise SelftestError(f"AMI login as {self.username!r} refused: {header(reply, 'Message')}")

    async def close(self) -> None:
        if self.protocol is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.action({"Action": "Logoff"}), 2)
            self.protocol.close()

    def _on_event(self, msg: Message) -> None:
        self.events.append(msg)
        self._changed.set()

    async def action(self, action: dict[str, Any]) -> Message:
        assert self.protocol is not None
        return await asyncio.wait_for(self.protocol.send(action), 15)

    async def _checked(self, action: dict[str, Any]) -> Message:
        reply = await self.action(action)
        if not reply.success:
            msg = header(reply, "Message")
            hint = ""
            if "ermission" in msg:
                hint = " (the selftest's AMI user needs write=originate,call — see dialplan/SELFTEST.md)"
            elif "xtension does not exist" in msg:
                hint = " — is dialplan/asterisk/callrec-selftest.conf included (dialplan reload)?"
            raise SelftestError(f"{action['Action']} refused: {msg}{hint}")
        return reply

    async def wait_event(self, pred: Callable[[Message], bool], within: float) -> Message | None:
        deadline = asyncio.get_running_loop().time() + within
        seen = 0
        while True:
            for m in self.events[seen:]:
                if pred(m):
                    return m
            seen = len(self.events)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def recipes(self) -> list[str]:
        return [
            f"inbound: Originate Channel=Local/<customer +1555012NNNN>@{AST_PHONES}/n Context={AST_CONTEXT}"
            " Exten=<DID> ChannelId=U",
            f"outbound: Originate Channel=Local/{AGENT_EXT}@{AST_PHONES}/n Context={AST_CONTEXT} Exten=<customer>"
            " ChannelId=U",
            f"transfer: BlindTransfer Channel=<agent channel> Exten=+15550130001 Context={AST_CONTEXT}",
            f"redirect: Redirect Channel=<channel U> Exten=+15550130001 Context={AST_CONTEXT} Priority=1"
            " (as a CTI application does: no transfer event)",
            f"attended: Atxfer Channel=<agent channel> Exten=15550140486 Context={AST_CONTEXT}",
            "code: PlayDTMF Channel=<agent channel> Digit=* Receive=true, then Digit=1 (then *2)",
            "hangup: Hangup Channel=<channel U>",
        ]

    async def _originate(self, call: PlacedCall, phone: str, exten: str, caller: str) -> None:
        uid = f"callrec-selftest-{secrets.token_hex(5)}"
        call.handle["uniqueid"] = uid
        await self._checked(
            {
                "Action": "Originate",
                "Channel": f"Local/{phone}@{AST_PHONES}/n",
                "Context": AST_CONTEXT,
                "Exten": exten,
                "Priority": "1",
                "CallerID": f'"callrec selftest" <{caller}>',
                "ChannelId": uid,
                "OtherChannelId": uid + "-phone",
                "Variable": "SELFTEST_SECS=60",
                "Async": "true",
                "Timeout": "30000",
            }
        )
        created = await self.wait_event(
            lambda m: header(m, "Event") == "Newchannel" and header(m, "Uniqueid") == uid, 15
        )
        if created is None:
            raise SelftestError(f"Originate accepted but channel {uid} never appeared")
        call.handle["channel"] = header(created, "Channel")

    async def inbound(self, call: PlacedCall) -> None:
        await self._originate(call, call.customer, call.did, call.customer)

    async def outbound(self, call: PlacedCall) -> None:
        await self._originate(call, AGENT_EXT, call.customer, AGENT_EXT)

    async def wait_hook(self, call: PlacedCall, within: float) -> dict[str, str] | None:
        uid = call.handle.get("uniqueid")
        m = await self.wait_event(
            lambda m: (
                header(m, "Event") == "UserEvent"
                and header(m, "UserEvent") == "CallrecPolicy"
                and header(m, "Uniqueid") == uid
            ),
            within,
        )
        if m is None:
            return None
        values = {
            "account": header_last(m, "CallrecAccount"),
            "account_number": header_last(m, "CallrecAccountNumber"),
            "direction": header_last(m, "CallrecDirection"),
            "record": header_last(m, "CallrecRecord"),
        }
        return {k: v for k, v in values.items() if v}

    async def _agent_channel(self, call: PlacedCall) -> str:
        uid = call.handle.get("uniqueid")
        dial = await self.wait_event(lambda m: header(m, "Event") == "DialBegin" and header(m, "Uniqueid") == uid, 10)
        if dial is None:
            raise SelftestError("no DialBegin seen for the call: cannot find the agent's channel")
        agent = header(dial, "DestChannel")
        call.handle["agent_channel"] = agent
        return agent

    async def transfer(self, call: PlacedCall, target: str) -> None:
        agent = await self._agent_channel(call)
        await self._checked({"Action": "BlindTransfer", "Channel": agent, "Exten": target, "Context": AST_CONTEXT})

    async def redirect(self, call: PlacedCall, target: str) -> None:
        channel = call.handle.get("channel")
        if not channel:
            raise SelftestError("the customer's channel is not known: cannot redirect it")
        if (
            await self.wait_event(lambda m: header(m, "Event") == "BridgeEnter" and header(m, "Channel") == channel, 10)
            is None
        ):
            raise SelftestError("the customer's channel never entered a bridge")
        await self._checked(
            {"Action": "Redirect", "Channel": channel, "Exten": target, "Context": AST_CONTEXT, "Priority": "1"}
        )

    async def attended_transfer(self, call: PlacedCall, target: str) -> None:
        """AMI Atxfer runs the bridge's attended-transfer feature and TYPES the extension into it as
        DTMF: a "+" is no DTMF digit, so a real Asterisk 20 collects "15…", finds no such extension
        ("Dialed '15@callrec-selftest' does not exist") and never consults anyone. The busy colleague
        is therefore dialled without its "+" (the selftest dialplan has that pattern too)."""
        agent = await self._agent_channel(call)
        exten = target.lstrip("+")
        await self._checked({"Action": "Atxfer", "Channel": agent, "Exten": exten, "Context": AST_CONTEXT})

    async def dial_code(self, call: PlacedCall, digits: str) -> None:
        """Each digit "received" on the agent's channel (PlayDTMF with Receive), as from its phone, so
        the applicationmap code the hook offered that channel matches."""
        agent = call.handle.get("agent_channel") or await self._agent_channel(call)
        for digit in digits:
            await self._checked(
                {"Action": "PlayDTMF", "Channel": agent, "Digit": digit, "Duration": "120", "Receive": "true"}
            )
            await asyncio.sleep(0.2)

    async def hangup(self, call: PlacedCall) -> None:
        channel = call.handle.get("channel")
        if channel:
            await self.action({"Action": "Hangup", "Channel": channel})


__all__ = ["DID_RECORD", "AsteriskOriginator"]
