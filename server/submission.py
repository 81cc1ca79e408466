"""Checking a SubmitJob request and turning it into a stored job.

Every rejection is INVALID_ARGUMENT with a message that says what to fix (but a webhook
this server cannot sign is FAILED_PRECONDITION); nothing is written until the request has
passed every check.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from octavia.errors import FailedPrecondition, InvalidArgument, Reason, ResourceExhausted
from octavia.v1 import jobs_pb2 as pb

from . import webhook_target
from .engine import EngineError
from .jobs import REVIEWABLE_PHASES, MixMode, Phase, Status
from .languages import is_supported, normalize_language
from .settings import Settings
from .store import JobRecord
from .store.models import utcnow

MAX_TEXT = 255
MAX_URL = 2048
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Source:
    """Where a job's media is: our own upload copy, or a file under the media root."""

    path: Path
    owned: bool


def new_job_id() -> str:
    return str(uuid.uuid4())


def check_job_id(job_id: str) -> str:
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise InvalidArgument(
            f"malformed job_id {job_id[:64]!r}: expected a UUID such as "
            "'123e4567-e89b-12d3-a456-426614174000'"
        ) from None


def check_language(value: str, field: str, *, required: bool) -> str | None:
    if not value.strip():
        if required:
            raise InvalidArgument(f"{field} is required (an ISO 639-1 code such as 'es')",
                                  reason=Reason.UNSUPPORTED_LANGUAGE)
        return None
    code = normalize_language(value)
    if len(value) > 16 or not is_supported(code):
        raise InvalidArgument(f"unsupported {field} {value[:16]!r}: use an ISO 639-1 code "
                              "such as 'en', 'es' or 'de'", reason=Reason.UNSUPPORTED_LANGUAGE)
    return code


