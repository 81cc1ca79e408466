"""Benchmark the event path: engine progress → EventBus → gRPC WatchJob / bridge SSE,
and the bridge's cost on GET /status; prints tables.

    .venv/bin/python bench/events.py                  # 1, 100 and 1,000 watchers
    .venv/bin/python bench/events.py --quick          # 1 and 100 only
    .venv/bin/python bench/events.py --watchers 1,500 --rate 20 --seconds 5

Each round runs in a fresh server process (this script with `--round`): the in-process
gRPC service, the bridge (uvicorn, as `bridge.run` serves it) and, for the status round,
a bare Starlette app served the same way. Every client runs in another subprocess
(`bench/_event_client.py`), so the server's loop is not the clients' loop; both share
this machine's cores, as they would on loopback.

- Latency: the engine writes `t=<time.time()>` into the step text of every event it
  emits (phase entries and progress); the client subtracts it from `time.time()` taken
  when the read that completed the message returned. Both ends read the same wall clock.
- Delivery: progress events may be coalesced by design when a watcher falls behind
  (`watch_buffer` on the server, the bridge's per-client queue); phase changes and the
  terminal event must all arrive, counted apart.
- Memory: RSS of the server process with N watchers connected and idle (the job is held
  before its first phase) minus RSS before they connected, divided by N. A fresh process
  per round, so no round reuses the heap an earlier one grew.
- Server CPU: the server process's CPU seconds from releasing the job to the last client
  finishing (engine, store, gRPC, bridge).
- Status: the same request loop (concurrency 32, then 1; fixed duration) against the
  bridge's GET /api/v1/jobs/{id}/status as configured (answers up to
  `bridge_status_max_age_seconds` old, one GetStatus per interval) and a bare endpoint
  returning a constant body of the same bytes, in `--pairs` back-to-back pairs (order
  swapped each pair; the ratio is the median pair's); then once the same endpoint asking
  the server on every request (max age 0). `--watchers ""` runs the status round alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from grpc import aio  # noqa: E402
from octavia.v1 import jobs_pb2 as pb  # noqa: E402
from octavia.v1 import jobs_pb2_grpc  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bridge.app import create_app  # noqa: E402
from bridge.run import serve_asgi  # noqa: E402
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


@contextlib.asynccontextmanager
async def bare_server(body: bytes) -> AsyncIterator[int]:
    """A bare Starlette endpoint answering `body` as JSON, served exactly as the bridge is
    (`bridge.run.serve_asgi`: same socket options, same uvicorn settings)."""

    async def status(_request: Any) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/status", status)])
    async with serve_asgi(app, "127.0.0.1", 0) as port:
        yield port


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
    bridge: Starlette, http_port: int, timeout: float,
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

    def watching() -> int:
        # SSE clients wait on the bridge's feed of the job; gRPC ones on the server's bus.
        if transport == "sse":
            return int(bridge.state.feeds.watcher_count(job.job_id))
        return server.bus.watcher_count(job.job_id)

    while watching() < n:
        if client.done() or time.perf_counter() - connect_start > timeout:
            engine.hold.set()
            await client
            raise RuntimeError(f"{transport}: only {watching()} of {n} watchers connected")
        await asyncio.sleep(0.05)
    connect_s = time.perf_counter() - connect_start
    await asyncio.sleep(1.0)  # let buffers and connections settle
    gc.collect()
    rss1 = rss_bytes()
    upstream = server.bus.watcher_count(job.job_id)
    cpu0 = time.process_time()
    engine.hold.set()
    result = await client
    server_cpu = time.process_time() - cpu0
    result.update(transport=transport, n=n, connect_s=connect_s, upstream=upstream,
                  server_cpu_s=server_cpu,
                  emitted=engine.emitted.get(job.job_id, 0),
                  kb_per_watcher=(rss1 - rss0) / n / 1024, job_id=job.job_id)
    return result


async def status_round(
    job_id: str, token: str, http_port: int, seconds: float, concurrency: int,
    bridge: Starlette, pairs: int,
) -> tuple[dict[str, dict[str, Any]], int]:
    """The bridge as configured (`bridge_status_max_age_seconds`) against the bare
    endpoint, `pairs` times back to back at `concurrency` and at 1, the order swapped each
    pair so drift in the machine's load falls on both sides (after a second of each
    unmeasured); then once the bridge asking the server on every request (max age 0)."""
    statuses = bridge.state.statuses
    max_age = statuses.max_age
    url = f"http://127.0.0.1:{http_port}/api/v1/jobs/{job_id}/status"
    async with httpx.AsyncClient() as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        body = response.content
    rounds: dict[str, dict[str, Any]] = {}

    async def bridge_load(c: int, age: float) -> dict[str, Any]:
        statuses.max_age = age
        hits, fetches = statuses.hits, statuses.fetches
        try:
            result = await run_client({"mode": "load", "url": url, "token": token,
                                       "seconds": seconds, "concurrency": c})
        finally:
            statuses.max_age = max_age
        return {**result, "server_calls": statuses.fetches - fetches,
                "cache_hits": statuses.hits - hits}

    async with bare_server(body) as bare_port:
        bare_url = f"http://127.0.0.1:{bare_port}/status"

        async def bare_load(c: int) -> dict[str, Any]:
            return await run_client({"mode": "load", "url": bare_url, "seconds": seconds,
                                     "concurrency": c})

        for warm_url in (url, bare_url):  # first requests of a process run colder code
            await run_client({"mode": "load", "url": warm_url, "token": token, "seconds": 1.0,
                              "concurrency": concurrency})
        for c in (concurrency, 1):
            runs: dict[str, list[dict[str, Any]]] = {"bridge": [], "bare": []}
            for pair in range(pairs):
                for who in (("bridge", "bare") if pair % 2 == 0 else ("bare", "bridge")):
                    runs[who].append(await (bridge_load(c, max_age) if who == "bridge"
                                            else bare_load(c)))
            for who, results in runs.items():
                rounds[f"{who} {c}"] = _pooled(results)
            rounds[f"ratio {c}"] = {"each": [b["rps"] / a["rps"] if a["rps"] else 0.0
                                             for b, a in zip(runs["bridge"], runs["bare"],
                                                             strict=True)]}
            rounds[f"uncached {c}"] = await bridge_load(c, 0.0)
    rounds["max_age"] = {"seconds": max_age}
    return rounds, len(body)


def _pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one endpoint as one row: totals, and the median run's req/s."""
    pooled: dict[str, Any] = {
        "ok": sum(r["ok"] for r in results), "bad": sum(r["bad"] for r in results),
        "rps": statistics.median(r["rps"] for r in results),
        "rps_each": [r["rps"] for r in results],
        "median": statistics.median(r["median"] for r in results if r["median"] is not None),
    }
    if "server_calls" in results[0]:
        pooled["server_calls"] = sum(r["server_calls"] for r in results)
    return pooled


