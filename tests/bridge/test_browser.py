"""End to end in headless Chromium: the page uploads, follows a real EventSource, downloads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from server.auth import TokenAuthority
from tests.support.engine import ScriptedEngine

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]


async def test_page_uploads_follows_the_stream_to_100_and_downloads(
    live_url: str, tokens: TokenAuthority, engine: ScriptedEngine, wav: bytes, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    engine.ticks, engine.delay = 4, 0.03  # slow enough to see the bar move
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(live_url + "/")
            await page.fill("#token", tokens.mint("alice"))
            await page.click("#save-token")
            await expect(page.locator("#auth-state")).to_contain_text("alice")
            await page.set_input_files("#file", str(clip))
            await page.select_option("#language", "es")
            await page.click("#submit")

            await expect(page.locator("#progress")).to_have_attribute(
                "aria-valuenow", "100", timeout=30_000)
            assert await page.text_content("#status") == "completed"
            assert await page.text_content("#phase") == "completed"
            assert await page.text_content("#mode") == "stream"  # a real EventSource

            link = page.locator("a.download", has_text="dubbed.wav")
            await link.wait_for(timeout=10_000)
            async with page.expect_download() as info:
                await link.click()
            download = await info.value
            saved = tmp_path / "dubbed.wav"
            await download.save_as(saved)
            assert download.suggested_filename == "dubbed.wav"
            assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(wav).digest()
            assert errors == []
        finally:
            await browser.close()
