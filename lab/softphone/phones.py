#!/usr/bin/env python3
"""Four baresip softphones for the callrec lab, and the calls they place through a real PBX.

Standard library only, so it runs unchanged in the softphone container and on any Debian host with
`apt-get install baresip-core`. Every socket is on loopback (or the compose network namespace).

    phones.py setup --pbx freeswitch|asterisk --dir DIR   render config + accounts + tone WAVs
    phones.py start --dir DIR [--foreground]             start the four phones (pids in DIR/pids.json)
    phones.py stop --dir DIR
    phones.py dial FROM TO --dir DIR                     e.g. dial 1001 2001
    phones.py answer USER | hangup USER --dir DIR
    phones.py transfer USER TARGET --dir DIR             blind transfer (SIP REFER) by USER's phone
    phones.py place-calls --dir DIR [--scenario inbound|outbound|blind-transfer|all]

The phones (tones per the project's convention; 3001 keeps the 1000 Hz of the real captures so a
second agent is told apart from the external party):

    1001 customer       440 Hz   answers manually (it only dials)
    2001 agent          880 Hz   auto-answer
    3001 second agent  1000 Hz   auto-answer
    9001 external/PSTN  660 Hz   answers manually: `place-calls` accepts after 1.5 s of real ringing

SIP ports are spaced by 10 because baresip 1.0.0 also binds TLS on sip_listen+1 (a port clash
there makes a phone exit with "Address already in use"). Control is baresip's ctrl_tcp module:
netstring-framed JSON, `<len>:{"command":"dial","params":"sip:2001@127.0.0.1:5080","token":"t1"},`;
ctrl_tcp serves ONE client at a time (a new connection replaces the old one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 8000
TONE_SECONDS = 120  # aufile plays the file once; longer than any lab call
TONE_AMPLITUDE = 8000


@dataclass(frozen=True)
class PhoneSpec:
    user: str
    role: str
    tone_hz: int
    answermode: str  # "auto" | "manual"


@dataclass(frozen=True)
class PbxSpec:
    """One lab PBX as the phones see it; must agree with lab/docker/<pbx>/ (a test checks it)."""

    name: str
    sip_port: int
    passwords: dict[str, str]
    sip_base: int  # phone n listens on sip_base + 10*n
    ctrl_ports: dict[str, int]
    rtp_base: int  # phone n uses rtp_base + 20*n .. +19


PHONES: tuple[PhoneSpec, ...] = (
    PhoneSpec("1001", "customer", 440, "manual"),
    PhoneSpec("2001", "agent", 880, "auto"),
    PhoneSpec("3001", "second agent", 1000, "auto"),
    PhoneSpec("9001", "external (PSTN stand-in)", 660, "manual"),
)

PBXES: dict[str, PbxSpec] = {
    # The same users, passwords and ports as the real FreeSWITCH capture (fixtures freeswitch-sip §2-§3).
    "freeswitch": PbxSpec(
        name="freeswitch",
        sip_port=5080,
        passwords={"1001": "cust1001lab", "2001": "agent2001lab", "3001": "agent3001lab", "9001": "pstn9001lab"},
        sip_base=5110,
        ctrl_ports={"1001": 4401, "2001": 4402, "3001": 4403, "9001": 4409},
        rtp_base=12300,
    ),
    # Asterisk on 5060 (fixtures asterisk §2, S7/S8); other ports so both phone sets can run at once.
    "asterisk": PbxSpec(
        name="asterisk",
        sip_port=5060,
        passwords={"1001": "pass1001", "2001": "pass2001", "3001": "pass3001", "9001": "pass9001"},
        sip_base=5210,
        ctrl_ports={"1001": 4511, "2001": 4512, "3001": 4513, "9001": 4519},
        rtp_base=12400,
    ),
}

MODULES = ("g711.so", "aufile.so", "aubridge.so", "sndfile.so")
APP_MODULES = ("account.so", "menu.so", "contact.so", "ctrl_tcp.so")


class PhoneError(RuntimeError):
    """A phone is not set up, not running, or refused a command."""


# ---- setup ---------------------------------------------------------------------------------------


def write_tone(path: Path, freq: int, seconds: int = TONE_SECONDS) -> None:
    """An 8 kHz mono 16-bit sine WAV (what `sox synth` made in the real captures)."""
    period = [round(TONE_AMPLITUDE * math.sin(2 * math.pi * freq * i / SAMPLE_RATE)) for i in range(SAMPLE_RATE)]
    one_second = struct.pack(f"<{SAMPLE_RATE}h", *period)  # whole cycles per second for every lab tone
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(one_second * seconds)


def phone_layout(pbx: PbxSpec, index: int, phone: PhoneSpec, bind: str) -> dict[str, object]:
    return {
        "user": phone.user,
        "role": phone.role,
        "tone_hz": phone.tone_hz,
        "answermode": phone.answermode,
        "password": pbx.passwords[phone.user],
        "sip_listen": f"{bind}:{pbx.sip_base + 10 * index}",
        "ctrl_port": pbx.ctrl_ports[phone.user],
        "rtp_ports": f"{pbx.rtp_base + 20 * index}-{pbx.rtp_base + 20 * index + 19}",
    }


def render_config(phone: dict[str, object], phone_dir: Path, tone: Path, bind: str, module_path: str) -> str:
    user = phone["user"]
    lines = [
        ("poll_method", "epoll"),
        ("sip_listen", phone["sip_listen"]),
        ("net_interface", bind),
        ("audio_player", f"aubridge,null{user}"),  # a null sink: nothing is played on the host
        ("audio_source", f"aufile,{tone}"),
        ("audio_alert", f"aubridge,null{user}"),
        ("ausrc_srate", "8000"),
        ("auplay_srate", "8000"),
        ("ausrc_channels", "1"),
        ("auplay_channels", "1"),
        ("rtp_ports", phone["rtp_ports"]),
        ("rtp_tos", "0"),
        ("dns_server", f"{bind}:53"),  # never queried: every URI is an IP address
        ("ctrl_tcp_listen", f"{bind}:{phone['ctrl_port']}"),
        ("snd_path", str(phone_dir / "snd")),  # sndfile: per call dump-*-dec.wav = what this phone heard
        ("module_path", module_path),
    ]
    lines += [("module", m) for m in MODULES]
    lines += [("module_app", m) for m in APP_MODULES]
    head = f"# baresip config for {user} ({phone['role']}, {phone['tone_hz']} Hz), from lab/softphone/phones.py\n"
    return head + "".join(f"{k:<20}{v}\n" for k, v in lines)


def render_account(phone: dict[str, object], pbx_host: str, pbx: PbxSpec) -> str:
    return (
        f"<sip:{phone['user']}@{pbx_host}:{pbx.sip_port};transport=udp>"
        f";auth_pass={phone['password']};regint=120;answermode={phone['answermode']};audio_codecs=PCMU\n"
    )


def setup(
    pbx_name: str, out: Path, pbx_host: str = "127.0.0.1", bind: str = "127.0.0.1", module_path: str = ""
) -> dict:
    """Render the four phones into `out` (absolute paths everywhere) and write `out/phones.json`."""
    pbx = PBXES[pbx_name]
    out = out.resolve()
    module_path = module_path or "/usr/lib/baresip/modules"
    manifest: dict[str, object] = {"pbx": pbx.name, "pbx_host": pbx_host, "pbx_port": pbx.sip_port, "bind": bind}
    phones = []
    for i, spec in enumerate(PHONES):
        phone_dir = out / spec.user
        (phone_dir / "snd").mkdir(parents=True, exist_ok=True)
        tone = out / "tones" / f"tone{spec.tone_hz}.wav"
        if not tone.exists():
            write_tone(tone, spec.tone_hz)
        phone = phone_layout(pbx, i, spec, bind)
        (phone_dir / "config").write_text(render_config(phone, phone_dir, tone, bind, module_path))
        (phone_dir / "accounts").write_text(render_account(phone, pbx_host, pbx))
        contacts = "".join(f'"{p.role}" <sip:{p.user}@{pbx_host}:{pbx.sip_port}>\n' for p in PHONES)
        (phone_dir / "contacts").write_text(contacts)
        phone["dir"] = str(phone_dir)
        phone["tone_file"] = str(tone)
        phones.append(phone)
    manifest["phones"] = phones
    (out / "phones.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_manifest(out: Path) -> dict:
    path = out / "phones.json"
    if not path.exists():
        raise PhoneError(f"{path} not found: run `phones.py setup --pbx freeswitch|asterisk --dir {out}` first")
    return json.loads(path.read_text())


def phone_entry(manifest: dict, user: str) -> dict:
    for p in manifest["phones"]:
        if p["user"] == user:
            return p
    raise PhoneError(f"no phone {user!r}; the lab phones are {', '.join(p['user'] for p in manifest['phones'])}")


def sip_uri(manifest: dict, number: str) -> str:
    """A dialled number as a URI at the PBX (the PBX routes it; phones never call each other directly)."""
    return f"sip:{number}@{manifest['pbx_host']}:{manifest['pbx_port']}"


# ---- process control -----------------------------------------------------------------------------


def baresip_binary(explicit: str = "") -> str:
    found = explicit or shutil.which("baresip")
    if not found:
        raise PhoneError("baresip not found: apt-get install -y baresip-core (Debian) or pass --baresip PATH")
    return found


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start(out: Path, binary: str = "", timeout: float = 10.0) -> dict[str, int]:
    """Start every phone (one baresip process each, its own session) and wait for its ctrl_tcp port."""
    manifest = load_manifest(out)
    exe = baresip_binary(binary)
    pids: dict[str, int] = {}
    for p in manifest["phones"]:
        log = open(Path(p["dir"]).parent / f"{p['user']}.log", "ab")  # handed to the child, closed below
        proc = subprocess.Popen(
            [exe, "-4", "-n", manifest["bind"], "-f", p["dir"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        pids[p["user"]] = proc.pid
    (out / "pids.json").write_text(json.dumps(pids) + "\n")
    for p in manifest["phones"]:
        if not wait_port(manifest["bind"], p["ctrl_port"], timeout):
            stop(out)
            raise PhoneError(f"phone {p['user']} did not open ctrl_tcp {p['ctrl_port']}: see {out}/{p['user']}.log")
    return pids


def _gone(pid: int) -> bool:
    """True once `pid` has exited (reaping it when it is our own child, so no zombie lingers)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # started by another process (the CLI): the phone was re-parented, kill(0) tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _signal_all(pids: set[int], sig: int, wait: float) -> set[int]:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if not _gone(pid)}
        if pids:
            time.sleep(0.05)
    return pids


