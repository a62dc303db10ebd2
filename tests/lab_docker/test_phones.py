"""lab/softphone/phones.py: rendered baresip files, and real baresip 1.0.0 phones on loopback.

The baresip tests start the Debian `baresip` (apt-get install -y baresip-core) from the rendered
config, register the phones to a tiny local registrar, drive them over ctrl_tcp and place one real
SIP call phone-to-phone: each phone's sndfile dump must hold the OTHER party's tone. No PBX is
involved and every port is one the OS picked, while this test itself holds the PBX ports (5060,
5080, 8021, 5038) and checks that nothing reached them. The test that talks to a real PBX runs only
when CALLREC_TEST_PHONES_FREESWITCH / CALLREC_TEST_PHONES_ASTERISK name one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from lab.tones import dominant_hz, read_wav

from .conftest import LAB, SOFTPHONE, parse_asterisk
from .sip_registrar import Registrar

BARESIP = shutil.which("baresip")
needs_baresip = pytest.mark.skipif(BARESIP is None, reason="baresip not installed (apt-get install -y baresip-core)")


def config_map(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            out.setdefault(key, []).append(value.strip())
    return out


@pytest.mark.parametrize("pbx", ["freeswitch", "asterisk"])
def test_setup_renders_four_well_formed_phones(phones: ModuleType, pbx: str, tmp_path: Path) -> None:
    manifest = phones.setup(pbx, tmp_path / "p")
    spec = phones.PBXES[pbx]
    assert [p["user"] for p in manifest["phones"]] == ["1001", "2001", "3001", "9001"]
    tones = {p["user"]: p["tone_hz"] for p in manifest["phones"]}
    assert tones == {"1001": 440, "2001": 880, "3001": 1000, "9001": 660}
    for p in manifest["phones"]:
        d = Path(p["dir"])
        cfg = config_map(d / "config")
        assert cfg["sip_listen"] == [p["sip_listen"]] and cfg["ctrl_tcp_listen"] == [f"127.0.0.1:{p['ctrl_port']}"]
        source = cfg["audio_source"][0].split(",", 1)[1]
        assert Path(source).is_absolute() and Path(source).exists()
        assert Path(cfg["snd_path"][0]).is_absolute() and Path(cfg["snd_path"][0]).is_dir()
        assert {"g711.so", "aufile.so"} <= set(cfg["module"]) and "ctrl_tcp.so" in cfg["module_app"]
        (account,) = (d / "accounts").read_text().splitlines()
        aor, *params = account.split(";", 1)[0], *account.split(">;", 1)[1].split(";")
        assert aor == f"<sip:{p['user']}@127.0.0.1:{spec.sip_port}"
        kv = dict(x.split("=", 1) for x in params)
        assert kv["auth_pass"] == spec.passwords[p["user"]]
        assert kv["answermode"] == ("auto" if p["user"] in ("2001", "3001") else "manual")
        assert kv["audio_codecs"] == "PCMU"
        rate, channels, frames = read_wav(source)
        assert (rate, channels) == (8000, 1) and len(frames) >= 60 * 8000
        assert round(dominant_hz(frames[:8000, 0])) == p["tone_hz"]
    assert json.loads((tmp_path / "p" / "phones.json").read_text()) == manifest


def test_rendered_accounts_match_the_lab_pbx_user_files(phones: ModuleType, tmp_path: Path) -> None:
    """Compare with the PBX files themselves, not with phones.py's own table."""
    import xml.etree.ElementTree as ET

    def rendered(pbx: str) -> dict[str, str]:
        m = phones.setup(pbx, tmp_path / pbx)
        out = {}
        for p in m["phones"]:
            account = (Path(p["dir"]) / "accounts").read_text()
            out[p["user"]] = account.split("auth_pass=", 1)[1].split(";", 1)[0]
        return out

    domain = ET.parse(LAB / "freeswitch/conf/directory/lab.xml").getroot().find("domain")
    fs_users = {u.get("id"): u.find("params/param[@name='password']").get("value") for u in domain.iter("user")}
    assert rendered("freeswitch") == fs_users
    pj = parse_asterisk(LAB / "asterisk/conf/pjsip.conf")
    ast_users = {s.name: s.get("password") for s in pj.sections if s.get("password")}
    assert rendered("asterisk") == ast_users


