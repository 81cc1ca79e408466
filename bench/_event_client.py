"""Client side of `bench/events.py`, run in its own process so the server's event loop is
not the clients' loop. One JSON argument in, one JSON object out (stdout).

Modes:
- grpc: `n` WatchJob streams on `job_id` (spread over channels of at most 100 streams).
- sse: `n` bridge SSE streams on `job_id` (raw sockets in one epoll loop, `SseStream`).
- load: `concurrency` keep-alive connections sending GET `url` back to back for
  `seconds` (`KeepAlive`); counts 2xx answers and times each.

Watchers parse `t=<wall clock>` out of `current_step` and record receipt - emit for every
message whose step text differs from the one before (the terminal event repeats the last
step text, so it is counted but not timed).
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import statistics
import sys
import time
from typing import Any

STAMP = re.compile(r"t=(\d+\.\d+)")
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)\r\n")
RECV_BYTES = 65_536
"""Per `recv`. Not larger: CPython allocates the whole size for each call and glibc
serves 256 KB with an mmap and munmap, which cost ~16 µs a read here; at 64 KB a read of
one SSE message costs ~3 µs, so the client stops being what the latency measures."""
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


class SseStream:
    """One EventSource-like stream over a raw non-blocking socket: HTTP/1.1 GET, chunked
    body, SSE blocks. While the stream runs it only keeps each read and its time; parsing
    waits until every stream has ended (`replay`). So the figure is the server's delay,
    not this process's: an httpx client parsing 1,000 live streams here fell seconds
    behind with every byte already sent, and a browser parses each stream in its own tab.
    """

    def __init__(self, sock: socket.socket, tally: Tally, errors: list[str]) -> None:
        self.sock = sock
        self.tally = tally
        self.errors = errors
        self.reads: list[tuple[float, bytes]] = []
        self.tail = b""

    def read(self, now: float) -> bool:
        """Take what the socket has; True once the stream is over."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return False
        except OSError as error:
            self.errors.append(repr(error)[:200])
            return True
        if not data:
            self.errors.append("closed before the last chunk")
            return True
        self.reads.append((now, data))
        self.tail = (self.tail + data[-16:])[-16:]
        return self.tail.endswith(b"\r\n0\r\n\r\n")  # the chunked body's last chunk

    def replay(self) -> None:
        """Parse what was read, each message timed by the read that completed it."""
        raw = body = b""
        headers_done = False
        for now, data in self.reads:
            raw += data
            if not headers_done:
                end = raw.find(b"\r\n\r\n")
                if end < 0:
                    continue
                status = raw[:raw.find(b"\r\n")]
                if b" 200 " not in status:
                    self.errors.append(f"HTTP {status.decode(errors='replace')}"[:200])
                    return
                headers_done = True
                raw = raw[end + 4:]
            position = 0
            while True:  # chunked transfer coding
                line_end = raw.find(b"\r\n", position)
                if line_end < 0:
                    break
                size = int(raw[position:line_end], 16)
                if len(raw) < line_end + 2 + size + 2:
                    break
                body += raw[line_end + 2:line_end + 2 + size]
                position = line_end + 2 + size + 2
            raw = raw[position:]
            while (block_end := body.find(b"\n\n")) >= 0:
                block, body = body[:block_end], body[block_end + 2:]
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        job = json.loads(line[6:])
                        self.tally.see(job.get("current_step") or "", job.get("phase") or "",
                                       job.get("status") in TERMINAL, now)


TERMINAL = {"completed", "failed", "cancelled"}


