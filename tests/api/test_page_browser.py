"""The supervisor page in a real headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download), over the real chain: a simulated FreeSWITCH call appears live (SSE), the
supervisor pauses and resumes it from the page, then finds the finalized recording and plays it.
The screenshot is saved under test-artifacts/ for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab import scenarios as sc
from tests.api.conftest import World

pytest.importorskip("controller.recorder")  # the recorder and ESL simulator land with issue A's commit
pytest.importorskip("lab.esl_sim")
from tests.api.browser import launch, needs_chromium, shot, until
from tests.api.real_stack import real_stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = needs_chromium


async def test_supervisor_page_live_call_pause_and_playback(world: World, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    settings = {"agent_pause_allowed": False}
    async with real_stack(world, tmp_path, settings, time_scale=1.0) as stack, async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(stack.base + "/")
            await page.fill("#token", world.tokens["sup_mixed"])
            await page.click("#login-form button")
            await expect(page.locator("#who-name")).to_have_text("sup_mixed")
            await expect(page.locator("#conn")).to_have_text("live")
            await expect(page.locator("#live-body tr")).to_have_count(0)
            seen: dict[str, str] = {}

            async def on_step(step: Any, _handle: Any) -> None:
                row = page.locator("#live-body tr")
                if isinstance(step, sc.Pause):  # the call is live: it has appeared without a reload
                    await expect(row).to_have_count(1)
                    await expect(row.get_by_test_id("rec-state")).to_have_text("Recording")
                    seen["call"] = await row.get_attribute("data-call-id") or ""
                    await row.get_by_test_id("pause-btn").click()
                    await expect(row.get_by_test_id("rec-state")).to_have_text("Paused")
                    view = stack.recorder.live_call(seen["call"])
                    assert view is not None and view["recording"]["state"] == "paused"
                    seen["rec"] = view["recording"]["id"]
                elif isinstance(step, sc.Resume):
                    await row.get_by_test_id("resume-btn").click()
                    await expect(row.get_by_test_id("rec-state")).to_have_text("Recording")

            await stack.play("pause_resume", on_step)
            await expect(page.locator("#live-body tr")).to_have_count(0)  # call.ended removed it

            async def stored() -> bool:
                await stack.finalize.drain()
                await world.pool.execute(
                    "UPDATE finalize_jobs SET next_attempt_at = now() WHERE recording_id = $1::uuid", seen["rec"]
                )
                state = await world.pool.fetchval("SELECT state FROM recordings WHERE id = $1::uuid", seen["rec"])
                return state == "stored"

            await stack.wait(stored, within_s=30)
            await page.click("#search-form button")
            rec_row = page.locator(f'tr[data-rec-id="{seen["rec"]}"]')
            await rec_row.click()
            await expect(page.locator("#p-verify")).to_have_text("Signature valid")
            # the player opens over the list, in view (not below it): a modal dialog
            assert await page.evaluate("() => document.getElementById('player').open")
            box = await page.locator("#player").bounding_box()
            assert box is not None and 0 <= box["y"] < 400, box
            await until(page, "() => document.getElementById('audio').readyState >= 1")
            await page.evaluate("() => document.getElementById('audio').play()")
            await until(page, "() => document.getElementById('audio').currentTime > 0.5")
            duration = await page.evaluate("() => document.getElementById('audio').duration")
            assert duration > 3.0
            await page.evaluate("() => document.getElementById('audio').pause()")
            # seeking re-requests with HTTP Range through the cookie session
            await page.evaluate("() => { document.getElementById('audio').currentTime = 4.5; }")
            await until(page, "() => document.getElementById('audio').currentTime >= 4.5")
            await page.wait_for_timeout(200)
            await page.screenshot(path=str(ARTIFACTS / "api-supervisor-page.png"), full_page=True)
            await shot(page, "supervisor-player", full_page=False)
            assert not errors, errors
        finally:
            await browser.close()
    actions = await world.pool.fetch(
        "SELECT action FROM audit_log WHERE actor = 'user:sup_mixed' AND target IN ($1, $2)",
        f"call:{seen['call']}",
        f"recording:{seen['rec']}",
    )
    assert {"call.pause", "call.resume", "recording.listen"} <= {a["action"] for a in actions}
