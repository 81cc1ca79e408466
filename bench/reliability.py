"""What production does to a job service, done on purpose; prints one table.

    .venv/bin/python bench/reliability.py            # every scenario (~1 minute)
    .venv/bin/python bench/reliability.py --slow 100 # slow consumers per kind

Scenarios, each against real servers on loopback with the scripted engine (the pipeline's
timing without its models), counting the jobs each acknowledged with a `job_id`:

- `SIGKILL serve`: `octavia serve` killed mid-jobs and started again on the same data.
- `database away`: PostgreSQL cut off by a proxy for 2 s while jobs run (skipped without
  PostgreSQL); requests meanwhile must get UNAVAILABLE, never INTERNAL.
- `disk full`: the artifact store raises ENOSPC for one job; the next one must complete.
- `stage raises`: the engine fails in one phase; that job fails with a reason.
- `bad inputs`: a corpus of malformed requests over every RPC and bridge endpoint.
- `slow consumers`: N gRPC watchers that never read and N SSE clients that stop reading,
  while one job emits progress as fast as it can; the server's peak RSS growth and a
  normal watcher's lag, beside the same run without the slow consumers.

Lost = acknowledged but unknown afterwards; stuck = not in a terminal state a minute on.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import httpx  # noqa: E402
from grpc import aio  # noqa: E402
from octavia.v1 import jobs_pb2 as pb  # noqa: E402
from octavia.v1 import jobs_pb2_grpc  # noqa: E402

from server.app import OctaviaServer  # noqa: E402
from server.auth import TokenAuthority  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.support.engine import ScriptedEngine  # noqa: E402
from tests.support.media import tone_wav  # noqa: E402
from tests.support.processes import Processes, free_port  # noqa: E402
from tests.support.proxy import CuttableProxy  # noqa: E402

SECRET = "reliability-bench-secret-0123456789abcdef"
TERMINAL = (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED)
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@dataclass
class Row:
    scenario: str
    acknowledged: int = 0
    lost: int = 0
    stuck: int = 0
    tried: int = 0
    server_errors: int = 0
    """INTERNAL/UNKNOWN statuses, HTTP 5xx and logged tracebacks."""
    note: str = ""


class Tracebacks(logging.Handler):
    """Counts log records that carry a traceback (an unhandled error somewhere)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1


def settings_for(folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": folder / "data", "grpc_host": "127.0.0.1", "grpc_port": 0, "http_port": 0,
        "jwt_secret": SECRET, "media_root": folder / "media", "progress_interval_seconds": 0}
    (folder / "media").mkdir(parents=True, exist_ok=True)
    return Settings(**{**values, **overrides})


def auth_for(settings: Settings, user: str = "bench") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TokenAuthority(settings).mint(user)}"),)


async def submit(stub: Any, auth: Any, media: bytes) -> pb.Job:
    request = pb.SubmitJobRequest(content=media, filename="clip.wav", target_language="es")
    return (await stub.SubmitJob(request, metadata=auth)).job


async def settle(stub: Any, auth: Any, job_ids: list[str], row: Row,
                 timeout: float = 60) -> list[pb.Job]:
    """Wait for the jobs to end; count the lost and the stuck."""
    deadline = time.monotonic() + timeout
    final: list[pb.Job] = []
    for job_id in job_ids:
        while True:
            try:
                job = (await stub.GetStatus(pb.GetStatusRequest(job_id=job_id),
                                            metadata=auth)).job
            except aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    row.lost += 1
                    break
                if time.monotonic() > deadline:
                    row.stuck += 1
                    break
                await asyncio.sleep(0.2)
                continue
            if job.status in TERMINAL:
                final.append(job)
                break
            if time.monotonic() > deadline:
                row.stuck += 1
                break
            await asyncio.sleep(0.2)
    return final


