"""The administrator's half of the page, the share link and the narrow layout, in a real headless
Chromium over real HTTP, a real database and (for the policy change) the real recording chain:
ESL simulator → FreeSWITCH driver → recorder following the database's policy.

With CALLREC_SCREENSHOTS=1 these tests also write the screenshots under docs/screens/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.browser import (
    launch,
    needs_chromium,
    no_horizontal_overflow,
    open_account_settings,
    shot,
    sign_in,
    until,
)
from tests.api.conftest import World

pytest.importorskip("lab.esl_sim")
from tests.api.real_stack import real_stack

pytestmark = needs_chromium

DID = "+15557000100"  # the number the simulator's inbound calls dial (lab.scenarios.DID)


async def _last_recording(world: World, pbx: str) -> Any:
    return await world.pool.fetchrow(
        "SELECT id, state, stop_reason, policy, timeline FROM recordings WHERE pbx = $1"
        " ORDER BY started_at DESC LIMIT 1",
        pbx,
    )


async def test_admin_turns_off_continue_on_external_transfer_for_a_number(world: World, tmp_path: Path) -> None:
    """A call transferred to an external number keeps recording; the admin switches the rule off
    for the number the customer dialled, in the page; the NEXT call's external transfer stops the
    recording (no restart), its player names the rule, and the audit screen shows the change."""
    from playwright.async_api import async_playwright, expect

    await world.pool.execute("DELETE FROM numbers WHERE number = $1", DID)
    await world.pool.execute("DELETE FROM numbering_patterns WHERE account_id = 'main'")
    settings = {"continue_on_external_transfer": True, "record_inbound": True, "agent_pause_allowed": False}
    async with real_stack(world, tmp_path, settings, policy_from_db=True) as stack, async_playwright() as pw:
        assert stack.policy is not None
        await stack.play("blind_transfer_external_continue", lambda *_: _noop())
        await stack.wait(lambda: _stopped(world, stack.pbx), within_s=15)
        before = await _last_recording(world, stack.pbx)
        assert before["stop_reason"] == "hangup"  # followed the customer to the external party

        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await sign_in(page, stack.base, world.tokens["admin"], "admin")

            # Recording settings: the settings with their explanations
            await page.click('#tabs [data-screen="settings"]')
            await expect(page.locator("#set-continue_on_external_transfer")).to_be_checked()
            help_text = await page.locator('[data-field="continue_on_external_transfer"] .help').inner_text()
            assert "blind or warm" in help_text and "ring groups" in help_text and "private extensions" in help_text
            await expect(page.locator("#set-record_consultation")).not_to_be_checked()  # off by default
            consult_help = await page.locator('[data-field="record_consultation"] .help').inner_text()
            assert "timeline" in consult_help and "consulted party left" in consult_help
            # the administrator's limit for share links lives on the same screen
            limits = await (await world.request("GET", "/api/v1/sharing", "admin")).json()
            await expect(page.locator("#sharing-max")).to_have_value(str(limits["max_hours"]))
            await page.fill("#sharing-max", "48")
            await page.click("#sharing-form button")
            await expect(page.locator("#sharing-status")).to_contain_text("Saved")
            assert (await (await world.request("GET", "/api/v1/sharing", "admin")).json())["max_hours"] == 48
            await shot(page, "admin-recording-settings")

            # Numbers: add the DID, override one field; the others show the inherited value
            await page.click('#tabs [data-screen="numbers"]')
            await page.fill('#num-add input[name="number"]', "+1 (555) 700-0100")
            await page.click("#num-add button")
            row = page.locator(f'tr[data-number="{DID}"]')
            await expect(row).to_have_count(1)
            select = row.locator('select[name="continue_on_external_transfer"]')
            await expect(select).to_have_class("inherit")
            await expect(select.locator("option:checked")).to_have_text("inherit (on)")
            await select.select_option("false")
            await row.get_by_role("button", name="Save").click()
            await expect(page.locator(f'tr[data-number="{DID}"].saved')).to_have_count(1)
            saved = page.locator(f'tr[data-number="{DID}"]')
            await expect(saved.locator('select[name="continue_on_external_transfer"] option:checked')).to_have_text(
                "off"
            )
            await expect(saved.locator('select[name="record_inbound"]')).to_have_class("inherit")

            # the why box explains the next call with the transfer
            await page.fill('#why-form input[name="number"]', DID)
            await page.fill('#why-form input[name="transfer_to"]', "+15557654321")
            await page.click("#why-form button")
            why = page.get_by_test_id("why-transfer")
            await expect(why).to_contain_text("recording stops")
            await expect(why).to_contain_text(f"number:{DID}")
            await shot(page, "admin-numbers")

            # the running recorder sees it for its next decision (no restart)
            await stack.wait(lambda: DID in stack.policy.current.numbers, within_s=10)
            await stack.play("blind_transfer_external_stop", lambda *_: _noop())
            await stack.wait(lambda: _stopped(world, stack.pbx, newer_than=before["id"]), within_s=15)
            after = await _last_recording(world, stack.pbx)
            assert after["id"] != before["id"]
            assert after["stop_reason"] == "external_transfer"
            assert after["policy"]["sources"]["continue_on_external_transfer"] == f"number:{DID}"
            assert [t["stopped_recording"] for t in after["timeline"]["transfers"]] == [True]

            # the call's player names the rule that decided it and the transfer's target and class
            await page.click('#tabs [data-screen="calls"]')
            await page.click("#search-form button")
            await page.locator(f'tr[data-rec-id="{after["id"]}"]').click()
            await expect(page.locator("#p-rule")).to_contain_text(
                f"number override {DID}: continue on external transfer = off"
            )
            await expect(page.locator("#p-events li.xfer")).to_contain_text("+15557654321 (external)")
            await page.click("#p-close")

            # Audit: the change, who made it, old and new
            await page.click('#tabs [data-screen="audit"]')
            await page.select_option('#audit-form select[name="action"]', "number_override.*")
            await page.fill('#audit-form input[name="target"]', f"number:{DID}")
            await page.click("#audit-form button")
            entry = page.locator("#audit-body tr").first
            await expect(entry).to_contain_text("user:admin")
            await expect(entry).to_contain_text("number_override.update")
            await expect(entry.locator("td.change")).to_contain_text(
                'Continue recording on external transfer: "inherit" → false'
            )
            await shot(page, "admin-audit")
            assert not errors, errors
        finally:
            await browser.close()
            # the API tests share this database: leave no recordings they do not expect
            await world.pool.execute("DELETE FROM recordings WHERE pbx = $1", stack.pbx)
            await world.pool.execute("DELETE FROM calls WHERE pbx = $1", stack.pbx)


async def _noop() -> None:
    return None


async def _stopped(world: World, pbx: str, newer_than: Any = None) -> bool:
    row = await _last_recording(world, pbx)
    return row is not None and row["id"] != newer_than and row["state"] in ("stopped", "stored")


async def test_numbering_plan_and_classify_in_the_page(world: World) -> None:
    from playwright.async_api import async_playwright, expect

    await world.request("PUT", "/api/v1/accounts/plan-ui/settings", "admin", json={})
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(page, world.base, world.tokens["admin"], "admin")
            await page.click('#tabs [data-screen="numbering"]')
            await page.fill("#plan-account", "plan-ui")
            await page.press("#plan-account", "Tab")  # change → the account's plan loads
            await expect(page.locator("#plan-status")).to_contain_text("default plan")
            await page.fill('#plan-form textarea[name="internal"]', "^2\\d{3}$")
            await page.fill('#plan-form textarea[name="ring_groups"]', "^6\\d{2}$\n(")
            await page.click('button[form="plan-form"]')
            await expect(page.locator("#plan-error")).to_contain_text("ring_groups[1]")
            await page.fill('#plan-form textarea[name="ring_groups"]', "^6\\d{2}$")
            await page.fill('#plan-form textarea[name="private_extensions"]', "^8\\d{4}$")
            await page.click('button[form="plan-form"]')
            await expect(page.locator("#plan-status")).to_contain_text("Saved")
            for number, cls in (("600", "ring group"), ("81234", "private extension"), ("+15557654321", "external")):
                await page.fill('#classify-form input[name="number"]', number)
                await page.click("#classify-form button")
                await expect(page.get_by_test_id("class")).to_have_text(cls)
            await shot(page, "admin-numbering-plan")
        finally:
            await browser.close()
    plan = await (await world.request("GET", "/api/v1/accounts/plan-ui/numbering", "admin")).json()
    assert plan["plan"]["ring_groups"] == ["^6\\d{2}$"]


async def test_second_admin_saving_stale_settings_sees_the_current_values(world: World) -> None:
    """Two admins open Recording settings; the first saves; the second's save is refused (409) and
    their form shows the first admin's values, nothing overwritten."""
    from playwright.async_api import async_playwright, expect

    await world.request("PUT", "/api/v1/accounts/two/settings", "admin", json={"retention_days": 183})
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            pages = []
            for user in ("admin", "admin_nodl"):
                ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await ctx.new_page()
                await sign_in(page, world.base, world.tokens[user], user)
                await open_account_settings(page, "two")
                await expect(page.locator("#set-retention_days")).to_have_value("183")
                pages.append(page)
            first, second = pages
            await first.fill("#set-retention_days", "90")
            await first.click("#settings-save")
            await expect(first.locator("#settings-status")).to_contain_text("Saved")
            await second.fill("#set-retention_days", "30")
            await second.click("#settings-save")
            await expect(second.locator("#settings-error")).to_contain_text("Someone else saved")
            await expect(second.locator("#set-retention_days")).to_have_value("90")
        finally:
            await browser.close()
    now = await (await world.request("GET", "/api/v1/accounts/two/settings", "admin")).json()
    assert now["settings"]["retention_days"] == 90


