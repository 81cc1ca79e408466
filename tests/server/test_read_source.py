"""ReadSource: the job's own media, in chunks and ranges, for its owner only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from octavia.v1 import jobs_pb2 as pb

from server.app import OctaviaServer
from tests.support.jobs import submit


async def read(stub, auth, job_id: str, offset: int = 0, length: int = 0,
               ) -> list[pb.ReadSourceResponse]:
    request = pb.ReadSourceRequest(job_id=job_id, offset=offset, length=length)
    return [chunk async for chunk in stub.ReadSource(request, metadata=auth)]


async def test_the_owner_reads_the_source_whole_and_in_ranges(stub, auth, wav) -> None:
    job = await submit(stub, wav, auth)

    chunks = await read(stub, auth, job.job_id)
    assert b"".join(c.data for c in chunks) == wav
    first = chunks[0]
    assert (first.filename, first.size_bytes, first.offset) == ("clip.wav", len(wav), 0)
    assert first.media_type in ("audio/wav", "audio/x-wav")
    assert all(not c.filename and not c.size_bytes for c in chunks[1:])

    part = await read(stub, auth, job.job_id, offset=100, length=50)
    assert [(c.offset, c.data) for c in part] == [(100, wav[100:150])]
    assert part[0].size_bytes == len(wav)
    tail = await read(stub, auth, job.job_id, offset=len(wav) - 10)
    assert b"".join(c.data for c in tail) == wav[-10:]


async def test_a_large_source_comes_in_chunks(stub, auth, media_root: Path) -> None:
    from server.artifacts import CHUNK
    from tests.support.media import tone_wav

    big = tone_wav(40.0)  # 16 kHz mono 16-bit: over one chunk
    assert len(big) > CHUNK
    (media_root / "long.wav").write_bytes(big)
    request = pb.SubmitJobRequest(uri="long.wav", target_language="es")
    job = (await stub.SubmitJob(request, metadata=auth)).job

    chunks = await read(stub, auth, job.job_id)
    assert len(chunks) > 1
    assert b"".join(c.data for c in chunks) == big
    assert [c.offset for c in chunks] == [sum(len(c.data) for c in chunks[:i])
                                          for i in range(len(chunks))]


async def test_another_user_and_bad_ranges_are_refused(stub, auth, other_auth, wav) -> None:
    job = await submit(stub, wav, auth)
    for who, job_id, offset, code in [
        (other_auth, job.job_id, 0, grpc.StatusCode.NOT_FOUND),
        (auth, "0b5e6c4e-7a43-4a57-9d55-3f4a2c1e0d00", 0, grpc.StatusCode.NOT_FOUND),
        (auth, "nope", 0, grpc.StatusCode.INVALID_ARGUMENT),
        (auth, job.job_id, -1, grpc.StatusCode.INVALID_ARGUMENT),
        (auth, job.job_id, len(wav), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await read(stub, who, job_id, offset=offset)
        assert raised.value.code() == code, (job_id, offset)


async def test_a_source_no_longer_stored_is_not_found(
    stub, auth, wav, server: OctaviaServer
) -> None:
    job = await submit(stub, wav, auth)
    record = await server.store.get(job.job_id, "alice")
    await asyncio.to_thread(Path(record.media_path).unlink)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await read(stub, auth, job.job_id)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