def outcomes(jobs: list[pb.Job]) -> str:
    names = [pb.JobStatus.Name(j.status).removeprefix("JOB_STATUS_").lower()
             + (f" ({j.error.reason})" if j.error.reason else "") for j in jobs]
    return ", ".join(f"{names.count(n)} {n}" for n in sorted(set(names)))


# --- Faults ----------------------------------------------------------------------------


async def killed_server(folder: Path, media: bytes) -> Row:
    row = Row("SIGKILL serve")
    settings = settings_for(folder)
    port = free_port()
    processes = Processes(folder, {
        "OCTAVIA_JWT_SECRET": SECRET, "OCTAVIA_ENGINE": "tests.support.engine:scripted",
        "OCTAVIA_SCRIPTED_DELAY": "0.1", "OCTAVIA_SCRIPTED_TICKS": "4",
        "OCTAVIA_GRPC_PORT": str(port)})
    auth = auth_for(settings)
    address = f"127.0.0.1:{port}"
    try:
        serve = processes.start("serve", "serve", "--no-bridge")
        async with aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            ids = [(await submit(stub, auth, media)).job_id for _ in range(6)]
            row.acknowledged = len(ids)
            await asyncio.sleep(1.0)
            serve.send_signal(signal.SIGKILL)
            await asyncio.to_thread(serve.wait)
        processes.start("serve", "serve", "--no-bridge")
        async with aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            row.note = outcomes(await settle(stub, auth, ids, row))
        row.server_errors = processes.log("serve").count("Traceback")
    finally:
        processes.close()
    return row


async def in_process(folder: Path, engine: ScriptedEngine, scenario: Callable[
        [Any, Any, OctaviaServer], Awaitable[None]], **overrides: Any) -> None:
    settings = settings_for(folder, **overrides)
    server = OctaviaServer(settings, engine)
    await server.start()
    try:
        async with aio.insecure_channel(server.address) as channel:
            await scenario(jobs_pb2_grpc.JobServiceStub(channel), auth_for(settings), server)
    finally:
        await server.stop(grace=0.5)


async def database_away(folder: Path, media: bytes) -> Row:
    from tests.support.postgres import fresh_database, postgres_available

    row = Row("database away 2 s")
    if not postgres_available():
        row.note = "skipped: no PostgreSQL"
        return row
    with fresh_database() as url:
        proxy = CuttableProxy("127.0.0.1", int(url.rsplit(":", 1)[1].split("/", 1)[0]))
        port = await proxy.start()
        proxied = url.replace(url.rsplit(":", 1)[1].split("/", 1)[0], str(port), 1)

        async def scenario(stub: Any, auth: Any, _server: OctaviaServer) -> None:
            ids = [(await submit(stub, auth, media)).job_id for _ in range(3)]
            row.acknowledged = len(ids)
            await asyncio.sleep(0.5)
            proxy.disconnect()
            until = time.monotonic() + 2.0
            while time.monotonic() < until:  # clients keep asking meanwhile
                row.tried += 1
                try:
                    await stub.GetStatus(pb.GetStatusRequest(job_id=ids[0]), metadata=auth)
                except aio.AioRpcError as error:
                    row.server_errors += error.code() in BAD_CODES
                await asyncio.sleep(0.1)
            proxy.restore()
            row.note = outcomes(await settle(stub, auth, ids, row))

        try:
            await in_process(folder, ScriptedEngine(ticks=10, delay=0.1), scenario,
                             database_url=proxied, concurrency=3)
        finally:
            await proxy.close()
    return row


async def disk_full(folder: Path, media: bytes) -> Row:
    row = Row("disk full (ENOSPC)")

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    async def scenario(stub: Any, auth: Any, server: OctaviaServer) -> None:
        fs = server.artifacts.fs
        fs.open = full  # type: ignore[method-assign]
        first = (await submit(stub, auth, media)).job_id
        await settle(stub, auth, [first], Row("-"))
        del fs.open  # the disk has room again
        second = (await submit(stub, auth, media)).job_id
        row.acknowledged = 2
        row.note = outcomes(await settle(stub, auth, [first, second], row))

    await in_process(folder, ScriptedEngine(), scenario)
    return row


