"""`callrec import-archive` trusts nothing it is verifying: real archives written by `callrec export`
from one installation (A), imported into another (B, own database, store and keys), as a user runs it."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from controller.config import ConfigError, load_config
from controller.metrics import Metrics
from storage import crypto, db, manifest
from storage.archive import INDEX
from storage.finalize import FinalizeWorker
from tests.conftest import _create_migrated, _drop
from tests.storage.conftest import insert_recording, objects
from tests.storage.test_cli import callrec, write_config


@dataclass
class Site:
    conf: Path
    dsn: str
    keys: Path
    store: Path


def _site(tmp: Path, name: str, dsn: str, keys_dir: Path, recipient: str, extra: str = "") -> Site:
    base = tmp / name
    conf = write_config(tmp / f"{name}.toml", dsn, base, keys_dir, recipient)
    if extra:
        conf.write_text(conf.read_text().replace("[finalize]", extra + "\n[finalize]"))
    return Site(conf, dsn, keys_dir, base / "store")


def _keys(tmp: Path, name: str) -> tuple[Path, str]:
    kd = tmp / f"keys-{name}"
    blank = tmp / f"blank-{name}.toml"
    blank.write_text(f'state_dir = "{tmp / name / "state"}"\n')
    res = callrec("keys", "generate", "--dir", str(kd), config=blank)
    assert res.returncode == 0, res.stderr
    return kd, (kd / "recipient.txt").read_text().strip()


@dataclass
class Exported:
    a: Site
    tar: Path
    ids: list[str]
    tmp: Path
    recipient: str


@pytest.fixture(scope="module")
async def exported(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Exported]:
    """Installation A with three stored recordings, and its real export archive."""
    tmp = tmp_path_factory.mktemp("import-trust")
    name = f"callrec_t_{secrets.token_hex(4)}"
    dsn = await _create_migrated(server_dsn, name)
    kd, recipient = _keys(tmp, "a")
    a = _site(tmp, "a", dsn, kd, recipient)
    cfg = load_config(a.conf, env={})
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    try:
        ids = [(await insert_recording(pool, cfg, seconds=1.0))[0] for _ in range(3)]
        await FinalizeWorker(pool, cfg, Metrics(), "a").drain()
        day = (await pool.fetchval("SELECT min(started_at) FROM recordings")).date().isoformat()
    finally:
        await pool.close()
    tar = tmp / "a.tar"
    res = callrec("export", "--from", day, "--to", day, "-o", str(tar), config=a.conf)
    assert res.returncode == 0, res.stderr
    yield Exported(a, tar, ids, tmp, recipient)
    await _drop(server_dsn, name)


@pytest.fixture
async def site_b(fresh_db: str, exported: Exported, tmp_path: Path) -> Site:
    kd, recipient = _keys(tmp_path, "b")
    return _site(tmp_path, "b", fresh_db, kd, recipient)


async def _rows(dsn: str) -> dict[str, asyncpg.Record]:
    conn = await db.connect(dsn)
    try:
        return {str(r["id"]): r for r in await conn.fetch("SELECT * FROM recordings")}
    finally:
        await conn.close()


def _stored_ids(site: Site) -> set[str]:
    root = site.store
    return {p.name.split(".")[0] for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes]) -> Path:
    """Copy an archive, passing every member's bytes through `change` (what an attacker does)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin.getmembers():
            f = tin.extractfile(m)
            data = change(m.name, f.read() if f else b"")
            info = tarfile.TarInfo(m.name)
            info.size, info.mtime, info.mode = len(data), m.mtime, m.mode
            tout.addfile(info, io.BytesIO(data))
    return dst


def _edit_manifest(rid: str, edit: Callable[[dict, str], tuple[dict, str]]) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if rid in name and name.endswith(".manifest.json"):
            m, sig = manifest.parse_document(data)
            return manifest.document(*edit(m, sig))
        return data

    return change