def stop(out: Path) -> list[str]:
    """Stop the phones started by `start`, by pid (never by name), and wait until they are gone.

    baresip un-registers on the first SIGTERM (which waits for the registrar's answer); a second
    SIGTERM makes it quit at once, as Ctrl-C twice does; SIGKILL is the last resort.
    """
    path = out / "pids.json"
    if not path.exists():
        return []
    pids: dict[str, int] = json.loads(path.read_text())
    running = {pid for pid in pids.values() if not _gone(pid)}
    stopped = [user for user, pid in pids.items() if pid in running]
    running = _signal_all(running, signal.SIGTERM, 3.0)
    running = _signal_all(running, signal.SIGTERM, 3.0)
    running = _signal_all(running, signal.SIGKILL, 5.0)
    if running:
        raise PhoneError(f"phones did not exit: pids {sorted(running)}")
    path.unlink()
    return stopped


# ---- ctrl_tcp client -----------------------------------------------------------------------------


def netstring(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return str(len(body)).encode() + b":" + body + b","


class Phone:
    """One ctrl_tcp connection: commands out, responses and call events in (netstring JSON)."""

    def __init__(self, user: str, host: str, port: int, timeout: float = 5.0) -> None:
        self.user = user
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.events: list[dict] = []
        self._token = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Phone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _messages(self) -> Iterator[dict]:
        while True:
            colon = self.buf.find(b":")
            if colon < 0:
                return
            length = self.buf[:colon]
            if not length.isdigit():
                raise PhoneError(f"{self.user}: bad netstring from baresip: {self.buf[:40]!r}")
            end = colon + 1 + int(length)
            if len(self.buf) < end + 1:
                return
            body, self.buf = self.buf[colon + 1 : end], self.buf[end + 1 :]
            yield json.loads(body)

    def _read(self, deadline: float) -> list[dict]:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return []
        if not chunk:
            raise PhoneError(f"{self.user}: baresip closed the control connection")
        self.buf += chunk
        return list(self._messages())

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a baresip command (menu module) and return its output; raise if baresip says not ok."""
        self._token += 1
        token = f"{self.user}-{self._token}"
        msg = {"command": command, "token": token}
        if params:
            msg["params"] = params
        self.sock.sendall(netstring(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self._read(deadline):
                if m.get("response") and m.get("token") == token:
                    if not m.get("ok", False):
                        raise PhoneError(f"{self.user}: {command} {params} failed: {m.get('data', '')}")
                    return str(m.get("data", ""))
                if m.get("event"):
                    self.events.append(m)
        raise PhoneError(f"{self.user}: no response to {command!r} within {timeout} s")

    def wait_event(self, types: tuple[str, ...], timeout: float = 10.0) -> dict:
        """The next call event of one of `types` (earlier buffered events are consumed first)."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                ev = self.events.pop(0)
                if ev.get("type") in types:
                    return ev
            if time.monotonic() >= deadline:
                raise PhoneError(f"{self.user}: no {'/'.join(types)} within {timeout} s")
            self.events += [m for m in self._read(deadline) if m.get("event")]


def connect(manifest: dict, user: str) -> Phone:
    p = phone_entry(manifest, user)
    try:
        return Phone(user, manifest["bind"], p["ctrl_port"])
    except OSError as e:
        raise PhoneError(f"phone {user} is not running (ctrl_tcp {manifest['bind']}:{p['ctrl_port']}: {e})") from None


def one_command(out: Path, user: str, command: str, params: str = "") -> str:
    manifest = load_manifest(out)
    with connect(manifest, user) as phone:
        return phone.command(command, params)


def registered(phone: Phone) -> bool:
    """baresip's `reginfo` marks a registered account with OK (colour codes stripped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", phone.command("reginfo"))
    return bool(re.search(r"\bOK\b", text))


def wait_registered(phones: dict[str, Phone], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(phones)
    while pending and time.monotonic() < deadline:
        pending = {u for u in pending if not registered(phones[u])}
        if pending:
            time.sleep(0.5)
    if pending:
        raise PhoneError(f"not registered with the PBX after {timeout} s: {', '.join(sorted(pending))}")


# ---- scenarios -----------------------------------------------------------------------------------

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


# ---- CLI -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("CALLREC_PHONES_DIR", "phones")), help="the phones' directory"
    )
    parser = argparse.ArgumentParser(prog="phones.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    add = lambda name, **kw: sub.add_parser(name, parents=[common], **kw)  # noqa: E731
    s = add("setup", help="render baresip config + accounts + tone WAVs for the four phones")
    s.add_argument("--pbx", choices=sorted(PBXES), required=True)
    s.add_argument("--pbx-host", default="127.0.0.1", help="where the PBX's SIP port is (default 127.0.0.1)")
    s.add_argument("--bind", default="127.0.0.1", help="address the phones bind (default 127.0.0.1)")
    s.add_argument("--module-path", default="", help="baresip modules (default /usr/lib/baresip/modules)")
    s = add("start", help="start the phones")
    s.add_argument("--baresip", default="", help="baresip binary (default: from PATH)")
    s.add_argument("--foreground", action="store_true", help="stay until SIGTERM/SIGINT, then stop the phones")
    add("stop", help="stop the phones started by `start`")
    s = add("dial", help="FROM dials TO through the PBX")
    s.add_argument("from_user")
    s.add_argument("to")
    for name in ("answer", "hangup"):
        s = add(name, help=f"{name} the current call of USER")
        s.add_argument("user")
    s = add("transfer", help="USER's phone blind-transfers its call to TARGET (SIP REFER)")
    s.add_argument("user")
    s.add_argument("target")
    s = add("place-calls", help="inbound, outbound and blind-transfer calls through the PBX")
    s.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    s.add_argument("--talk", type=float, default=4.0, help="seconds of talk per call segment")
    s.add_argument("--register-timeout", type=float, default=15.0, help="seconds to wait for the phones to register")
    args = parser.parse_args(argv)
    out: Path = args.dir.resolve()
    try:
        if args.cmd == "setup":
            m = setup(args.pbx, out, args.pbx_host, args.bind, args.module_path)
            print(f"{len(m['phones'])} phones for {m['pbx']} in {out.resolve()}")
        elif args.cmd == "start":
            pids = start(out, args.baresip)
            print(json.dumps(pids))
            if args.foreground:
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                try:
                    while True:
                        time.sleep(3600)
                except (KeyboardInterrupt, SystemExit):
                    pass
                finally:
                    stop(out)
        elif args.cmd == "stop":
            print(json.dumps(stop(out)))
        elif args.cmd == "dial":
            print(one_command(out, args.from_user, "dial", sip_uri(load_manifest(out), args.to)))
        elif args.cmd == "answer":
            print(one_command(out, args.user, "accept"))
        elif args.cmd == "hangup":
            print(one_command(out, args.user, "hangup"))
        elif args.cmd == "transfer":
            print(one_command(out, args.user, "transfer", sip_uri(load_manifest(out), args.target)))
        elif args.cmd == "place-calls":
            names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
            results = place_calls(out, names, args.talk, args.register_timeout)
            print(json.dumps(results, indent=2))
            return 0 if all(r["ok"] for r in results) else 1
    except PhoneError as e:
        print(f"phones.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
