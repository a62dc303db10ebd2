"""The four lab phones as baresip files: who they are, which ports they bind, where they register.

Ports: every phone binds ports the OS picks. Its SIP and ctrl_tcp ports are asked from the OS at
setup time (bind to port 0) and written into its config and `phones.json`; RTP ports are chosen by
baresip inside the OS's ephemeral range. So the phones never take a PBX's port (5060, 5080, ...)
and two phone sets on one host never collide. The PBX they register with is the only fixed port,
and only because the PBX defines it (`--pbx-port` changes it).

Standard library only (it runs in the softphone container).
"""

from __future__ import annotations

import json
import math
import socket
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from .ctrl_tcp import PhoneError
else:  # run as a script: the softphone container mounts only this directory
    from ctrl_tcp import PhoneError  # type: ignore[no-redef]

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


@dataclass(frozen=True)
class PhonePorts:
    sip: int  # baresip binds UDP and TCP here, and TLS on sip + 1
    ctrl: int
    rtp: tuple[int, int]


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
    ),
    # Asterisk on 5060 (fixtures asterisk §2, S7/S8).
    "asterisk": PbxSpec(
        name="asterisk",
        sip_port=5060,
        passwords={"1001": "pass1001", "2001": "pass2001", "3001": "pass3001", "9001": "pass9001"},
    ),
}

MODULES = ("g711.so", "aufile.so", "aubridge.so", "sndfile.so")
APP_MODULES = ("account.so", "menu.so", "contact.so", "ctrl_tcp.so")


# ---- ports ---------------------------------------------------------------------------------------


def ephemeral_range() -> tuple[int, int]:
    """The range the OS hands out for port 0 (Linux: ip_local_port_range)."""
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def os_picked_ports(count: int, bind: str) -> list[PhonePorts]:
    """SIP and ctrl_tcp ports for `count` phones, each asked from the OS (bind to port 0).

    All sockets stay open until every port is chosen, so no two phones get the same one; a SIP port
    is taken only when UDP, TCP and TCP + 1 (baresip's TLS) are all free. RTP ports are chosen by
    baresip from the OS's ephemeral range (it retries a port in use).
    """
    held: list[socket.socket] = []

    def grab(kind: int, port: int = 0) -> int:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((bind, port))
        except OSError:
            s.close()
            raise
        held.append(s)
        return s.getsockname()[1]

    try:
        out = []
        for _ in range(count):
            for _attempt in range(50):
                sip = grab(socket.SOCK_STREAM)
                try:
                    grab(socket.SOCK_DGRAM, sip)
                    grab(socket.SOCK_STREAM, sip + 1)
                    break
                except OSError:
                    continue
            else:
                raise PhoneError(f"no free SIP port pair on {bind} after 50 tries")
            out.append(PhonePorts(sip=sip, ctrl=grab(socket.SOCK_STREAM), rtp=ephemeral_range()))
        return out
    finally:
        for s in held:
            s.close()


def ports_free(manifest: dict) -> bool:
    """Whether every port written for the phones (SIP UDP/TCP, TLS on SIP + 1, ctrl_tcp) is still free."""
    bind = manifest["bind"]
    for phone in manifest["phones"]:
        sip = int(str(phone["sip_listen"]).rsplit(":", 1)[1])
        for kind, port in (
            (socket.SOCK_DGRAM, sip),
            (socket.SOCK_STREAM, sip),
            (socket.SOCK_STREAM, sip + 1),
            (socket.SOCK_STREAM, int(phone["ctrl_port"])),
        ):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((bind, port))
                except OSError:
                    return False
    return True


# ---- files ---------------------------------------------------------------------------------------


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


def render_account(phone: dict[str, object], pbx_host: str, pbx_port: int) -> str:
    return (
        f"<sip:{phone['user']}@{pbx_host}:{pbx_port};transport=udp>"
        f";auth_pass={phone['password']};regint=120;answermode={phone['answermode']};audio_codecs=PCMU\n"
    )


def setup(
    pbx_name: str,
    out: Path,
    pbx_host: str = "127.0.0.1",
    bind: str = "127.0.0.1",
    module_path: str = "",
    pbx_port: int | None = None,
) -> dict:
    """Render the four phones into `out` (absolute paths everywhere) and write `out/phones.json`.

    The phones register at `pbx_host:pbx_port` (default: the lab PBX's SIP port). Their own ports
    are picked here; `start` picks new ones if any has been taken since.
    """
    pbx = PBXES[pbx_name]
    out = out.resolve()
    port = pbx.sip_port if pbx_port is None else pbx_port
    phones = []
    for spec in PHONES:
        phone_dir = out / spec.user
        (phone_dir / "snd").mkdir(parents=True, exist_ok=True)
        tone = out / "tones" / f"tone{spec.tone_hz}.wav"
        if not tone.exists():
            write_tone(tone, spec.tone_hz)
        phones.append(
            {
                "user": spec.user,
                "role": spec.role,
                "tone_hz": spec.tone_hz,
                "answermode": spec.answermode,
                "password": pbx.passwords[spec.user],
                "dir": str(phone_dir),
                "tone_file": str(tone),
            }
        )
    manifest = {
        "pbx": pbx.name,
        "pbx_host": pbx_host,
        "pbx_port": port,
        "bind": bind,
        "module_path": module_path or "/usr/lib/baresip/modules",
        "phones": phones,
    }
    return assign_ports(out, manifest)


def assign_ports(out: Path, manifest: dict | None = None) -> dict:
    """Ask the OS for every phone's SIP and ctrl_tcp ports and (re)write its files and phones.json.

    `start` calls it too when a port written earlier has been taken since.
    """
    manifest = load_manifest(out) if manifest is None else manifest
    bind = manifest["bind"]
    for phone, ports in zip(manifest["phones"], os_picked_ports(len(manifest["phones"]), bind), strict=True):
        phone["sip_listen"] = f"{bind}:{ports.sip}"
        phone["ctrl_port"] = ports.ctrl
        phone["rtp_ports"] = f"{ports.rtp[0]}-{ports.rtp[1]}"
        phone_dir = Path(phone["dir"])
        config = render_config(phone, phone_dir, Path(phone["tone_file"]), bind, manifest["module_path"])
        (phone_dir / "config").write_text(config)
        (phone_dir / "accounts").write_text(render_account(phone, manifest["pbx_host"], manifest["pbx_port"]))
        contacts = "".join(f'"{p.role}" <sip:{p.user}@{manifest["pbx_host"]}:{manifest["pbx_port"]}>\n' for p in PHONES)
        (phone_dir / "contacts").write_text(contacts)
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
