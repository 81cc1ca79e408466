"""Benchmark the event path: engine progress → EventBus → gRPC WatchJob / bridge SSE,
and the bridge's cost on GET /status; prints tables.

    .venv/bin/python bench/events.py                  # 1, 100 and 1,000 watchers
    .venv/bin/python bench/events.py --quick          # 1 and 100 only
    .venv/bin/python bench/events.py --watchers 1,500 --rate 20 --seconds 5

This process runs the server: the in-process gRPC service, the bridge (uvicorn) and a
bare Starlette app (uvicorn, same event loop) for the status comparison. Every client
runs in a separate subprocess (`bench/_event_client.py`), so the server's loop is not
the clients' loop; both share this machine's cores, as they would on loopback.

- Latency: the engine writes `t=<time.time()>` into the step text of every event it
  emits (phase entries and progress); the client subtracts it from `time.time()` on
  receipt. Both ends read the same wall clock.
- Delivery: progress events may be coalesced by design when a watcher falls behind
  (`watch_buffer`); phase changes and the terminal event must all arrive, counted apart.
- Memory: RSS of this (server) process with N watchers connected and idle (the job is
  held before its first phase) minus RSS before they connected, divided by N. For SSE
  this includes the bridge's own WatchJob stream per browser.
- Status: the same httpx loop (concurrency 32, fixed duration) against the bridge's
  GET /api/v1/jobs/{id}/status and against a bare endpoint returning a constant body of
  the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from grpc import aio  # noqa: E402
from octavia.v1 import jobs_pb2 as pb  # noqa: E402
from octavia.v1 import jobs_pb2_grpc  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bridge.run import bridge_server  # noqa: E402
from server.app import OctaviaServer  # noqa: E402
from server.auth import TokenAuthority  # noqa: E402
from server.engine import JobContext, JobResult, JobSpec  # noqa: E402
from server.jobs import RUNNING_PHASES  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.support.media import tone_wav  # noqa: E402

CLIENT = ROOT / "bench" / "_event_client.py"
TARGET_SSE_P99_MS = 50.0
TARGET_STATUS_RATIO = 0.5
TARGET_KB_PER_SSE_WATCHER = 50.0


def rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    raise RuntimeError("no RSS")


@dataclass
class RateEngine:
    """The four phases, emitting at a fixed rate; every step text carries the emit time."""

    rate: float
    seconds: float
    hold: threading.Event = field(default_factory=threading.Event)
    emitted: dict[str, int] = field(default_factory=dict)

    def run(self, job: JobSpec, context: JobContext) -> JobResult:
        while not self.hold.wait(0.01):
            context.check_cancelled()
        ticks = max(1, round(self.rate * self.seconds / len(RUNNING_PHASES)))
        interval = 1.0 / self.rate
        enters = progress = 0
        next_at = time.perf_counter()
        for phase in RUNNING_PHASES:
            context.enter(phase, f"t={time.time():.6f} {phase.value}")
            enters += 1
            if phase.value == "transcribing" and job.source_language is None:
                context.update(source_language="en")
            for tick in range(1, ticks + 1):
                next_at += interval
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                context.progress(tick / ticks, f"t={time.time():.6f} {phase.value} {tick}")
                progress += 1
        self.emitted[job.job_id] = enters + progress
        writer = context.artifact_writer()
        audio = writer.put_file("dubbed.wav", job.media_path, "audio/wav")
        return JobResult(artifacts=[audio], output_file=audio.name)

    def close(self) -> None:
        pass


def bind(host: str, port: int) -> socket.socket:
    """Listen the way `bridge.run._bind` does (`socket.create_server`: proto 0, so asyncio
    does not set TCP_NODELAY on accepted sockets), or with proto IPPROTO_TCP under
    `--nodelay` (asyncio then sets TCP_NODELAY, as it does when uvicorn binds itself)."""
    if not NODELAY:
        return socket.create_server((host, port), reuse_port=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


NODELAY = False


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def bare_server(body: bytes) -> AsyncIterator[int]:
    """A bare Starlette endpoint answering `body` as JSON, served like the bridge is."""

    async def status(_request: Any) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/status", status)])
    config = uvicorn.Config(app, log_config=None, lifespan="on", server_header=False)
    sock = bind("127.0.0.1", 0)
    server = _Quiet(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def run_client(args: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), json.dumps(args),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client {args['mode']} exited {proc.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def watch_round(
    transport: str, n: int, server: OctaviaServer, engine: RateEngine,
    stub: jobs_pb2_grpc.JobServiceStub, auth: tuple[tuple[str, str], ...], token: str,
    http_port: int, timeout: float,
) -> dict[str, Any]:
    engine.hold = threading.Event()
    job = (await stub.SubmitJob(pb.SubmitJobRequest(
        content=tone_wav(0.5), filename="clip.wav", target_language="es"), metadata=auth)).job
    await asyncio.sleep(0.3)
    gc.collect()
    rss0 = rss_bytes()
    args = {"mode": transport, "n": n, "job_id": job.job_id, "token": token,
            "address": server.address, "base_url": f"http://127.0.0.1:{http_port}",
            "timeout": timeout}
    client = asyncio.create_task(run_client(args))
    connect_start = time.perf_counter()
    while server.bus.watcher_count(job.job_id) < n:
        if client.done() or time.perf_counter() - connect_start > timeout:
            engine.hold.set()
            await client
            raise RuntimeError(f"{transport}: only {server.bus.watcher_count(job.job_id)}"
                               f" of {n} watchers connected")
        await asyncio.sleep(0.05)
    connect_s = time.perf_counter() - connect_start
    await asyncio.sleep(1.0)  # let buffers and connections settle
    gc.collect()
    rss1 = rss_bytes()
    engine.hold.set()
    result = await client
    result.update(transport=transport, n=n, connect_s=connect_s,
                  emitted=engine.emitted.get(job.job_id, 0),
                  kb_per_watcher=(rss1 - rss0) / n / 1024, job_id=job.job_id)
    return result


async def status_round(
    job_id: str, token: str, http_port: int, seconds: float, concurrency: int,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    url = f"http://127.0.0.1:{http_port}/api/v1/jobs/{job_id}/status"
    async with httpx.AsyncClient() as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        body = response.content
    async with bare_server(body) as bare_port:
        bridge = await run_client({"mode": "load", "url": url, "token": token,
                                   "seconds": seconds, "concurrency": concurrency})
        bare = await run_client({"mode": "load", "url": f"http://127.0.0.1:{bare_port}/status",
                                 "seconds": seconds, "concurrency": concurrency})
    return bridge, bare, len(body)


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.1f}"


def print_watch_table(rows: list[dict[str, Any]]) -> None:
    print("\n### Watchers: emit → receipt latency, delivery, memory\n")
    print("| transport | watchers | connect s | p50 ms | p99 ms | max ms | stamped emitted "
          "| stamped received min / mean | saw 4 phase entries | terminal | errors | KB / idle watcher |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['transport']} | {r['n']:,} | {r['connect_s']:.1f} | {ms(r['p50'])} "
              f"| {ms(r['p99'])} | {ms(r['max'])} | {r['emitted']} "
              f"| {r['stamped_min']} / {r['stamped_mean']:.1f} "
              f"| {r['phase_entries_ok']}/{r['n']} "
              f"| {r['terminal_clients']}/{r['n']} | {r['error_count']} "
              f"| {r['kb_per_watcher']:.1f} |")
    sse = [r for r in rows if r["transport"] == "sse"]
    if sse:
        top = max(sse, key=lambda r: r["n"])
        p99 = (top["p99"] or 0) * 1000
        print(f"\nTarget: SSE p99 < {TARGET_SSE_P99_MS:.0f} ms with 1,000 watchers → measured "
              f"{p99:.1f} ms with {top['n']:,} ({'met' if p99 < TARGET_SSE_P99_MS else 'MISSED'})")
        kb = top["kb_per_watcher"]
        print(f"Target: < {TARGET_KB_PER_SSE_WATCHER:.0f} KB per idle SSE watcher → measured "
              f"{kb:.1f} KB with {top['n']:,} "
              f"({'met' if kb < TARGET_KB_PER_SSE_WATCHER else 'MISSED'})")
    for r in rows:
        if r["errors"]:
            print(f"errors ({r['transport']} × {r['n']}): {r['errors']}")


def print_status_table(bridge: dict[str, Any], bare: dict[str, Any], size: int,
                       seconds: float, concurrency: int) -> None:
    ratio = bridge["rps"] / bare["rps"] if bare["rps"] else 0.0
    print(f"\n### GET status: bridge vs bare endpoint ({size}-byte body, concurrency "
          f"{concurrency}, {seconds:g} s each)\n")
    print("| endpoint | requests | non-2xx | req/s |")
    print("|---|--:|--:|--:|")
    print(f"| bridge /api/v1/jobs/{{id}}/status | {bridge['ok']:,} | {bridge['bad']} "
          f"| {bridge['rps']:,.0f} |")
    print(f"| bare Starlette constant JSON | {bare['ok']:,} | {bare['bad']} "
          f"| {bare['rps']:,.0f} |")
    print(f"\nbridge / bare = {ratio:.2f} (target ≥ {TARGET_STATUS_RATIO}: "
          f"{'met' if ratio >= TARGET_STATUS_RATIO else 'MISSED'})")


async def main_async(options: argparse.Namespace) -> None:
    watchers = [1, 100] if options.quick else [int(x) for x in options.watchers.split(",")]
    data_dir = Path(tempfile.mkdtemp(prefix="octavia-bench-events-"))
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir / "data", grpc_host="127.0.0.1", grpc_port=0, http_port=0,
        jwt_secret="bench-events-secret-bench-events-secret", progress_interval_seconds=0,
        log_level="WARNING", _env_file=None,
    )
    engine = RateEngine(rate=options.rate, seconds=options.seconds)
    server = OctaviaServer(settings, engine)  # type: ignore[arg-type]
    await server.start()
    token = TokenAuthority(settings).mint("alice")
    auth = (("authorization", f"Bearer {token}"),)
    rows: list[dict[str, Any]] = []
    try:
        async with bridge_server(settings, server.address) as http_port, \
                aio.insecure_channel(server.address) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            for n in watchers:
                for transport in ("grpc", "sse"):
                    started = time.perf_counter()
                    row = await watch_round(transport, n, server, engine, stub, auth, token,
                                            http_port, options.timeout)
                    rows.append(row)
                    print(f"  {transport} × {n}: p50 {ms(row['p50'])} ms, p99 {ms(row['p99'])}"
                          f" ms, {row['kb_per_watcher']:.1f} KB/watcher "
                          f"({time.perf_counter() - started:.1f} s)", flush=True)
            bridge, bare, size = await status_round(rows[-1]["job_id"], token, http_port,
                                                    options.status_seconds, options.concurrency)
    finally:
        await server.stop(grace=0.5)
    print_watch_table(rows)
    print_status_table(bridge, bare, size, options.status_seconds, options.concurrency)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    print(f"\nMachine: nproc {os.cpu_count()}, {cpu}; rate {options.rate:g} events/s for "
          f"{options.seconds:g} s per job; clients in a subprocess; "
          f"{'--nodelay (bridge socket patched)' if NODELAY else 'bridge socket as shipped'}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", default="1,100,1000",
                        help="comma-separated watcher counts (default 1,100,1000)")
    parser.add_argument("--quick", action="store_true", help="1 and 100 watchers only")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="job length, seconds")
    parser.add_argument("--status-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on connecting / finishing one round, seconds")
    parser.add_argument("--nodelay", action="store_true",
                        help="bind the bridge (and the bare app) with proto IPPROTO_TCP so "
                             "accepted sockets get TCP_NODELAY (what a fix would do)")
    options = parser.parse_args()
    if options.nodelay:
        global NODELAY
        NODELAY = True
        import bridge.run

        bridge.run._bind = bind  # type: ignore[assignment]
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(options))


if __name__ == "__main__":
    main()
