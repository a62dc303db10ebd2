"""`callrec selftest` against the simulated PBXes (lab/selftest_pbx.py): the whole command as an admin
runs it — originate, record through the real chain, store encrypted, decrypt, FFT, table / JSON, exit
code — and the same command catching a PBX that records wrongly."""

# ruff: noqa: ASYNC230, ASYNC240 - small local files in tests
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg

from controller.selftest import ACCOUNT, PLANS
from lab import scenarios as sc
from tests.selftest.conftest import AMI_SECRET, AMI_USER, ESL_PASSWORD, run_selftest

EVERY_CALL = (
    "dialplan hook fired",
    "recording started",
    "direction",
    "account number from the hook",
    "stored (encrypted)",
    "stereo file",
    "customer (440 Hz) on the left",
    "agent (880 Hz) on the right",
)
SPECIFIC = {
    "pause": ("pause journaled", "pause is silent (both channels)", "audio before and after the pause"),
    "phone-codes": (
        "pause journaled",
        "pause is silent (both channels)",
        "audio before and after the pause",
        "paused and resumed by the agent's phone codes",
        "the confirmation tone is not in the recording",
    ),
    "xfer-rule-off": ("external transfer marked", "recording stopped at the external transfer"),
    "xfer-rule-on": ("external transfer marked", "target (660 Hz) recorded after the transfer"),
    "xfer-redirect": (
        "external transfer marked",
        "recording stopped at the external transfer",
        "no 20 ms frame of the target (660 Hz)",
    ),
    "xfer-failed": ("failed attended transfer in the timeline", "agent (880 Hz) back on the right after it"),
}


def _checks_by_call(doc: dict) -> dict[str, dict[str, bool]]:
    out: dict[str, dict[str, bool]] = {}
    for c in doc["checks"]:
        out.setdefault(c["call"], {})[c["check"]] = c["ok"]
    return out


async def test_freeswitch_sim_every_check_passes_and_nothing_is_left_behind(esl_sim, record_dir: Path) -> None:
    # no --record-dir: FreeSWITCH is asked for its recordings_dir; no --config: embedded PG + temp keys
    # its own TMPDIR, so other selftests on the machine do not count; sticky and open like /tmp, since
    # the embedded PostgreSQL runs initdb as its own user
    private_tmp = Path(tempfile.mkdtemp(prefix="callrec-test-tmp-"))
    private_tmp.chmod(0o1777)
    try:
        res = await run_selftest(
            "--freeswitch", f"127.0.0.1:{esl_sim.port}", "--password", ESL_PASSWORD, "--json", tmpdir=private_tmp
        )
        left_behind = list(private_tmp.glob("callrec-selftest-*"))
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)
    assert res.rc == 0, res.stdout + res.stderr
    doc = res.doc
    assert doc["ok"] is True and doc["failed"] == 0
    checks = _checks_by_call(doc)
    assert set(checks) == {p.name for p in PLANS}
    for plan in PLANS:
        for name in EVERY_CALL + SPECIFIC.get(plan.name, ()):
            assert checks[plan.name].get(name) is True, (plan.name, name)
    calls = {c["name"]: c for c in doc["calls"]}
    for name, call in calls.items():
        (rec,) = call["recordings"]
        assert rec["state"] == "stored", name
        assert call["audio"]["channels"] == 2
    assert calls["xfer-rule-off"]["recordings"][0]["stop_reason"] == "external_transfer"
    assert calls["xfer-rule-on"]["recordings"][0]["stop_reason"] == "hangup"
    assert calls["outbound"]["direction"] == "outbound"
    # what it originated on the PBX: loopback calls into the selftest context, a PBX transfer, mask/unmask
    originates = [c for c in esl_sim.commands if c.startswith("originate ")]
    assert len(originates) == len(PLANS)
    assert all("loopback/" in c and "/callrec_selftest " in c for c in originates)
    assert any(c.startswith("uuid_transfer ") and "+15550130001 XML callrec_selftest" in c for c in esl_sim.commands)
    assert any(c.startswith("uuid_broadcast ") and "att_xfer::" in c and "+15550140486" in c for c in esl_sim.commands)
    failed = calls["xfer-failed"]["recordings"][0]["timeline"]["consultations"]
    assert [(c["target"], c["outcome"]) for c in failed] == [("+15550140486", "returned")]
    assert any(" mask " in c for c in esl_sim.commands) and any(" unmask " in c for c in esl_sim.commands)
    assert [c.split()[2] for c in esl_sim.commands if c.startswith("uuid_recv_dtmf ")] == ["~*1", "~*2"]
    # nothing left behind: the private spool sub-directory is gone with everything in it
    assert list(record_dir.iterdir()) == []
    assert left_behind == []  # keys + database removed


