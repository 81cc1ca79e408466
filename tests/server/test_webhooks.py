"""Signed webhooks: recorded with their event, delivered to a real local receiver, retried
with backoff, visible through ListWebhookDeliveries, verified with `octavia.webhooks`."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import httpx
import pytest
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2 as pb
from octavia.webhooks import WebhookSignatureError, sign, verify

from server import webhook_target
from server.distributed.worker import Worker
from server.jobs import Phase
from server.settings import Settings
from server.store import JobEvent, JobRecord, JobStore, snapshot_of
from server.store.models import WebhookDelivery, utcnow
from server.webhooks import WebhookSender, backoff, retry_after
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all, watch_until
from tests.support.waiting import eventually

SECRET = "whsec-" + "k" * 32
BASE: dict[str, object] = {
    "webhook_secret": SECRET,
    "webhook_max_attempts": 10,
    "webhook_backoff_seconds": 0.1,
    "webhook_backoff_max_seconds": 0.4,
    "webhook_timeout_seconds": 2.0,
    "webhook_poll_seconds": 30.0,  # its own deliveries wake the sender; retries are timed
    "webhook_allow_private_networks": True,  # the receivers here listen on loopback
}
PUBLIC_ONLY = {**BASE, "webhook_allow_private_networks": False}
PENDING, DELIVERED, FAILED = (pb.WEBHOOK_DELIVERY_STATE_PENDING,
                              pb.WEBHOOK_DELIVERY_STATE_DELIVERED,
                              pb.WEBHOOK_DELIVERY_STATE_FAILED)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook receiver on a loopback port (http.server in a thread): answers the
    `statuses` given, in order, then 200. A status may come with headers:
    `(429, {"Retry-After": "1"})`."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None) -> None:
        self.port = port
        self.statuses: list[int | tuple[int, dict[str, str]]] = list(statuses or [])
        self.requests: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/octavia"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(dict(self.headers.items()), body))
                answer = receiver.statuses.pop(0) if receiver.statuses else 200
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, object]:
    # bob has a default webhook URL; alice names hers per job.
    return {**BASE, "webhook_urls": {"bob": receiver.url}}


async def deliveries(stub, job_id: str, auth) -> list[pb.WebhookDelivery]:
    request = pb.ListWebhookDeliveriesRequest(job_id=job_id)
    return list((await stub.ListWebhookDeliveries(request, metadata=auth)).deliveries)


async def settled(stub, job_id: str, auth, count: int = 1) -> list[pb.WebhookDelivery]:
    """The job's deliveries once `count` of them exist and none is pending any more."""
    found: list[pb.WebhookDelivery] = []

    async def check() -> bool:
        nonlocal found
        found = await deliveries(stub, job_id, auth)
        return len(found) >= count and all(d.state != PENDING for d in found)

    await eventually(check, timeout=15)
    return found


def options(url: str, **fields: object) -> pb.JobOptions:
    return pb.JobOptions(webhook_url=url, **fields)  # type: ignore[arg-type]


async def test_a_completed_job_sends_one_signed_webhook_that_verify_accepts(
    stub, auth, wav, receiver
) -> None:
    job = await submit(stub, wav, auth, options=options(receiver.url))
    final = (await watch_all(stub, job.job_id, auth))[-1]

    [delivery] = await settled(stub, job.job_id, auth)
    assert delivery.state == DELIVERED
    assert delivery.event_type == pb.EVENT_TYPE_COMPLETED
    assert delivery.sequence == final.sequence
    assert delivery.url == receiver.url
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(200, "")]
    assert not delivery.HasField("next_attempt_at")

    [request] = receiver.requests
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Octavia-Delivery"] == delivery.delivery_id
    assert request.headers["Octavia-Event"] == "completed"
    payload = verify(request.body, request.headers["Octavia-Signature"], SECRET)
    assert payload["delivery_id"] == delivery.delivery_id
    assert payload["event_type"] == "completed"
    assert payload["sequence"] == final.sequence
    assert payload["job"]["job_id"] == job.job_id
    assert payload["job"]["status"] == "completed"
    assert payload["job"]["output_file"] == "dubbed.wav"
    assert {a["name"] for a in payload["job"]["artifacts"]} == {"dubbed.wav", "target.srt"}


