"""The artifact store: result files of each job, on any fsspec filesystem.

Layout: `<root>/<job_id>/<name>` for a job's first version, `<root>/<job_id>/v<N>/<name>`
for the outputs of its re-dub N (kept beside the earlier ones). Clients learn artifact
names only from a completed job's snapshot, so files written by a job that later fails
are never visible; they are removed with `discard`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs
from octavia.errors import InvalidArgument, NotFound, Reason

from .engine import ArtifactInfo

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK = 1024 * 1024


def check_artifact_name(name: str) -> str:
    """Reject anything that is not a plain file name (no separators, no `..`)."""
    if not ARTIFACT_NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument(
            f"invalid artifact name {name[:80]!r}: use letters, digits, '.', '_' or '-'",
            reason=Reason.INVALID_ARGUMENT,
        )
    return name


class ArtifactStore:
    """`options` are the filesystem's storage options (e.g. an S3 `endpoint_url`)."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.fs: fsspec.AbstractFileSystem
        self.fs, self.root = url_to_fs(url, **(options or {}))
        self.fs.makedirs(self.root, exist_ok=True)

    def _folder(self, job_id: str, version: int = 1) -> str:
        folder = f"{self.root.rstrip('/')}/{job_id}"
        return folder if version == 1 else f"{folder}/v{int(version)}"

    def _path(self, job_id: str, name: str, version: int = 1) -> str:
        return f"{self._folder(job_id, version)}/{check_artifact_name(name)}"

    def writer(self, job_id: str, version: int = 1) -> JobArtifactWriter:
        return JobArtifactWriter(self, job_id, version)

    def size(self, job_id: str, name: str, version: int = 1) -> int:
        try:
            return int(self.fs.size(self._path(job_id, name, version)))
        except FileNotFoundError:
            raise NotFound(f"artifact {name} not found", reason=Reason.ARTIFACT_NOT_FOUND) from None

    def open(self, job_id: str, name: str, version: int = 1) -> IO[bytes]:
        try:
            return self.fs.open(self._path(job_id, name, version), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise NotFound(f"artifact {name} not found", reason=Reason.ARTIFACT_NOT_FOUND) from None

    def iter_range(
        self, job_id: str, name: str, start: int, end: int, version: int = 1
    ) -> Iterator[bytes]:
        """Bytes start..end (inclusive) of an artifact, in chunks."""
        with self.open(job_id, name, version) as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def checkpoints(self, job_id: str) -> JobCheckpoints:
        return JobCheckpoints(self, job_id)

    def discard(self, job_id: str) -> None:
        """Remove a job's artifacts and checkpoints."""
        root = self.root.rstrip("/")
        for path in (f"{root}/{job_id}", f"{root}/{job_id}.checkpoints",
                     f"{root}/{job_id}.source"):
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def save_source(self, job_id: str, path: Path) -> None:
        """Keep a copy of an uploaded source beside the job's artifacts, where a worker on
        another machine can fetch it (`<root>/<job_id>.source/media`)."""
        target = f"{self.root.rstrip('/')}/{job_id}.source/media"
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(path), target)

    def fetch_source(self, job_id: str, target: Path) -> bool:
        """Copy the job's stored source into `target`; False when none was stored."""
        source = f"{self.root.rstrip('/')}/{job_id}.source/media"
        try:
            self.fs.get_file(source, str(target))
        except FileNotFoundError:
            return False
        return True

    def discard_version(self, job_id: str, version: int) -> None:
        """Remove the outputs of one re-dub (N ≥ 2) that did not complete."""
        folder = self._folder(job_id, version)
        if version > 1 and self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)


class JobArtifactWriter:
    """Writes one job's artifacts, hashing them on the way in."""

    def __init__(self, store: ArtifactStore, job_id: str, version: int = 1) -> None:
        self._store = store
        self._job_id = job_id
        self._version = version

    def put_file(self, name: str, path: Path, media_type: str) -> ArtifactInfo:
        digest = hashlib.sha256()
        size = 0
        target = self._store._path(self._job_id, name, self._version)
        self._store.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with open(path, "rb") as source, self._store.fs.open(target, "wb") as sink:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                sink.write(chunk)
        return ArtifactInfo(name, media_type, size, digest.hexdigest())

    def put_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactInfo:
        target = self._store._path(self._job_id, name, self._version)
        self._store.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with self._store.fs.open(target, "wb") as sink:
            sink.write(data)
        return ArtifactInfo(name, media_type, len(data), hashlib.sha256(data).hexdigest())


class JobCheckpoints:
    """A job's checkpoints: `<root>/<job_id>.checkpoints/<name>`, beside its artifacts."""

    def __init__(self, store: ArtifactStore, job_id: str) -> None:
        self._fs = store.fs
        self._folder = f"{store.root.rstrip('/')}/{job_id}.checkpoints"

    def load(self, name: str) -> bytes | None:
        try:
            with self._fs.open(f"{self._folder}/{check_artifact_name(name)}", "rb") as handle:
                return handle.read()  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def save(self, name: str, data: bytes) -> None:
        target = f"{self._folder}/{check_artifact_name(name)}"
        partial = f"{target}.partial"
        self._fs.makedirs(self._folder, exist_ok=True)
        with self._fs.open(partial, "wb") as handle:
            handle.write(data)
        self._fs.mv(partial, target)  # a reader never sees half a checkpoint
