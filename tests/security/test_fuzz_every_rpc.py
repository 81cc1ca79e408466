"""Every RPC of the contract (those added later too), every field, hostile values: the
answer is never UNKNOWN or INTERNAL, and every refusal carries a message and a reason."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio
from hypothesis import given, settings
from hypothesis import strategies as st
from octavia.errors import Reason, from_rpc_error
from octavia.v1 import jobs_pb2_grpc

from server.app import OctaviaServer
from tests.security import fuzz, rpc
from tests.security.messages import messages
from tests.support.jobs import submit, watch_all

Auth = tuple[tuple[str, str], ...]

SERVER_FAULTS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
STREAM_WAIT = 3.0
"""Seconds a stream may stay open (a watch of a job paused for review never ends)."""


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"max_upload_bytes": 64 * 1024, "queue_size": 100_000,
            "max_active_jobs_per_user": 100_000}


@pytest.fixture
async def finished(stub: jobs_pb2_grpc.JobServiceStub, auth: Auth, wav: bytes) -> str:
    job = await submit(stub, wav, auth)
    await watch_all(stub, job.job_id, auth)
    return job.job_id


@settings(fuzz.FUZZ, max_examples=fuzz.FUZZ.max_examples * 3)
@given(data=st.data())
async def test_any_request_to_any_rpc(
    server: OctaviaServer, auth: Auth, finished: str, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(rpc.methods()), label="rpc")
    strings = {"job_id": st.one_of(st.just(finished), fuzz.job_ids),
               "name": st.one_of(st.sampled_from(["dubbed.wav", "target.srt"]),
                                 fuzz.weird_text)}
    request = data.draw(messages(method.input_type, strings), label="request")
    async with aio.insecure_channel(server.address) as channel:
        try:
            await rpc.invoke(channel, method, request, auth, deadline=STREAM_WAIT)
        except aio.AioRpcError as error:
            code = error.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
                return
            assert code not in SERVER_FAULTS, (method.name, code, error.details())
            assert error.details(), (method.name, code)
            if code != grpc.StatusCode.UNIMPLEMENTED:
                assert from_rpc_error(error).reason not in ("", Reason.INTERNAL)
