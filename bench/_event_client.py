"""Client side of `bench/events.py`, run in its own process so the server's event loop is
not the clients' loop. One JSON argument in, one JSON object out (stdout).

Modes:
- grpc: `n` WatchJob streams on `job_id` (spread over channels of at most 100 streams).
- sse: `n` bridge SSE streams on `job_id` (one httpx client, high connection limits).
- load: `concurrency` loops of GET `url` for `seconds`; counts 2xx answers.

Watchers parse `t=<wall clock>` out of `current_step` and record receipt − emit for every
message whose step text differs from the one before (the terminal event repeats the last
step text, so it is counted but not timed).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import statistics
import sys
import time
from typing import Any

STAMP = re.compile(r"t=(\d+\.\d+)")
ENTER = re.compile(r"^t=\d+\.\d+ (\w+)$")  # a phase entry; progress steps end in a tick


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.stamped = 0
        self.phases: set[str] = set()
        self.entered: list[str] = []
        self.terminal = 0
        self.messages = 0
        self._last_step: str | None = None

    def see(self, step: str, phase: str, terminal: bool, now: float) -> None:
        self.messages += 1
        if phase:
            self.phases.add(phase)
        if terminal:
            self.terminal += 1
        if step != self._last_step:
            self._last_step = step
            match = STAMP.search(step)
            if match:
                entry = ENTER.match(step)
                if entry:
                    self.entered.append(entry.group(1))
                self.stamped += 1
                self.latencies.append(now - float(match.group(1)))


def summary(tallies: list[Tally], errors: list[str]) -> dict[str, Any]:
    latencies = sorted(x for t in tallies for x in t.latencies)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    stamped = [t.stamped for t in tallies]
    return {
        "clients": len(tallies),
        "errors": errors[:5],
        "error_count": len(errors),
        "p50": pct(0.50), "p99": pct(0.99), "max": latencies[-1] if latencies else None,
        "timed": len(latencies),
        "stamped_min": min(stamped, default=0),
        "stamped_mean": statistics.fmean(stamped) if stamped else 0,
        "phase_entries_ok": sum(1 for t in tallies if len(t.entered) == 4),
        "terminal_clients": sum(1 for t in tallies if t.terminal == 1),
        "messages": sum(t.messages for t in tallies),
    }


async def grpc_watch(args: dict[str, Any]) -> dict[str, Any]:
    from grpc import aio
    from octavia.v1 import jobs_pb2 as pb
    from octavia.v1 import jobs_pb2_grpc

    n = args["n"]
    metadata = (("authorization", f"Bearer {args['token']}"),)
    channels = [aio.insecure_channel(args["address"]) for _ in range((n + 99) // 100)]
    stubs = [jobs_pb2_grpc.JobServiceStub(c) for c in channels]
    terminal = {pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED}
    tallies = [Tally() for _ in range(n)]
    errors: list[str] = []

    async def one(i: int) -> None:
        tally = tallies[i]
        try:
            call = stubs[i // 100].WatchJob(pb.WatchJobRequest(job_id=args["job_id"]),
                                            metadata=metadata)
            async for message in call:
                now = time.time()
                job = message.job
                tally.see(job.current_step, str(job.phase) if job.phase else "",
                          job.status in terminal, now)
        except Exception as error:
            errors.append(repr(error)[:200])

    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), args["timeout"])
    except TimeoutError:
        errors.append("timeout")
    for channel in channels:
        await channel.close()
    return summary(tallies, errors)


async def sse_watch(args: dict[str, Any]) -> dict[str, Any]:
    import httpx

    n = args["n"]
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    headers = {"Authorization": f"Bearer {args['token']}"}
    tallies = [Tally() for _ in range(n)]
    errors: list[str] = []
    url = f"/api/v1/jobs/{args['job_id']}/stream"
    terminal = {"completed", "failed", "cancelled"}

    async with httpx.AsyncClient(base_url=args["base_url"], limits=limits,
                                 timeout=args["timeout"]) as http:
        async def one(i: int) -> None:
            tally = tallies[i]
            try:
                async with http.stream("GET", url, headers=headers) as response:
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}")
                        return
                    buffer = ""
                    async for chunk in response.aiter_text():
                        now = time.time()
                        buffer += chunk
                        while "\n\n" in buffer:
                            block, buffer = buffer.split("\n\n", 1)
                            for line in block.split("\n"):
                                if line.startswith("data: "):
                                    job = json.loads(line[6:])
                                    tally.see(job.get("current_step") or "",
                                              job.get("phase") or "",
                                              job.get("status") in terminal, now)
            except Exception as error:
                errors.append(repr(error)[:200])

        try:
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))),
                                   args["timeout"])
        except TimeoutError:
            errors.append("timeout")
    return summary(tallies, errors)


async def load(args: dict[str, Any]) -> dict[str, Any]:
    import httpx

    c = args["concurrency"]
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    headers = {"Authorization": f"Bearer {args['token']}"} if args.get("token") else {}
    counts = {"ok": 0, "bad": 0}
    # Nagle off on the client side, as a browser has it; without it each request waits
    # for the server's delayed ACK (~40 ms on Linux loopback) and both endpoints measure
    # that wait instead of themselves.
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    async with httpx.AsyncClient(transport=transport, timeout=10) as http:
        # Warm the connections up before the clock starts.
        await asyncio.gather(*(http.get(args["url"], headers=headers) for _ in range(c)))
        deadline = time.perf_counter() + args["seconds"]

        async def loop() -> None:
            while time.perf_counter() < deadline:
                response = await http.get(args["url"], headers=headers)
                counts["ok" if response.status_code < 300 else "bad"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(c)))
        elapsed = time.perf_counter() - start
    return {"ok": counts["ok"], "bad": counts["bad"], "seconds": elapsed,
            "rps": counts["ok"] / elapsed}


def main() -> None:
    args = json.loads(sys.argv[1])
    mode = {"grpc": grpc_watch, "sse": sse_watch, "load": load}[args["mode"]]
    result = asyncio.run(mode(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
