"""One upstream `WatchJob` per job and user in a bridge process, fanned out to its SSE clients.

A `Feed` reads the job's gRPC stream, encodes each update as an SSE message once, and
offers the bytes to every `Watcher` (one per browser), which queues them and waits its
turn in the process's `WriteQueue`: the queue writes a batch of clients per loop
iteration, so 1,000 clients of one update do not hold the loop for the whole fan-out, and
an update that arrives meanwhile reaches the clients not yet written in the same write as
the one before. A client whose socket cannot take more gets a task that finishes that
write, and a queue meanwhile, so it never holds up the feed or the other clients: while
it lags, a new progress message replaces the progress message still waiting in its queue
(every message carries the whole job, so only intermediate ticks are lost); phase changes
and the terminal message are never merged or dropped, the same rule as the server's bus.

Feeds are shared by `(job_id, user)`: the server answers every caller of one user alike,
so N browsers of a user on one job cost one gRPC stream, one JSON encoding per update and
one server-side subscription, whatever N is. A new client starts from the feed's latest
message, which is a full snapshot, exactly what a fresh `WatchJob` would have sent first.
A client resuming with `Last-Event-ID` joins the feed too when it is not behind it;
otherwise it gets a private feed that replays what it missed (`after_sequence`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import grpc
from grpc import aio
from octavia.jobjson import TERMINAL_STATUSES, job_to_json
from octavia.v1 import jobs_pb2 as pb
from starlette.types import Message, Send

from .auth import Caller
from .errors import BridgeError

log = logging.getLogger(__name__)

COALESCIBLE = frozenset({pb.EVENT_TYPE_PROGRESS, pb.EVENT_TYPE_UPDATED})
"""Event types a lagging client may skip; the same as the server's `is_coalescible`."""


class Frame:
    """One encoded SSE message (or a heartbeat comment), shared by every client."""

    __slots__ = ("chunk", "coalescible", "sequence", "terminal")

    def __init__(self, sequence: int, chunk: bytes, *, coalescible: bool,
                 terminal: bool = False) -> None:
        self.sequence = sequence
        self.chunk = chunk
        self.coalescible = coalescible
        self.terminal = terminal


HEARTBEAT = Frame(-1, b": keep-alive\n\n", coalescible=True)


def encode(update: pb.WatchJobResponse) -> Frame:
    """`id:` and `data:` only, so `EventSource.onmessage` receives it."""
    data = job_to_json(update.job)
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return Frame(
        update.sequence,
        f"id: {update.sequence}\ndata: {body}\n\n".encode(),
        coalescible=update.event_type in COALESCIBLE,
        terminal=data["status"] in TERMINAL_STATUSES,
    )


class WriteQueue:
    """The watchers with something to write, written in turn, `batch` per loop iteration.

    Writing one update to 1,000 sockets takes 10 to 30 ms of syscalls. Done in one go it
    would hold the event loop that long (upstream reads, status requests and other feeds
    wait), and an update arriving during it would wait for the whole of it before its own
    fan-out began. In batches, the loop runs between them; a watcher still waiting its
    turn when the next update comes takes both in one write."""

    def __init__(self, batch: int = 64) -> None:
        self.batch = batch
        self._due: deque[Watcher] = deque()
        self._scheduled = False

    def add(self, watcher: Watcher) -> None:
        if watcher.waiting_turn:
            return
        watcher.waiting_turn = True
        self._due.append(watcher)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write_batch)

    def _write_batch(self) -> None:
        due = self._due
        try:
            for _ in range(min(self.batch, len(due))):
                watcher = due.popleft()
                watcher.waiting_turn = False
                watcher.write_turn()
        finally:  # whatever one watcher raised (the loop logs it), the others get their turn
            if due:
                asyncio.get_running_loop().call_soon(self._write_batch)
            else:
                self._scheduled = False