async def status_parts(h: Harness, job_id: str, times: int = 300) -> dict[str, float]:
    """Where a bridge status request's time goes: the same steps alone, one at a time."""
    request = pb.GetStatusRequest(job_id=job_id)
    parts: dict[str, float] = {}
    started = time.perf_counter()
    for _ in range(times):
        await h.server.store.snapshot(job_id, "alice")
    parts["store snapshot (db thread)"] = (time.perf_counter() - started) / times
    started = time.perf_counter()
    for _ in range(times):
        await h.stub.GetStatus(request, metadata=h.auth)
    parts["gRPC GetStatus, in process (includes the snapshot)"] = (
        (time.perf_counter() - started) / times)
    return parts


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.1f}"


def print_watch_table(rows: list[dict[str, Any]]) -> None:
    print("\n### Watchers: emit → receipt latency, delivery, memory\n")
    print("| transport | watchers | server WatchJob streams | connect s | p50 ms | p99 ms "
          "| max ms | stamped emitted | stamped received min / mean | saw 4 phase entries "
          "| terminal | errors | server CPU s | KB / idle watcher |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['transport']} | {r['n']:,} | {r['upstream']:,} | {r['connect_s']:.1f} "
              f"| {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['max'])} | {r['emitted']} "
              f"| {r['stamped_min']} / {r['stamped_mean']:.1f} "
              f"| {r['phase_entries_ok']}/{r['n']} "
              f"| {r['terminal_clients']}/{r['n']} | {r['error_count']} "
              f"| {r['server_cpu_s']:.2f} | {r['kb_per_watcher']:.1f} |")
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


def print_status_table(rounds: dict[str, dict[str, Any]], size: int, seconds: float,
                       concurrency: int, parts: dict[str, float], pairs: int) -> None:
    print(f"\n### GET status: bridge vs bare endpoint ({size}-byte body, {pairs} pairs of "
          f"{seconds:g} s runs, order swapped each pair, served alike)\n")
    max_age = rounds["max_age"]["seconds"]
    print("| endpoint | concurrency | requests | non-2xx | req/s (median run) | req/s each run "
          "| median ms | GetStatus calls |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    names = {"bridge": f"bridge /api/v1/jobs/{{id}}/status (max age {max_age:g} s)",
             "uncached": "bridge, every request asks the server (max age 0)",
             "bare": "bare Starlette constant JSON"}
    for c in (concurrency, 1):
        for who in ("bridge", "bare", "uncached"):
            r = rounds[f"{who} {c}"]
            calls = f"{r['server_calls']:,}" if "server_calls" in r else "—"
            each = " / ".join(f"{x:,.0f}" for x in r.get("rps_each", [r["rps"]]))
            print(f"| {names[who]} | {c} | {r['ok']:,} | {r['bad']} | {r['rps']:,.0f} "
                  f"| {each} | {ms(r['median'])} | {calls} |")
    print("\n| one status request, step alone (sequential) | ms |\n|---|--:|")
    for name, seconds_each in parts.items():
        print(f"| {name} | {seconds_each * 1000:.2f} |")
    for c in (concurrency, 1):
        each = rounds[f"ratio {c}"]["each"]
        ratio = statistics.median(each)
        print(f"\nbridge / bare at concurrency {c} = {ratio:.2f}, median of {len(each)} pairs "
              f"({', '.join(f'{x:.2f}' for x in each)}) (target ≥ {TARGET_STATUS_RATIO}: "
              f"{'met' if ratio >= TARGET_STATUS_RATIO else 'MISSED'})")