async def test_a_job_awaiting_review_calls_its_webhook_and_again_when_it_completes(
    stub, auth, wav, receiver
) -> None:
    paused_options = options(receiver.url, pause_after=[pb.JOB_PHASE_TRANSLATING])
    job = await submit(stub, wav, auth, options=paused_options)
    paused = (await watch_until(stub, job.job_id, auth, pb.JOB_STATUS_AWAITING_REVIEW))[-1]

    [delivery] = await settled(stub, job.job_id, auth)
    assert delivery.event_type == pb.EVENT_TYPE_AWAITING_REVIEW
    assert delivery.sequence == paused.sequence
    payload = verify(receiver.requests[0].body,
                     receiver.requests[0].headers["Octavia-Signature"], SECRET)
    assert payload["event_type"] == "awaiting_review"
    assert payload["job"]["status"] == "awaiting_review"
    assert payload["job"]["phase"] == "translating"

    await stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id), metadata=auth)
    await watch_all(stub, job.job_id, auth, after=paused.sequence)
    both = await settled(stub, job.job_id, auth, count=2)
    assert [d.event_type for d in both] == [pb.EVENT_TYPE_AWAITING_REVIEW,
                                            pb.EVENT_TYPE_COMPLETED]
    assert [d.state for d in both] == [DELIVERED, DELIVERED]
    assert len(receiver.requests) == 2


async def test_a_receiver_that_is_down_is_retried_until_it_answers(
    stub, auth, wav
) -> None:
    late = Receiver(port=free_port())  # nothing listens there yet: connection refused
    job = await submit(stub, wav, auth, options=options(late.url))
    await watch_all(stub, job.job_id, auth)

    async def refused() -> bool:
        found = await deliveries(stub, job.job_id, auth)
        return bool(found) and len(found[0].attempts) >= 1

    await eventually(refused)
    [waiting] = await deliveries(stub, job.job_id, auth)
    assert waiting.state == PENDING
    assert waiting.attempts[0].status_code == 0
    assert "Connect" in waiting.attempts[0].error
    assert waiting.attempts[0].HasField("at")
    assert waiting.HasField("next_attempt_at")

    late.start()
    try:
        [delivery] = await settled(stub, job.job_id, auth)
    finally:
        late.stop()
    assert delivery.state == DELIVERED
    *refusals, success = delivery.attempts
    assert refusals and all(a.status_code == 0 and a.error for a in refusals)
    assert (success.status_code, success.error) == (200, "")
    [request] = late.requests
    assert verify(request.body, request.headers["Octavia-Signature"], SECRET)["job"][
        "job_id"] == job.job_id


async def test_an_error_answer_is_retried_with_the_same_delivery(
    stub, auth, wav, receiver
) -> None:
    receiver.statuses[:] = [500, 503]
    job = await submit(stub, wav, auth, options=options(receiver.url))
    await watch_all(stub, job.job_id, auth)

    [delivery] = await settled(stub, job.job_id, auth)
    assert delivery.state == DELIVERED
    assert [(a.status_code, a.error) for a in delivery.attempts] == [
        (500, "the receiver answered HTTP 500"), (503, "the receiver answered HTTP 503"),
        (200, "")]
    gaps = [(b.at.ToDatetime() - a.at.ToDatetime()).total_seconds()
            for a, b in zip(delivery.attempts, delivery.attempts[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, "exponential backoff between attempts"
    assert {r.headers["Octavia-Delivery"] for r in receiver.requests} == {delivery.delivery_id}
    assert len({r.body for r in receiver.requests}) == 1, "every attempt sends the same body"
    for request in receiver.requests:
        verify(request.body, request.headers["Octavia-Signature"], SECRET)


@pytest.mark.parametrize("settings_overrides", [{**BASE, "webhook_backoff_max_seconds": 2}])
async def test_a_receiver_that_asks_to_wait_is_not_called_again_sooner(
    stub, auth, wav, receiver
) -> None:
    receiver.statuses[:] = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "3600"})]
    job = await submit(stub, wav, auth, options=options(receiver.url))
    await watch_all(stub, job.job_id, auth)

    [delivery] = await settled(stub, job.job_id, auth)
    assert [a.status_code for a in delivery.attempts] == [429, 503, 200]
    gaps = [(b.at.ToDatetime() - a.at.ToDatetime()).total_seconds()
            for a, b in zip(delivery.attempts, delivery.attempts[1:], strict=False)]
    assert gaps[0] >= 1.0, "Retry-After: 1 outweighs the 0.1 s backoff"
    assert 2.0 <= gaps[1] < 10.0, "an hour asked for is capped at the backoff maximum"


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("Wed, 21 Oct 2037 07:28:00 GMT", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("", None), ("soon", None), ("-5", None),
    ("1.5", None),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str, seconds: float | None
) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    waited = retry_after(header, now)
    if header.startswith("Wed, 21 Oct 2037"):
        assert waited == (datetime(2037, 10, 21, 7, 28, tzinfo=UTC) - now).total_seconds()
    else:
        assert waited == seconds


