"""Regenerate the Python protobuf and gRPC code from protos/ (the one command).

    .venv/bin/python scripts/gen_protos.py

Writes clients/octavia/v1/*_pb2*.py(i), where `octavia.v1` is imported from. The test
suite runs `generate()` into a temporary folder and fails when the checked-in code differs.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUTPUT_ROOT = ROOT / "clients"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path = OUTPUT_ROOT) -> list[Path]:
    """Run protoc over every proto file; return the files written."""
    well_known = resources.files("grpc_tools") / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return sorted(p for p in out_dir.rglob("*_pb2*.py*") if p.is_file())


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    sys.exit(0)
