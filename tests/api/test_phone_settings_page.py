"""The phone-feature settings on the admin page, in a real headless Chromium over real HTTP and a
real database: the consent announcement is a choice with its explanation, a prompt announcement
without its file is refused with the error under the file's field, and once the file is given the
account has it; a number row offers the announcement as inherit/none/beep/prompt/periodic."""

from __future__ import annotations

from tests.api.browser import needs_chromium, no_horizontal_overflow, open_account_settings, signed_in_page
from tests.api.conftest import World

pytestmark = needs_chromium


async def test_admin_sets_the_consent_announcement_and_secure_pause(world: World) -> None:
    from playwright.async_api import expect

    await world.request("PUT", "/api/v1/accounts/phonepage/settings", "admin", json={})
    async with signed_in_page(world.base, world.tokens["admin"], "admin") as (page, errors):
        await open_account_settings(page, "phonepage")
        await expect(page.locator("#set-announcement option:checked")).to_have_text("none")
        help_text = await page.locator('[data-field="announcement"] .help').inner_text()
        assert "two-party-consent" in help_text and "CUSTOMER" in help_text
        secure = await page.locator('[data-field="pause_max_seconds"] .help').inner_text()
        assert "warning tone" in secure

        await page.select_option("#set-announcement", "prompt")
        await page.fill("#set-pause_max_seconds", "120")
        await page.click("#settings-save")
        await expect(page.locator('[data-field="announcement_prompt"] .field-error')).to_contain_text(
            "announcement = prompt"
        )
        unchanged = await (await world.request("GET", "/api/v1/accounts/phonepage/settings", "admin")).json()
        assert unchanged["settings"]["announcement"] == "none"  # nothing half-saved

        await page.fill("#set-announcement_prompt", "custom/consent")
        await page.click("#settings-save")
        await expect(page.locator("#settings-status")).to_contain_text("Saved")
        saved = await (await world.request("GET", "/api/v1/accounts/phonepage/settings", "admin")).json()
        assert {k: saved["settings"][k] for k in ("announcement", "announcement_prompt", "pause_max_seconds")} == {
            "announcement": "prompt",
            "announcement_prompt": "custom/consent",
            "pause_max_seconds": 120,
        }
        await page.set_viewport_size({"width": 420, "height": 900})  # a phone: the new fields fit
        await no_horizontal_overflow(page)
        assert not errors, errors
