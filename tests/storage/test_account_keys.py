"""Keys per account, "no key → not stored, loudly", and `callrec keys rotate` — real database, real
`age` CLI for decryption, the API over real HTTP, the CLI in a subprocess."""

# ruff: noqa: ASYNC221, ASYNC240

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import aiohttp
import asyncpg

from controller.api import create_app, start_api
from controller.config import AccountConfig, AccountEncryptionConfig, load_config
from controller.metrics import Metrics
from storage import crypto, manifest, users
from storage.finalize import FinalizeWorker
from tests.storage.conftest import Keys, _age_keygen, age_decrypt, insert_recording, make_config, objects
from tests.storage.test_cli import callrec


async def _object_of(cfg: object, rid: str) -> Path:
    root = Path(cfg.storage.path)  # type: ignore[attr-defined]
    return root / next(o for o in objects(cfg) if rid in o and o.endswith(".wav.age"))  # type: ignore[arg-type]


async def test_account_keys_isolate_tenants_and_no_recipient_waits_loudly_until_a_key_appears(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    acme_identity = tmp_path / "acme-identity.txt"
    acme_recipient = _age_keygen(acme_identity)
    acme_recipients = tmp_path / "acme-recipients.txt"  # not there yet: the account has no usable key
    acme_signing = tmp_path / "acme-signing.key"
    acme_sign_id = crypto.signing_key_id(crypto.generate_signing_key(acme_signing).public_key())
    acme = AccountEncryptionConfig(recipients_file=str(acme_recipients), signing_key_file=str(acme_signing))
    cfg = dataclasses.replace(make_config(tmp_path, keys), accounts={"acme": AccountConfig(encryption=acme)})
    r_main, _ = await insert_recording(dbpool, cfg, seconds=1.0)
    r_acme, files = await insert_recording(dbpool, cfg, seconds=1.0)
    await dbpool.execute("UPDATE recordings SET account_id = 'acme' WHERE id = $1", r_acme)
    metrics = Metrics()
    worker = FinalizeWorker(dbpool, cfg, metrics, "n")
    await worker.drain()

    main = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", r_main)
    assert main["state"] == "stored" and main["key_ids"] == [crypto.key_id(keys.recipient)]
    row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", r_acme)
    assert row["state"] == "failed"
    assert row["error"].startswith("no_recipient: account acme has no usable recipient"), row["error"]
    assert str(acme_recipients) in row["error"]
    assert Path(files["stereo"]).exists(), "the plaintext stays in the spool, nothing is stored in clear"
    assert not [o for o in objects(cfg) if r_acme in o], "never encrypted to the global key instead"

    # loudly: /health, /metrics and the recording in the API, over real HTTP
    async def finalize_check() -> dict:
        return (await worker.status()).as_dict()

    app = create_app(cfg, dbpool, metrics=metrics, health_checks={"finalize": finalize_check})
    runner, port = await start_api(app, "127.0.0.1", 0)
    _, token = await users.add_user(dbpool, "admin", "admin", download_scope="all")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
            async with s.get(base + "/health") as resp:
                body = await resp.json()
                assert resp.status == 503
                assert body["components"]["finalize"]["no_recipient"] == {"acme": 1}
            async with s.get(base + "/metrics") as resp:
                assert 'callrec_finalize_no_recipient{account="acme"} 1' in await resp.text()
            async with s.get(f"{base}/api/v1/recordings/{r_acme}") as resp:
                rec = await resp.json()
                assert rec["state"] == "failed" and rec["error"].startswith("no_recipient:")

            # the key appears (file written): the worker re-queues it and stores it, no restart
            acme_recipients.write_text(acme_recipient + "\n")
            await worker.drain()
            row = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", r_acme)
            assert row["state"] == "stored", row["error"]
            async with s.get(base + "/health") as resp:
                assert (await resp.json())["components"]["finalize"]["no_recipient"] == {}
            async with s.get(base + "/metrics") as resp:
                assert 'callrec_finalize_no_recipient{account="acme"} 0' in await resp.text()
    finally:
        await runner.cleanup()

    # the tenant's recording opens only with the tenant's identity, and is signed by the tenant's key
    assert row["key_ids"] == [crypto.key_id(acme_recipient)]
    assert row["signing_key_id"] == acme_sign_id == row["manifest"]["signing_key_id"]
    enc = await _object_of(cfg, r_acme)
    assert age_decrypt(acme_identity, enc, tmp_path / "a.wav").returncode == 0
    assert age_decrypt(keys.identity_file, enc, tmp_path / "x.wav").returncode != 0
    assert not Path(files["stereo"]).exists()
    acme_ids = crypto.load_identities(acme_identity)
    result = await manifest.verify_recording(dbpool, cfg, r_acme, identities=acme_ids)
    assert result.ok, result.summary()
    assert (await manifest.verify_recording(dbpool, cfg, r_main)).ok


def _write_conf(tmp: Path, dsn: str, kd: Path, acme: Path, *, global_file: bool = True) -> Path:
    if global_file:
        glob = f'recipients_file = "{kd / "recipient.txt"}"'
    else:
        glob = f'recipients = ["{(kd / "recipient.txt").read_text().split()[-1]}"]'
    p = tmp / ("c.toml" if global_file else "inline.toml")
    p.write_text(
        f"""state_dir = "{tmp / "state"}"
[database]
url = "{dsn}"
[spool]
dir = "{tmp / "spool"}"
[storage]
path = "{tmp / "store"}"
[encryption]
{glob}
signing_key_file = "{kd / "signing.key"}"
identity_file = "{kd / "identity.txt"}"
[accounts.acme.encryption]
recipients_file = "{acme / "recipients.txt"}"
signing_key_file = "{acme / "signing.key"}"
[finalize]
file_stable_seconds = 0
"""
    )
    return p


async def _finalize_one(pool: asyncpg.Pool, conf: Path, account: str) -> str:
    cfg = load_config(conf, env={})
    rid, _ = await insert_recording(pool, cfg, seconds=0.5)
    await pool.execute("UPDATE recordings SET account_id = $2 WHERE id = $1", rid, account)
    await FinalizeWorker(pool, cfg, Metrics(), "n").drain()
    assert await pool.fetchval("SELECT state FROM recordings WHERE id = $1", rid) == "stored"
    return rid


async def test_keys_rotate_new_recordings_use_new_keys_old_ones_still_decrypt_and_verify(
    dbpool: asyncpg.Pool, fresh_db: str, tmp_path: Path
) -> None:
    kd, acme = tmp_path / "keys", tmp_path / "acme"
    blank = tmp_path / "blank.toml"
    blank.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    assert callrec("keys", "generate", "--dir", str(kd), config=blank).returncode == 0
    acme.mkdir()
    acme_old_rec = _age_keygen(acme / "identity-old.txt")
    (acme / "recipients.txt").write_text(acme_old_rec + "\n")
    crypto.generate_signing_key(acme / "signing.key")
    conf = _write_conf(tmp_path, fresh_db, kd, acme)
    old_main, old_acme = await _finalize_one(dbpool, conf, "main"), await _finalize_one(dbpool, conf, "acme")
    old_sign = crypto.signing_key_id(crypto.load_public_key(kd / "signing.key"))

    res = callrec("keys", "rotate", config=conf)
    assert res.returncode == 0, res.stdout + res.stderr
    new_identity = str(acme / "identity-new.txt")
    res_acme = callrec("keys", "rotate", "--account", "acme", "--identity-out", new_identity, config=conf)
    assert res_acme.returncode == 0, res_acme.stdout + res_acme.stderr
    new_main, new_acme = await _finalize_one(dbpool, conf, "main"), await _finalize_one(dbpool, conf, "acme")

    rows = {str(r["id"]): r for r in await dbpool.fetch("SELECT * FROM recordings")}
    assert rows[new_main]["key_ids"] != rows[old_main]["key_ids"]
    assert rows[new_acme]["key_ids"] != rows[old_acme]["key_ids"]
    assert rows[old_acme]["key_ids"] == [crypto.key_id(acme_old_rec)]
    assert rows[new_main]["signing_key_id"] != rows[old_main]["signing_key_id"] == old_sign
    assert rows[new_acme]["signing_key_id"] != rows[old_acme]["signing_key_id"]
    assert f"new recordings are encrypted to {rows[new_main]['key_ids'][0]}" in res.stdout
    assert (kd / "signing.key.retired" / f"{old_sign.split(':')[1]}.pub").exists()

    # every recording, old and new, verifies (signature by the key its id names) and decrypts
    for rid, identity in (
        (old_main, kd / "identity.txt"),  # the playback identity file got the new identity appended
        (new_main, kd / "identity.txt"),
        (old_acme, acme / "identity-old.txt"),
        (new_acme, acme / "identity-new.txt"),
    ):
        out = callrec("verify", rid, "--identity", str(identity), config=conf)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "audio sha256" in out.stdout
    wrong = callrec("verify", new_acme, "--identity", str(acme / "identity-old.txt"), config=conf)
    assert wrong.returncode == 1 and "WRONG KEY" in wrong.stdout
    n = await dbpool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'keys.rotate'")
    assert n == 2

    bad = callrec("keys", "rotate", "--account", "nosuch", config=conf)
    assert bad.returncode == 1 and "has no [accounts.nosuch.encryption] table" in bad.stderr
    inline = _write_conf(tmp_path, fresh_db, kd, acme, global_file=False)
    bad = callrec("keys", "rotate", config=inline)
    assert bad.returncode == 1 and "encryption.recipients_file is not set" in bad.stderr
    assert subprocess.run(["age-keygen", "-y", str(acme / "identity-new.txt")], capture_output=True).returncode == 0


async def test_rewrap_reencrypts_old_recordings_to_the_current_recipient(
    dbpool: asyncpg.Pool, fresh_db: str, tmp_path: Path
) -> None:
    kd, acme = tmp_path / "keys", tmp_path / "acme"
    blank = tmp_path / "blank.toml"
    blank.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    assert callrec("keys", "generate", "--dir", str(kd), config=blank).returncode == 0
    acme.mkdir()
    old_rec = _age_keygen(acme / "old.txt")
    (acme / "recipients.txt").write_text(old_rec + "\n")
    crypto.generate_signing_key(acme / "signing.key")
    conf = _write_conf(tmp_path, fresh_db, kd, acme)
    rid = await _finalize_one(dbpool, conf, "acme")
    before = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    cfg = load_config(conf, env={})
    enc = await _object_of(cfg, rid)
    new_rec = _age_keygen(acme / "new.txt")
    (acme / "recipients.txt").write_text(new_rec + "\n")  # what `keys rotate` does

    res = callrec("keys", "rewrap", "--identity", str(acme / "new.txt"), "--account", "acme", config=conf)
    assert res.returncode == 1 and f"error {rid}: none of identities" in res.stdout, res.stdout  # not the old key
    res = callrec("keys", "rewrap", "--identity", str(acme / "old.txt"), "--dry-run", config=conf)
    assert res.returncode == 0 and f"would re-wrap {rid}" in res.stdout, res.stdout + res.stderr
    assert await dbpool.fetchval("SELECT key_ids FROM recordings WHERE id = $1", rid) == before["key_ids"]

    res = callrec("keys", "rewrap", "--identity", str(acme / "old.txt"), "--account", "acme", config=conf)
    assert res.returncode == 0 and "re-wrapped 1, already current 0, errors 0" in res.stdout, res.stdout + res.stderr
    after = await dbpool.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert after["key_ids"] == [crypto.key_id(new_rec)]
    assert after["audio_sha256"] == before["audio_sha256"] and after["ciphertext_sha256"] != before["ciphertext_sha256"]
    assert after["manifest"]["rewrapped"]["from_key_ids"] == before["key_ids"]
    assert age_decrypt(acme / "new.txt", enc, tmp_path / "n.wav").returncode == 0
    assert age_decrypt(acme / "old.txt", enc, tmp_path / "o.wav").returncode != 0
    out = callrec("verify", rid, "--identity", str(acme / "new.txt"), config=conf)
    assert out.returncode == 0, out.stdout
    assert await dbpool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'recording.rewrap'") == 1
    res = callrec("keys", "rewrap", "--identity", str(acme / "old.txt"), "--account", "acme", config=conf)
    assert "re-wrapped 0, already current 1" in res.stdout
