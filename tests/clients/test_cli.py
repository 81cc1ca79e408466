"""The `octavia` command: JSON output, exit codes, one-line errors, settings precedence.

Remote commands run `main()` in a worker thread (it owns an event loop) against the
in-process server; `dub` runs as a real subprocess with a scripted engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from octavia.cli import load_settings, main
from octavia.cli._parser import build

from server.auth import TokenAuthority
from server.jobs import Phase
from server.settings import Settings

REPO = Path(__file__).resolve().parents[2]
OCTAVIA = [sys.executable, "-c", "import sys; from octavia.cli import main; sys.exit(main())"]
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OCTAVIA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


class Run:
    """`octavia ...` against the test server, in a thread; returns (code, stdout, stderr)."""

    def __init__(self, server, token: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
        self.remote = ["--server", server.address, "--token", token,
                       "--data-dir", str(server.settings.data_dir)]
        self.capsys = capsys

    async def __call__(self, *argv: str, remote: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = [*argv, *self.remote] if remote else list(argv)
        code = await asyncio.to_thread(main, args)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def octavia(server, token, capsys) -> Run:  # type: ignore[no-untyped-def]
    return Run(server, token, capsys)


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("octavia: error: ")
    return lines[0]


async def test_help_documents_the_exit_codes(octavia) -> None:
    code, out, _ = await octavia("--help", remote=False)
    assert code == 0
    for line in ("0  ok", "3  server unreachable", "4  job or artifact not found",
                 "5  authentication failed"):
        assert line in out


async def test_usage_errors_exit_2_with_one_line(octavia, tmp_path) -> None:
    code, _, err = await octavia("dub", "clip.wav", remote=False)
    assert code == 2
    assert "--to" in one_line_error(err)
    code, _, err = await octavia("submit", str(tmp_path / "missing.wav"), "--to", "es")
    assert code == 2
    assert "no such file" in one_line_error(err)
    code, _, err = await octavia("status", "not-a-uuid")
    assert code == 2
    assert "INVALID_ARGUMENT" in one_line_error(err)


async def test_submit_watch_status_jobs_as_json(octavia, client, tmp_path) -> None:
    media = tmp_path / "clip.wav"
    media.write_bytes(await asyncio.to_thread(_tone))

    code, out, _ = await octavia("submit", str(media), "--to", "es", "--watch", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    job_id = lines[0]["job_id"]
    assert lines[-1]["job"]["status"] == "JOB_STATUS_COMPLETED"
    assert [int(u["sequence"]) for u in lines[1:]] == sorted(int(u["sequence"]) for u in lines[1:])

    code, out, _ = await octavia("status", job_id, "--json")
    assert code == 0
    status = json.loads(out)
    assert status["status"] == "JOB_STATUS_COMPLETED"
    assert {a["name"] for a in status["artifacts"]} == {"dubbed.wav", "target.srt"}

    code, out, _ = await octavia("watch", job_id, "--json")
    assert code == 0
    assert json.loads(out.splitlines()[-1])["job"]["job_id"] == job_id

    code, out, _ = await octavia("jobs", "--json")
    assert code == 0
    assert [job["job_id"] for job in json.loads(out)] == [job_id]

    code, out, _ = await octavia("download", job_id, "-o", str(tmp_path / "out"), "--json")
    assert code == 0
    assert sorted(Path(p).name for p in json.loads(out)) == ["dubbed.wav", "target.srt"]
    assert (tmp_path / "out" / "dubbed.wav").read_bytes() == media.read_bytes()


async def test_a_failed_job_exits_1_with_its_reason(octavia, client, engine, wav) -> None:
    engine.fail_in = Phase.TRANSLATING
    job = await client.submit(wav, "es")
    code, out, err = await octavia("watch", job.job_id)
    assert code == 1
    assert "failed" in out.splitlines()[-1]
    assert "scripted failure" in err and "Traceback" not in err


async def test_not_found_exits_4(octavia) -> None:
    code, _, err = await octavia("status", UNKNOWN_JOB)
    assert code == 4
    assert "JOB_NOT_FOUND" in one_line_error(err)
    code, _, err = await octavia("download", UNKNOWN_JOB, "dubbed.wav")
    assert code == 4


async def test_a_bad_token_exits_5(octavia, server) -> None:
    code, _, err = await octavia("jobs", "--server", server.address, "--token", "forged",
                                 remote=False)
    assert code == 5
    assert "authentication failed" in one_line_error(err)


async def test_an_unreachable_server_exits_3(octavia, unused_port) -> None:
    code, _, err = await octavia("status", UNKNOWN_JOB, "--server", f"127.0.0.1:{unused_port}",
                                 "--token", "t", remote=False)
    assert code == 3
    assert f"cannot reach the Octavia server at 127.0.0.1:{unused_port}" in one_line_error(err)


async def test_cancel_reports_the_new_status(octavia, client, engine, wav) -> None:
    import threading

    engine.hold = threading.Event()
    job = await client.submit(wav, "es")
    code, out, _ = await octavia("cancel", job.job_id, "--json")
    assert code == 0
    assert json.loads(out)["status"] == "JOB_STATUS_CANCELLED"
    code, _, _ = await octavia("watch", job.job_id)
    assert code == 1


async def test_without_a_token_one_is_minted_from_the_local_settings(
    octavia, server, settings
) -> None:
    """No --token and no OCTAVIA_TOKEN: the CLI signs with the server's own secret."""
    os.environ["OCTAVIA_JWT_SECRET"] = settings.jwt_secret.get_secret_value()
    try:
        code, out, _ = await octavia("jobs", "--server", server.address, "--json",
                                     remote=False)
    finally:
        del os.environ["OCTAVIA_JWT_SECRET"]
    assert code == 0
    assert json.loads(out) == []