def test_netstring_frames_split_across_reads_are_reassembled(phones: ModuleType) -> None:
    """baresip's events arrive as netstrings that TCP may cut anywhere; responses match by token."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def fake_baresip() -> None:
        conn, _ = server.accept()
        buf = b""
        while not buf.endswith(b","):
            buf += conn.recv(4096)
        token = json.loads(buf.split(b":", 1)[1][:-1])["token"]
        event = phones.netstring({"event": True, "type": "CALL_RINGING", "class": "call"})
        reply = phones.netstring({"response": True, "ok": True, "data": "done", "token": token})
        wire = event + reply
        for i in range(0, len(wire), 7):  # 7-byte pieces: every frame boundary lands mid-read
            conn.sendall(wire[i : i + 7])
            time.sleep(0.002)
        conn.close()

    t = threading.Thread(target=fake_baresip)
    t.start()
    with phones.Phone("1001", "127.0.0.1", port) as phone:
        assert phone.command("dial", "sip:2001@127.0.0.1") == "done"
        assert phone.wait_event(("CALL_RINGING",), timeout=1)["class"] == "call"
    t.join()
    server.close()


def _fake_ctrl_tcp(phones: ModuleType, reply: Callable[[str], bytes]) -> tuple[int, threading.Thread]:
    """A ctrl_tcp peer on a port the OS picks: reads one command, sends `reply(token)` in ONE send."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        buf = b""
        while not buf.endswith(b","):
            buf += conn.recv(4096)
        token = json.loads(buf.split(b":", 1)[1][:-1])["token"]
        conn.sendall(reply(token))  # one write of a few hundred bytes: one segment, one read on loopback
        time.sleep(0.5)  # keep the connection up while the client waits for the event
        conn.close()
        server.close()

    t = threading.Thread(target=serve)
    t.start()
    return server.getsockname()[1], t


def test_call_event_arriving_with_the_command_response_is_delivered(phones: ModuleType) -> None:
    """A call answered at once: baresip's `dial` response and CALL_ESTABLISHED come in the same read."""

    def reply(token: str) -> bytes:
        return phones.netstring({"response": True, "ok": True, "data": "", "token": token}) + phones.netstring(
            {"event": True, "class": "call", "type": "CALL_ESTABLISHED", "peeruri": "sip:2001@127.0.0.1"}
        )

    port, t = _fake_ctrl_tcp(phones, reply)
    with phones.Phone("1001", "127.0.0.1", port) as phone:
        phone.command("dial", "sip:2001@127.0.0.1")
        ev = phone.wait_event(("CALL_ESTABLISHED",), timeout=2)
    t.join()
    assert ev["peeruri"] == "sip:2001@127.0.0.1"


def test_events_around_the_response_keep_their_order(phones: ModuleType) -> None:
    """Events before and after the response, all in one read: each is delivered once, in order."""

    def reply(token: str) -> bytes:
        types = ("CALL_RINGING", "CALL_PROGRESS", "CALL_ESTABLISHED")
        ev = [{"event": True, "class": "call", "type": t} for t in types]
        resp = {"response": True, "ok": True, "data": "ok", "token": token}
        return b"".join(phones.netstring(m) for m in (ev[0], resp, ev[1], ev[2]))

    port, t = _fake_ctrl_tcp(phones, reply)
    with phones.Phone("1001", "127.0.0.1", port) as phone:
        assert phone.command("dial", "sip:2001@127.0.0.1") == "ok"
        got = [phone.wait_event(("CALL_RINGING", "CALL_PROGRESS", "CALL_ESTABLISHED"), 2)["type"] for _ in range(3)]
    t.join()
    assert got == ["CALL_RINGING", "CALL_PROGRESS", "CALL_ESTABLISHED"]


def test_a_frame_not_closed_by_a_comma_is_an_error(phones: ModuleType) -> None:
    with pytest.raises(phones.PhoneError, match="not closed"):
        phones.NetstringDecoder("1001").feed(b"2:{}X")


