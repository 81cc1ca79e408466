"""End to end in headless Chromium: the page uploads, follows a real EventSource, downloads."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from server.auth import TokenAuthority
from tests.support.engine import ScriptedEngine

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
"""Headless, a ▶ click may come too long before `play()` (after a fetch) to count."""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]


@contextlib.asynccontextmanager
async def signed_in(
    live_url: str, tokens: TokenAuthority, user: str, *, session: bool = False,
    autoplay: bool = False, downloads: bool = False,
) -> AsyncIterator[tuple[Page, list[str]]]:
    """Chromium on the page, signed in as `user`: the token kept in the page, or traded
    for a cookie session (`session`). Yields the page and the script errors it raises."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, AUTOPLAY] if autoplay else ARGS)
        try:
            page = await browser.new_page(accept_downloads=downloads)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(live_url + "/")
            await page.fill("#token", tokens.mint(user))
            await page.click("#open-session" if session else "#save-token")
            await expect(page.locator("#auth-state")).to_contain_text(user)
            yield page, errors
        finally:
            await browser.close()


async def test_page_uploads_follows_the_stream_to_100_and_downloads(
    live_url: str, tokens: TokenAuthority, engine: ScriptedEngine, wav: bytes, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    engine.ticks, engine.delay = 4, 0.03  # slow enough to see the bar move
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav)
    async with signed_in(live_url, tokens, "alice", downloads=True) as (page, errors):
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


async def test_page_reviews_a_paused_job_edits_a_line_and_re_dubs_it_as_version_2(
    live_url: str, tokens: TokenAuthority, engine: ScriptedEngine, wav: bytes, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    engine.lines = (
        (0.0, 0.4, "Hello there.", "Hola."),
        (0.5, 0.9, "See you soon.", "Hasta pronto."),
    )
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav)
    async with signed_in(live_url, tokens, "alice", autoplay=True) as (page, errors):
        await page.set_input_files("#file", str(clip))
        await page.check("#pause")
        await page.click("#submit")

        await expect(page.locator("#status")).to_have_text("awaiting_review", timeout=30_000)
        rows = page.locator("#segments tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0).locator("textarea.source")).to_have_value("Hello there.")
        await expect(rows.nth(1).locator("textarea.target")).to_have_value("Hasta pronto.")
        assert await page.text_content("#mode") == "stream"  # still open while paused

        player = page.locator("#slice-player")
        await rows.nth(0).locator(".play-source").click()
        await expect(player).to_have_attribute("data-slice", "source 0")
        await expect(page.locator("#review-error")).to_be_hidden()
        # It played the line and stopped at its end (0.4 s), not at the end of the file.
        await expect(player).not_to_have_attribute("data-playing", "source 0")
        stopped = await player.evaluate("(audio) => [audio.paused, audio.currentTime]")
        assert stopped[0] and 0.3 <= stopped[1] <= 0.6, stopped
        assert await rows.nth(0).locator(".play-dub").is_disabled(), "no dub before it's made"

        await rows.nth(1).locator("textarea.target").fill("Hasta luego.")
        await expect(rows.nth(1)).to_have_class("edited")
        await expect(page.locator("#edit-count")).to_have_text("1 line changed")
        await page.click("#redub")
        await expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
        await expect(page.locator("#version")).to_have_text("1")
        await expect(page.locator("#version-list li")).to_have_count(1)

        # Completed: the same view re-dubs it as version 2.
        await expect(rows.nth(1).locator("textarea.target")).to_have_value("Hasta luego.")
        await expect(rows.nth(0).locator("textarea.target")).to_be_enabled()
        await rows.nth(0).locator("textarea.target").fill("¡Hola!")
        await page.click("#redub")
        await expect(page.locator("#version")).to_have_text("2", timeout=30_000)
        await expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
        versions = page.locator("#version-list li")
        await expect(versions).to_have_count(2)
        await expect(versions.nth(1)).to_contain_text("Version 2")
        assert await page.locator("#progress").get_attribute("aria-valuenow") == "100"

        await expect(rows.nth(0).locator("textarea.target")).to_have_value("¡Hola!")
        await rows.nth(1).locator(".play-dub").click()
        await expect(player).to_have_attribute("data-slice", "dubbed 1")
        await expect(page.locator("#review-error")).to_be_hidden()
        assert errors == []


async def test_page_pauses_after_transcribing_and_sends_a_corrected_source_line(
    live_url: str, tokens: TokenAuthority, engine: ScriptedEngine, wav: bytes, tmp_path: Path
) -> None:
    """The transcript is what gets fixed here: the edit goes out as `source_text`, and
    the line shows the corrected text once the job is done."""
    from playwright.async_api import expect

    engine.lines = ((0.0, 0.4, "Hello their.", "Hola."), (0.5, 0.9, "Bye.", "Adiós."))
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav)
    async with signed_in(live_url, tokens, "alice") as (page, errors):
        patches: list[object] = []
        page.on("request", lambda request: patches.append(request.post_data_json)
                if request.method == "PATCH" else None)
        await page.set_input_files("#file", str(clip))
        await page.check("#pause-transcribing")
        await page.click("#submit")

        await expect(page.locator("#status")).to_have_text("awaiting_review", timeout=30_000)
        await expect(page.locator("#review-state")).to_contain_text("after transcribing")
        rows = page.locator("#segments tr")
        await expect(rows).to_have_count(2)
        await rows.nth(0).locator("textarea.source").fill("Hello there.")
        await expect(rows.nth(0)).to_have_class("edited")
        await expect(page.locator("#edit-count")).to_have_text("1 line changed")
        await page.click("#redub")
        await expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
        assert patches == [{"edits": [{"index": 0, "source_text": "Hello there."}]}]
        await expect(rows.nth(0).locator("textarea.source")).to_have_value("Hello there.")
        await expect(rows.nth(1).locator("textarea.source")).to_have_value("Bye.")
        assert errors == []


async def test_with_a_cookie_session_the_player_streams_the_source_in_ranges(
    live_url: str, tokens: TokenAuthority, engine: ScriptedEngine, wav: bytes, tmp_path: Path
) -> None:
    """No token in the page: `<audio>` loads /source itself, with the cookie and Range."""
    from playwright.async_api import expect

    engine.lines = ((0.0, 0.4, "Hello there.", "Hola."), (0.5, 0.9, "Bye.", "Adiós."))
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav)
    async with signed_in(live_url, tokens, "alice", session=True, autoplay=True) as (page, errors):
        ranges: list[str] = []
        page.on("request", lambda request: ranges.append(request.headers.get("range", ""))
                if request.url.endswith("/source") else None)
        await page.set_input_files("#file", str(clip))
        await page.check("#pause")
        await page.click("#submit")
        await expect(page.locator("#status")).to_have_text("awaiting_review", timeout=30_000)

        player = page.locator("#slice-player")
        await page.locator("#segments tr").nth(1).locator(".play-source").click()
        await expect(player).to_have_attribute("data-slice", "source 1")
        await expect(player).not_to_have_attribute("data-playing", "source 1")
        await expect(page.locator("#review-error")).to_be_hidden()
        stopped = await player.evaluate(
            "(audio) => [audio.paused, audio.currentTime, audio.src]")
        assert stopped[0] and 0.8 <= stopped[1] <= 1.0, stopped
        assert stopped[2].endswith("/source")  # the URL itself, not a blob
        assert any(value.startswith("bytes=") for value in ranges), ranges
        assert errors == []
