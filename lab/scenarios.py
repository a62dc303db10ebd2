"""PBX-neutral call scenarios, shared by the ESL (FreeSWITCH) and AMI (Asterisk) simulators.

A scenario says WHAT happens on a call in terms a PBX administrator would use (a customer dials the
DID, agent 2001 answers, the agent transfers blind to +15557654321, the customer hangs up); each
simulator turns that into the wire traffic its PBX would send (sofia legs and CHANNEL_* events, or
PJSIP channels and AMI events) and writes the audio its PBX would write. The same definitions drive
both, so the recorder is tested against identical call stories on both PBXes.

Time is simulated: `Talk(ms)` advances the call's clock; a simulator may run it scaled (tests write
whole seconds of audio in milliseconds) — nothing here sleeps.

Steps that need the controller (`Pause`, `Resume`) are performed by the test harness / load generator
through the recorder or API; the simulator only marks them. `LinkDrop` asks the simulator to cut the
control connection abruptly (the call continues on the PBX); `ControllerRestart` asks the harness to
kill and restart the controller at that point.

`Expectation` is what a user should then find: recorded or not, who was on the right channel in
which order, pauses, transfer markers and the stop reason. It depends only on the scenario (whose
`settings` carry the account settings it needs), never on the PBX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lab.tones import AGENT_HZ, CUSTOMER_HZ, TARGET_HZ

# Account numbers and parties used everywhere in the lab. The default numbering plan of an account
# (controller.numbering.NumberingPlan) makes 2-5 digit numbers internal; everything else is external.
ACCOUNT_ID = "main"
DID = "+15557000100"  # the account's number: dialled DID (inbound), presented caller ID (outbound)
CUSTOMER_NUMBER = "+15551230001"
AGENT_EXT = "2001"
AGENT2_EXT = "2002"
EXTERNAL_TARGET = "+15557654321"


@dataclass(frozen=True)
class Party:
    """Someone on the call. `internal` parties are phones registered on the PBX (agents, extensions);
    external ones are reached over the trunk (customers, external transfer targets)."""

    role: str  # "customer" | "agent" | "target" (key into Scenario.parties)
    number: str
    tone_hz: int
    internal: bool
    name: str = ""


CUSTOMER = Party("customer", CUSTOMER_NUMBER, CUSTOMER_HZ, internal=False, name="Customer")
AGENT = Party("agent", AGENT_EXT, AGENT_HZ, internal=True, name="Agent 2001")
TARGET_INTERNAL = Party("target", AGENT2_EXT, TARGET_HZ, internal=True, name="Agent 2002")
TARGET_EXTERNAL = Party("target", EXTERNAL_TARGET, TARGET_HZ, internal=False, name="External")


# ---- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceCall:
    """The call begins. inbound: the customer dials `did` from the trunk and the PBX rings the agent.
    outbound: the agent's phone dials the customer through the trunk, presenting `did` as caller ID.
    `hook` = our dialplan hook runs (callrec::policy / CallrecPolicy event with account number,
    direction and `record` override); `record` is the hook's optional callrec_record=force|never."""

    direction: Literal["inbound", "outbound"]
    did: str = DID
    hook: bool = True
    record: Literal["force", "never"] | None = None
    account: str = ACCOUNT_ID


@dataclass(frozen=True)
class Ring:
    """The callee's phone rings for `ms` before anything else happens."""

    ms: int = 500


@dataclass(frozen=True)
class Answer:
    """The called party answers; the PBX bridges caller and callee (the moment recording may start)."""


@dataclass(frozen=True)
class Talk:
    """Both sides exchange audio for `ms` (simulated time)."""

    ms: int


@dataclass(frozen=True)
class Pause:
    """The controller pauses the recording (mask → silence). `by` = "agent" or "supervisor"."""

    by: Literal["agent", "supervisor"] = "agent"


@dataclass(frozen=True)
class Resume:
    by: Literal["agent", "supervisor"] = "agent"


@dataclass(frozen=True)
class DialCode:
    """`party` dials one of our feature codes on their phone (*1 pause, *2 resume, *3 record on
    demand by default): the PBX runs our hook's binding (FreeSWITCH bind_meta_app → CUSTOM
    callrec::feature; Asterisk applicationmap → Gosub → UserEvent CallrecFeature), waits for the
    controller's answer and plays its tone to that party only."""

    code: Literal["pause", "resume", "record"]
    party: str = "agent"


