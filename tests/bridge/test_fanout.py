"""The bridge's fan-out: one upstream WatchJob per job and user, encoded once, written to
every SSE client without one client's pace holding up another.

Feeds run here on a scripted upstream call and ASGI `send`s under the test's control, so
a client can be made as slow as wanted, deterministically."""

from __future__ import annotations

import asyncio
import http.client
import statistics
import time
from typing import Any

import pytest
from octavia.v1 import jobs_pb2 as pb
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message

from bridge._fanout import Feeds, Frame, Watcher, WriteQueue
from bridge.auth import Caller
from bridge.run import serve_asgi

JOB = "123e4567-e89b-12d3-a456-426614174000"
ALICE = Caller("alice", "token-a")
BOB = Caller("bob", "token-b")
TRANSCRIBING, TRANSLATING = pb.JOB_PHASE_TRANSCRIBING, pb.JOB_PHASE_TRANSLATING


class Call:
    """A scripted WatchJob call: the test feeds it updates."""

    def __init__(self, request: pb.WatchJobRequest) -> None:
        self.request = request
        self.updates: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = False

    async def read(self) -> Any:
        return await self.updates.get()

    def cancel(self) -> None:
        self.cancelled = True


class Stub:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def WatchJob(self, request: pb.WatchJobRequest, metadata: Any = None) -> Call:
        self.calls.append(Call(request))
        return self.calls[-1]


class Client:
    """An ASGI `send` that can be held shut, like a socket whose buffer is full."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.gate: asyncio.Future[None] | None = None

    async def send(self, message: Message) -> None:
        if self.gate is not None:
            await self.gate
        self.messages.append(message)

    @property
    def ids(self) -> list[int]:
        return [int(line[4:]) for m in self.messages
                for line in m["body"].decode().split("\n") if line.startswith("id: ")]

    @property
    def ended(self) -> bool:
        return bool(self.messages) and not self.messages[-1]["more_body"]


def update(sequence: int, event: int, phase: int = TRANSCRIBING,
           status: int = pb.JOB_STATUS_PROCESSING) -> pb.WatchJobResponse:
    return pb.WatchJobResponse(sequence=sequence, event_type=event, job=pb.Job(  # type: ignore[arg-type]
        job_id=JOB, status=status, phase=phase, sequence=sequence,  # type: ignore[arg-type]
        current_step=f"step {sequence}"))


async def settle() -> None:
    """Let the feeds' tasks run until they wait on their calls again."""
    for _ in range(20):
        await asyncio.sleep(0)


async def joined(feeds: Feeds, caller: Caller = ALICE, after: int = 0) -> Watcher:
    result = await feeds.watch(JOB, caller, after)
    assert result is not None
    return result[1]


async def test_clients_of_one_user_share_one_upstream_call_and_one_encoding() -> None:
    stub = Stub()
    feeds = Feeds(lambda: stub, heartbeat=60)
    first = asyncio.create_task(joined(feeds))
    await settle()
    stub.calls[0].updates.put_nowait(update(1, pb.EVENT_TYPE_UNSPECIFIED))
    watchers = [await first] + [await joined(feeds) for _ in range(9)]
    other = asyncio.create_task(joined(feeds, BOB))
    await settle()
    assert len(stub.calls) == 2, "one call per user, whatever the number of clients"
    stub.calls[1].updates.put_nowait(update(1, pb.EVENT_TYPE_UNSPECIFIED))
    await other
    clients = [Client() for _ in watchers]
    for watcher, client in zip(watchers, clients, strict=True):
        await watcher.attach(client.send, b"")
    stub.calls[0].updates.put_nowait(update(2, pb.EVENT_TYPE_PROGRESS))
    await settle()
    bodies = [client.messages[-1]["body"] for client in clients]
    assert all(body is bodies[0] for body in bodies), "encoded once, the same bytes for all"
    assert all(client.ids == [1, 2] for client in clients)
    feeds.close()


