"""`verify` says exactly what does not match: tampered audio, tampered manifest, wrong key."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from controller.metrics import Metrics
from storage import crypto, manifest
from storage.finalize import FinalizeWorker
from tests.storage.conftest import Keys, insert_recording, make_config, objects


async def _stored(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> tuple[object, str, Path, Path]:
    cfg = make_config(tmp_path, keys)
    rid, _ = await insert_recording(dbpool, cfg, seconds=2.0)
    await FinalizeWorker(dbpool, cfg, Metrics(), "n").drain()
    root = Path(cfg.storage.path)
    audio = root / next(o for o in objects(cfg) if o.endswith(".wav.age"))
    return cfg, rid, audio, audio.with_name(audio.name.replace(".wav.age", ".manifest.json"))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _kinds(result: manifest.VerifyResult) -> set[str]:
    return {p["kind"] for p in result.problems}


async def test_untouched_recording_verifies_with_decryption(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg, rid, _, _ = await _stored(dbpool, keys, tmp_path)
    result = await manifest.verify_recording(dbpool, cfg, rid)
    assert result.ok, result.summary()
    assert result.decrypted
    assert {c["check"] for c in result.checks} >= {"manifest signature", "ciphertext sha256", "audio sha256"}


async def test_flipped_byte_in_stored_audio_is_reported_as_tampered_audio(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg, rid, audio, _ = await _stored(dbpool, keys, tmp_path)
    _flip(audio, audio.stat().st_size // 2)
    result = await manifest.verify_recording(dbpool, cfg, rid)
    assert not result.ok
    assert _kinds(result) == {manifest.TAMPERED_AUDIO}
    assert "manifest signature" in [c["check"] for c in result.checks if c["ok"]]
    assert "stored object" in result.summary()


@pytest.mark.parametrize("where", ["value", "structure"])
async def test_flipped_byte_in_manifest_is_reported_as_tampered_manifest(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path, where: str
) -> None:
    cfg, rid, _, man = await _stored(dbpool, keys, tmp_path)
    text = man.read_bytes()
    # "value": change one digit of the duration (still valid JSON); "structure": break the JSON itself.
    off = text.index(b'"duration_ms": ') + len(b'"duration_ms": ') if where == "value" else text.index(b"{")
    _flip(man, off)
    result = await manifest.verify_recording(dbpool, cfg, rid)
    assert not result.ok
    assert manifest.TAMPERED_MANIFEST in _kinds(result)
    assert manifest.TAMPERED_AUDIO not in _kinds(result)


async def test_wrong_identity_is_reported_as_wrong_key(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg, rid, _, _ = await _stored(dbpool, keys, tmp_path)
    other = crypto.load_identities(keys.other_identity_file)
    result = await manifest.verify_recording(dbpool, cfg, rid, identities=other)
    assert _kinds(result) == {manifest.WRONG_KEY}
    assert crypto.identity_key_ids(other)[0] in result.summary()


async def test_manifest_signed_by_another_key_is_reported_as_wrong_signing_key(
    dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path
) -> None:
    cfg, rid, _, _ = await _stored(dbpool, keys, tmp_path)
    stranger = crypto.generate_signing_key(tmp_path / "stranger.key")
    result = await manifest.verify_recording(dbpool, cfg, rid, trusted=stranger.public_key())
    assert _kinds(result) == {manifest.WRONG_SIGNING_KEY}


async def test_database_row_edited_after_storing_is_reported(dbpool: asyncpg.Pool, keys: Keys, tmp_path: Path) -> None:
    cfg, rid, _, _ = await _stored(dbpool, keys, tmp_path)
    await dbpool.execute("UPDATE recordings SET audio_sha256 = repeat('0', 64) WHERE id = $1", rid)
    result = await manifest.verify_recording(dbpool, cfg, rid, decrypt=False)
    assert _kinds(result) == {manifest.ROW_MISMATCH}