@dataclass(frozen=True)
class Transfer:
    """The agent transfers the customer to `to` (a role in Scenario.parties, normally "target").

    kind: blind (customer goes straight to the target) or attended (the agent consults the target
    for `consult_ms` with the customer on hold, then completes). method: "phone" = the agent's own
    phone does it (SIP REFER; Replaces for attended) — the usual production path, which FreeSWITCH
    does not announce; "pbx" = the PBX is told (FreeSWITCH uuid_transfer / att_xfer, Asterisk
    Redirect / Atxfer); "redirect" (blind only) = another client or the dialplan moves the customer's
    leg and no event names the target (an AMI Redirect by a CTI application, a uuid_transfer or
    `transfer` app whose channel carries no transfer history, a REFER naming no target): the first sign
    of where it goes is the customer's channel dialling the target. The target answers after
    `ring_ms`, unless `outcome` says the attended transfer fails after `ring_ms`: the target is
    `busy`, does not answer (`no_answer`) or the agent gives up while it rings (`cancel`); the agent
    is then back with the customer (both simulators, both methods; extrapolated, no capture of a
    failed attended transfer)."""

    kind: Literal["blind", "attended"] = "blind"
    to: str = "target"
    method: Literal["phone", "pbx", "redirect"] = "phone"
    ring_ms: int = 500
    consult_ms: int = 1000
    outcome: Literal["answer", "busy", "no_answer", "cancel"] = "answer"


@dataclass(frozen=True)
class ThreeWay:
    """The agent brings `to` into the call (a three-way call / conference): the PBX consults it with
    the customer on hold (Asterisk Atxfer), the consulted party answers after `ring_ms`, and after
    `consult_ms` the agent joins everyone in ONE multi-party bridge (Asterisk's atxferthreeway). The
    customer stays LEFT; the PBX mixes the agent and the joiner on the RIGHT. `Hangup("target")`
    later makes the joiner leave, the call goes on. The simulated FreeSWITCH plays it as a
    mod_conference room the customer and the agent are moved into and the joiner is dialled into.
    Extrapolated on both (no capture of a three-way call)."""

    to: str = "target"
    ring_ms: int = 500
    consult_ms: int = 1000


@dataclass(frozen=True)
class Hangup:
    """`party` (a role: customer, agent, target) hangs up; the PBX tears the call down."""

    party: str


@dataclass(frozen=True)
class Cancel:
    """The caller gives up while the callee is still ringing (the call is never answered)."""


@dataclass(frozen=True)
class LinkDrop:
    """The control connection (ESL/AMI socket) is cut abruptly; the call goes on. The controller must
    reconnect and resync."""


@dataclass(frozen=True)
class ControllerRestart:
    """The test harness kills the controller here (SIGKILL / cancelled task + dropped socket) and
    starts a new one, which must adopt the running recording."""


Step = (
    PlaceCall
    | Ring
    | Answer
    | Talk
    | Pause
    | Resume
    | DialCode
    | Transfer
    | ThreeWay
    | Hangup
    | Cancel
    | LinkDrop
    | ControllerRestart
)


