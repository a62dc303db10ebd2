"""A recording that could not be stored says why in the page (real Chromium): e.g. an account with
no usable age recipient leaves it in the spool as `failed: no_recipient …`, and an administrator
must see that in the list and in the player, not only in /health and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.browser import launch, needs_chromium
from tests.api.conftest import World, insert_recording

pytestmark = needs_chromium

REASON = "no_recipient: account acme has no usable age recipient (recipients_file missing)"


async def test_failed_recording_shows_its_reason(scratch_world: World) -> None:
    from playwright.async_api import async_playwright, expect

    world = scratch_world
    rec_id = await insert_recording(
        world.pool,
        state="failed",
        agents=["2001"],
        ring_groups=[],
        started_at=datetime.now(UTC) - timedelta(minutes=5),
        duration_ms=4000,
    )
    await world.pool.execute("UPDATE recordings SET error = $2 WHERE id = $1::uuid", rec_id, REASON)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(world.base + "/")
            await page.fill("#token", world.tokens["admin_default"])
            await page.click("#login-form button")
            await page.click("#search-form button")
            row = page.locator(f'tr[data-rec-id="{rec_id}"]')
            await expect(row.get_by_test_id("rec-state")).to_have_text("Failed")
            await expect(row.get_by_test_id("rec-error")).to_have_text(REASON)
            await expect(row.get_by_test_id("play-btn")).to_have_count(0)  # nothing stored to play
            await row.click()
            await expect(page.locator("#p-meta")).to_contain_text(f"failed — {REASON}")
        finally:
            await browser.close()