async def test_asterisk_sim_table_with_a_configured_database(
    ami_sim, record_dir: Path, tmp_path: Path, fresh_db: str
) -> None:
    from pyrage import x25519

    from storage import crypto

    ident = x25519.Identity.generate()
    crypto.generate_signing_key(tmp_path / "signing.key")
    store = tmp_path / "store"
    cfg = tmp_path / "callrec.toml"
    cfg.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[database]\nurl = "{fresh_db}"\n'
        f'[storage]\nbackend = "local"\npath = "{store}"\n'
        f'[encryption]\nrecipients = ["{ident.to_public()}"]\nsigning_key_file = "{tmp_path / "signing.key"}"\n'
    )
    res = await run_selftest(
        "--asterisk",
        f"127.0.0.1:{ami_sim.port}",
        "--username",
        AMI_USER,
        "--secret",
        AMI_SECRET,
        "--record-dir",
        str(record_dir),
        "--config",
        str(cfg),
    )
    assert res.rc == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("callrec selftest — asterisk at 127.0.0.1:") and "database: configured" in lines[0]
    rows = [ln.split() for ln in lines if ln.split()[:1] and ln.split()[0] in {p.name for p in PLANS}]
    assert rows and all("PASS" in r and "FAIL" not in r for r in rows)
    assert any("recording stopped at the external transfer" in ln and " PASS " in ln for ln in lines)
    assert lines[-1].endswith("0 failed — OK")
    # the configured database holds the selftest account's recordings, stored in the configured store
    conn = await asyncpg.connect(fresh_db)
    try:
        recs = await conn.fetch("SELECT state, account_id, object_uri FROM recordings")
    finally:
        await conn.close()
    assert len(recs) == len(PLANS)
    assert {r["state"] for r in recs} == {"stored"} and {r["account_id"] for r in recs} == {ACCOUNT}
    assert len(list(store.rglob("*.age"))) == len(PLANS)
    # and the configured recipient (not only the selftest's temporary one) can decrypt them
    one = next(store.rglob("*.age"))
    with open(one, "rb") as src, open(tmp_path / "out.wav", "wb") as dst:
        crypto.decrypt_stream(src, dst, [ident])
    assert (tmp_path / "out.wav").read_bytes()[:4] == b"RIFF"
    # Asterisk calls were Local-channel originates into the selftest context
    originates = [a for a in ami_sim.actions_seen if a.get("action") == ["Originate"]]
    assert len(originates) == len(PLANS)
    assert all(a["context"] == ["callrec-selftest"] and a["channel"][0].startswith("Local/") for a in originates)
    # the redirect plan moved the customer's channel with a Redirect, which no transfer event announces
    (redirect,) = [a for a in ami_sim.actions_seen if a.get("action") == ["Redirect"]]
    assert redirect["exten"] == ["+15550130001"] and redirect["context"] == ["callrec-selftest"]
    assert [a["exten"] for a in ami_sim.actions_seen if a.get("action") == ["Atxfer"]] == [["15550140486"]]