async def test_a_slow_client_delays_nobody_and_loses_only_progress_ticks() -> None:
    stub = Stub()
    feeds = Feeds(lambda: stub, heartbeat=60)
    opening = asyncio.create_task(joined(feeds))
    await settle()
    upstream = stub.calls[0].updates
    upstream.put_nowait(update(1, pb.EVENT_TYPE_UNSPECIFIED))
    fast_watcher, slow_watcher = await opening, await joined(feeds)
    fast, slow = Client(), Client()
    await fast_watcher.attach(fast.send, b"retry: 1\n\n")
    await slow_watcher.attach(slow.send, b"retry: 1\n\n")
    slow.gate = asyncio.get_running_loop().create_future()  # its socket stops draining

    script = [update(2, pb.EVENT_TYPE_PROGRESS)]
    script += [update(s, pb.EVENT_TYPE_PROGRESS) for s in range(3, 40)]
    script += [update(40, pb.EVENT_TYPE_PHASE_CHANGED, TRANSLATING)]
    script += [update(s, pb.EVENT_TYPE_PROGRESS, TRANSLATING) for s in range(41, 80)]
    script += [update(80, pb.EVENT_TYPE_COMPLETED, TRANSLATING, pb.JOB_STATUS_COMPLETED)]
    for message in script:
        upstream.put_nowait(message)
        await settle()
        # The fast client has each update as soon as the feed read it.
        assert fast.ids[-1] == message.sequence
    assert fast.ids == list(range(1, 81)) and fast.ended
    assert slow.ids == [1] and not slow.ended  # still stuck on its second write

    slow.gate.set_result(None)
    slow.gate = None
    await settle()
    assert slow.ended
    ids = slow.ids
    assert ids == sorted(set(ids)), "in order, nothing twice"
    assert {1, 2, 40, 80} <= set(ids), "the snapshot, the phase change, the terminal event"
    assert len(ids) < 80, "progress ticks were coalesced while it lagged"
    assert slow_watcher.coalesced > 0
    feeds.close()


async def test_clients_are_written_in_batches_and_a_late_update_shares_the_write() -> None:
    """One update for many clients is written a batch per loop iteration, so the loop
    runs between batches; clients still waiting their turn when the next update comes
    get both in one write."""
    writes = WriteQueue(batch=4)
    watchers = [Watcher(0, writes) for _ in range(10)]
    clients = [Client() for _ in watchers]
    for watcher, client in zip(watchers, clients, strict=True):
        await watcher.attach(client.send, b"")
    progress = Frame(1, b"id: 1\ndata: {}\n\n", coalescible=True)
    phase = Frame(2, b"id: 2\ndata: {}\n\n", coalescible=False)

    for watcher in watchers:
        watcher.offer(progress)
    assert not any(client.messages for client in clients), "written in turn, not at once"
    await asyncio.sleep(0)
    assert [len(client.messages) for client in clients] == [1] * 4 + [0] * 6

    for watcher in watchers:
        watcher.offer(phase)
    await settle()
    assert all(client.ids == [1, 2] for client in clients), "in order, nothing lost"
    assert [len(client.messages) for client in clients] == [2] * 4 + [1] * 6
    assert all(watcher.coalesced == 0 for watcher in watchers), "a phase change is never merged"


