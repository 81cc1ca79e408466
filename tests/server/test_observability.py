"""What an operator sees: Prometheus metrics, JSON logs without secrets, traces, health."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from octavia.v1 import jobs_pb2 as pb
from octavia.v1 import jobs_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from server import logs
from server.app import OctaviaServer
from server.auth import TokenAuthority
from server.engine import JobContext, JobResult, JobSpec
from server.jobs import Phase
from server.metrics import HttpMetricsMiddleware, Metrics, metrics_route, observe_model_load
from server.settings import Settings
from server.tracing import Tracing, trace_metadata
from tests.support.engine import ScriptedEngine
from tests.support.jobs import submit, watch_all
from tests.support.waiting import eventually

STAGES = ("transcribe", "translate", "synthesize", "upload")
SUBMIT = "octavia.v1.JobService/SubmitJob"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"metrics_port": 0}


async def scrape(server: OctaviaServer) -> Samples:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
    assert reply.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --- metrics ----------------------------------------------------------------------------


async def test_a_job_moves_the_counters_and_histograms_by_one(
    server: OctaviaServer, stub: jobs_pb2_grpc.JobServiceStub, auth, wav: bytes
) -> None:
    before = await scrape(server)
    job = await submit(stub, wav, auth)
    messages = await watch_all(stub, job.job_id, auth)
    assert messages[-1].job.status == pb.JOB_STATUS_COMPLETED

    async def stream_closed() -> bool:
        return value(await scrape(server), "octavia_watch_streams_open") == 0

    await eventually(stream_closed, timeout=5)
    after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("octavia_jobs_submitted_total") == 1
    assert moved("octavia_jobs_completed_total") == 1
    assert moved("octavia_grpc_requests_total", method=SUBMIT, code="OK") == 1
    assert moved("octavia_grpc_request_duration_seconds_count", method=SUBMIT) == 1
    assert moved("octavia_grpc_requests_total", method="octavia.v1.JobService/WatchJob",
                 code="OK") == 1
    for stage in STAGES:
        assert moved("octavia_stage_duration_seconds_count", stage=stage) == 1, stage
        assert moved("octavia_stage_realtime_factor_count", stage=stage) == 1, stage
    assert moved("octavia_events_published_total", type="completed") == 1
    assert moved("octavia_events_published_total", type="phase_changed") == 4
    assert value(after, "octavia_jobs_running") == 0
    assert value(after, "octavia_queue_depth") == 0
    assert value(after, "octavia_ready") == 1


async def test_refused_calls_failures_and_cancels_are_counted_by_code_and_reason(
    server: OctaviaServer, stub: jobs_pb2_grpc.JobServiceStub, auth, wav: bytes,
    engine: ScriptedEngine,
) -> None:
    before = await scrape(server)
    with pytest.raises(aio.AioRpcError):
        await stub.GetStatus(pb.GetStatusRequest(job_id="job_" + "0" * 26))
    engine.fail_in = Phase.TRANSLATING
    failed = await submit(stub, wav, auth)
    assert (await watch_all(stub, failed.job_id, auth))[-1].job.status == pb.JOB_STATUS_FAILED
    after = await scrape(server)
    assert value(after, "octavia_grpc_requests_total", method="octavia.v1.JobService/GetStatus",
                 code="UNAUTHENTICATED") - value(
        before, "octavia_grpc_requests_total", method="octavia.v1.JobService/GetStatus",
        code="UNAUTHENTICATED") == 1
    failures = {k: v for k, v in after.items() if k[0] == "octavia_jobs_failed_total"}
    assert sum(failures.values()) == 1, failures
    ((_, got),) = failures
    assert dict(got)["phase"] == "translating" and dict(got)["reason"]
    # The stage that failed is not timed as a finished stage; the one before it is.
    assert value(after, "octavia_stage_duration_seconds_count", stage="transcribe") == 1
    assert value(after, "octavia_stage_duration_seconds_count", stage="translate") == 0


async def test_model_load_time_is_recorded_on_the_servers_metrics(
    server: OctaviaServer,
) -> None:
    observe_model_load("faster-whisper/tiny", 1.5)
    samples = await scrape(server)
    assert value(samples, "octavia_model_load_seconds_count", model="faster-whisper/tiny") == 1
    assert value(samples, "octavia_model_load_seconds_sum", model="faster-whisper/tiny") == 1.5


async def test_the_bridge_helpers_count_http_requests_by_route_template() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    metrics = Metrics()

    async def job(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["job_id"]})

    app = Starlette(
        routes=[Route("/v1/jobs/{job_id}", job), metrics_route(metrics)],
        middleware=[Middleware(HttpMetricsMiddleware, metrics=metrics)],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        assert (await client.get("/v1/jobs/abc")).status_code == 200
        assert (await client.get("/v1/jobs/abc")).status_code == 200  # a known path
        assert (await client.get("/v1/jobs/def")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/v1/jobs/abc")).status_code == 405  # path known, not for POST
        text = (await client.get("/metrics")).text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert value(samples, "octavia_http_requests_total", method="GET",
                 route="/v1/jobs/{job_id}", status="200") == 3
    assert value(samples, "octavia_http_requests_total", method="GET",
                 route="<unmatched>", status="404") == 1
    assert value(samples, "octavia_http_requests_total", method="POST",
                 route="<unmatched>", status="405") == 1


async def test_the_bridge_middleware_carries_the_trace_into_grpc_metadata(
    spans: InMemorySpanExporter,
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    async def job(request: Request) -> JSONResponse:
        return JSONResponse(dict(trace_metadata()))  # what a gRPC call would carry

    app = Starlette(routes=[Route("/v1/jobs/{job_id}", job)], middleware=[
        Middleware(HttpMetricsMiddleware, metrics=Metrics(), tracing=Tracing(provider))])
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        sent = (await client.get("/v1/jobs/abc", headers={"traceparent": incoming})).json()
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /v1/jobs/{job_id}"
    assert f"{span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert sent["traceparent"].split("-")[1:3] == [
        "4bf92f3577b34da6a3ce929d0e0e4736", f"{span.context.span_id:016x}"]


# --- logs -------------------------------------------------------------------------------


class LoggingEngine(ScriptedEngine):
    def run(self, job: JobSpec, context: JobContext) -> JobResult:
        logging.getLogger("tests.engine").info("engine working on %s", job.job_id)
        return super().run(job, context)


@pytest.fixture
def engine() -> ScriptedEngine:
    return LoggingEngine()


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logs.make_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_job_lines_carry_the_job_and_never_a_token(
    server: OctaviaServer, stub: jobs_pb2_grpc.JobServiceStub, tokens: TokenAuthority,
    wav: bytes, json_lines: io.StringIO,
) -> None:
    token = tokens.mint("alice")
    auth = (("authorization", f"Bearer {token}"),)
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)
    await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id), metadata=auth)
    with pytest.raises(aio.AioRpcError):  # a bad token is refused, and not logged
        await stub.GetStatus(pb.GetStatusRequest(job_id=job.job_id),
                             metadata=(("authorization", f"Bearer {token}x"),))
    logging.getLogger("tests").warning("someone logged %s and ?ticket=%s", f"Bearer {token}",
                                       token)

    text = json_lines.getvalue()
    assert token not in text
    entries = [json.loads(line) for line in text.splitlines()]
    about_job = [e for e in entries if job.job_id in e["message"] or e.get("job_id")]
    assert {e["message"].split(" (")[0] for e in about_job} >= {
        "job submitted", "job completed", f"engine working on {job.job_id}"}
    for entry in about_job:
        assert entry["job_id"] == job.job_id, entry
        assert entry["user"] == "alice", entry
    submitted = next(e for e in about_job if e["message"].startswith("job submitted"))
    assert submitted["request_id"]
    completed = next(e for e in about_job if e["message"] == "job completed")
    assert completed["phase"] == "uploading"
    assert "Bearer ***" in text


def test_redaction_masks_bearer_tickets_and_jwts() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    masked = logs.redact(f"Authorization: Bearer abc.def-ghi /v1/x?ticket=s3cr3t&a=1 {jwt}")
    assert "abc.def-ghi" not in masked and "s3cr3t" not in masked and jwt not in masked
    assert "a=1" in masked


def test_configure_logging_installs_one_json_handler(tmp_path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    settings = Settings(data_dir=tmp_path, log_format="json", log_level="WARNING",
                        _env_file=None)  # type: ignore[call-arg]
    try:
        logs.configure_logging(settings)
        logs.configure_logging(settings)
        ours = [h for h in root.handlers if getattr(h, "_octavia", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


# --- tracing ----------------------------------------------------------------------------


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced_server(
    settings: Settings, spans: InMemorySpanExporter
) -> AsyncIterator[tuple[OctaviaServer, TracerProvider]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    service = OctaviaServer(settings, ScriptedEngine(), tracer_provider=provider)
    await service.start()
    try:
        yield service, provider
    finally:
        await service.stop(grace=0.5)


async def test_one_job_is_one_trace_with_a_span_per_stage(
    traced_server: tuple[OctaviaServer, TracerProvider], spans: InMemorySpanExporter,
    auth, wav: bytes,
) -> None:
    server, provider = traced_server
    async with aio.insecure_channel(server.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with provider.get_tracer("test").start_as_current_span("bridge request") as caller:
            job = await submit(stub, wav, (*auth, *trace_metadata()))
        await watch_all(stub, job.job_id, auth)

    async def ended() -> bool:
        return any(s.name == "octavia.job" for s in spans.get_finished_spans())

    await eventually(ended, timeout=5)
    finished = spans.get_finished_spans()
    trace_id = caller.get_span_context().trace_id
    by_name = {s.name: s for s in finished if s.context.trace_id == trace_id}
    rpc = by_name["octavia.v1.JobService/SubmitJob"]
    job_span = by_name["octavia.job"]
    assert rpc.parent is not None and rpc.parent.span_id == caller.get_span_context().span_id
    assert job_span.parent is not None and job_span.parent.span_id == rpc.context.span_id
    assert job_span.attributes is not None
    assert job_span.attributes["octavia.job_id"] == job.job_id
    assert job_span.attributes["octavia.outcome"] == "completed"
    for stage in STAGES:
        span = by_name[f"octavia.stage.{stage}"]
        assert span.parent is not None and span.parent.span_id == job_span.context.span_id
        assert span.start_time is not None and job_span.start_time is not None
        assert span.start_time >= job_span.start_time


# --- health -----------------------------------------------------------------------------


async def test_readiness_follows_the_engine_and_liveness_the_process(
    server: OctaviaServer, channel: aio.Channel
) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    async def status(service: str) -> int:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        return int(reply.status)

    serving = health_pb2.HealthCheckResponse.SERVING
    assert await status("") == serving
    assert await status("octavia.v1.JobService") == serving
    runner = server.dispatcher
    workers = runner._workers  # type: ignore[attr-defined]
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert not await server.health.check()
    assert await status("octavia.v1.JobService") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await status("") == serving