async def test_share_link_plays_for_an_anonymous_browser_and_is_gone_after_revocation(world: World) -> None:
    from playwright.async_api import async_playwright, expect

    rec_id = world.recordings["sales"]
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(page, world.base, world.tokens["sup_sales"], "sup_sales")
            await page.click("#search-form button")
            row = page.locator(f'tr[data-rec-id="{rec_id}"]')
            await expect(row.get_by_test_id("download-link")).to_have_count(0)  # sup_sales may not download
            await row.get_by_test_id("play-btn").click()
            await expect(page.locator("#player")).to_be_visible()
            await expect(page.locator("#p-download")).to_be_hidden()
            await page.click("#p-share")
            await expect(page.locator("#share-dl-label")).to_be_hidden()  # cannot share more than they may do
            await page.click("#share-form button")
            await expect(page.locator("#share-url")).to_contain_text("/share/crs_")
            url = await page.locator("#share-url").inner_text()
            assert url.startswith(world.base + "/share/crs_")
            await shot(page, "supervisor-share", full_page=False)

            anon = await browser.new_context(viewport={"width": 420, "height": 800})  # no token, no cookie
            visitor = await anon.new_page()
            errors: list[str] = []
            visitor.on("pageerror", lambda e: errors.append(str(e)))
            resp = await visitor.goto(url)
            assert resp is not None and resp.status == 200
            await expect(visitor.locator("#s-meta")).to_contain_text("sup_sales")
            await expect(visitor.locator("#s-download")).to_be_hidden()  # listen-only link
            await until(visitor, "() => document.getElementById('s-audio').readyState >= 1")
            await visitor.evaluate("() => document.getElementById('s-audio').play()")
            await until(visitor, "() => document.getElementById('s-audio').currentTime > 0.5")
            await no_horizontal_overflow(visitor)
            await shot(visitor, "share-player")
            assert await anon.cookies() == []
            assert not errors, errors

            share_id = await world.pool.fetchval(
                "SELECT id FROM recording_shares WHERE recording_id = $1::uuid AND created_by = 'sup_sales'"
                " ORDER BY id DESC LIMIT 1",
                rec_id,
            )
            uses = await world.pool.fetch(
                "SELECT action, remote, detail FROM audit_log WHERE actor = $1 ORDER BY id", f"share:{share_id}"
            )
            assert uses[0]["action"] == "share.open" and "share.listen" in {u["action"] for u in uses}
            assert all(u["remote"] == "127.0.0.1" and u["detail"]["created_by"] == "sup_sales" for u in uses)

            await (
                page.locator(f'#share-list li[data-share-id="{share_id}"]').get_by_role("button", name="Revoke").click()
            )
            await expect(page.locator(f'#share-list li[data-share-id="{share_id}"] .badge')).to_have_text("revoked")
            resp = await visitor.goto(url)
            assert resp is not None and resp.status == 410
            await expect(visitor.locator("#share-gone")).to_contain_text("revoked")
        finally:
            await browser.close()


