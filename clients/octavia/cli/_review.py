"""The review commands: segments, edit, resume, versions.

A job submitted with `--pause-after` stops in AWAITING_REVIEW; these read and fix its lines
and send it on. A completed job can be edited and resumed too: it is re-dubbed as a new
version, and `versions` / `download --version` reach the older ones.
"""

from __future__ import annotations

import argparse

from .._core import SegmentEdit
from ..aio import AsyncOctaviaClient
from . import _render
from ._connect import Remote
from ._exit import OK, UsageError
from ._remote import Io, follow_updates, follow_with_bars, outcome, server_flag


async def segments(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        found = await client.list_segments(args.job_id)
    if io.json:
        _render.print_json(io.out, _render.as_dict(found))
        return OK
    state = ("editable" if found.editable
             else "not editable until the job awaits review or has completed")
    io.err.print(f"{len(found.segments)} segment(s), {found.source_language} → "
                 f"{found.target_language}, {state}", markup=False)
    io.out.print(_render.segments_table(found.segments))
    return OK


async def edit(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    change = SegmentEdit(args.index, source_text=args.source, target_text=args.target,
                         start=args.start, end=args.end)
    if change == SegmentEdit(args.index):
        raise UsageError("nothing to change: give --source, --target, --start or --end")
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        edited = await client.update_segments(args.job_id, change)
    if io.json:
        _render.print_json(io.out, [_render.as_dict(segment) for segment in edited])
        return OK
    io.out.print(_render.segments_table(s for s in edited if s.index == args.index))
    io.err.print(f"edited; `octavia resume {args.job_id}{server_flag(args)}` dubs the change",
                 markup=False)
    return OK


async def resume(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    """Queue the job again, then (unless --no-follow) follow it until it ends or pauses."""
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        job = await client.resume(args.job_id)
        if io.json:
            _render.print_json(io.out, _render.as_dict(job))
        else:
            io.err.print(f"job {job.job_id} queued again (version {job.version})",
                         markup=False)
        if args.no_follow:
            return OK
        if io.json:
            return await follow_updates(client, job.job_id, job.sequence, io, server_flag(args))
        final = await follow_with_bars(client, job, io)
    code = outcome(final, io, server_flag(args))
    if code == OK:
        io.err.print(f"job {final.job_id} completed (version {final.version}): "
                     f"`octavia download {final.job_id}{server_flag(args)}` fetches it",
                     markup=False)
    return code


async def versions(args: argparse.Namespace, remote: Remote, io: Io) -> int:
    async with AsyncOctaviaClient(remote.address, remote.token) as client:
        found = await client.list_versions(args.job_id)
    if io.json:
        _render.print_json(io.out, [_render.as_dict(version) for version in found])
    elif found:
        io.out.print(_render.versions_table(found))
    else:
        io.err.print(f"job {args.job_id} has no finished version yet")
    return OK
