"""The live-calls screen in a real headless Chromium: updates arrive over SSE (no polling, no reload),
a supervisor scoped to one ring group never receives another call's event, and where EventSource is
unavailable the page falls back to polling with If-None-Match (an unchanged list costs a 304)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.api.browser import launch, needs_chromium, sign_in
from tests.api.conftest import World, reset_live
from tests.api.live_source import call_view

pytestmark = needs_chromium

# Records every SSE message the page receives (init scripts run before the page's own, CSP or not).
RECORD_SSE = """
window.__sse = [];
const Original = window.EventSource;
window.EventSource = class extends Original {
  constructor(...args) {
    super(...args);
    for (const type of ["snapshot", "call.updated", "call.ended", "revoked"]) {
      this.addEventListener(type, (e) => window.__sse.push([type, e.data]));
    }
  }
};
"""
NO_EVENTSOURCE = "delete window.EventSource;"


def _rows(page: Any) -> Any:
    return page.locator("#live-body tr")


async def test_page_updates_live_over_sse_and_a_ring_group_supervisor_gets_only_their_calls(world: World) -> None:
    from playwright.async_api import async_playwright, expect

    reset_live(world.live)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page()
            await page.add_init_script(RECORD_SSE)
            polls: list[str] = []
            page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/api/v1/calls") else None)
            await sign_in(page, world.base, world.tokens["sup_sales"], "sup_sales")
            await expect(page.locator("#conn")).to_have_text("live")
            await expect(_rows(page)).to_have_count(1)  # call_sales only
            await expect(page.locator('tr[data-call-id="call_sales"]')).to_have_count(1)

            world.live.put(call_view("sse_other", agent="2009", ring_group="support"))
            world.live.put(call_view("sse_mine", agent="2010", ring_group="sales"))
            row = page.locator('tr[data-call-id="sse_mine"]')
            await expect(row).to_have_count(1)  # appeared without a reload
            world.live.put(call_view("sse_other", agent="2009", ring_group="support", state="paused"))
            world.live.put(call_view("sse_mine", agent="2010", ring_group="sales", state="paused"))
            await expect(row.get_by_test_id("rec-state")).to_have_text("Paused")
            world.live.end("sse_other")
            world.live.end("sse_mine")
            await expect(row).to_have_count(0)
            await expect(_rows(page)).to_have_count(1)

            received = await page.evaluate("() => window.__sse")
            ids: set[str] = set()
            for kind, data in received:
                body = json.loads(data)
                ids |= {c["id"] for c in body["calls"]} if kind == "snapshot" else {body["call"]["id"]}
            assert ids == {"call_sales", "sse_mine"}, received  # nothing about support or direct calls
            assert [k for k, _ in received].count("call.updated") == 2
            assert polls == []  # the list came over SSE, not by polling
        finally:
            await browser.close()
            for cid in ("sse_other", "sse_mine"):
                if cid in world.live.calls:
                    world.live.end(cid)


async def test_without_eventsource_the_page_polls_with_etags(world: World) -> None:
    from playwright.async_api import async_playwright, expect

    reset_live(world.live)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page()
            await page.add_init_script(NO_EVENTSOURCE)
            statuses: list[int] = []
            page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/api/v1/calls") else None)
            await sign_in(page, world.base, world.tokens["sup_sales"], "sup_sales")
            await expect(page.locator("#conn")).to_have_text("polling")
            await expect(_rows(page)).to_have_count(1)
            world.live.put(call_view("poll_mine", agent="2010", ring_group="sales"))
            await expect(page.locator('tr[data-call-id="poll_mine"]')).to_have_count(1)
            world.live.end("poll_mine")
            await expect(page.locator('tr[data-call-id="poll_mine"]')).to_have_count(0)
            for _ in range(200):  # the next poll of the unchanged list (a hang guard, not a timing assertion)
                if 304 in statuses:
                    break
                await asyncio.sleep(0.05)
            assert 304 in statuses, statuses
            assert set(statuses) <= {200, 304}
        finally:
            await browser.close()
            if "poll_mine" in world.live.calls:
                world.live.end("poll_mine")
