"""The supervisor page in a real headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download): sign in, see a live call appear over SSE, pause it, then play a recording.
A screenshot is saved under test-artifacts/ for people to look at."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.api.conftest import World, reset_live
from tests.api.live_source import call_view

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)


async def until(page, js: str, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a JS predicate (the page's CSP forbids eval, which wait_for_function relies on)."""
    for _ in range(int(timeout_s / 0.05)):
        if await page.evaluate(js):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {js}")


async def test_supervisor_page_live_call_pause_and_playback(world: World) -> None:
    from playwright.async_api import async_playwright, expect

    reset_live(world.live)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1250})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(world.base + "/")
            await page.fill("#token", world.tokens["sup_sales"])
            await page.click("#login-form button")
            await expect(page.locator("#who-name")).to_have_text("sup_sales")
            await expect(page.locator("#conn")).to_have_text("live")
            await expect(page.locator("#live-body tr")).to_have_count(1)  # only the call that rang sales

            # a new call rings sales: it appears without a reload (SSE)
            world.live.put(call_view("call_browser", agent="2007", ring_group="sales", customer="+15559870000"))
            row = page.locator('tr[data-call-id="call_browser"]')
            await expect(row).to_be_visible()
            await expect(row.get_by_test_id("rec-state")).to_have_text("Recording")
            # a call outside the supervisor's scope never shows up
            world.live.put(call_view("call_hidden", agent="2008", ring_group="support"))

            await row.get_by_test_id("pause-btn").click()
            await expect(row.get_by_test_id("rec-state")).to_have_text("Paused")
            assert world.live.calls["call_browser"]["recording"]["state"] == "paused"
            assert world.live.actions[-1] == ("call_browser", "paused", "user:sup_sales")
            await expect(row.get_by_test_id("resume-btn")).to_be_visible()
            await expect(page.locator('tr[data-call-id="call_hidden"]')).to_have_count(0)

            # play the stored sales recording
            rec_row = page.locator(f'tr[data-rec-id="{world.recordings["sales"]}"]')
            await rec_row.click()
            await expect(page.locator("#player")).to_be_visible()
            await until(page, "() => document.getElementById('audio').readyState >= 1")
            await page.evaluate("() => document.getElementById('audio').play()")
            await until(page, "() => document.getElementById('audio').currentTime > 0.5")
            duration = await page.evaluate("() => document.getElementById('audio').duration")
            assert abs(duration - 3.0) < 0.1
            await page.evaluate("() => document.getElementById('audio').pause()")
            # seeking uses HTTP Range through the cookie session
            await page.evaluate("() => { document.getElementById('audio').currentTime = 2.2; }")
            await until(page, "() => document.getElementById('audio').currentTime >= 2.2")
            await page.wait_for_timeout(200)
            await page.screenshot(path=str(ARTIFACTS / "api-supervisor-page.png"), full_page=True)
            assert not errors, errors
        finally:
            await browser.close()
    listened = await world.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE actor = 'user:sup_sales' AND action = 'recording.listen' AND target = $1",
        f"recording:{world.recordings['sales']}",
    )
    assert listened >= 1
    world.live.end("call_browser")
    world.live.end("call_hidden")