def safe_filename(name: str) -> str:
    """A file name we can put on disk: the base name, reduced to safe characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_FILENAME.sub("_", base).strip("._") or "media"
    return cleaned[-100:]


def check_request(request: pb.SubmitJobRequest, settings: Settings) -> None:
    """Everything that can be told without touching the disk."""
    which = request.WhichOneof("source")
    if which is None:
        raise InvalidArgument("no source media: set `content` (the file's bytes) or `uri`")
    if which == "content":
        if not request.content:
            raise InvalidArgument("`content` is empty: send the media file's bytes")
        if len(request.content) > settings.max_upload_bytes:
            raise ResourceExhausted(
                f"media of {len(request.content)} bytes exceeds the "
                f"{settings.max_upload_bytes}-byte upload limit",
                reason=Reason.PAYLOAD_TOO_LARGE, retryable=False,
            )
    for field in ("request_id", "filename"):
        if len(getattr(request, field)) > MAX_TEXT:
            raise InvalidArgument(f"`{field}` is longer than {MAX_TEXT} characters")
    check_pauses(request.options)
    if check_webhook_url(request.options.webhook_url, settings) and not settings.webhook_secret:
        raise FailedPrecondition(
            "this server sends no webhooks: it has no OCTAVIA_WEBHOOK_SECRET to sign them "
            "with (nothing unsigned is ever sent); submit without `options.webhook_url`",
            reason=Reason.WEBHOOKS_DISABLED)


def check_pauses(options: pb.JobOptions) -> list[str]:
    """The phases to pause after, in pipeline order; only reviewable phases are allowed."""
    from .convert import phase_from_proto

    phases = {phase_from_proto(value) for value in options.pause_after}
    if not phases <= set(REVIEWABLE_PHASES):
        raise InvalidArgument("`options.pause_after` may list only JOB_PHASE_TRANSCRIBING and "
                              "JOB_PHASE_TRANSLATING")
    return [phase.value for phase in REVIEWABLE_PHASES if phase in phases]


def check_webhook_url(url: str, settings: Settings) -> str | None:
    """An absolute http(s) URL with a host (a public one, unless private networks are
    allowed: an IP literal is checked here, a name when each attempt resolves it)."""
    if not url:
        return None
    try:
        parts = urlparse(url) if len(url) <= MAX_URL else None
        host = parts.hostname if parts is not None else None
    except ValueError:  # e.g. a malformed IPv6 literal
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidArgument(f"`options.webhook_url` must be an absolute http(s) URL of at "
                              f"most {MAX_URL} characters")
    if not settings.webhook_allow_private_networks:
        try:
            webhook_target.check_literal(url)
        except webhook_target.NotPublic as error:
            raise InvalidArgument(
                f"`options.webhook_url`: {error}; webhooks go to public addresses only "
                f"unless the server sets {webhook_target.ALLOW_SETTING}=true") from None
    return url


def resolve_uri(uri: str, settings: Settings) -> Path:
    """The local file a `uri` names, only if it lies under the configured media root."""
    root = settings.media_root
    if root is None:
        raise InvalidArgument("this server accepts no `uri` sources (no media root is "
                              "configured): send the file as `content`",
                              reason=Reason.URI_NOT_ALLOWED)
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "file" and parsed.netloc):
        raise InvalidArgument(f"unsupported uri {uri[:100]!r}: give a path or file:// URI "
                              "under the media root", reason=Reason.URI_NOT_ALLOWED)
    raw = unquote(parsed.path) if parsed.scheme == "file" else uri
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved_root = root.resolve()
        resolved = candidate.resolve()  # follows symlinks, so a link cannot escape the root
        inside = resolved.is_relative_to(resolved_root)
        is_file = inside and resolved.is_file()
    except (OSError, ValueError, RuntimeError):  # NUL byte, name too long, symlink loop
        inside, is_file = True, False
    if not inside:
        raise InvalidArgument(f"uri {uri[:100]!r} is outside the allowed media root",
                              reason=Reason.URI_NOT_ALLOWED)
    if not is_file:
        raise InvalidArgument(f"uri {uri[:100]!r} is not a readable file under the media root",
                              reason=Reason.URI_NOT_ALLOWED)
    return resolved


def store_source(request: pb.SubmitJobRequest, job_id: str, settings: Settings) -> Source:
    """Put inline media in the uploads folder, or resolve a URI. Runs in a thread."""
    if request.WhichOneof("source") == "uri":
        return Source(resolve_uri(request.uri, settings), owned=False)
    folder = settings.uploads_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_filename(request.filename or "media")
    path.write_bytes(request.content)
    return Source(path, owned=True)


def discard_source(source: Source) -> None:
    if source.owned:
        shutil.rmtree(source.path.parent, ignore_errors=True)


def probe_source(source: Source, settings: Settings) -> float:
    """Reject what is cheap to tell is unusable; return the media duration in seconds."""
    from .pipeline.media import probe  # PyAV only; no ML imports

    try:
        info = probe(source.path)
    except EngineError as error:
        raise InvalidArgument(error.message, reason=error.reason) from None
    if not info.has_audio:
        raise InvalidArgument("the media has no audio stream to dub",
                              reason=Reason.MEDIA_UNREADABLE)
    if info.duration_seconds > settings.max_media_seconds:
        raise ResourceExhausted(
            f"the media lasts {info.duration_seconds:.0f} s, longer than the "
            f"{settings.max_media_seconds:.0f} s limit", reason=Reason.MEDIA_TOO_LONG,
            retryable=False)
    return float(info.duration_seconds)


def new_record(
    request: pb.SubmitJobRequest,
    *,
    job_id: str,
    owner: str,
    source: Source,
    duration: float,
    target_language: str,
    source_language: str | None,
) -> JobRecord:
    from .convert import MIX_FROM_PB

    return JobRecord(
        id=job_id,
        owner=owner,
        request_id=request.request_id or None,
        status=Status.PENDING,
        phase=Phase.PENDING,
        current_step="Waiting in the queue",
        created_at=utcnow(),
        target_language=target_language,
        source_language=source_language,
        source_filename=request.filename or source.path.name,
        media_path=str(source.path),
        media_owned=source.owned,
        mix_mode=MIX_FROM_PB.get(request.options.mix_mode, MixMode.DUCKED),
        media_duration=duration,
        pause_after=check_pauses(request.options),
        webhook_url=request.options.webhook_url or None,  # checked by check_request
    )