def sse_watch(args: dict[str, Any]) -> dict[str, Any]:
    """`n` streams read by one epoll loop in plain Python: a read costs a `recv` and an
    append, several times less than an asyncio protocol's, so 1,000 streams do not make
    this process (on the same two cores as the server) the one that falls behind."""
    n = args["n"]
    host, _, port = args["base_url"].removeprefix("http://").partition(":")
    request = (f"GET /api/v1/jobs/{args['job_id']}/stream HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {args['token']}\r\nAccept: text/event-stream\r\n"
               "\r\n").encode()
    tallies = [Tally() for _ in range(n)]
    errors: list[str] = []
    streams: list[SseStream] = []
    poller = select.epoll()
    live: dict[int, SseStream] = {}
    for tally in tallies:
        try:
            sock = socket.create_connection((host, int(port)))
        except OSError as error:
            errors.append(repr(error)[:200])
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        sock.setblocking(False)
        stream = SseStream(sock, tally, errors)
        streams.append(stream)
        live[sock.fileno()] = stream
        poller.register(sock.fileno(), select.EPOLLIN)
    deadline = time.monotonic() + args["timeout"]
    while live:
        left = deadline - time.monotonic()
        if left <= 0:
            errors.append(f"timeout with {len(live)} streams open")
            break
        for fd, _ in poller.poll(min(left, 1.0)):
            stream = live[fd]
            if stream.read(time.time()):
                poller.unregister(fd)
                stream.sock.close()
                del live[fd]
    for stream in live.values():
        stream.sock.close()
    poller.close()
    streaming_cpu = time.process_time()
    for stream in streams:
        stream.replay()
    return {**summary(tallies, errors), "client_streaming_cpu_s": streaming_cpu}


class KeepAlive(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection sending GETs one after another: a wrk-like
    loop costing a few microseconds a request, so the server, not this process, is what
    runs out (an httpx loop at concurrency 32 saturated here at ~350 req/s, below what
    the bare endpoint answers to a single connection)."""

    def __init__(self, request: bytes, deadline: float, latencies: list[float],
                 statuses: list[int]) -> None:
        self.request = request
        self.deadline = deadline
        self.latencies = latencies
        self.statuses = statuses
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers have it

    def go(self) -> None:
        assert self.transport is not None
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        match = CONTENT_LENGTH.search(buffer, 0, end + 2)
        length = int(match.group(1)) if match else 0
        if len(buffer) < end + 4 + length:
            self.buffer = buffer
            return
        self.buffer = buffer[end + 4 + length:]
        now = time.perf_counter()
        self.latencies.append(now - self.sent)
        self.statuses.append(int(buffer[9:12]))
        if now < self.deadline:
            self.go()
        elif not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc!r}"))


async def load(args: dict[str, Any]) -> dict[str, Any]:
    c = args["concurrency"]
    url = args["url"].removeprefix("http://")
    address, _, path = url.partition("/")
    host, _, port = address.partition(":")
    auth = f"Authorization: Bearer {args['token']}\r\n" if args.get("token") else ""
    request = f"GET /{path} HTTP/1.1\r\nHost: {address}\r\n{auth}\r\n".encode()
    loop = asyncio.get_running_loop()
    warm: list[float] = []
    latencies: list[float] = []
    statuses: list[int] = []
    connections = []
    for _ in range(c):  # connect and warm each connection up before the clock starts
        _, protocol = await loop.create_connection(
            lambda: KeepAlive(request, 0.0, warm, []), host, int(port))
        protocol.go()
        await protocol.done
        connections.append(protocol)
    start = time.perf_counter()
    for protocol in connections:
        protocol.deadline = start + args["seconds"]
        protocol.latencies, protocol.statuses = latencies, statuses
        protocol.done = loop.create_future()
        protocol.go()
    await asyncio.gather(*(protocol.done for protocol in connections))
    elapsed = time.perf_counter() - start
    for protocol in connections:
        assert protocol.transport is not None
        protocol.transport.close()
    ok = sum(1 for status in statuses if status < 300)
    return {"ok": ok, "bad": len(statuses) - ok, "seconds": elapsed, "rps": ok / elapsed,
            "median": statistics.median(latencies) if latencies else None}


def main() -> None:
    args = json.loads(sys.argv[1])
    if args["mode"] == "sse":
        result = sse_watch(args)
    else:
        result = asyncio.run({"grpc": grpc_watch, "load": load}[args["mode"]](args))
    result["client_cpu_s"] = time.process_time()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
