"""Headless Chromium for the page tests: Debian's `chromium` driven by Playwright (no browser
download). `shot()` saves the documentation screenshots (docs/screens/) when CALLREC_SCREENSHOTS=1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENS = ROOT / "docs" / "screens"
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

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt install chromium)"
)


async def launch(pw: Any) -> Any:
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


@contextlib.asynccontextmanager
async def signed_in_page(base: str, token: str, name: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page of a fresh headless Chromium (1280x900), signed in as `name`, with the list its script
    errors are collected in (a test asserts it empty at the end); the browser is closed on the way out."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await sign_in(page, base, token, name)
            yield page, errors
        finally:
            await browser.close()


async def until(page: Any, js: str, timeout_s: float = 10.0) -> None:
    """Poll a JS predicate (the page's CSP forbids eval, which wait_for_function relies on)."""
    for _ in range(int(timeout_s / 0.05)):
        if await page.evaluate(js):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {js}")


async def open_account_settings(page: Any, account: str) -> None:
    """The recording-settings screen with `account`'s values in its form: the form of the account
    shown first is replaced once the typed one has loaded, so a test edits only after that."""
    from playwright.async_api import expect

    await page.click('#tabs [data-screen="settings"]')
    await page.fill("#set-account", account)
    await page.press("#set-account", "Tab")
    await expect(page.locator(f'#settings-form[data-account="{account}"]')).to_have_count(1)


async def sign_in(page: Any, base: str, token: str, name: str) -> None:
    from playwright.async_api import expect

    await page.goto(base + "/")
    await page.fill("#token", token)
    await page.click("#login-form button")
    await expect(page.locator("#who-name")).to_have_text(name)


async def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    """Documentation screenshot, only when asked (CALLREC_SCREENSHOTS=1): docs/screens/<name>.png."""
    if os.environ.get("CALLREC_SCREENSHOTS") != "1":
        return
    SCREENS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_timeout(150)
    await page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=full_page)


async def no_horizontal_overflow(page: Any) -> None:
    width = await page.evaluate("() => document.documentElement.clientWidth")
    scroll = await page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert scroll <= width, f"the page is {scroll}px wide in a {width}px viewport"