class Watcher:
    """One SSE client: written in its turn in the `WriteQueue` while its socket keeps up,
    queued (and coalesced) while it does not.

    Until `attach` (the response has sent its headers) frames only queue. After it, an
    offered frame queues and the watcher takes a turn in the write queue, which sends
    what queued by driving the ASGI `send` coroutine by hand: no task wakes up per
    message, which is what lets one feed serve a thousand clients. Only when that send has
    to wait (the client's socket buffer is full) does a task take it over and write
    everything that queued meanwhile as one chunk; the feed never waits for anybody.
    """

    __slots__ = ("_frames", "_send", "_task", "_writes", "_writing", "coalesced", "complete",
                 "ended", "gone", "last", "waiting_turn")

    def __init__(self, after: int, writes: WriteQueue) -> None:
        self._frames: deque[Frame] = deque()
        self._send: Send | None = None
        self._task: asyncio.Task[None] | None = None
        self._writes = writes
        self.waiting_turn = False
        """In the write queue."""
        self._writing = True  # until attached: frames queue
        self.last = after
        """The last sequence this client has: anything at or below it is not sent again."""
        self.ended = False
        """Nothing more will come: write out what is queued, then end the body."""
        self.complete = False
        """The body has ended (`more_body: False` sent)."""
        self.gone = False
        """The client left: write nothing more."""
        self.coalesced = 0

    def offer(self, frame: Frame) -> None:
        if self.ended or self.gone or frame.sequence <= self.last:
            return
        self.last = frame.sequence
        frames = self._frames
        if frames and frame.coalescible and frames[-1].coalescible:
            frames[-1] = frame
            self.coalesced += 1
        else:
            frames.append(frame)
        if frame.terminal:
            self.ended = True
        if not self._writing:
            self._writes.add(self)

    def heartbeat(self) -> None:
        if not self._frames and not self.ended and not self.gone:
            self._frames.append(HEARTBEAT)
            if not self._writing:
                self._writes.add(self)

    def end(self) -> None:
        """End the body once what is queued is written (EventSource then reconnects)."""
        if self.ended or self.gone:
            return
        self.ended = True
        if not self._writing:
            self._writes.add(self)

    def stop(self) -> None:
        """The client has gone: drop what is queued, write nothing more."""
        self.gone = True
        self._frames.clear()
        if self._task is not None:
            self._task.cancel()

    async def attach(self, send: Send, prefix: bytes) -> None:
        """Write `prefix` and whatever queued so far; from then on the feed writes."""
        self._send = send
        await self._drain(prefix)

    def _take(self) -> bytes:
        frames = self._frames
        if len(frames) == 1:
            return frames.popleft().chunk
        chunk = b"".join(frame.chunk for frame in frames)
        frames.clear()
        return chunk

    def _message(self, chunk: bytes) -> Message:
        if self.ended:
            self.complete = True
        return {"type": "http.response.body", "body": chunk, "more_body": not self.ended}

    def write_turn(self) -> None:
        """Its turn in the write queue: send what queued since (unless a task is writing,
        or there is nothing left to send)."""
        if self._writing or self.gone or self.complete:
            return
        if not self._frames and not self.ended:
            return
        assert self._send is not None
        sending = self._send(self._message(self._take()))
        waiting: Awaitable[None] = sending
        if isinstance(sending, Coroutine):  # what every ASGI server's `send` is
            try:
                pending = sending.send(None)
            except StopIteration:
                return  # written: the usual case
            except Exception:
                self._failed()
                return
            waiting = _Resume(sending, pending)
        # The send waits for the socket to drain: a task finishes it, then writes what
        # queued meanwhile. Until then offers only queue.
        self._writing = True
        self._task = asyncio.ensure_future(self._finish_write(waiting))

    async def _finish_write(self, waiting: Awaitable[None]) -> None:
        try:
            await waiting
            await self._drain(b"")
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failed()
        finally:
            self._task = None

    async def _drain(self, chunk: bytes) -> None:
        assert self._send is not None
        while not self.gone and not self.complete:
            if self._frames:
                chunk += self._take()
            if not chunk and not self.ended:
                break
            await self._send(self._message(chunk))
            chunk = b""
        self._writing = False

    def _failed(self) -> None:
        log.exception("writing an SSE message failed; dropping the client")
        self.stop()

    def __len__(self) -> int:
        return len(self._frames)