async def test_resuming_client_joins_the_feed_or_replays_what_it_missed() -> None:
    stub = Stub()
    feeds = Feeds(lambda: stub, heartbeat=60)
    opening = asyncio.create_task(joined(feeds))
    await settle()
    shared = stub.calls[0]
    shared.updates.put_nowait(update(5, pb.EVENT_TYPE_UNSPECIFIED))
    await opening

    current = await joined(feeds, after=5)  # has everything the feed has: joins it
    assert len(stub.calls) == 1
    behind = await joined(feeds, after=3)  # missed 4 and 5: its own replaying call
    assert len(stub.calls) == 2 and stub.calls[1].request.after_sequence == 3
    clients = [Client(), Client()]
    await current.attach(clients[0].send, b"")
    await behind.attach(clients[1].send, b"")
    for sequence in (4, 5, 6):
        stub.calls[1].updates.put_nowait(update(sequence, pb.EVENT_TYPE_PROGRESS))
    shared.updates.put_nowait(update(6, pb.EVENT_TYPE_PROGRESS))
    await settle()
    assert clients[0].ids == [6]
    assert clients[1].ids == [4, 5, 6]
    feeds.close()
    assert all(call.cancelled for call in stub.calls)
    await settle()
    assert all(client.ended for client in clients), "a stopping bridge ends every body"


async def test_a_finished_job_answers_none_to_a_client_that_has_it_all() -> None:
    stub = Stub()
    feeds = Feeds(lambda: stub, heartbeat=60)
    opening = asyncio.create_task(feeds.watch(JOB, ALICE, 7))
    await settle()
    stub.calls[0].updates.put_nowait(
        update(7, pb.EVENT_TYPE_UNSPECIFIED, status=pb.JOB_STATUS_COMPLETED))
    assert await opening is None  # the route answers 204: EventSource stops reconnecting
    assert feeds.feed_count() == 0 and stub.calls[0].cancelled


async def test_last_client_leaving_cancels_the_upstream_call() -> None:
    stub = Stub()
    feeds = Feeds(lambda: stub, heartbeat=60)
    opening = asyncio.create_task(feeds.watch(JOB, ALICE, 0))
    await settle()
    stub.calls[0].updates.put_nowait(update(1, pb.EVENT_TYPE_UNSPECIFIED))
    first = await opening
    second = await feeds.watch(JOB, ALICE, 0)
    assert first is not None and second is not None
    feeds.release(*first)
    assert not stub.calls[0].cancelled
    feeds.release(*second)
    assert stub.calls[0].cancelled and feeds.feed_count() == 0


async def test_quiet_feed_sends_heartbeats_to_its_clients() -> None:
    stub = Stub()
    feeds = Feeds(lambda: stub, heartbeat=0.05)
    opening = asyncio.create_task(joined(feeds))
    await settle()
    stub.calls[0].updates.put_nowait(update(1, pb.EVENT_TYPE_UNSPECIFIED))
    watcher = await opening
    client = Client()
    await watcher.attach(client.send, b"")
    await asyncio.sleep(0.2)
    assert [m["body"] for m in client.messages[1:3]] == [b": keep-alive\n\n"] * 2
    feeds.close()


@pytest.fixture
async def tiny_server() -> Any:
    async def status(_request: Any) -> JSONResponse:
        return JSONResponse({"status": "processing", "pad": "x" * 800})

    app = Starlette(routes=[Route("/status", status)])
    async with serve_asgi(app, "127.0.0.1", 0) as port:
        yield port


async def test_keep_alive_requests_do_not_wait_for_a_delayed_ack(tiny_server: int) -> None:
    """Each keep-alive request once took ~44 ms on loopback: the bridge bound its socket
    with `socket.create_server` (proto 0), so asyncio never set TCP_NODELAY on accepted
    connections, and Nagle held uvicorn's body write until the client's delayed ACK of the
    headers. `bridge.run._bind` now opens the socket as IPPROTO_TCP."""

    def timings() -> list[float]:
        connection = http.client.HTTPConnection("127.0.0.1", tiny_server, timeout=10)
        seconds = []
        for _ in range(15):
            started = time.perf_counter()
            connection.request("GET", "/status")
            connection.getresponse().read()
            seconds.append(time.perf_counter() - started)
        connection.close()
        return seconds

    median = statistics.median((await asyncio.to_thread(timings))[1:])
    assert median < 0.02, f"median {median * 1000:.1f} ms per request"
