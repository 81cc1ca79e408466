"""Hypothesis settings and strategies for the bad-input suites.

The runtime stays modest: `OCTAVIA_FUZZ_EXAMPLES` (default 60) examples per test, no
deadline (2 shared cores), derandomized so CI is reproducible; set
`OCTAVIA_FUZZ_RANDOM=1` to explore new inputs locally.
"""

from __future__ import annotations

import base64
import os
import string
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=int(os.environ.get("OCTAVIA_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=not os.environ.get("OCTAVIA_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

TRAVERSAL = [
    "", " ", ".", "..", "../", "../../etc/passwd", "/etc/passwd", "..\\..\\windows",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "....//....//etc/passwd", "dubbed.wav/../../x",
    "./dubbed.wav", "dubbed.wav\x00.txt", "\x00", "~", "~root/.ssh/id_rsa", "/dev/zero",
    "/proc/self/environ", "file:///etc/passwd", "file://host/etc/passwd", "C:\\boot.ini",
    "\\\\server\\share", "con", "a" * 300, "é" * 200, "\u202e\u0000/", "\ud7ff",
]

weird_text = st.one_of(
    st.sampled_from(TRAVERSAL),
    st.text(max_size=64),
    st.text(alphabet=string.printable, max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
    st.builds(lambda n: "x" * n, st.integers(min_value=256, max_value=200_000)),
)
"""Ids, names and languages a hostile or careless client might send."""

uuid_like = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: f"urn:uuid:{u}"),
    st.uuids().map(lambda u: str(u) + "/../../x"),
    st.uuids().map(lambda u: str(u)[:-1]),
)

job_ids = st.one_of(weird_text, uuid_like)

url_text = st.one_of(
    st.sampled_from(TRAVERSAL),
    st.text(max_size=64),
    st.text(alphabet=string.printable, max_size=300),
    st.builds(lambda n: "x" * n, st.integers(min_value=256, max_value=8000)),
)
"""Like `weird_text`, short enough for a URL (HTTP clients refuse 64 KiB URLs)."""

url_job_ids = st.one_of(url_text, uuid_like)

languages = st.one_of(
    st.sampled_from(["", "es", "ES", "pt-BR", "zh_Hant", "xx", "klingon", "e s", "es\x00",
                     "en-", "-en", "und", "mul", "zxx", "ja-Latn-JP-x-private"]),
    st.text(max_size=40),
)

int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
huge_ints = st.one_of(int64, st.integers(min_value=2**63, max_value=2**80),
                      st.integers(max_value=-(2**63) - 1, min_value=-(2**80)))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


page_tokens = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(_token),
    st.builds(lambda d, u: _token(f"{d.isoformat()}|{u}".encode()),
              st.datetimes(timezones=st.none() | st.timezones()), st.uuids()),
    st.builds(lambda d, s: _token(f"{d}|{s}".encode()), st.text(max_size=30),
              st.text(max_size=40)),
)


def inside(path: str, root: Path) -> bool:
    """Whether `path` is a file that, links followed, lies under `root`."""
    resolved = Path(path).resolve()
    return resolved.is_relative_to(root.resolve()) and resolved.is_file()
