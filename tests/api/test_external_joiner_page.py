"""The `external_joiner` setting on the admin page, in a real headless Chromium over real HTTP and a
real database: a choice (stop / mute) with its explanation, stop by default, saved for the account
and offered on a number's row as inherit/stop/mute."""

from __future__ import annotations

from tests.api.browser import needs_chromium, open_account_settings, signed_in_page
from tests.api.conftest import World

pytestmark = needs_chromium

NUMBER = "+15557000177"


async def test_admin_chooses_mute_for_external_conference_joiners(world: World) -> None:
    from playwright.async_api import expect

    await world.request("PUT", "/api/v1/accounts/joinpage/settings", "admin", json={})
    try:
        async with signed_in_page(world.base, world.tokens["admin"], "admin") as (page, errors):
            await open_account_settings(page, "joinpage")
            await expect(page.locator("#set-external_joiner option:checked")).to_have_text("stop the recording")
            help_text = await page.locator('[data-field="external_joiner"] .help').inner_text()
            assert "EXTERNAL" in help_text and "once it has left" in help_text and "conference" in help_text

            await page.select_option("#set-external_joiner", "mute")
            await page.click("#settings-save")
            await expect(page.locator("#settings-status")).to_contain_text("Saved")
            saved = await (await world.request("GET", "/api/v1/accounts/joinpage/settings", "admin")).json()
            assert (saved["settings"]["external_joiner"], saved["sources"]["external_joiner"]) == ("mute", "account")

            # a number of the account may override it
            await page.click('#tabs [data-screen="numbers"]')
            await page.fill("#num-account", "joinpage")
            await page.press("#num-account", "Tab")
            await page.fill('#num-add input[name="number"]', NUMBER)
            await page.click("#num-add button")
            row = page.locator(f'tr[data-number="{NUMBER}"]')
            await expect(row).to_have_count(1)
            select = row.locator('select[name="external_joiner"]')
            await expect(select).to_have_class("inherit")
            await expect(select.locator("option:checked")).to_have_text("inherit (mute)")
            await select.select_option("stop")
            await row.get_by_role("button", name="Save").click()
            await expect(page.locator(f'tr[data-number="{NUMBER}"].saved')).to_have_count(1)
            num = await (await world.request("GET", f"/api/v1/numbers/{NUMBER}/override", "admin")).json()
            assert num["override"] == {"external_joiner": "stop"}
            assert num["sources"]["external_joiner"] == f"number:{NUMBER}"
            assert not errors, errors
    finally:
        await world.request("DELETE", f"/api/v1/numbers/{NUMBER}/override", "admin")