def test_commands_without_setup_or_running_phone_fail_clearly(tmp_path: Path) -> None:
    script = str(SOFTPHONE / "phones.py")
    res = subprocess.run(
        [sys.executable, script, "hangup", "2001", "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert res.returncode == 2 and "run `phones.py setup" in res.stderr
    subprocess.run([sys.executable, script, "setup", "--pbx", "asterisk", "--dir", str(tmp_path)], check=True)
    res = subprocess.run(
        [sys.executable, script, "hangup", "2001", "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert res.returncode == 2 and "phone 2001 is not running" in res.stderr


# ---- ports: the default suite binds only ports the OS picks -----------------------------------------

# What a PBX host (or the docker lab) serves: SIP of FreeSWITCH / Asterisk, ESL, AMI.
PBX_PORTS = {"udp": (5060, 5080), "tcp": (5060, 5080, 8021, 5038)}


@dataclass
class HeldPorts:
    """The PBX ports, held by this test where they were free; anything arriving there is a leak."""

    sockets: dict[tuple[str, int], socket.socket] = field(default_factory=dict)
    busy: list[tuple[str, int]] = field(default_factory=list)  # already taken (a real PBX, another suite)

    def received(self) -> list[str]:
        heard = []
        for (proto, port), s in self.sockets.items():
            s.setblocking(False)
            try:
                if proto == "udp":
                    data, peer = s.recvfrom(65536)
                    heard.append(f"udp {port} from {peer}: {data[:60]!r}")
                else:
                    conn, peer = s.accept()
                    conn.close()
                    heard.append(f"tcp {port} connection from {peer}")
            except BlockingIOError:
                pass
        return heard


@pytest.fixture
def pbx_ports_held() -> Iterator[HeldPorts]:
    """A stand-in for a live PBX on this host: listeners on 127.0.0.1:5060/5080 (UDP+TCP), 8021, 5038."""
    held = HeldPorts()
    for proto, ports in PBX_PORTS.items():
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                held.busy.append((proto, port))
                continue
            if proto == "tcp":
                s.listen(8)
            held.sockets[(proto, port)] = s
    try:
        yield held
    finally:
        for s in held.sockets.values():
            s.close()


def _ports_of(manifest: dict) -> set[int]:
    out = set()
    for p in manifest["phones"]:
        sip = int(p["sip_listen"].rsplit(":", 1)[1])
        out |= {sip, sip + 1, int(p["ctrl_port"])}  # baresip binds TLS on SIP + 1
    return out


def test_setup_writes_ports_the_os_picked_into_the_baresip_configs(
    phones: ModuleType, tmp_path: Path, pbx_ports_held: HeldPorts
) -> None:
    """Two phone sets at once (two suites on one host): disjoint ports, none of a PBX's, RTP ephemeral."""
    fs = phones.setup("freeswitch", tmp_path / "a")
    ast = phones.setup("asterisk", tmp_path / "b")
    assert not _ports_of(fs) & _ports_of(ast), "two phone sets were given the same port"
    lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for manifest in (fs, ast):
        assert len(_ports_of(manifest)) == 12
        for port in _ports_of(manifest):
            assert lo <= port <= hi + 1, f"{port} is not a port the OS hands out ({lo}-{hi})"
        for p in manifest["phones"]:
            cfg = config_map(Path(p["dir"]) / "config")
            assert cfg["sip_listen"] == [p["sip_listen"]]
            assert cfg["ctrl_tcp_listen"] == [f"127.0.0.1:{p['ctrl_port']}"]
            assert cfg["rtp_ports"] == [f"{lo}-{hi}"]
    assert not pbx_ports_held.received()


def test_setup_registers_where_it_is_told(phones: ModuleType, tmp_path: Path) -> None:
    m = phones.setup("asterisk", tmp_path / "p", pbx_host="192.0.2.7", pbx_port=15060)
    for p in m["phones"]:
        d = Path(p["dir"])
        assert (d / "accounts").read_text().startswith(f"<sip:{p['user']}@192.0.2.7:15060;transport=udp>")
        assert all(":15060>" in line for line in (d / "contacts").read_text().splitlines())
    assert phones.sip_uri(m, "2001") == "sip:2001@192.0.2.7:15060"


@pytest.fixture
def registrar(phones: ModuleType) -> Iterator[Registrar]:
    with Registrar(phones.PBXES["freeswitch"].passwords) as reg:
        yield reg


@pytest.fixture
def running_phones(phones: ModuleType, tmp_path: Path, registrar: Registrar, pbx_ports_held: HeldPorts):
    """The FreeSWITCH phone set, started for real, registering to a local registrar (OS-picked ports)
    while the PBX ports are held by someone else; nothing may reach those."""
    phones.setup("freeswitch", tmp_path / "phones", pbx_port=registrar.port)
    pids = phones.start(tmp_path / "phones")
    try:
        yield tmp_path / "phones", pids
    finally:
        phones.stop(tmp_path / "phones")
    assert not pbx_ports_held.received(), "the phones talked to a PBX port"


@needs_baresip
def test_phones_register_answer_ctrl_tcp_and_stop(
    phones: ModuleType, running_phones: tuple[Path, dict], registrar: Registrar
) -> None:
    out, pids = running_phones
    manifest = phones.load_manifest(out)
    connected = {p["user"]: phones.connect(manifest, p["user"]) for p in manifest["phones"]}
    try:
        for user, phone in connected.items():
            assert f"sip:{user}@127.0.0.1:{registrar.port}" in phone.command("reginfo")
        phones.wait_registered(connected, timeout=10)
    finally:
        for phone in connected.values():
            phone.close()
    assert registrar.refused == []
    for p in manifest["phones"]:  # registered with the right password, from the port it was given
        assert f"@{p['sip_listen']}" in registrar.contacts[p["user"]]
    with pytest.raises(phones.PhoneError, match="already running"):
        phones.start(out)
    assert phones.stop(out) == ["1001", "2001", "3001", "9001"]
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@needs_baresip
def test_start_keeps_the_ports_of_setup_and_moves_off_one_taken_since(
    phones: ModuleType, tmp_path: Path, registrar: Registrar
) -> None:
    out = tmp_path / "phones"
    m = phones.setup("freeswitch", out, pbx_port=registrar.port)
    phones.start(out)
    try:  # the manifest setup returned still reaches the running phones
        assert phones.load_manifest(out) == m
        with phones.connect(m, "2001") as phone:
            assert "sip:2001@" in phone.command("reginfo")
    finally:
        phones.stop(out)
    taken = m["phones"][0]["ctrl_port"]
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", taken))  # another program took 1001's ctrl_tcp port meanwhile
    squatter.listen(1)
    try:
        phones.start(out)
        try:
            moved = phones.load_manifest(out)
            assert moved["phones"][0]["ctrl_port"] != taken
            with phones.connect(moved, "1001") as phone:
                assert "sip:1001@" in phone.command("reginfo")
        finally:
            phones.stop(out)
    finally:
        squatter.close()


@needs_baresip
def test_real_call_between_two_lab_phones_carries_each_partys_tone(
    phones: ModuleType, running_phones: tuple[Path, dict]
) -> None:
    out, _ = running_phones
    manifest = phones.load_manifest(out)
    agent_contact = f"sip:2001@{phones.phone_entry(manifest, '2001')['sip_listen']}"
    with phones.connect(manifest, "1001") as customer, phones.connect(manifest, "2001") as agent:
        customer.command("dial", agent_contact)  # phone to phone: 2001 auto-answers
        agent.wait_event(("CALL_ESTABLISHED",), timeout=10)
        customer.wait_event(("CALL_ESTABLISHED",), timeout=10)
        time.sleep(2.0)
        customer.command("hangup")
        agent.wait_event(("CALL_CLOSED",), timeout=10)
    phones.stop(out)  # sndfile finalizes its WAV headers on exit
    heard = {}
    for user in ("1001", "2001"):
        (dump,) = (out / user / "snd").glob("dump-*-dec.wav")
        rate, _, frames = read_wav(dump)
        heard[user] = round(dominant_hz(frames[rate // 2 : rate // 2 + rate, 0]) or 0)
    assert heard == {"1001": 880, "2001": 440}, "customer must hear the agent (880) and the agent the customer (440)"


@needs_baresip
def test_place_calls_without_a_pbx_reports_unregistered_phones(phones: ModuleType, tmp_path: Path) -> None:
    """Phones pointed at a UDP port (OS-picked) where nothing answers: a PBX that is down."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    out = tmp_path / "nopbx"
    phones.setup("freeswitch", out, pbx_port=silent.getsockname()[1])
    phones.start(out)
    try:
        res = subprocess.run(
            [sys.executable, str(SOFTPHONE / "phones.py"), "place-calls", "--dir", str(out), "--register-timeout", "1"],
            capture_output=True,
            text=True,
        )
    finally:
        phones.stop(out)
        silent.settimeout(0)
        try:
            first = silent.recv(65536)
        except BlockingIOError:
            first = b""
        silent.close()
    assert res.returncode == 2
    assert "not registered with the PBX" in res.stderr and "1001" in res.stderr
    assert first.startswith(b"REGISTER sip:127.0.0.1:"), "the phones did not try the PBX they were given"


def _real_pbx(var: str) -> tuple[str, int | None] | None:
    """`host` or `host:port` from the environment; None when the variable is unset."""
    value = os.environ.get(var)
    if not value:
        return None
    host, _, port = value.partition(":")
    return host, int(port) if port else None


@needs_baresip
@pytest.mark.parametrize(
    "pbx,var",
    [
        pytest.param("freeswitch", "CALLREC_TEST_PHONES_FREESWITCH", marks=pytest.mark.real_freeswitch),
        pytest.param("asterisk", "CALLREC_TEST_PHONES_ASTERISK", marks=pytest.mark.real_asterisk),
    ],
)
def test_place_calls_through_a_real_pbx(phones: ModuleType, tmp_path: Path, pbx: str, var: str) -> None:
    """Opt-in: CALLREC_TEST_PHONES_<PBX>=<host>[:<sip port>] names a PBX that carries the lab's users and
    routes (lab/docker/<pbx>/conf); inbound, outbound and the agent phone's blind transfer must all connect."""
    named = _real_pbx(var)
    if named is None:
        pytest.skip(f"{var} not set (a {pbx} with the lab's users and routes)")
    host, port = named
    out = tmp_path / pbx
    phones.setup(pbx, out, pbx_host=host, pbx_port=port)
    phones.start(out)
    try:
        results = phones.place_calls(out, list(phones.SCENARIOS), talk=2.0)
    finally:
        phones.stop(out)
    assert [r["scenario"] for r in results] == ["inbound", "outbound", "blind-transfer"]
    assert all(r["ok"] for r in results), json.dumps(results, indent=2)
