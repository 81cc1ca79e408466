"""One settings object for the server, the bridge and every command that mints tokens.

Read once at the entry point (`Settings()` picks up `OCTAVIA_*` variables and a `.env`
file), then passed down. Frozen: nothing changes configuration while the service runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024

DEFAULT_TTS_VOICES: dict[str, str] = {
    "en": "tts_models/en/ljspeech/vits",
    "es": "tts_models/es/css10/vits",
    "de": "tts_models/de/thorsten/vits",
    "fr": "tts_models/fr/css10/vits",
    "nl": "tts_models/nl/css10/vits",
    "it": "tts_models/it/mai_female/vits",
    "pt": "tts_models/pt/cv/vits",
    "pl": "tts_models/pl/mai_female/vits",
    "uk": "tts_models/uk/mai/vits",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OCTAVIA_", env_file=".env", extra="ignore", frozen=True
    )

    # --- Where things live -------------------------------------------------------------
    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path("octavia"))
    """Home of the embedded database, uploaded media, artifacts and the generated JWT secret."""
    database_url: str | None = None
    """Any SQLAlchemy URL; empty means an SQLite file (WAL mode) in `data_dir`."""
    artifacts_url: str | None = None
    """Where artifacts are stored: a path or any fsspec URL; empty means `data_dir/artifacts`."""
    artifacts_options: dict[str, Any] = Field(default_factory=dict)
    """fsspec storage options for `artifacts_url`, passed as they are (`OCTAVIA_ARTIFACTS_OPTIONS`
    is a JSON object), e.g. `{"endpoint_url": "http://minio:9000"}` for an S3-compatible
    server. Credentials may go here (`key`, `secret`), but are better left to the
    filesystem's own sources: for `s3://`, the standard `AWS_*` variables or files."""

    # --- Network -----------------------------------------------------------------------
    grpc_host: str = "127.0.0.1"
    """Address the gRPC server binds; `0.0.0.0` or `[::]` to accept other machines."""
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    """gRPC port; 0 picks a free one (tests)."""
    http_host: str = "127.0.0.1"
    """Address the browser bridge binds."""
    http_port: int = Field(default=8001, ge=0, le=65535)
    """Bridge port; 0 picks a free one."""
    grpc_target: str | None = None
    """gRPC address the bridge talks to; empty means this process's own server."""

    # --- Limits ------------------------------------------------------------------------
    max_upload_bytes: int = Field(default=256 * MiB, gt=0)
    """Largest inline media a SubmitJob may carry; gRPC message limits are raised to match."""
    media_root: Path | None = None
    """Submit-by-URI reads only files under this directory; unset rejects every URI."""
    max_media_seconds: float = Field(default=4 * 3600, gt=0)
    """Longest source media accepted, in seconds."""
    queue_size: int = Field(default=100, ge=1)
    """Most jobs waiting at once; one more answers RESOURCE_EXHAUSTED."""
    max_active_jobs_per_user: int = Field(default=20, ge=1)
    """Most jobs one user may have pending or processing at once; one more SubmitJob
    answers RESOURCE_EXHAUSTED (reason TOO_MANY_JOBS, HTTP 429)."""
    max_streams_per_user: int = Field(default=1000, ge=1)
    """Most WatchJob streams (each bridge SSE stream is one) one user may hold open on one
    server process; one more answers RESOURCE_EXHAUSTED (TOO_MANY_STREAMS, HTTP 429)."""
    concurrency: int = Field(default=1, ge=1)
    """Jobs run at the same time by the in-process engine."""
    queue: Literal["embedded", "procrastinate"] = "embedded"
    """Where jobs wait: `embedded` runs them in the serving process; `procrastinate` queues
    them in PostgreSQL for `octavia worker` processes on any machine (scale-out)."""
    run_worker: bool = True
    """With the procrastinate queue, whether `octavia serve` also works jobs itself
    (`--no-worker` makes an API-only replica)."""
    max_attempts: int = Field(default=3, ge=1)
    """Runs of one job before it fails for good when its workers keep dying."""
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    """How often a worker tells PostgreSQL it is alive."""
    stalled_after_seconds: float = Field(default=20.0, gt=0)
    """A job whose worker has been silent this long is run again by another worker."""
    store_outage_seconds: float = Field(default=60.0, ge=0)
    """How long a running job waits for an unreachable (or locked) database before it
    fails; its engine pauses meanwhile and goes on when the database is back."""
    progress_interval_seconds: float = Field(default=0.05, ge=0)
    """Least time between two stored progress events of one job (phase changes always go)."""
    watch_buffer: int = Field(default=64, ge=4)
    """Events buffered per watcher before its progress events are coalesced."""

    # --- Observability -----------------------------------------------------------------
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the Prometheus `/metrics` endpoint of `octavia serve` / `octavia worker`;
    unset serves none, 0 picks a free one (tests). See docs/operating.md."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint binds; `0.0.0.0` lets a Prometheus elsewhere scrape it."""
    log_format: Literal["text", "json"] = "text"
    """`text`: readable lines; `json`: one JSON object a line, with `job_id`, `user`,
    `phase` and `request_id` fields, for a log pipeline."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Least severe log records written."""
    tracing: bool = False
    """OpenTelemetry spans per RPC, per job and per stage (W3C `traceparent` is honoured)."""
    tracing_exporter: Literal["console", "otlp", "none"] = "otlp"
    """Where spans go when `tracing` is on: `otlp` needs the opentelemetry-exporter-otlp
    package (configured by the standard `OTEL_EXPORTER_OTLP_*` variables); `console` prints
    them; `none` records but exports nothing."""

    # --- Auth --------------------------------------------------------------------------
    jwt_secret: SecretStr | None = None
    """HMAC secret; unset means a random one generated once and kept in `data_dir`."""
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    """The only algorithm tokens may use."""
    jwt_public_key_file: Path | None = None
    """PEM public key that verifies RS256/ES256 tokens."""
    jwt_private_key_file: Path | None = None
    """PEM private key `octavia token` signs RS256/ES256 tokens with."""
    jwt_issuer: str | None = None
    """Required `iss` when set."""
    jwt_audience: str | None = None
    """Required `aud` when set."""
    token_ttl_seconds: int = Field(default=3600, gt=0)
    """Lifetime of tokens minted by `octavia token`."""
    stream_ticket_ttl_seconds: int = Field(default=60, gt=0)
    """Lifetime of the single-job tickets the bridge hands out for `EventSource` URLs."""

    # --- Webhooks ---------------------------------------------------------------------
    webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key every webhook body is signed with (`Octavia-Signature`); unset means
    no webhooks: a job that asks for one is refused, nothing unsigned is ever sent."""
    webhook_urls: dict[str, str] = Field(default_factory=dict)
    """Default webhook URL per user (token `sub` → URL), for jobs that name none;
    `OCTAVIA_WEBHOOK_URLS` is a JSON object, e.g. `{"alice": "https://example.com/hook"}`."""
    webhook_max_attempts: int = Field(default=8, ge=1)
    """Attempts at one delivery before it is marked failed."""
    webhook_backoff_seconds: float = Field(default=10.0, gt=0)
    """Wait after the first failed attempt; it doubles after each further one."""
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    """Longest wait between two attempts."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """Time a receiver has to answer one POST (connecting included)."""
    webhook_allow_private_networks: bool = False
    """Let webhooks reach loopback, private and link-local addresses (a receiver on this
    machine or network). Off: a user's URL could otherwise make the server call internal
    services (see `server.webhook_target`)."""
    webhook_poll_seconds: float = Field(default=5.0, gt=0)
    """How often a server looks for deliveries written by other processes (workers,
    replicas); its own are sent at once."""

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("OCTAVIA_WEBHOOK_URLS needs OCTAVIA_WEBHOOK_SECRET: webhooks are "
                             "always signed")
        for owner, url in self.webhook_urls.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"the webhook URL of {owner!r} must be an http(s) URL")
        return self

    # --- Browser bridge ----------------------------------------------------------------
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    """Idle time after which a job stream sends a comment, so proxies keep it open."""
    sse_retry_milliseconds: int = Field(default=3000, ge=0)
    """`retry:` hint telling `EventSource` how long to wait before reconnecting."""
    bridge_status_max_age_seconds: float = Field(default=0.25, ge=0, le=60)
    """How old a `GET /status` answer may be: one user's pollers of a job share one
    `GetStatus` per interval (a change made through the bridge shows at once). 0: none."""

    # --- Engine and models -------------------------------------------------------------
    engine: str = "server.pipeline:DubbingEngine"
    """`module:attribute` of the engine factory; the default is the real ML pipeline."""
    offline: bool = False
    """Never reach a model hub: only local paths and the Hugging Face cache are read."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where models run; auto picks CUDA when present."""
    asr_model: str = "small"
    """faster-whisper model: a size name, a hub id or a local CTranslate2 folder."""
    translation_model: str = "Helsinki-NLP/opus-mt-{src}-{tgt}"
    """MarianMT hub id template (or a local folder) tried first for a language pair."""
    translation_fallback_model: str = "facebook/nllb-200-distilled-600M"
    """Many-to-many model used when no pair model exists."""
    translation_backend: Literal["ctranslate2", "transformers"] = "ctranslate2"
    """Runs translation: CTranslate2 (converted once, cached, int8 on CPU) or transformers."""
    tts_voices: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TTS_VOICES))
    """Coqui TTS model per target language: a model name or a local folder."""
    tts_fallback_voice: str = "tts_models/multilingual/multi-dataset/xtts_v2"
    """Coqui TTS model for languages without their own voice."""
    separation_model: str | None = None
    """Source-separation model for the `separated` mix mode (e.g. a Demucs name)."""
    max_resident_models: int = Field(default=4, ge=1)
    """Models kept loaded per process; the least recently used goes first."""

    @property
    def uses_postgres(self) -> bool:
        return self.database_url_resolved.startswith("postgresql")

    @property
    def database_url_resolved(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'octavia.db'}"

    @property
    def artifacts_url_resolved(self) -> str:
        return self.artifacts_url or str(self.data_dir / "artifacts")

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def grpc_message_limit(self) -> int:
        """Room for the largest upload plus the rest of the request."""
        return self.max_upload_bytes + MiB