@pytest.mark.parametrize("user", ["sup_sales", "sup_sales_dl", "sup_dl_only"])
async def test_play_and_download_buttons_follow_permissions(world: World, user: str) -> None:
    from playwright.async_api import async_playwright, expect

    expected = {  # label -> (play, download), from the users' scopes in conftest.USERS
        "sup_sales": {"sales": (True, False)},
        "sup_sales_dl": {"sales": (True, True)},
        "sup_dl_only": {"support": (False, True)},
    }[user]
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(page, world.base, world.tokens[user], user)
            await page.click("#search-form button")
            for label, (play, download) in expected.items():
                row = page.locator(f'tr[data-rec-id="{world.recordings[label]}"]')
                await expect(row).to_have_count(1)
                await expect(row.get_by_test_id("play-btn")).to_have_count(1 if play else 0)
                await expect(row.get_by_test_id("download-link")).to_have_count(1 if download else 0)
        finally:
            await browser.close()


async def test_every_screen_fits_420_px(world: World) -> None:
    """No horizontal scrolling of the page at 420 px: tables scroll inside their card, forms wrap."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 420, "height": 860})
            await sign_in(page, world.base, world.tokens["admin"], "admin")
            await page.click("#search-form button")
            await expect(page.locator("#rec-body tr").first).to_be_visible()
            await no_horizontal_overflow(page)
            await shot(page, "narrow-420-calls")
            await page.locator(f'tr[data-rec-id="{world.recordings["sales"]}"]').click()
            await expect(page.locator("#player")).to_be_visible()
            await no_horizontal_overflow(page)
            await shot(page, "narrow-420-player", full_page=False)
            await page.click("#p-close")
            for screen in ("settings", "numbers", "numbering", "audit"):
                await page.click(f'#tabs [data-screen="{screen}"]')
                await expect(page.locator(f'.screen[data-screen="{screen}"]')).to_be_visible()
                await page.wait_for_timeout(300)  # the screen's data has loaded
                await no_horizontal_overflow(page)
            await shot(page, "narrow-420-audit")
        finally:
            await browser.close()


async def test_ring_group_supervisor_gets_download_when_an_admin_grants_it_to_the_role(world: World) -> None:
    """In the page, an admin makes a role whose users listen to their own ring groups' calls (no
    download) and a user in ring group sales with it. That supervisor hears only the sales call and
    has no download button — until the admin grants download to the role; then the same session
    shows it after a refresh of the list (no new token)."""
    from playwright.async_api import async_playwright, expect

    await world.request("POST", "/api/v1/ring-groups", "admin", json={"id": "sales", "name": "Sales"})
    sales, support = world.recordings["sales"], world.recordings["support"]
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            admin = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
            await sign_in(admin, world.base, world.tokens["admin"], "admin")
            await admin.click('#tabs [data-screen="access"]')
            await admin.fill('#role-add input[name="name"]', "rg-lead")
            await admin.click("#role-add button")
            role = admin.locator('tr[data-role="rg-lead"]')
            await expect(role).to_have_count(1)
            await role.locator('input[name="view"]').fill("ring_group")
            await role.locator('input[name="listen"]').fill("ring_group")
            await role.locator('input[name="download"]').fill("none")
            await role.get_by_role("button", name="Save").click()
            await expect(admin.locator('tr[data-role="rg-lead"].saved')).to_have_count(1)

            await admin.fill('#user-add input[name="name"]', "rita")
            await admin.select_option('#user-add select[name="role"]', "rg-lead")
            await admin.fill('#user-add input[name="ring_groups"]', "sales")
            await admin.click("#user-add button")
            await expect(admin.locator("#token-user")).to_have_text("rita")
            token = await admin.locator("#token-value").inner_text()
            assert token.startswith("crk_")
            await expect(admin.locator('tr[data-user="rita"]')).to_have_count(1)
            await admin.evaluate("() => { document.getElementById('token-value').textContent = 'crk_…'; }")
            await shot(admin, "admin-users-roles")

            sup = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
            await sign_in(sup, world.base, token, "rita")
            await sup.click("#search-form button")
            row = sup.locator(f'tr[data-rec-id="{sales}"]')
            await expect(row.get_by_test_id("play-btn")).to_have_count(1)
            await expect(row.get_by_test_id("download-link")).to_have_count(0)
            await expect(sup.locator(f'tr[data-rec-id="{support}"]')).to_have_count(0)  # not their ring group

            role = admin.locator('tr[data-role="rg-lead"]')
            await role.locator('input[name="download"]').fill("ring_group")
            await role.get_by_role("button", name="Save").click()
            await expect(admin.locator('tr[data-role="rg-lead"].saved')).to_have_count(1)

            await sup.click("#search-form button")
            await expect(sup.locator(f'tr[data-rec-id="{sales}"]').get_by_test_id("download-link")).to_have_count(1)
            await expect(sup.locator(f'tr[data-rec-id="{support}"]')).to_have_count(0)
        finally:
            await browser.close()
    audit = await world.pool.fetch("SELECT action FROM audit_log WHERE target = 'role:rg-lead' ORDER BY id")
    assert [a["action"] for a in audit] == ["role.create", "role.update", "role.update"]