@pytest.mark.parametrize("settings_overrides", [{**BASE, "webhook_max_attempts": 3}])
async def test_a_delivery_fails_after_the_last_attempt(stub, auth, wav, receiver) -> None:
    receiver.statuses[:] = [503] * 10
    job = await submit(stub, wav, auth, options=options(receiver.url))
    await watch_all(stub, job.job_id, auth)

    [delivery] = await settled(stub, job.job_id, auth)
    assert delivery.state == FAILED
    assert [a.status_code for a in delivery.attempts] == [503, 503, 503]
    assert not delivery.HasField("next_attempt_at")
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 3, "no attempt after the last one"


async def test_a_job_without_a_webhook_creates_no_delivery(stub, auth, wav, receiver) -> None:
    job = await submit(stub, wav, auth)
    assert (await watch_all(stub, job.job_id, auth))[-1].job.status == pb.JOB_STATUS_COMPLETED

    assert await deliveries(stub, job.job_id, auth) == []
    assert receiver.requests == []


async def test_a_users_default_url_gets_the_webhook_of_a_failed_job(
    stub, tokens, wav, receiver, engine
) -> None:
    engine.fail_in = Phase.SYNTHESIZING
    bob = (("authorization", f"Bearer {tokens.mint('bob')}"),)
    job = await submit(stub, wav, bob)
    await watch_all(stub, job.job_id, bob)

    [delivery] = await settled(stub, job.job_id, bob)
    assert (delivery.event_type, delivery.state) == (pb.EVENT_TYPE_FAILED, DELIVERED)
    assert delivery.url == receiver.url
    payload = verify(receiver.requests[0].body,
                     receiver.requests[0].headers["Octavia-Signature"], SECRET)
    assert payload["job"]["status"] == "failed"
    assert payload["job"]["error_message"] == "scripted failure"


async def test_a_cancelled_job_calls_its_webhook(stub, auth, wav, receiver, engine) -> None:
    engine.hold = threading.Event()
    job = await submit(stub, wav, auth, options=options(receiver.url))
    await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=auth)
    engine.hold.set()

    [delivery] = await settled(stub, job.job_id, auth)
    assert (delivery.event_type, delivery.state) == (pb.EVENT_TYPE_CANCELLED, DELIVERED)


# The procrastinate queue lives in PostgreSQL: these run on that store only (the
# conftest's fixture still skips them, with its reason, where no PostgreSQL is reachable).
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@ON_POSTGRES
@pytest.mark.parametrize("settings_overrides", [
    {**BASE, "queue": "procrastinate", "worker_heartbeat_seconds": 0.5}])
async def test_a_job_run_from_the_procrastinate_queue_sends_its_webhook(
    stub, auth, wav, receiver
) -> None:
    job = await submit(stub, wav, auth, options=options(receiver.url))
    await watch_all(stub, job.job_id, auth)

    [delivery] = await settled(stub, job.job_id, auth)
    assert (delivery.event_type, delivery.state) == (pb.EVENT_TYPE_COMPLETED, DELIVERED)
    assert len(receiver.requests) == 1


@ON_POSTGRES
@pytest.mark.parametrize("settings_overrides", [
    {**BASE, "queue": "procrastinate", "run_worker": False, "webhook_poll_seconds": 0.2}])
async def test_a_delivery_recorded_by_a_standalone_worker_is_sent_by_a_replica(
    settings, stub, auth, wav, receiver
) -> None:
    worker = Worker(settings, ScriptedEngine())  # its own store, as `octavia worker` has
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        job = await submit(stub, wav, auth, options=options(receiver.url))
        await watch_all(stub, job.job_id, auth)
        [delivery] = await settled(stub, job.job_id, auth)
    finally:
        stop.set()
        await running
    assert (delivery.event_type, delivery.state) == (pb.EVENT_TYPE_COMPLETED, DELIVERED)