async def test_token_is_accepted_by_the_same_settings(octavia, tmp_path) -> None:
    data = tmp_path / "tokdata"
    code, out, _ = await octavia("token", "--sub", "bob", "--ttl", "60", "--data-dir",
                                 str(data), remote=False)
    assert code == 0
    authority = TokenAuthority(Settings(data_dir=data, _env_file=None))  # type: ignore[call-arg]
    assert authority.verify(out.strip()).subject == "bob"


def test_flags_override_the_environment_which_overrides_defaults(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OCTAVIA_GRPC_PORT", "6000")
    monkeypatch.setenv("OCTAVIA_HTTP_PORT", "7000")
    monkeypatch.setenv("OCTAVIA_QUEUE_SIZE", "7")
    args = build().parse_args(["serve", "--grpc-port", "6001", "--data-dir", str(tmp_path)])
    settings = load_settings(args)
    assert (settings.grpc_port, settings.http_port, settings.queue_size) == (6001, 7000, 7)
    assert settings.data_dir == tmp_path

    monkeypatch.setenv("OCTAVIA_GRPC_PORT", "not-a-port")
    assert main(["serve"]) == 2


def test_models_list_names_what_each_stage_uses(monkeypatch, capsys) -> None:
    monkeypatch.setenv("OCTAVIA_ASR_MODEL", "tiny")
    assert main(["models", "list", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert {"stage": "asr", "setting": "asr_model", "name": "tiny"} in models
    assert {m["setting"] for m in models} >= {
        "translation_model", "translation_fallback_model", "tts_voices", "tts_fallback_voice"
    }


def _subprocess_env(tmp_path: Path, engine: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTAVIA_")}
    env.update(
        OCTAVIA_ENGINE=engine,
        OCTAVIA_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "clients")]),
    )
    return env


def test_dub_runs_the_service_in_process_and_writes_the_artifacts(tmp_path, wav) -> None:
    (tmp_path / "clip.wav").write_bytes(wav)
    done = subprocess.run(
        [*OCTAVIA, "dub", "clip.wav", "--to", "es"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env=_subprocess_env(tmp_path, "tests.clients.scripted:engine"),
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "clip.dub-es"
    assert sorted(p.name for p in out.iterdir()) == ["dubbed.wav", "target.srt"]
    assert [Path(line).name for line in done.stdout.split()] == ["dubbed.wav", "target.srt"]
    assert (out / "dubbed.wav").read_bytes() == wav


def test_ctrl_c_during_dub_cancels_the_job(tmp_path, wav) -> None:
    (tmp_path / "clip.wav").write_bytes(wav)
    process = subprocess.Popen(
        [*OCTAVIA, "dub", "clip.wav", "--to", "es"], cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_subprocess_env(tmp_path, "tests.clients.scripted:slow_engine"),
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    while line and not line.startswith("job "):
        line = process.stderr.readline()
    assert line.startswith("job ")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert "cancelled job" in err and "Traceback" not in err
    assert not (tmp_path / "clip.dub-es").exists()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tone() -> bytes:
    from tests.support.media import tone_wav

    return tone_wav(1.0)