# One user opens every watcher here: lift the per-user stream quota where there is one.
_UNLIMITED_STREAMS: dict[str, Any] = (
    {"max_streams_per_user": 1_000_000} if "max_streams_per_user" in Settings.model_fields
    else {})


@contextlib.asynccontextmanager
async def serving(options: argparse.Namespace) -> AsyncIterator[Harness]:
    """The in-process gRPC server with the rate engine, and the bridge beside it."""
    data_dir = Path(tempfile.mkdtemp(prefix="octavia-bench-events-"))
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir / "data", grpc_host="127.0.0.1", grpc_port=0, http_port=0,
        jwt_secret="bench-events-secret-bench-events-secret", progress_interval_seconds=0,
        log_level="WARNING", _env_file=None, **_UNLIMITED_STREAMS,
    )
    engine = RateEngine(rate=options.rate, seconds=options.seconds)
    server = OctaviaServer(settings, engine)  # type: ignore[arg-type]
    await server.start()
    token = TokenAuthority(settings).mint("alice")
    # The bridge as `bridge.run.bridge_server` builds and serves it, kept at hand so the
    # bench can count the SSE clients waiting on its feeds.
    bridge = create_app(settings, server.address)
    try:
        async with serve_asgi(bridge, "127.0.0.1", 0,
                              on_stop=bridge.state.feeds.close) as http_port, \
                aio.insecure_channel(server.address) as channel:
            yield Harness(server, engine, jobs_pb2_grpc.JobServiceStub(channel),
                          (("authorization", f"Bearer {token}"),), token, bridge, http_port)
    finally:
        await server.stop(grace=0.5)


@dataclass
class Harness:
    server: OctaviaServer
    engine: RateEngine
    stub: jobs_pb2_grpc.JobServiceStub
    auth: tuple[tuple[str, str], ...]
    token: str
    bridge: Starlette
    http_port: int


async def one_round(options: argparse.Namespace) -> dict[str, Any]:
    """What a child process runs: one watch round, or the status comparison."""
    async with serving(options) as h:
        if options.round == "status":
            job = (await h.stub.SubmitJob(pb.SubmitJobRequest(
                content=tone_wav(0.5), filename="clip.wav", target_language="es"),
                metadata=h.auth)).job
            rounds, size = await status_round(job.job_id, h.token, h.http_port,
                                              options.status_seconds, options.concurrency,
                                              h.bridge, options.pairs)
            return {"rounds": rounds, "size": size,
                    "parts": await status_parts(h, job.job_id)}
        transport, _, n = options.round.partition(":")
        return await watch_round(transport, int(n), h.server, h.engine, h.stub, h.auth,
                                 h.token, h.bridge, h.http_port, options.timeout)


async def run_round(name: str, options: argparse.Namespace) -> dict[str, Any]:
    """One round in a fresh server process: no heap left over from an earlier round
    (RSS deltas stay honest) and no earlier round's garbage in the way."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--round", name,
        "--rate", str(options.rate), "--seconds", str(options.seconds),
        "--status-seconds", str(options.status_seconds),
        "--concurrency", str(options.concurrency), "--timeout", str(options.timeout),
        "--pairs", str(options.pairs),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"round {name} exited {proc.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def main_async(options: argparse.Namespace) -> None:
    watchers = [1, 100] if options.quick else [int(x) for x in options.watchers.split(",") if x]
    rows: list[dict[str, Any]] = []
    for n in watchers:
        for transport in ("grpc", "sse"):
            started = time.perf_counter()
            row = await run_round(f"{transport}:{n}", options)
            rows.append(row)
            print(f"  {transport} × {n}: p50 {ms(row['p50'])} ms, p99 {ms(row['p99'])}"
                  f" ms, {row['kb_per_watcher']:.1f} KB/watcher "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    status = await run_round("status", options)
    if rows:
        print_watch_table(rows)
    print_status_table(status["rounds"], status["size"], options.status_seconds,
                       options.concurrency, status["parts"], options.pairs)
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), "?")
    print(f"\nMachine: nproc {os.cpu_count()}, {cpu}; rate {options.rate:g} events/s for "
          f"{options.seconds:g} s per job; each round in a fresh server process, its "
          "clients in another.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", default="1,100,1000",
                        help="comma-separated watcher counts (default 1,100,1000)")
    parser.add_argument("--quick", action="store_true", help="1 and 100 watchers only")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="job length, seconds")
    parser.add_argument("--status-seconds", type=float, default=3.0,
                        help="length of each status run, seconds")
    parser.add_argument("--pairs", type=int, default=3,
                        help="bridge / bare status runs, back to back (default 3)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on connecting / finishing one round, seconds")
    parser.add_argument("--round", help=argparse.SUPPRESS)  # grpc:N, sse:N or status
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if options.round:
        print(json.dumps(asyncio.run(one_round(options))), flush=True)
    else:
        asyncio.run(main_async(options))


if __name__ == "__main__":
    main()