async def test_another_users_deliveries_are_not_found(
    stub, auth, other_auth, wav, receiver
) -> None:
    job = await submit(stub, wav, auth, options=options(receiver.url))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await deliveries(stub, job.job_id, other_auth)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("settings_overrides", [{}])
async def test_a_webhook_is_refused_when_the_server_cannot_sign_it(stub, auth, wav) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await submit(stub, wav, auth, options=options("https://example.com/hook"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "OCTAVIA_WEBHOOK_SECRET" in (caught.value.details() or "")
    assert from_rpc_error(caught.value).reason == Reason.WEBHOOKS_DISABLED


@pytest.mark.parametrize("settings_overrides", [
    {**BASE, "webhook_secret": None, "webhook_max_attempts": 2}])
async def test_nothing_unsigned_is_sent_when_the_secret_is_gone(
    server, stub, auth, receiver
) -> None:
    """A delivery recorded while a secret was configured, sent after a restart without one."""
    job_id = str(uuid.uuid4())

    def insert(session) -> None:
        now = utcnow()
        record = JobRecord(id=job_id, owner="alice", status="completed", phase="completed",
                           created_at=now, target_language="es", sequence=1)
        session.add(record)
        session.flush()
        session.add(JobEvent(job_id=job_id, sequence=1, type="completed",
                             snapshot=snapshot_of(record), created_at=now))
        session.add(WebhookDelivery(
            id=str(uuid.uuid4()), job_id=job_id, sequence=1, event_type="completed",
            url=receiver.url, state="pending", attempts=[], created_at=now,
            next_attempt_at=now))
        session.commit()

    await server.store.write_with(insert)
    server.webhooks.wake()

    [delivery] = await settled(stub, job_id, auth)
    assert delivery.state == FAILED
    assert all("OCTAVIA_WEBHOOK_SECRET" in a.error for a in delivery.attempts)
    assert receiver.requests == []


def test_a_default_url_without_a_secret_is_a_configuration_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="OCTAVIA_WEBHOOK_SECRET"):
        Settings(data_dir=tmp_path, webhook_urls={"bob": "https://example.com/hook"},
                 _env_file=None)  # type: ignore[call-arg]


async def test_two_senders_never_claim_the_same_delivery(server, settings) -> None:
    await server.webhooks.stop()  # only the two senders below claim
    job_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(40)]

    def insert(session) -> None:
        now = utcnow()
        session.add(JobRecord(id=job_id, owner="alice", status="completed", phase="completed",
                              created_at=now, target_language="es"))
        session.flush()
        for delivery_id in ids:
            session.add(WebhookDelivery(
                id=delivery_id, job_id=job_id, sequence=1, event_type="completed",
                url="http://127.0.0.1:9/", state="pending", attempts=[], created_at=now,
                next_attempt_at=now))
        session.commit()

    await server.store.write_with(insert)
    # Two stores, two engines: as two processes would be.
    stores = [JobStore(settings.database_url_resolved) for _ in range(2)]
    claimed: list[str] = []
    try:
        senders = [WebhookSender(settings, store) for store in stores]
        while True:  # rounds of concurrent claims, until nothing is left
            batches = await asyncio.gather(*(
                sender.store.write_with(sender._claim) for sender in senders for _ in range(3)))
            got = [claim.id for batch in batches for claim in batch]
            if not got:
                break
            claimed += got
    finally:
        for store in stores:
            store.close()
    assert len(claimed) == len(set(claimed)), "no delivery claimed twice"
    assert sorted(claimed) == sorted(ids)


