"""The four lab phones as baresip files: who they are, which ports they bind, where they register.

Standard library only (it runs in the softphone container).
"""

from __future__ import annotations

import json
import math
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
    sip_base: int  # docker lab layout: phone n listens on sip_base + 10*n
    ctrl_ports: dict[str, int]  # docker lab layout
    rtp_base: int  # docker lab layout: phone n uses rtp_base + 20*n .. +19


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


def render_account(phone: dict[str, object], pbx_host: str, pbx_port: int) -> str:
    return (
        f"<sip:{phone['user']}@{pbx_host}:{pbx_port};transport=udp>"
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
        (phone_dir / "accounts").write_text(render_account(phone, pbx_host, pbx.sip_port))
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
