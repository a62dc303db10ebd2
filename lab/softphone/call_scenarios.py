"""The calls `place-calls` makes through a PBX: inbound, outbound, and the agent phone's blind transfer.

Standard library only (it runs in the softphone container).
"""

from __future__ import annotations

import time
from pathlib import Path

if __package__:
    from .ctrl_tcp import Phone, PhoneError
    from .phone_config import load_manifest, sip_uri
    from .phone_procs import connect, wait_registered
else:  # run as a script: the softphone container mounts only this directory
    from ctrl_tcp import Phone, PhoneError  # type: ignore[no-redef]
    from phone_config import load_manifest, sip_uri  # type: ignore[no-redef]
    from phone_procs import connect, wait_registered  # type: ignore[no-redef]

ESTABLISHED = ("CALL_ESTABLISHED",)
CLOSED = ("CALL_CLOSED",)
INCOMING = ("CALL_INCOMING",)


def ring_then_accept(phone: Phone, ring_seconds: float = 1.5) -> None:
    """A manual-answer phone (9001): let it really ring, then accept (as in the captures)."""
    phone.wait_event(INCOMING, timeout=15)
    time.sleep(ring_seconds)
    phone.command("accept")


def scenario_inbound(m: dict, ph: dict[str, Phone], talk: float) -> dict:
    """Customer 1001 calls agent 2001 through the PBX; the customer hangs up."""
    ph["1001"].command("dial", sip_uri(m, "2001"))
    ph["2001"].wait_event(ESTABLISHED, timeout=15)
    ph["1001"].wait_event(ESTABLISHED, timeout=15)
    time.sleep(talk)
    ph["1001"].command("hangup")
    ph["2001"].wait_event(CLOSED)
    return {"from": "1001", "to": "2001", "talk_s": talk, "hung_up_by": "1001"}


def scenario_outbound(m: dict, ph: dict[str, Phone], talk: float) -> dict:
    """Agent 2001 calls the external number 9001 (the PSTN stand-in rings, then answers)."""
    ph["2001"].command("dial", sip_uri(m, "9001"))
    ring_then_accept(ph["9001"])
    ph["2001"].wait_event(ESTABLISHED, timeout=15)
    ph["9001"].wait_event(ESTABLISHED, timeout=15)
    time.sleep(talk)
    ph["2001"].command("hangup")
    ph["9001"].wait_event(CLOSED)
    return {"from": "2001", "to": "9001", "talk_s": talk, "hung_up_by": "2001"}


def scenario_blind_transfer(m: dict, ph: dict[str, Phone], talk: float) -> dict:
    """Customer 1001 → agent 2001; the agent's PHONE blind-transfers (SIP REFER) to external 9001."""
    ph["1001"].command("dial", sip_uri(m, "2001"))
    ph["2001"].wait_event(ESTABLISHED, timeout=15)
    ph["1001"].wait_event(ESTABLISHED, timeout=15)
    time.sleep(talk)
    ph["2001"].command("transfer", sip_uri(m, "9001"))
    ph["2001"].wait_event(CLOSED, timeout=15)  # baresip closes the transferred call after the NOTIFY 200
    ring_then_accept(ph["9001"])
    ph["9001"].wait_event(ESTABLISHED, timeout=15)
    time.sleep(talk)
    ph["1001"].command("hangup")
    ph["9001"].wait_event(CLOSED)
    return {"from": "1001", "to": "2001", "transfer": {"by": "2001", "kind": "blind", "target": "9001"}, "talk_s": talk}


SCENARIOS = {
    "inbound": scenario_inbound,
    "outbound": scenario_outbound,
    "blind-transfer": scenario_blind_transfer,
}


def place_calls(out: Path, names: list[str], talk: float = 4.0, register_timeout: float = 15.0) -> list[dict]:
    """Run the scenarios one after another through the PBX; each result says ok or the error."""
    manifest = load_manifest(out)
    phones = {p["user"]: connect(manifest, p["user"]) for p in manifest["phones"]}
    results = []
    try:
        wait_registered(phones, register_timeout)
        for name in names:
            for p in phones.values():
                p.events.clear()
            started = time.time()
            try:
                detail = SCENARIOS[name](manifest, phones, talk)
                result = {"scenario": name, "pbx": manifest["pbx"], "ok": True, **detail}
            except PhoneError as e:
                result = {"scenario": name, "pbx": manifest["pbx"], "ok": False, "error": str(e)}
                for p in phones.values():  # leave no call up for the next scenario
                    try:
                        p.command("hangup")
                    except PhoneError:
                        pass
            result["started_at"] = round(started, 3)
            results.append(result)
            time.sleep(1.0)  # let the PBX finish the hangup before the next call
    finally:
        for p in phones.values():
            p.close()
    return results