# ---- expectations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What a user finds after the scenario. `segments` are the roles on the RIGHT channel in order
    (the customer is always LEFT); `right_tones` the matching frequencies; `stop_reason` as in the
    timeline contract; `ends_at_transfer` = the file stops where the (external) transfer happened."""

    recorded: bool
    direction: str = "inbound"
    segments: tuple[str, ...] = ()
    pauses: int = 0
    transfers: tuple[tuple[str, str], ...] = ()  # (kind, target_class)
    stop_reason: str | None = None
    ends_at_transfer: bool = False

    @property
    def right_tones(self) -> tuple[int, ...]:
        tones = {"agent": AGENT_HZ, "target": TARGET_HZ}
        return tuple(tones[s] for s in self.segments)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    expect: Expectation
    parties: dict[str, Party] = field(default_factory=lambda: {"customer": CUSTOMER, "agent": AGENT})
    settings: dict[str, bool | int] = field(default_factory=dict)  # account settings it needs

    @property
    def direction(self) -> str:
        first = self.steps[0]
        assert isinstance(first, PlaceCall)
        return first.direction

    def party(self, role: str) -> Party:
        return self.parties[role]

    @property
    def talk_ms(self) -> int:
        """Simulated call time in Talk steps (a lower bound of the recording's length)."""
        return sum(s.ms for s in self.steps if isinstance(s, Talk))


def _s(name: str, description: str, steps: list[Step], expect: Expectation, **kw: object) -> Scenario:
    return Scenario(name, description, tuple(steps), expect, **kw)  # type: ignore[arg-type]


def _transfer(
    kind: Literal["blind", "attended"], external: bool, method: Literal["phone", "pbx"], continue_rule: bool
) -> Scenario:
    target = TARGET_EXTERNAL if external else TARGET_INTERNAL
    target_class = "external" if external else "internal"
    stops = external and not continue_rule
    where = "external" if external else "internal"
    rule = "" if not external else ("_continue" if continue_rule else "_stop")
    name = f"{kind}_transfer_{where}{rule}" + ("" if method == "phone" else "_pbx")
    steps: list[Step] = [
        PlaceCall("inbound"),
        Ring(),
        Answer(),
        Talk(2000),
        Transfer(kind=kind, method=method),
        Talk(2000),
        Hangup("customer"),
    ]
    expect = Expectation(
        recorded=True,
        segments=("agent",) if stops else ("agent", "target"),
        transfers=((kind, target_class),),
        stop_reason="external_transfer" if stops else "hangup",
        ends_at_transfer=stops,
    )
    return _s(
        name,
        f"{kind} transfer by the agent's {'phone (SIP REFER)' if method == 'phone' else 'PBX command'} "
        f"to {where} {target.number}" + (f", continue_on_external_transfer={continue_rule}" if external else ""),
        steps,
        expect,
        parties={"customer": CUSTOMER, "agent": AGENT, "target": target},
        settings={"continue_on_external_transfer": continue_rule},
    )


def _build() -> dict[str, Scenario]:
    out: list[Scenario] = [
        _s(
            "inbound",
            "customer calls the DID, agent 2001 answers, they talk, the customer hangs up",
            [PlaceCall("inbound"), Ring(), Answer(), Talk(3000), Hangup("customer")],
            Expectation(True, segments=("agent",), stop_reason="hangup"),
        ),
        _s(
            "inbound_agent_hangs_up",
            "inbound call ended by the agent",
            [PlaceCall("inbound"), Ring(), Answer(), Talk(3000), Hangup("agent")],
            Expectation(True, segments=("agent",), stop_reason="hangup"),
        ),
        _s(
            "inbound_no_hook",
            "inbound call on a PBX without our dialplan hook: direction inferred from the trunk context",
            [PlaceCall("inbound", hook=False), Ring(), Answer(), Talk(2000), Hangup("customer")],
            Expectation(True, segments=("agent",), stop_reason="hangup"),
        ),
        _s(
            "outbound",
            "agent 2001 dials the customer through the trunk, the customer answers, the agent hangs up",
            [PlaceCall("outbound"), Ring(), Answer(), Talk(3000), Hangup("agent")],
            Expectation(True, direction="outbound", segments=("agent",), stop_reason="hangup"),
        ),
        _s(
            "outbound_customer_hangs_up",
            "outbound call ended by the customer",
            [PlaceCall("outbound"), Ring(), Answer(), Talk(3000), Hangup("customer")],
            Expectation(True, direction="outbound", segments=("agent",), stop_reason="hangup"),
        ),
        _s(
            "pause_resume",
            "inbound; the agent pauses for card details and resumes",
            [
                PlaceCall("inbound"),
                Ring(),
                Answer(),
                Talk(2000),
                Pause("agent"),
                Talk(2000),
                Resume("agent"),
                Talk(2000),
                Hangup("customer"),
            ],
            Expectation(True, segments=("agent",), pauses=1, stop_reason="hangup"),
            settings={"agent_pause_allowed": True},
        ),
        _s(
            "unanswered",
            "customer calls, the agent never answers, the customer gives up: nothing is recorded",
            [PlaceCall("inbound"), Ring(2000), Cancel()],
            Expectation(False),
        ),
        _s(
            "hook_never",
            "our dialplan hook says callrec_record=never: not recorded",
            [PlaceCall("inbound", record="never"), Ring(), Answer(), Talk(2000), Hangup("customer")],
            Expectation(False),
        ),
        _s(
            "hook_force",
            "inbound recording is off for the account but the hook forces it",
            [PlaceCall("inbound", record="force"), Ring(), Answer(), Talk(2000), Hangup("customer")],
            Expectation(True, segments=("agent",), stop_reason="hangup"),
            settings={"record_inbound": False},
        ),
        _s(
            "link_drop",
            "the control connection is cut mid-call; the controller reconnects, resyncs and records on",
            [PlaceCall("inbound"), Ring(), Answer(), Talk(2000), LinkDrop(), Talk(2000), Hangup("customer")],
            Expectation(True, segments=("agent",), stop_reason="hangup"),
        ),
        _s(
            "controller_restart",
            "the controller is killed mid-call; a new one adopts the recording, which is journaled once",
            [PlaceCall("inbound"), Ring(), Answer(), Talk(2000), ControllerRestart(), Talk(2000), Hangup("customer")],
            Expectation(True, segments=("agent",), stop_reason="hangup"),
        ),
    ]
    for kind in ("blind", "attended"):
        for method in ("phone", "pbx"):
            out.append(_transfer(kind, False, method, True))  # type: ignore[arg-type]
            out.append(_transfer(kind, True, method, True))  # type: ignore[arg-type]
            out.append(_transfer(kind, True, method, False))  # type: ignore[arg-type]
    return {s.name: s for s in out}


SCENARIOS: dict[str, Scenario] = _build()


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}") from None


__all__ = [
    "ACCOUNT_ID",
    "AGENT",
    "AGENT2_EXT",
    "AGENT_EXT",
    "CUSTOMER",
    "CUSTOMER_NUMBER",
    "DID",
    "EXTERNAL_TARGET",
    "SCENARIOS",
    "TARGET_EXTERNAL",
    "TARGET_INTERNAL",
    "Answer",
    "Cancel",
    "ControllerRestart",
    "DialCode",
    "Expectation",
    "Hangup",
    "LinkDrop",
    "Party",
    "Pause",
    "PlaceCall",
    "Resume",
    "Ring",
    "Scenario",
    "Step",
    "Talk",
    "ThreeWay",
    "Transfer",
    "get",
]
