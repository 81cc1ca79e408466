"""The review commands end to end: `--pause-after` stops with exit 6 and says what to do;
`segments`, `edit`, `resume`, `versions` and `download --version` against the test server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path

import pytest
from octavia import pb
from octavia.cli._render import DASH

from tests.clients.conftest import WEBHOOK_SECRET
from tests.clients.test_cli import OCTAVIA, _subprocess_env, one_line_error

# The CLI tests' own fixtures: a clean OCTAVIA_* environment, and `octavia` to run it.
from tests.clients.test_cli import clean_environment as clean_environment
from tests.clients.test_cli import octavia as octavia
from tests.support.segments import write_segments

AWAITING_REVIEW = 6


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # The receiver listens on loopback.
    return {"webhook_secret": WEBHOOK_SECRET, "webhook_allow_private_networks": True}


@pytest.fixture
def clip(tmp_path: Path, wav: bytes) -> Path:
    path = tmp_path / "clip.wav"
    path.write_bytes(wav)
    return path


async def paused_job(client, server, wav: bytes) -> str:  # type: ignore[no-untyped-def]
    """A job that awaits review of its translation, with two segments saved."""
    job = await client.submit(wav, "es", pause_after=["translating"])
    assert (await client.wait(job.job_id)).status == pb.JOB_STATUS_AWAITING_REVIEW
    await asyncio.to_thread(write_segments, server, job.job_id)
    return str(job.job_id)


async def test_help_documents_the_review_exit_code(octavia) -> None:
    code, out, _ = await octavia("--help", remote=False)
    assert code == 0
    assert "6  the job awaits review" in out


async def test_watch_stops_at_review_with_exit_6_and_says_how_to_go_on(
    octavia, server, clip
) -> None:
    code, out, err = await octavia("submit", str(clip), "--to", "es", "--watch",
                                   "--pause-after", "translating")
    assert code == AWAITING_REVIEW, err
    job_id = out.splitlines()[0]
    assert "awaiting_review" in out.splitlines()[-1]
    assert f"job {job_id} awaits review of the translation" in err
    flags = f"--server {server.address}"
    for command in (f"segments {job_id} {flags}", f"edit {job_id} INDEX --target TEXT {flags}",
                    f"resume {job_id} {flags}"):
        assert f"octavia {command}" in err
    assert "Traceback" not in err

    code, out, err = await octavia("watch", job_id, "--json")
    assert code == AWAITING_REVIEW
    assert json.loads(out.splitlines()[-1])["job"]["status"] == "JOB_STATUS_AWAITING_REVIEW"
    assert err == ""

    code, out, _ = await octavia("status", job_id)
    assert code == 0
    assert "awaiting_review" in out


async def test_review_edit_resume_then_redub_a_new_version(
    octavia, server, client, wav, tmp_path
) -> None:
    job_id = await paused_job(client, server, wav)

    code, out, err = await octavia("segments", job_id)
    assert code == 0, err
    assert "2 segment(s), en → es, editable" in err
    assert "Hello there." in out and "Hola." in out
    assert "See you [soon]." in out and "Hasta [pronto]." in out, "text is never markup"
    assert f"0:00.50{DASH}0:00.90" in out

    code, out, err = await octavia("edit", job_id, "1", "--target", "Hasta luego.",
                                   "--end", "0.95")
    assert code == 0, err
    assert "Hasta luego." in out and f"0:00.50{DASH}0:00.95" in out
    assert "Hello there." not in out, "only the edited line is shown"
    assert f"octavia resume {job_id}" in err

    code, out, _ = await octavia("segments", job_id, "--json")
    segments = json.loads(out)["segments"]
    assert [s["target_text"] for s in segments] == ["Hola.", "Hasta luego."]

    code, _, err = await octavia("resume", job_id)
    assert code == 0, err
    assert f"job {job_id} completed (version 1)" in err
    assert "synthesizing" in err, "the progress bars are drawn"

    code, _, err = await octavia("resume", job_id, "--json")  # a re-dub: version 2
    assert code == 0, err
    code, out, _ = await octavia("versions", job_id, "--json")
    assert code == 0
    versions = json.loads(out)
    assert [v["version"] for v in versions] == [1, 2]
    code, out, _ = await octavia("versions", job_id)
    assert "dubbed.wav" in out

    code, out, err = await octavia("download", job_id, "--version", "1", "-o",
                                   str(tmp_path / "v1"), "--json")
    assert code == 0, err
    assert sorted(Path(p).name for p in json.loads(out)) == ["dubbed.wav", "target.srt"]
    assert (tmp_path / "v1" / "dubbed.wav").read_bytes() == wav

    code, _, err = await octavia("download", job_id, "dubbed.wav", "--version", "9")
    assert code == 4
    assert "no version 9" in one_line_error(err)


async def test_edit_mistakes_are_usage_errors(octavia, server, client, wav) -> None:
    job_id = await paused_job(client, server, wav)
    code, _, err = await octavia("edit", job_id, "0")
    assert code == 2
    assert "nothing to change" in one_line_error(err)
    code, _, err = await octavia("edit", job_id, "7", "--target", "x")
    assert code == 2
    assert "no segment 7" in one_line_error(err)
    code, _, err = await octavia("edit", job_id, "0", "--start", "0.45")
    assert code == 2, "segment 0 would end before it starts"
    code, _, err = await octavia("submit", "clip.wav", "--to", "es", "--pause-after",
                                 "synthesizing")
    assert code == 2
    assert "--pause-after" in one_line_error(err)


async def test_segments_of_a_job_not_transcribed_yet_fail_with_the_reason(
    octavia, client, engine, wav
) -> None:
    engine.hold = threading.Event()
    job = await client.submit(wav, "es")
    code, _, err = await octavia("segments", job.job_id)
    assert code == 1
    assert "[NO_SEGMENTS]" in one_line_error(err)
    code, _, err = await octavia("resume", job.job_id)
    assert code == 1
    assert "[JOB_NOT_REVIEWABLE]" in one_line_error(err)
    engine.hold.set()


async def test_dub_with_pause_after_stops_at_review_then_resume_finishes(
    receiver, octavia, server, clip, tmp_path
) -> None:
    code, out, err = await octavia("dub", str(clip), "--to", "es", "--pause-after",
                                   "transcribing", "--webhook", receiver)
    assert code == AWAITING_REVIEW, err
    assert out == ""
    assert "awaits review of the transcript" in err
    assert not (tmp_path / "clip.dub-es").exists(), "nothing is downloaded before review"
    job_id = err.split("awaits review")[0].split()[-1]

    code, out, _ = await octavia("status", job_id, "--json")
    assert json.loads(out)["options"]["webhook_url"] == receiver

    code, _, err = await octavia("resume", job_id, "--no-follow")
    assert code == 0
    assert f"job {job_id} queued again" in err
    code, out, err = await octavia("watch", job_id)
    assert code == 0, err
    assert "completed" in out.splitlines()[-1]


def test_an_in_process_dub_that_pauses_says_to_review_it_under_octavia_serve(
    tmp_path, wav
) -> None:
    (tmp_path / "clip.wav").write_bytes(wav)
    done = subprocess.run(
        [*OCTAVIA, "dub", "clip.wav", "--to", "es", "--pause-after", "translating"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=_subprocess_env(tmp_path, "tests.clients.scripted:engine"),
    )
    assert done.returncode == AWAITING_REVIEW, done.stderr
    assert "awaits review of the translation" in done.stderr
    assert "start `octavia serve` first" in done.stderr
    assert "--server" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "clip.dub-es").exists()
