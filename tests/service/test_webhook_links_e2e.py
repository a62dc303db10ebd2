"""The whole service (simulated FreeSWITCH over TCP, real PostgreSQL, finalize with age, API) with
`[api] public_url`: a recorded call's `recording.stored` event reaches a real aiohttp receiver with a
download link, and that link alone fetches the stored audio the event describes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from lab import scenarios as sc
from tests.service.test_service import make_config
from tests.service.test_webhooks import FAST, Env, Receiver, _env, free_port, wait_for


@pytest.fixture
async def env(fresh_db: str, tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(fresh_db, tmp_path, FAST):
        yield e


async def test_the_service_sends_a_link_that_downloads_the_stored_audio(env: Env) -> None:
    port = free_port()
    make_config(env.tmp, env.dsn, env.fs, env.ast)
    cfg = env.tmp / "callrec.toml"
    text = cfg.read_text().replace(
        "[api]\nport = 0\n", f'[api]\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
    )
    assert f"port = {port}" in text
    cfg.write_text(text + env.webhooks_toml + "download_link_minutes = 5\n")
    await env.start_service()
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        status, hook = await env.api(
            "POST",
            "/api/v1/webhooks",
            json={"account": "main", "url": receiver.url, "events": ["recording.stored"], "download_link": True},
        )
        assert status == 201 and hook["download_link"] is True
        receiver.secret = hook["secret"]
        await env.fs.run(sc.get("pause_resume"))

        async def stored_event() -> bool:
            return bool(receiver.events)

        await wait_for(stored_event)
        (event,) = receiver.events.values()
        data = event["data"]
        assert data["download_url"].startswith(f"http://127.0.0.1:{port}/share/crs_")
        async with aiohttp.ClientSession() as anon:
            got = await anon.get(data["download_url"])
            assert got.status == 200
            wav = await got.read()
        assert wav[:4] == b"RIFF" and hashlib.sha256(wav).hexdigest() == data["manifest"]["audio_sha256"]
        (link,) = await env.pool.fetch("SELECT created_by, expires_at - created_at AS life FROM recording_shares")
        assert link["created_by"] == f"webhook #{hook['id']}" and link["life"].total_seconds() == 300
    finally:
        await receiver.stop()
