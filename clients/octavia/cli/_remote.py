"""The commands that drive a server: submit, status, watch, cancel, jobs, download, dub
(the review commands are in `_review`)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ..aio import AsyncOctaviaClient
from ..v1 import jobs_pb2 as pb
from . import _render
from ._connect import LOG_FILE, Remote, in_process
from ._exit import AWAITING_REVIEW, JOB_FAILED, OK, JobEnded, UsageError
from ._progress import PhaseProgress

if TYPE_CHECKING:
    from server.settings import Settings

MIX = {
    None: pb.MIX_MODE_UNSPECIFIED,
    "ducked": pb.MIX_MODE_DUCKED,
    "dub_only": pb.MIX_MODE_DUB_ONLY,
    "separated": pb.MIX_MODE_SEPARATED,
}


class Io:
    """Where results go (stdout) and where people read progress and errors (stderr)."""

    def __init__(self, as_json: bool = False) -> None:
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.json = as_json


async def submit(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    _readable(args.file)
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        job = await client.submit(
            args.file, args.target, args.source, args.request_id, mix_mode=MIX[args.mix],
            pause_after=args.pause_after, webhook_url=args.webhook,
        )
        if io.json:
            _render.print_json(io.out, _render.as_dict(job))
        else:
            io.out.print(job.job_id)
        if not args.watch:
            return OK
        return await follow_updates(client, job.job_id, 0, io, server_flag(args))


async def status(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        job = await client.status(args.job_id)
    if io.json:
        _render.print_json(io.out, _render.as_dict(job))
    else:
        io.out.print(_render.job_table(job))
    return OK


async def watch(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        return await follow_updates(client, args.job_id, args.after, io, server_flag(args))


async def cancel(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        job = await client.cancel(args.job_id)
    if io.json:
        _render.print_json(io.out, _render.as_dict(job))
    else:
        io.out.print(f"{job.job_id} {_render.status_name(job)}")
    return OK


async def jobs(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        found = await client.list(limit=args.limit or None)
    if io.json:
        _render.print_json(io.out, [_render.as_dict(job) for job in found])
    elif found:
        io.out.print(_render.jobs_table(found))
    else:
        io.err.print("no jobs yet")
    return OK


async def download(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    if args.version < 0:
        raise UsageError("--version must be 1 or more (0: the current one)")
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        if args.name:
            args.output.mkdir(parents=True, exist_ok=True)
            paths = [await client.download(args.job_id, args.name, args.output,
                                           version=args.version)]
        else:
            paths = await client.download_all(args.job_id, args.output, version=args.version)
    _print_paths(paths, io)
    return OK


async def dub(
    args: argparse.Namespace, settings: Settings, remote: Remote | None, io: Io
) -> int:
    """Submit, show progress per phase, download: against `remote`, or in this process."""
    _readable(args.file)
    dest = args.output or args.file.parent / f"{args.file.stem}.dub-{args.target}"
    if remote is not None:
        return await _dub(args, remote, dest, io)
    async with in_process(settings) as remote:
        try:
            return await _dub(args, remote, dest, io, local=True)
        except JobEnded as ended:
            log = settings.data_dir / LOG_FILE
            raise JobEnded(f"{ended} (the service's log: {log})") from None


async def _dub(
    args: argparse.Namespace, remote: Remote, dest: Path, io: Io, *, local: bool = False
) -> int:
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        job = await client.submit(args.file, args.target, args.source, mix_mode=MIX[args.mix],
                                  pause_after=args.pause_after, webhook_url=args.webhook)
        io.err.print(f"job {job.job_id}: {args.file.name} → {args.target}")
        try:
            final = await follow_with_bars(client, job, io)
        except asyncio.CancelledError:  # Ctrl-C: stop the job, then let the exit proceed
            await client.cancel(job.job_id)
            io.err.print(f"cancelled job {job.job_id}")
            raise
        if final.status == pb.JOB_STATUS_AWAITING_REVIEW:
            io.err.print(_render.review_hint(final, flags=server_flag(args), local=local),
                         markup=False)
            return AWAITING_REVIEW
        _check_completed(final)
        paths = await client.download_all(job.job_id, dest)
    _print_paths(paths, io)
    return OK


async def follow_with_bars(client: AsyncOctaviaClient, job: pb.Job, io: Io) -> pb.Job:
    """Draw a bar per phase from `job` on until the job ends or awaits review; the job
    as it is then."""
    final = job
    with PhaseProgress(io.err) as display:
        display.update(job)
        async for update in client.watch(job.job_id, after_sequence=job.sequence,
                                         stop_at_review=True):
            display.update(update.job)
            final = update.job
    return final


def outcome(job: pb.Job, io: Io, flags: str = "") -> int:
    """The exit code for where a followed job stopped, and a line about it on stderr."""
    if job.status == pb.JOB_STATUS_COMPLETED:
        return OK
    if job.status == pb.JOB_STATUS_AWAITING_REVIEW:
        if not io.json:
            io.err.print(_render.review_hint(job, flags=flags), markup=False)
        return AWAITING_REVIEW
    if not io.json:
        io.err.print(_job_end_message(job), markup=False)
    return JOB_FAILED


def server_flag(args: argparse.Namespace) -> str:
    """The --server the user gave, to repeat in the commands a message suggests."""
    return f" --server {args.server}" if args.server else ""


async def follow_updates(
    client: AsyncOctaviaClient, job_id: str, after: int, io: Io, flags: str = ""
) -> int:
    """Print each update after `after` (a line, or JSON) until the job ends or awaits
    review; the exit code for where it stopped."""
    final: pb.Job | None = None
    async for update in client.watch(job_id, after_sequence=after, stop_at_review=True):
        final = update.job
        if io.json:
            _render.print_json(io.out, _render.as_dict(update))
        else:
            io.out.print(_render.update_line(update), markup=False)
    return OK if final is None else outcome(final, io, flags)


def _check_completed(job: pb.Job) -> None:
    if job.status != pb.JOB_STATUS_COMPLETED:
        raise JobEnded(_job_end_message(job))


def _job_end_message(job: pb.Job) -> str:
    text = f"job {job.job_id} {_render.status_name(job)}"
    if job.error_message:
        text += f": {job.error_message}"
        if job.error.reason:
            text += f" [{job.error.reason}]"
    return text


def _print_paths(paths: list[Path], io: Io) -> None:
    if io.json:
        _render.print_json(io.out, [str(path) for path in paths])
        return
    for path in paths:
        io.out.print(str(path), markup=False)


def _readable(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
