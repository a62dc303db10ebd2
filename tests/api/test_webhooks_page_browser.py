"""The Webhooks screen in headless Chromium: an administrator adds an endpoint (the secret is shown
once), events that a failing receiver never accepted appear as dead letters, and Redeliver sends them
to the receiver once it works — real page, real HTTP, real database, real delivery worker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from controller.config import WebhooksConfig
from controller.metrics import Metrics
from lab.journal_sample import inbound_start
from storage import journal
from storage.webhook_delivery import WebhookWorker
from tests.api.browser import needs_chromium, no_horizontal_overflow, shot, signed_in_page
from tests.api.conftest import World
from tests.service.test_webhooks import Receiver, free_port

pytestmark = needs_chromium


async def test_admin_adds_a_webhook_and_redelivers_a_dead_letter(world: World, tmp_path: Path) -> None:
    from playwright.async_api import expect

    receiver = Receiver(free_port(), status=503)
    await receiver.start()
    worker = WebhookWorker(
        world.pool,
        WebhooksConfig(retry_period_hours=0.0003, backoff_base_seconds=0.1, backoff_max_seconds=0.2),
        Metrics(),
        "page-test",
    )
    try:
        async with signed_in_page(world.base, world.tokens["admin"], "admin") as (page, errors):
            await page.click('#tabs [data-screen="webhooks"]')
            await page.fill('#hook-add input[name="url"]', receiver.url)
            await page.uncheck('#hook-add input[name="recording.stored"]')
            await page.click("#hook-add button[type=submit]")
            await expect(page.locator("#hook-secret-once")).to_be_visible()
            receiver.secret = await page.locator("#hook-secret").inner_text()
            assert receiver.secret.startswith("whsec_")
            row = page.locator("#hook-body tr", has_text=receiver.url)
            await expect(row).to_have_count(1)
            hook = (await (await world.request("GET", "/api/v1/webhooks", "admin")).json())["webhooks"]
            mine = next(h for h in hook if h["url"] == receiver.url)
            assert "recording.stored" not in mine["events"] and "recording.started" in mine["events"]
            assert mine["download_link"] is False  # download links are opt-in
            await row.get_by_role("button", name="Send links").click()
            await expect(row.locator('[data-col="links"]')).to_have_text("yes")
            mine = await (await world.request("GET", f"/api/v1/webhooks/{mine['id']}", "admin")).json()
            assert mine["download_link"] is True

            # a recording starts; the receiver answers 503 until the event is dead
            now = time.time()
            rid = str(uuid.uuid4())
            call, rec = inbound_start("fs-page", "leg-" + rid[:8], rid, now)
            await journal.open_recording(world.pool, call, rec)
            deadline = time.monotonic() + 20
            while (
                await world.pool.fetchval(
                    "SELECT state FROM webhook_outbox WHERE endpoint_id = $1 AND recording_id = $2", mine["id"], rid
                )
                != "dead"
            ):
                assert time.monotonic() < deadline, "never went dead"
                await worker.run_once()
                await page.wait_for_timeout(150)

            await row.get_by_role("button", name="Dead letters").click()
            dead = page.locator("#dead-body tr", has_text=rid)
            await expect(dead).to_have_count(1)
            await expect(dead).to_contain_text("recording.started")
            await expect(dead).to_contain_text("HTTP 503")
            await shot(page, "admin-webhooks")

            receiver.status = 200
            await dead.get_by_role("button", name="Redeliver").click()
            await expect(page.locator("#dead-body tr", has_text=rid)).to_have_count(0)
            await worker.drain()
            started = [e for e in receiver.events.values() if e["data"]["recording_id"] == rid]
            assert [e["type"] for e in started] == ["recording.started"]
            assert all(p["verified"] for p in receiver.posts)
            await page.set_viewport_size({"width": 420, "height": 900})  # usable on a phone
            await no_horizontal_overflow(page)
            assert not errors, errors
    finally:
        await worker.close()
        await receiver.stop()