class _Resume:
    """Finishes, in a task, a coroutine that was driven by hand and has suspended.

    `pending` is what the coroutine yielded to its driver (the future it waits on).
    Yielding it from here hands it to the task just as a plain `await` would; whatever the
    task sends or throws back goes on to the coroutine (what `yield from` does)."""

    __slots__ = ("_coroutine", "_pending")

    def __init__(self, coroutine: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coroutine = coroutine
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, pending = self._coroutine, self._pending
        while True:
            try:
                value = yield pending
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:  # cancellation included: it goes on down
                try:
                    pending = coroutine.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    pending = coroutine.send(value)
                except StopIteration:
                    return


class Feed:
    """One `WatchJob` call, read by one task and fanned out to its watchers."""

    def __init__(self, call: Any, job_id: str, heartbeat: float,
                 on_end: Callable[[Feed], None], key: tuple[str, str] | None) -> None:
        self.job_id = job_id
        self.key = key
        """`(job_id, user)` for a shared feed; None for a private replay."""
        self.latest: Frame | None = None
        self.ended = False
        self.users = 0
        self.watchers: set[Watcher] = set()
        self._call = call
        self._heartbeat = heartbeat
        self._on_end = on_end
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Nobody may be waiting when it fails (a private feed): the error is not lost, the
        # streams end and EventSource resumes, so mark it retrieved.
        self.ready.add_done_callback(_retrieve)
        self._task = asyncio.create_task(self._pump(), name=f"sse-feed-{job_id}")

    def add(self, watcher: Watcher) -> None:
        if self.ended:
            watcher.end()
        else:
            self.watchers.add(watcher)

    def discard(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def close(self) -> None:
        """Stop reading (the server drops the subscription); every watcher's body ends."""
        self._task.cancel()
        self._finish()

    async def _pump(self) -> None:
        read: asyncio.Future[Any] | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(self._call.read())
                # Waiting without cancelling: a quiet job keeps its pending read.
                done, _ = await asyncio.wait({read}, timeout=self._heartbeat)
                if not done:
                    for watcher in self.watchers:
                        watcher.heartbeat()
                    continue
                update, read = read.result(), None
                if update is aio.EOF:
                    return
                frame = encode(update)
                self.latest = frame
                if not self.ready.done():
                    self.ready.set_result(None)
                for watcher in self.watchers:
                    watcher.offer(frame)
                if frame.terminal:
                    return
        except grpc.RpcError as error:
            if not self.ready.done():
                self.ready.set_exception(error)  # the clients still opening answer with it
            if self.key is None or self.latest is not None:
                # Headers are gone; end the streams and let EventSource resume by id.
                log.warning("watch of job %s ended: %s", self.job_id, error.code())
        except Exception as error:
            log.exception("watch of job %s failed", self.job_id)
            if not self.ready.done():
                self.ready.set_exception(error)
        finally:
            if read is not None:
                read.cancel()
            self._finish()

    def _finish(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._call.cancel()
        if not self.ready.done():
            self.ready.set_result(None)  # ended before its first message: nothing to send
        for watcher in self.watchers:
            watcher.end()
        self._on_end(self)


class Feeds:
    """Every feed of one bridge app; `watch` hands out watchers, `release` takes them back."""

    def __init__(self, stub: Callable[[], Any], heartbeat: float) -> None:
        self._stub = stub
        self._heartbeat = heartbeat
        self.writes = WriteQueue()
        self._shared: dict[tuple[str, str], Feed] = {}
        self._open: set[Feed] = set()
        self.closed = False

    async def watch(self, job_id: str, caller: Caller, after: int) -> tuple[Feed, Watcher] | None:
        """A watcher of the job from `after` (0: from its current snapshot), joined to its
        feed; None when there is nothing left to send. Errors of the upstream call's start
        (not found, unauthenticated) are raised here, while they can be an HTTP status."""
        if self.closed:
            raise _stopping()
        feed = self._shared.get((job_id, caller.subject))
        if feed is None:
            feed = self._start(job_id, caller, 0)
        feed.users += 1
        try:
            await asyncio.shield(feed.ready)
            if self.closed:
                raise _stopping()
            latest = feed.latest
            if latest is None or (latest.terminal and latest.sequence <= after):
                self.release(feed, None)
                return None
            if after and latest.sequence > after:
                # Behind the feed: replay what it missed on its own call, then live.
                self.release(feed, None)
                feed = self._start(job_id, caller, after)
                feed.users += 1
                watcher = Watcher(after, self.writes)
            else:
                watcher = Watcher(after, self.writes)
                watcher.offer(latest)
            feed.add(watcher)
            return feed, watcher
        except BaseException:
            self.release(feed, None)
            raise

    def release(self, feed: Feed, watcher: Watcher | None) -> None:
        if watcher is not None:
            feed.discard(watcher)
        feed.users -= 1
        if feed.users <= 0 and not feed.watchers:
            feed.close()

    def close(self) -> None:
        """The app is stopping: end every stream now (EventSource will reconnect)."""
        self.closed = True
        for feed in list(self._open):
            feed.close()

    def watcher_count(self, job_id: str | None = None) -> int:
        return sum(len(feed.watchers) for feed in self._open
                   if job_id is None or feed.job_id == job_id)

    def feed_count(self) -> int:
        return len(self._open)

    def _start(self, job_id: str, caller: Caller, after: int) -> Feed:
        call = self._stub().WatchJob(
            pb.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=caller.metadata
        )
        key = (job_id, caller.subject) if not after else None
        feed = Feed(call, job_id, self._heartbeat, self._ended, key)
        self._open.add(feed)
        if key is not None:
            self._shared[key] = feed
        return feed

    def _ended(self, feed: Feed) -> None:
        self._open.discard(feed)
        if feed.key is not None and self._shared.get(feed.key) is feed:
            del self._shared[feed.key]


def _stopping() -> BridgeError:
    return BridgeError(503, "UNAVAILABLE", "the bridge is stopping; reconnect")


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
