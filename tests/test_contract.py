"""The contract: buf lint is clean, and the generated Python code matches the protos."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / "node_modules" / ".bin" / "buf"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    """Fails when protos/ changed without `python scripts/gen_protos.py`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts/gen_protos.py")
    assert spec is not None and spec.loader is not None
    gen_protos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_protos)

    fresh = gen_protos.generate(tmp_path)

    assert fresh, "protoc wrote nothing"
    for path in fresh:
        committed = ROOT / "clients" / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run scripts/gen_protos.py"
        assert filecmp.cmp(path, committed, shallow=False), (
            f"{committed.relative_to(ROOT)} is stale: run scripts/gen_protos.py"
        )


@pytest.mark.skipif(shutil.which("node") is None, reason="buf runs on Node.js, which is absent")
def test_buf_lint_is_clean() -> None:
    assert BUF.exists(), "run scripts/setup (npm ci installs buf)"
    result = subprocess.run([str(BUF), "lint"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