def test_backoff_doubles_up_to_its_cap(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, webhook_backoff_seconds=10,  # type: ignore[call-arg]
                        webhook_backoff_max_seconds=60, _env_file=None)
    assert [backoff(settings, n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


# --- where webhooks may go ---------------------------------------------------------------


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("93.184.216.34", True), ("2001:4860:4860::8888", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("::1", False), ("fe80::1%eth0", False), ("fc00::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::", False),
])
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert webhook_target.is_public(address) is public


@pytest.mark.parametrize("settings_overrides", [PUBLIC_ONLY])
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://169.254.169.254/latest/",
    "https://10.0.0.7/hook", "http://[::ffff:127.0.0.1]:9/hook", "http://0.0.0.0/",
])
async def test_a_webhook_url_naming_a_private_address_is_refused_at_submit(
    stub, auth, wav, url: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await submit(stub, wav, auth, options=options(url))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "not a public address" in details
    assert "OCTAVIA_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in details


@pytest.mark.parametrize("settings_overrides", [PUBLIC_ONLY])
async def test_a_name_that_resolves_to_a_private_address_is_never_called(
    stub, auth, wav, receiver
) -> None:
    url = f"http://localhost:{receiver.port}/hooks/octavia"
    job = await submit(stub, wav, auth, options=options(url))
    await watch_all(stub, job.job_id, auth)

    [delivery] = await settled(stub, job.job_id, auth)
    assert delivery.state == FAILED
    [attempt] = delivery.attempts  # no retry: it cannot get better
    assert "localhost resolves to" in attempt.error
    assert "not a public address" in attempt.error
    assert receiver.requests == []


def fake_resolver(monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> None:
    """Every name resolves to `addresses` (as DNS would answer, rebinding included)."""

    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)


async def test_an_attempt_connects_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_resolver(monkeypatch, ["93.184.216.34"])
    target = await webhook_target.pin("https://hooks.example.com/in?x=1")
    assert target.url == "https://93.184.216.34/in?x=1"
    assert target.headers == {"Host": "hooks.example.com"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}
    plain = await webhook_target.pin("http://hooks.example.com:8080/in")
    assert (plain.url, plain.headers, plain.extensions) == (
        "http://93.184.216.34:8080/in", {"Host": "hooks.example.com:8080"}, {})


async def test_a_name_with_any_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_resolver(monkeypatch, ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(webhook_target.NotPublic, match=r"10\.0\.0\.5"):
        await webhook_target.pin("https://hooks.example.com/in")


@pytest.mark.parametrize("settings_overrides", [{**PUBLIC_ONLY, "webhook_poll_seconds": 0.1}])
async def test_the_sender_posts_to_the_pinned_address_with_the_names_host_and_sni(
    server, stub, auth, wav, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_resolver(monkeypatch, ["93.184.216.34"])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    await server.webhooks.stop()  # this sender, with a transport that records, sends instead
    sender = WebhookSender(server.settings, server.store, transport=httpx.MockTransport(answer))
    await sender.start()
    try:
        job = await submit(stub, wav, auth, options=options("https://hooks.example.com/in"))
        await watch_all(stub, job.job_id, auth)
        [delivery] = await settled(stub, job.job_id, auth)
    finally:
        await sender.stop()
    assert delivery.state == DELIVERED
    [request] = seen
    assert str(request.url) == "https://93.184.216.34/in"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    verify(request.content, request.headers["Octavia-Signature"], SECRET)


# --- verifying, as a receiver does ------------------------------------------------------

BODY = json.dumps({"delivery_id": "d-1", "event_type": "completed", "sequence": 7,
                   "job": {"job_id": "j-1", "status": "completed"}}).encode()
NOW = 1_800_000_000


def test_verify_returns_the_body_of_a_correctly_signed_webhook() -> None:
    header = sign(BODY, SECRET, timestamp=NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(BODY, header, SECRET, now=NOW + 10)["job"]["job_id"] == "j-1"


@pytest.mark.parametrize("case", ["tampered body", "wrong secret", "stale", "from the future",
                                  "no signature", "no timestamp", "garbage", "empty"])
def test_verify_rejects(case: str) -> None:
    header = sign(BODY, SECRET, timestamp=NOW)
    body, secret, now = BODY, SECRET, float(NOW)
    if case == "tampered body":
        body = BODY.replace(b'"completed"', b'"failed"', 1)
    elif case == "wrong secret":
        secret = "whsec-someone-else"
    elif case == "stale":
        now = NOW + 301
    elif case == "from the future":
        now = NOW - 301
    elif case == "no signature":
        header = f"t={NOW}"
    elif case == "no timestamp":
        header = header.split(",", 1)[1]
    elif case == "garbage":
        header = "t=soon,v1=zz"
    elif case == "empty":
        header = ""
    with pytest.raises(WebhookSignatureError):
        verify(body, header, secret, now=now)


def test_verify_accepts_any_of_several_signatures_and_a_custom_tolerance() -> None:
    good = sign(BODY, SECRET, timestamp=NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good}"
    assert verify(BODY, header, SECRET, now=NOW + 3000, tolerance_seconds=3600)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify(BODY, header, SECRET, now=NOW + 3000)
