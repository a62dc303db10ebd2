"""Calls on both simulated PBXes for drills that inject a fault while calls start, transfer and end:
each call is played step by step and every step is time-stamped, so a drill can count how many
answers, transfers and hangups happened inside its fault window."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.esl_sim import CallHandle, EslSimulator


def call_with_transfer(talk_ms: int, after_ms: int) -> sc.Scenario:
    """Inbound, answered, talk `talk_ms`, the agent's phone transfers blind to agent 2002 (recording
    continues), talk `after_ms`, the customer hangs up: a start, a segment change and an end."""
    return sc.Scenario(
        "drill_transfer",
        "inbound call, blind transfer to another agent, customer hangs up",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(100),
            sc.Answer(),
            sc.Talk(talk_ms),
            sc.Transfer(kind="blind", method="phone", ring_ms=100),
            sc.Talk(after_ms),
            sc.Hangup("customer"),
        ),
        sc.Expectation(True, segments=("agent", "target"), transfers=(("blind", "internal"),), stop_reason="hangup"),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": sc.TARGET_INTERNAL},
    )


def plain_call(talk_ms: int, direction: str = "inbound") -> sc.Scenario:
    """Answered, talk `talk_ms`, the customer hangs up."""
    return sc.Scenario(
        f"drill_{direction}",
        f"{direction} call for drills",
        (sc.PlaceCall(direction), sc.Ring(100), sc.Answer(), sc.Talk(talk_ms), sc.Hangup("customer")),  # type: ignore[arg-type]
        sc.Expectation(True, direction=direction, segments=("agent",), stop_reason="hangup"),
    )


@dataclass
class PlayedCall:
    pbx: str  # "fs1" | "ast1"
    scenario: sc.Scenario
    leg: str = ""  # the customer leg (FreeSWITCH uuid / Asterisk Uniqueid): recordings.customer_leg
    at: dict[str, float] = field(default_factory=dict)  # step kind → time.monotonic() when it happened
    wall: dict[str, float] = field(default_factory=dict)  # step kind → time.time() (to compare with the journal)

    def stamp(self, step: Any) -> None:
        self.at.setdefault(type(step).__name__, time.monotonic())
        self.wall.setdefault(type(step).__name__, time.time())

    @property
    def transferred(self) -> bool:
        return "Transfer" in self.at


async def play_esl(sim: EslSimulator, scen: sc.Scenario) -> PlayedCall:
    out = PlayedCall("fs1", scen)
    handle = CallHandle(sim, scen)
    for step in scen.steps:
        await handle.do(step, None, False)
        out.stamp(step)
        if "customer" in handle.legs:
            out.leg = handle.customer.uuid
    return out


async def play_ami(sim: AmiSimulator, scen: sc.Scenario) -> PlayedCall:
    out = PlayedCall("ast1", scen)

    async def stamp(step: Any) -> None:
        out.stamp(step)

    call = await sim.play(scen, stamp, settle=False)
    out.leg = call.first_customer.uniqueid if hasattr(call, "first_customer") else call.customer.uniqueid
    return out


async def ami_connected(sim: AmiSimulator, limit: float) -> bool:
    """Wait until the controller logged in to the AMI simulator."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if any(s.authenticated for s in sim.sessions):
            return True
        await asyncio.sleep(0.05)
    return False


def within(played: list[PlayedCall], step: str, t0: float, t1: float) -> int:
    """How many calls had `step` (Answer, Transfer, Hangup) between t0 and t1."""
    return sum(1 for p in played if t0 <= p.at.get(step, -1.0) <= t1)
