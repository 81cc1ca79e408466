"""The command line: every command, flag and default, in one place."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from ._exit import EPILOG, UsageError

MIX_MODES = ("ducked", "dub_only", "separated")
REVIEWABLE_PHASES = ("transcribing", "translating")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), never the usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build() -> Parser:
    parser = Parser(
        prog="octavia",
        description="Octavia: speech-to-speech dubbing. Dub a file in one command, run the "
        "service, or drive a running one.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    config = Parser(add_help=False)
    config.add_argument("--data-dir", type=Path, help="data directory (OCTAVIA_DATA_DIR)")
    remote = Parser(add_help=False)
    remote.add_argument(
        "--server", metavar="HOST:PORT",
        help="gRPC address of a running server (default: $OCTAVIA_SERVER, else "
        "127.0.0.1:<OCTAVIA_GRPC_PORT>)",
    )
    remote.add_argument(
        "--token",
        help="bearer token (default: $OCTAVIA_TOKEN, else one minted locally for your user "
        "name from the same settings the server uses, when the data directory's secret "
        "or OCTAVIA_JWT_SECRET is readable)",
    )
    as_json = Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON output")

    def add(name: str, help: str, *parents: Parser) -> Parser:
        sub: Parser = commands.add_parser(
            name, help=help, description=help, parents=list(parents), epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return sub

    dub = add("dub", "dub FILE into another language and download the results", config, remote)
    dub.add_argument("file", type=Path, metavar="FILE")
    _languages(dub)
    dub.add_argument(
        "-o", "--output", type=Path, metavar="DIR",
        help="where the artifacts go (default: next to FILE, in FILE-stem.dub-LANG/)",
    )
    dub.add_argument("--mix", choices=MIX_MODES, help="what the dub is mixed over")
    _review_options(dub)
    dub.epilog = (
        "Without --server the service runs in this process (no bridge) and stops when the "
        "dub is done. Ctrl-C cancels the job. With --pause-after the dub stops (exit 6) "
        "when the job awaits review; `octavia segments`, `edit` and `resume` take it from "
        "there, against `octavia serve` when the dub ran in this process.\n\n" + EPILOG
    )

    serve = add("serve", "run the gRPC service and the browser bridge until Ctrl-C", config)
    serve.add_argument("--grpc-port", type=int, metavar="N", help="OCTAVIA_GRPC_PORT")
    serve.add_argument("--http-port", type=int, metavar="N", help="OCTAVIA_HTTP_PORT")
    serve.add_argument("--no-bridge", action="store_true", help="serve gRPC only")
    serve.add_argument("--no-worker", action="store_true",
                       help="API-only replica: leave jobs to `octavia worker` processes "
                            "(needs OCTAVIA_QUEUE=procrastinate)")

    worker = add("worker", "run queued jobs (OCTAVIA_QUEUE=procrastinate on PostgreSQL)",
                 config)
    worker.add_argument("--concurrency", type=int, metavar="N",
                        help="jobs run at once (OCTAVIA_CONCURRENCY)")

    submit = add("submit", "upload FILE and queue a dubbing job", config, remote, as_json)
    submit.add_argument("file", type=Path, metavar="FILE")
    _languages(submit)
    submit.add_argument("--mix", choices=MIX_MODES, help="what the dub is mixed over")
    submit.add_argument("--request-id", help="idempotency key (default: a new UUID)")
    submit.add_argument("--watch", action="store_true",
                        help="follow the job until it ends or awaits review")
    _review_options(submit)

    status = add("status", "show a job", config, remote, as_json)
    status.add_argument("job_id", metavar="ID")

    watch = add("watch", "follow a job until it ends or awaits review (JSON lines with "
                "--json)",
                config, remote, as_json)
    watch.add_argument("job_id", metavar="ID")
    watch.add_argument("--after", type=int, default=0, metavar="SEQUENCE",
                       help="resume after this update's sequence")

    cancel = add("cancel", "cancel a job", config, remote, as_json)
    cancel.add_argument("job_id", metavar="ID")

    jobs = add("jobs", "list your jobs, newest first", config, remote, as_json)
    jobs.add_argument("-n", "--limit", type=int, default=20, help="most jobs to show (0: all)")

    download = add("download", "download a completed job's artifacts (all, or NAME)",
                   config, remote, as_json)
    download.add_argument("job_id", metavar="ID")
    download.add_argument("name", nargs="?", metavar="NAME")
    download.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                          help="destination folder (default: the current one)")
    download.add_argument("--version", type=int, default=0, metavar="N",
                          help="a finished version of the outputs (see `octavia versions`; "
                          "default: the current one)")

    segments = add("segments", "show a job's segments: timings, source and target text",
                   config, remote, as_json)
    segments.add_argument("job_id", metavar="ID")

    edit = add("edit", "edit one segment of a job that awaits review or has completed",
               config, remote, as_json)
    edit.add_argument("job_id", metavar="ID")
    edit.add_argument("index", type=int, metavar="INDEX", help="the segment (see `segments`)")
    edit.add_argument("--source", metavar="TEXT",
                      help="new source text: translated again on resume")
    edit.add_argument("--target", metavar="TEXT", help="new target text: spoken again on resume")
    edit.add_argument("--start", type=float, metavar="SECONDS", help="new start")
    edit.add_argument("--end", type=float, metavar="SECONDS", help="new end")
    edit.epilog = ("Nothing is dubbed again until `octavia resume ID`; then only the edited "
                   "lines are translated or spoken again.\n\n" + EPILOG)

    resume = add("resume", "continue a job that awaits review, or re-dub a completed one "
                 "as a new version; then follow it", config, remote, as_json)
    resume.add_argument("job_id", metavar="ID")
    resume.add_argument("--no-follow", action="store_true",
                        help="return once the job is queued again")

    versions = add("versions", "list the finished versions of a job's outputs",
                   config, remote, as_json)
    versions.add_argument("job_id", metavar="ID")

    token = add("token", "mint a token the server on this machine accepts", config)
    token.add_argument("--sub", help="subject: who owns the jobs (default: your user name)")
    token.add_argument("--ttl", type=int, metavar="SECONDS",
                       help="lifetime (default: OCTAVIA_TOKEN_TTL_SECONDS)")

    models = add("models", "the models each stage uses: list, fetch, path", config)
    actions = models.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    listing = actions.add_parser("list", help="what each stage uses, per the settings",
                                 parents=[as_json])
    del listing
    fetch = actions.add_parser("fetch", help="pre-download models for offline use")
    fetch.add_argument("--to", action="append", metavar="LANG", dest="targets",
                       help="target language to fetch for (repeatable; default: every "
                       "language with a voice in OCTAVIA_TTS_VOICES)")
    fetch.add_argument("--from", dest="source", default="en", metavar="LANG",
                       help="source language of the translation pairs (default: en)")
    fetch.add_argument("--stage", action="append", choices=("asr", "translation", "tts"),
                       help="only these stages (repeatable)")
    actions.add_parser("path", help="where the models live on disk")
    return parser


def _review_options(parser: Parser) -> None:
    parser.add_argument("--pause-after", action="append", choices=REVIEWABLE_PHASES,
                        metavar="PHASE", dest="pause_after", default=[],
                        help="pause for review after this phase: transcribing or translating "
                        "(repeatable)")
    parser.add_argument("--webhook", metavar="URL",
                        help="URL the server calls (signed) when the job ends or awaits "
                        "review")


def _languages(parser: Parser) -> None:
    parser.add_argument("--to", required=True, dest="target", metavar="LANG",
                        help="language to dub into (ISO 639-1, e.g. es)")
    parser.add_argument("--from", dest="source", metavar="LANG",
                        help="language spoken in FILE (default: detect it)")