async def stage_raises(folder: Path, media: bytes) -> Row:
    from server.jobs import Phase

    row = Row("stage raises")

    async def scenario(stub: Any, auth: Any, _server: OctaviaServer) -> None:
        ids = [(await submit(stub, auth, media)).job_id for _ in range(3)]
        row.acknowledged = len(ids)
        row.note = outcomes(await settle(stub, auth, ids, row))

    await in_process(folder, ScriptedEngine(fail_in=Phase.SYNTHESIZING), scenario)
    return row


# --- Bad input ---------------------------------------------------------------------------


def bad_grpc_requests(job_id: str, media: bytes) -> list[tuple[str, Any]]:
    ids = ["", "not-a-uuid", "../../etc/passwd", "x" * 10_000, "\u0000", str(uuid.uuid4()),
           "%2e%2e%2f", job_id.upper()]
    requests: list[tuple[str, Any]] = []
    for bad in ids:
        requests += [("GetStatus", pb.GetStatusRequest(job_id=bad)),
                     ("CancelJob", pb.CancelJobRequest(job_id=bad)),
                     ("ListSegments", pb.ListSegmentsRequest(job_id=bad)),
                     ("ResumeJob", pb.ResumeJobRequest(job_id=bad)),
                     ("ListVersions", pb.ListVersionsRequest(job_id=bad))]
    submit = pb.SubmitJobRequest
    requests += [
        ("SubmitJob", submit(target_language="es")),
        ("SubmitJob", submit(content=b"", target_language="es")),
        ("SubmitJob", submit(content=b"this is not media" * 100, target_language="es")),
        ("SubmitJob", submit(content=media[: len(media) // 3], target_language="es")),
        ("SubmitJob", submit(content=media, target_language="xx")),
        ("SubmitJob", submit(content=media, target_language="")),
        ("SubmitJob", submit(content=media, target_language="es", filename="a" * 100_000)),
        ("SubmitJob", submit(uri="../../etc/passwd", target_language="es")),
        ("SubmitJob", submit(uri="file:///etc/passwd", target_language="es")),
        ("SubmitJob", submit(content=media, target_language="es",
                             options=pb.JobOptions(webhook_url="ftp://x"))),
        ("SubmitJob", submit(content=media, target_language="es",
                             options=pb.JobOptions(pause_after=[pb.JOB_PHASE_UPLOADING]))),
        ("ListJobs", pb.ListJobsRequest(page_size=-1)),
        ("ListJobs", pb.ListJobsRequest(page_size=2**31 - 1)),
        ("ListJobs", pb.ListJobsRequest(page_token="garbage!")),
        ("UpdateSegments", pb.UpdateSegmentsRequest(job_id=job_id)),
        ("UpdateSegments", pb.UpdateSegmentsRequest(job_id=job_id, edits=[
            pb.SegmentEdit(index=-5, target_text="x")])),
    ]
    for name in ("../secret", "/etc/passwd", "", "a/b", "..", "x" * 1000):
        requests.append(("ReadArtifact", pb.ReadArtifactRequest(job_id=job_id, name=name)))
    requests += [("ReadArtifact", pb.ReadArtifactRequest(job_id=job_id, name="dubbed.wav",
                                                         offset=-1)),
                 ("ReadArtifact", pb.ReadArtifactRequest(job_id=job_id, name="dubbed.wav",
                                                         version=-3))]
    return requests


async def bad_inputs(folder: Path, media: bytes) -> Row:
    from bridge.run import bridge_server

    row = Row("bad inputs (every RPC, every endpoint)")

    async def scenario(stub: Any, auth: Any, server: OctaviaServer) -> None:
        job = await submit(stub, auth, media)
        await settle(stub, auth, [job.job_id], Row("-"))
        for method, request in bad_grpc_requests(job.job_id, media):
            row.tried += 1
            try:
                call = getattr(stub, method)(request, metadata=auth)
                if method == "ReadArtifact":
                    async for _ in call:
                        pass
                else:
                    await call
            except aio.AioRpcError as error:
                row.server_errors += error.code() in BAD_CODES
        # Raw bytes that are not a valid message (a filename that is not UTF-8).
        raw = server.address
        async with aio.insecure_channel(raw) as channel:
            submit_raw = channel.unary_unary("/octavia.v1.JobService/SubmitJob")
            row.tried += 1
            try:
                await submit_raw(b"\x1a\x02\xff\xfe\x22\x02es", metadata=auth)
            except aio.AioRpcError as error:
                row.server_errors += error.code() in BAD_CODES
        async with bridge_server(server.settings, server.address) as port:
            headers = {"authorization": auth[0][1]}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         headers=headers) as http:
                for method, path, kwargs in bad_http_requests(job.job_id, media):
                    row.tried += 1
                    response = await http.request(method, path, **kwargs)
                    row.server_errors += response.status_code >= 500
            row.tried += 1  # a body that lies about its size, then stops
            status = await _raw_http(port, (
                "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {auth[0][1]}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                "Content-Length: 99999999\r\n\r\n--x\r\n").encode())
            row.server_errors += status is not None and status >= 500

    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    try:
        await in_process(folder, ScriptedEngine(), scenario)
    finally:
        logging.getLogger().removeHandler(tracebacks)
    row.server_errors += tracebacks.count
    row.note = "every one answered INVALID_ARGUMENT/NOT_FOUND/4xx" if not row.server_errors \
        else "see the server log"
    return row


def bad_http_requests(job_id: str, media: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    api = "/api/v1/jobs"
    return [
        ("GET", f"{api}/not-a-uuid/status", {}),
        ("GET", f"{api}/{uuid.uuid4()}/status", {}),
        ("GET", f"{api}/..%2f..%2fetc/status", {}),
        ("GET", f"{api}/{job_id}/artifacts/..%2f..%2fpasswd", {}),
        ("GET", f"{api}/{job_id}/artifacts/dubbed.wav", {"headers": {"range": "bytes=9-1"}}),
        ("GET", f"{api}/{job_id}/stream?ticket=forged", {}),
        ("GET", f"{api}?page_size=-1", {}),
        ("POST", api, {"files": {"file": ("x.wav", b"not media")},
                       "data": {"target_language": "es"}}),
        ("POST", api, {"files": {"file": ("x.wav", media)}, "data": {"target_language": "??"}}),
        ("POST", api, {"content": b"{}", "headers": {"content-type": "application/json"}}),
    ]


async def _raw_http(port: int, data: bytes) -> int | None:
    """Send raw bytes, half-close, and return the response status (None: no answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        line = await asyncio.wait_for(reader.readline(), timeout=10)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else None
    except (TimeoutError, ConnectionError, IndexError, ValueError):
        return None
    finally:
        writer.close()


# --- Slow consumers ------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def slow_consumers(folder: Path, media: bytes, count: int) -> Row:
    row = Row(f"slow consumers ({count} gRPC + {count} SSE)")
    figures = []
    for slow in (0, count):
        figures.append(await _one_slow_run(folder / f"slow-{slow}", media, slow))
    (base_lag, _, _), (lag, growth, delivered) = figures
    per = growth / (2 * count) if count else 0.0
    row.acknowledged = 2
    row.note = (f"server RSS +{growth / 1024:.1f} MiB at peak ({per:.1f} KiB per slow "
                f"consumer); a normal watcher's p99 lag {lag * 1000:.0f} ms vs "
                f"{base_lag * 1000:.0f} ms alone; terminal event delivered: {delivered}")
    return row


async def _one_slow_run(folder: Path, media: bytes, slow: int) -> tuple[float, int, bool]:
    folder.mkdir(parents=True)
    grpc_port, http_port = free_port(), free_port()
    processes = Processes(folder, {
        "OCTAVIA_JWT_SECRET": SECRET, "OCTAVIA_ENGINE": "tests.support.engine:scripted",
        "OCTAVIA_SCRIPTED_TICKS": "1500", "OCTAVIA_SCRIPTED_DELAY": "0.002",
        "OCTAVIA_SCRIPTED_STAMP": "1", "OCTAVIA_PROGRESS_INTERVAL_SECONDS": "0",
        "OCTAVIA_GRPC_PORT": str(grpc_port), "OCTAVIA_HTTP_PORT": str(http_port)})
    settings = settings_for(folder)
    auth = auth_for(settings)
    sockets: list[socket.socket] = []
    try:
        serve = processes.start("serve", "serve")
        async with aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
            await _wait_http(http_port)
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            request = pb.SubmitJobRequest(content=media, filename="clip.wav",
                                          target_language="es")
            job = (await stub.SubmitJob(request, metadata=auth)).job
            watch = pb.WatchJobRequest(job_id=job.job_id, after_sequence=job.sequence)
            stalled = [stub.WatchJob(watch, metadata=auth) for _ in range(slow)]  # never read
            for _ in range(slow):
                sock = socket.create_connection(("127.0.0.1", http_port))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(f"GET /api/v1/jobs/{job.job_id}/stream HTTP/1.1\r\n"
                             f"Host: 127.0.0.1\r\nAuthorization: {auth[0][1]}\r\n\r\n".encode())
                sockets.append(sock)  # ... and never read
            baseline = rss_kib(serve.pid)
            peak = baseline
            lags: list[float] = []
            delivered = False
            async for message in stub.WatchJob(watch, metadata=auth):
                step = message.job.current_step
                if " t=" in step:
                    lags.append(time.time() - float(step.rsplit(" t=", 1)[1]))
                if len(lags) % 50 == 0:
                    peak = max(peak, rss_kib(serve.pid))
                if message.job.status in TERMINAL:
                    delivered = message.job.status == pb.JOB_STATUS_COMPLETED
                    break
            peak = max(peak, rss_kib(serve.pid))
            for call in stalled:
                call.cancel()
        p99 = statistics.quantiles(lags, n=100)[98] if len(lags) > 2 else float("nan")
        return p99, peak - baseline, delivered
    finally:
        for sock in sockets:
            sock.close()
        processes.close()


async def _wait_http(port: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                await http.get(f"http://127.0.0.1:{port}/healthz")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)


# --- Report --------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = ("scenario", "jobs acknowledged", "lost", "stuck", "requests tried",
              "5xx/INTERNAL/tracebacks")
    print("| " + " | ".join(header) + " | outcome |")
    print("|" + "---|" * (len(header) + 1))
    for r in rows:
        print(f"| {r.scenario} | {r.acknowledged} | {r.lost} | {r.stuck} | {r.tried} | "
              f"{r.server_errors} | {r.note} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=100, help="slow consumers of each kind")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    media = tone_wav(seconds=1.0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="octavia-reliability-") as tmp:
        folder = Path(tmp)
        for name, scenario in (("kill", killed_server), ("db", database_away),
                               ("disk", disk_full), ("stage", stage_raises),
                               ("bad", bad_inputs)):
            (folder / name).mkdir()
            rows.append(await scenario(folder / name, media))
        rows.append(await slow_consumers(folder / "slow", media, args.slow))
    print(f"Octavia reliability, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print_table(rows)
    lost = sum(r.lost for r in rows)
    stuck = sum(r.stuck for r in rows)
    errors = sum(r.server_errors for r in rows)
    print(f"\njobs lost: {lost} (must be 0), jobs stuck: {stuck} (must be 0), "
          f"5xx/INTERNAL/tracebacks: {errors} (must be 0)")


if __name__ == "__main__":
    asyncio.run(main())