async def test_swapped_channels_fail_the_layout_checks(record_dir: Path) -> None:
    from lab.selftest_pbx import SelftestEslSimulator

    sim = SelftestEslSimulator(password=ESL_PASSWORD, recordings_dir=str(record_dir), swap_channels=True)
    await sim.start()
    try:
        res = await run_selftest("--freeswitch", f"127.0.0.1:{sim.port}", "--password", ESL_PASSWORD, "--json")
    finally:
        await sim.close()
    assert res.rc == 1, res.stdout + res.stderr
    failed = res.failed()
    for plan in PLANS:
        assert f"{plan.name}: customer (440 Hz) on the left" in failed
        assert f"{plan.name}: agent (880 Hz) on the right" in failed
    assert "inbound: stored (encrypted)" not in failed  # the chain itself worked; the audio is wrong
    assert res.doc["ok"] is False


async def test_recording_not_stopped_at_external_transfer_is_caught(record_dir: Path) -> None:
    from lab.selftest_pbx import SelftestAmiSimulator

    sim = SelftestAmiSimulator(username=AMI_USER, secret=AMI_SECRET, ignore_stop=True)
    await sim.start()
    try:
        res = await run_selftest(
            "--asterisk",
            f"127.0.0.1:{sim.port}",
            "--username",
            AMI_USER,
            "--secret",
            AMI_SECRET,
            "--record-dir",
            str(record_dir),
        )
    finally:
        await sim.close()
    assert res.rc == 1, res.stdout + res.stderr
    bad = [ln for ln in res.stdout.splitlines() if " FAIL " in ln]
    # the redirected call too: stopped, but the PBX kept writing (masked) past the transfer
    assert sorted({ln.split()[0] for ln in bad}) == ["xfer-redirect", "xfer-rule-off"]
    assert any(
        "recording stopped at the external transfer" in ln and "window(s) of the target's 660 Hz" in ln for ln in bad
    )
    assert res.stdout.rstrip().endswith("FAILED")


async def test_refused_login_is_a_clear_error(ami_sim, record_dir: Path) -> None:
    res = await run_selftest(
        "--asterisk",
        f"127.0.0.1:{ami_sim.port}",
        "--username",
        AMI_USER,
        "--secret",
        "wrong",
        "--record-dir",
        str(record_dir),
        limit=60,
    )
    assert res.rc == 2
    assert "callrec selftest:" in res.stderr and ("refused" in res.stderr or "could not connect" in res.stderr)
    assert list(record_dir.iterdir()) == []


async def test_selftest_leaves_the_pbxs_other_calls_alone(esl_sim, record_dir: Path) -> None:
    """A selftest on a PBX in service: a customer call of another account, bridged while the selftest
    runs, is none of its business. The selftest's recorder used to record it (its temporary policy
    let every other account fall back to the default settings, which record): a second uuid_record on
    a live production call, into the selftest's throw-away store (seen on a real Asterisk 20 as two
    MixMonitorStart on one call)."""
    production = sc.Scenario(
        "production_call",
        "a customer of account main calls its DID while the selftest runs",
        (sc.PlaceCall("inbound"), sc.Ring(), sc.Answer(), sc.Talk(12000), sc.Hangup("customer")),
        sc.Expectation(False),
    )
    selftest = asyncio.create_task(
        run_selftest("--freeswitch", f"127.0.0.1:{esl_sim.port}", "--password", ESL_PASSWORD, "--json")
    )
    assert await esl_sim.wait_connected(30)
    await asyncio.sleep(1.5)  # the selftest's driver is logged in and resynced
    handle = await esl_sim.run(production, settle=False)
    res = await selftest
    assert res.rc == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert not handle.customer.recordings
    leg = handle.customer.uuid
    assert not [c for c in esl_sim.commands if c.startswith("uuid_record ") and leg in c], res.stderr[-3000:]
    assert {c["name"] for c in res.doc["calls"]} == {p.name for p in PLANS}  # its own calls: all recorded
