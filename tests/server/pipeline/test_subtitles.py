"""SRT and WebVTT rendering."""

from __future__ import annotations

from collections.abc import Callable

from server.pipeline.subtitles import Cue, to_srt, to_vtt

CUES = [Cue(0.0, 1.5, "Hello"), Cue(3661.25, 3662.0, "two\n\nlines --> here")]


def test_srt() -> None:
    assert to_srt(CUES) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello\n\n"
        "2\n01:01:01,250 --> 01:01:02,000\ntwo\nlines -> here\n"
    )


def test_vtt() -> None:
    text = to_vtt(CUES)
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello\n")
    assert "01:01:01.250 --> 01:01:02.000" in text


def test_parse_round_trip(parse_cues: Callable[[str], list[tuple[float, float, str]]]) -> None:
    assert [c[:2] for c in parse_cues(to_srt(CUES))] == [(0.0, 1.5), (3661.25, 3662.0)]
    assert [c[:2] for c in parse_cues(to_vtt(CUES))] == [(0.0, 1.5), (3661.25, 3662.0)]
