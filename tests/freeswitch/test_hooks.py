"""The admin-facing FreeSWITCH snippets parse as FreeSWITCH XML and are secure by default."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dialplan_include_fires_policy_event_with_our_variables() -> None:
    tree = ET.parse(ROOT / "dialplan/freeswitch/callrec.xml")
    root = tree.getroot()
    assert root.tag == "include"
    exts = root.findall("extension")
    assert exts and all(e.get("continue") == "true" for e in exts), "must not stop the admin's own dialplan"
    actions = [a for e in exts for a in e.iter("action")]
    apps = [a.get("application") for a in actions]
    assert "bridge" not in apps and "answer" not in apps and "record_session" not in apps
    event = next(a.get("data", "") for a in actions if a.get("application") == "event")
    fields = dict(kv.split("=", 1) for kv in event.split(","))
    assert fields["Event-Name"] == "CUSTOM" and fields["Event-Subclass"] == "callrec::policy"
    for var in ("callrec_account_number", "callrec_direction", "callrec_record", "callrec_account"):
        assert fields[var] == "${" + var + "}"


def test_event_socket_is_loopback_with_acl_and_no_default_password() -> None:
    root = ET.parse(ROOT / "freeswitch_conf/event_socket.conf.xml").getroot()
    assert root.tag == "configuration" and root.get("name") == "event_socket.conf"
    params = {p.get("name"): p.get("value") for p in root.iter("param")}
    assert params["listen-ip"] == "127.0.0.1"
    assert params["password"] not in ("", "ClueCon")
    acl_name = params["apply-inbound-acl"]
    acl = ET.parse(ROOT / "freeswitch_conf/callrec_acl.conf.xml").getroot()
    lists = {lst.get("name"): lst for lst in acl.iter("list")}
    assert lists[acl_name].get("default") == "deny"
    assert [n.get("cidr") for n in lists[acl_name].iter("node")] == ["127.0.0.1/32"]


def test_notes_name_every_variable_the_include_uses() -> None:
    notes = (ROOT / "freeswitch_conf/NOTES.md").read_text()
    xml = (ROOT / "dialplan/freeswitch/callrec.xml").read_text()
    import re

    for var in set(re.findall(r"\$\{(callrec_[a-z_]+)\}", xml)):
        assert f"`{var}`" in notes, var


def test_real_pbx_test_routes_include_the_shipped_hook_from_the_repository() -> None:
    """tests/freeswitch/real_pbx/callrec_test.xml is installed by a symlink into the PBX's conf dir; its
    include of our hook must resolve, relative to the file's real place, to dialplan/freeswitch/callrec.xml."""
    path = ROOT / "tests/freeswitch/real_pbx/callrec_test.xml"
    root = ET.parse(path).getroot()
    assert {c.get("name") for c in root.iter("context")} == {"callrec_test", "callrec_test_phones"}
    routes = next(c for c in root.iter("context") if c.get("name") == "callrec_test")
    text = path.read_text()
    (include,) = [line for line in text.splitlines() if "X-PRE-PROCESS" in line and "callrec.xml" in line]
    target = include.split('data="', 1)[1].split('"', 1)[0]
    assert (path.parent / target).resolve() == (ROOT / "dialplan/freeswitch/callrec.xml").resolve()
    assert routes.find("extension") is not None