def _signature_of(tar: Path, rid: str) -> str:
    with tarfile.open(tar) as t:
        name = next(n for n in t.getnames() if rid in n and n.endswith(".manifest.json"))
        f = t.extractfile(name)
        assert f is not None
        return manifest.parse_document(f.read())[1]


def _import(site: Site, tar: Path, *extra: str) -> tuple[int, str]:
    res = callrec("import-archive", str(tar), *extra, config=site.conf)
    return res.returncode, res.stdout + res.stderr


async def test_import_without_a_trusted_key_rejects_every_entry_and_writes_nothing(
    exported: Exported, site_b: Site
) -> None:
    code, out = _import(site_b, exported.tar)
    assert code == 1, out
    assert "imported 0" in out and "rejected 3" in out
    a_key = crypto.signing_key_id(crypto.load_public_key(exported.a.keys / "signing.pub"))
    for rid in exported.ids:
        assert f"rejected: {rid}: manifest is signed by {a_key}, which is not trusted" in out
    assert await _rows(site_b.dsn) == {}
    assert _stored_ids(site_b) == set()


async def test_trusted_import_then_every_imported_recording_verifies(exported: Exported, site_b: Site) -> None:
    code, out = _import(site_b, exported.tar, "--public-key", str(exported.a.keys / "signing.pub"))
    assert code == 0, out
    assert "imported 3, already present 0, conflicts 0, rejected 0" in out
    a_key = crypto.signing_key_id(crypto.load_public_key(exported.a.keys / "signing.pub"))
    rows = await _rows(site_b.dsn)
    assert set(rows) == set(exported.ids)
    assert {r["signing_key_id"] for r in rows.values()} == {a_key}, "the signer's key id is kept with each recording"
    for rid in exported.ids:  # no --public-key: B remembers the key the operator trusted at import
        res = callrec("verify", rid, "--no-decrypt", config=site_b.conf)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"valid, signed by {a_key}" in res.stdout
    # B's own recordings still verify with B's key: the ring holds both
    # identical re-import: already present, nothing changes, exit 0
    code, out = _import(site_b, exported.tar)
    assert code == 0 and "imported 0, already present 3, conflicts 0, rejected 0" in out, out
    conn = await db.connect(site_b.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'signing_key.trust'") == 1
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'recording.import'") == 3
    finally:
        await conn.close()


def _stranger_signed(tmp: Path) -> Callable[[dict, str], tuple[dict, str]]:
    key = crypto.generate_signing_key(tmp / f"stranger-{secrets.token_hex(3)}.key")

    def edit(m: dict, sig: str) -> tuple[dict, str]:
        m = {**m, "signing_key_id": crypto.signing_key_id(key.public_key())}
        return m, manifest.sign(m, key)

    return edit


@pytest.mark.parametrize("attack", ["audio", "manifest", "swapped_signature", "foreign_key", "index", "missing"])
async def test_tampered_entry_is_rejected_with_its_reason_and_nothing_of_it_is_written(
    exported: Exported, site_b: Site, tmp_path: Path, attack: str
) -> None:
    victim, other = exported.ids[0], exported.ids[1]
    if attack == "audio":

        def change(name: str, data: bytes) -> bytes:
            if victim in name and name.endswith(".wav.age"):
                b = bytearray(data)
                b[len(b) // 2] ^= 1
                return bytes(b)
            return data

        reason = "audio was altered"
    elif attack == "manifest":
        change = _edit_manifest(victim, lambda m, s: ({**m, "customer_number": "+15550009999"}, s))
        reason = "does not verify: the manifest or its signature was altered"
    elif attack == "swapped_signature":
        theirs = _signature_of(exported.tar, other)
        change = _edit_manifest(victim, lambda m, s: (m, theirs))
        reason = "does not verify: the manifest or its signature was altered"
    elif attack == "foreign_key":
        change = _edit_manifest(victim, _stranger_signed(tmp_path))
        reason = "which is not trusted"
    elif attack == "index":

        def change(name: str, data: bytes) -> bytes:
            if name == INDEX:
                index = json.loads(data)
                for e in index["recordings"]:
                    if e["id"] == victim:
                        e["customer_number"], e["legal_hold"] = "+15550009999", False
                return json.dumps(index).encode()
            return data

        reason = "index entry differs from the signed manifest in customer_number"
    else:

        def change(name: str, data: bytes) -> bytes:
            return b"" if (victim in name and name.endswith(".wav.age")) else data

        reason = "audio was altered"
    bad = rewrite(exported.tar, tmp_path / f"{attack}.tar", change)
    code, out = _import(site_b, bad, "--public-key", str(exported.a.keys / "signing.pub"))
    assert code == 1, out
    assert "imported 2, already present 0, conflicts 0, rejected 1" in out, out
    line = next(x for x in out.splitlines() if "rejected:" in x)
    assert line.strip().startswith(f"rejected: {victim}:") and reason in line, line
    rows = await _rows(site_b.dsn)
    assert victim not in rows and set(rows) == set(exported.ids) - {victim}
    assert victim not in _stored_ids(site_b), "no object for a rejected entry"


async def test_same_id_with_different_content_is_a_conflict_never_already_present(
    exported: Exported, site_b: Site, tmp_path: Path
) -> None:
    pub = str(exported.a.keys / "signing.pub")
    assert _import(site_b, exported.tar, "--public-key", pub)[0] == 0
    victim = exported.ids[0]
    before = (await _rows(site_b.dsn))[victim]
    files_before = {o: (site_b.store / o).read_bytes() for o in objects(load_config(site_b.conf, env={}))}

    # 1. the same id, content changed and validly re-signed by A's key (a different recording under that id)
    key = crypto.load_signing_key(exported.a.keys / "signing.key")

    def resign(m: dict, sig: str) -> tuple[dict, str]:
        m = {**m, "customer_number": "+15550009999"}
        return m, manifest.sign(m, key)

    def change(name: str, data: bytes) -> bytes:
        if name == INDEX:
            index = json.loads(data)
            for e in index["recordings"]:
                if e["id"] == victim:
                    e["customer_number"] = "+15550009999"
            return json.dumps(index).encode()
        return _edit_manifest(victim, resign)(name, data)

    other = rewrite(exported.tar, tmp_path / "collide.tar", change)
    code, out = _import(site_b, other)
    assert code == 1, out
    assert "imported 0, already present 2, conflicts 1, rejected 0" in out, out
    assert f"conflict: {victim}: CONFLICT: this id exists here with different content" in out
    assert "signed manifest differs" in out

    # 2. the reported bug: a tampered archive whose id exists here is not "already present 1, rejected 0"
    def flip(name: str, data: bytes) -> bytes:
        if victim in name and name.endswith(".wav.age"):
            b = bytearray(data)
            b[100] ^= 1
            return bytes(b)
        return data

    code, out = _import(site_b, rewrite(exported.tar, tmp_path / "flip.tar", flip))
    assert code == 1 and f"rejected: {victim}:" in out and "already present 2" in out, out

    after = (await _rows(site_b.dsn))[victim]
    assert after["manifest"] == before["manifest"] and after["ciphertext_sha256"] == before["ciphertext_sha256"]
    assert {o: (site_b.store / o).read_bytes() for o in files_before} == files_before, "nothing was overwritten"


async def test_trust_archive_key_prints_its_fingerprint_and_keeps_verifying(exported: Exported, site_b: Site) -> None:
    pub = crypto.load_public_key(exported.a.keys / "signing.pub")
    code, out = _import(site_b, exported.tar, "--trust-archive-key")
    assert code == 0, out
    from storage.keyring import fingerprint

    assert f"trusting the archive's own signing key {crypto.signing_key_id(pub)} ({fingerprint(pub)})" in out
    res = callrec("verify", exported.ids[2], "--no-decrypt", config=site_b.conf)
    assert res.returncode == 0, res.stdout


async def test_configured_trusted_key_is_pinned_by_id(exported: Exported, fresh_db: str, tmp_path: Path) -> None:
    pub = exported.a.keys / "signing.pub"
    kid = crypto.signing_key_id(crypto.load_public_key(pub))
    kd, recipient = _keys(tmp_path, "c")
    good = f'trusted_signing_keys = [{{ id = "{kid}", file = "{pub}" }}]'
    c = _site(tmp_path, "c", fresh_db, kd, recipient, extra=good)
    code, out = _import(c, exported.tar)  # no flag: the configured key is trusted
    assert code == 0 and "imported 3" in out, out
    for rid in exported.ids:
        assert callrec("verify", rid, "--no-decrypt", config=c.conf).returncode == 0

    wrong = f'trusted_signing_keys = [{{ id = "ed25519:0000000000000000", file = "{pub}" }}]'
    d = _site(tmp_path, "d", fresh_db, kd, recipient, extra=wrong)
    res = callrec("verify", exported.ids[0], "--no-decrypt", config=d.conf)
    assert res.returncode == 1
    assert f"encryption.trusted_signing_keys[0]: {pub} holds key {kid}, not the configured" in res.stderr

    with pytest.raises(ConfigError, match=r"encryption.trusted_signing_keys\[0\].id"):
        load_config(None, env={"CALLREC_ENCRYPTION_TRUSTED_SIGNING_KEYS": f"ed25519:xyz={pub}"})
    cfg = load_config(None, env={"CALLREC_ENCRYPTION_TRUSTED_SIGNING_KEYS": f"{kid}={pub}"})
    assert cfg.encryption.trusted_signing_keys[0].file == str(pub)


async def test_archive_carries_every_signer_key_and_trust_archive_key_trusts_each_by_fingerprint(
    server_dsn: str, exported: Exported, site_b: Site, tmp_path: Path
) -> None:
    """An installation whose accounts sign with their own keys: the archive carries each signer's
    public key, --trust-archive-key prints every fingerprint, and all entries import and verify."""
    kd, recipient = _keys(tmp_path, "m")
    acme_key = tmp_path / "acme-signing.key"
    acme_id = crypto.signing_key_id(crypto.generate_signing_key(acme_key).public_key())
    extra = f'[accounts.acme.encryption]\nrecipients = ["{recipient}"]\nsigning_key_file = "{acme_key}"'
    name = f"callrec_t_{secrets.token_hex(4)}"
    m = _site(tmp_path, "m", await _create_migrated(server_dsn, name), kd, recipient, extra=extra)
    cfg = load_config(m.conf, env={})
    pool = await db.create_pool(m.dsn, min_size=1, max_size=2)
    try:
        r_main, _ = await insert_recording(pool, cfg, seconds=0.5)
        r_acme, _ = await insert_recording(pool, cfg, seconds=0.5)
        await pool.execute("UPDATE recordings SET account_id = 'acme' WHERE id = $1", r_acme)
        await FinalizeWorker(pool, cfg, Metrics(), "m").drain()
        day = (await pool.fetchval("SELECT min(started_at) FROM recordings")).date().isoformat()
    finally:
        await pool.close()
    tar = tmp_path / "m.tar"
    assert callrec("export", "--from", day, "--to", day, "-o", str(tar), config=m.conf).returncode == 0

    main_id = crypto.signing_key_id(crypto.load_public_key(kd / "signing.pub"))
    code, out = _import(site_b, tar)  # nothing trusted yet
    assert code == 1 and "rejected 2" in out, out
    code, out = _import(site_b, tar, "--trust-archive-key")
    assert code == 0 and "imported 2" in out, out
    assert f"trusting the archive's own signing key {main_id}" in out
    assert f"trusting the archive's own signing key {acme_id}" in out
    for rid in (r_main, r_acme):
        assert callrec("verify", rid, "--no-decrypt", config=site_b.conf).returncode == 0
    await _drop(server_dsn, name)
