"""Keeping secrets out of the logs: the access log masks tickets and tokens in URLs."""

from __future__ import annotations

import logging
import re

_SECRET_PARAMETER = re.compile(
    r"(?P<key>[?&](?:ticket|token|access_token|jwt)=)[^&\s\"]*", re.IGNORECASE
)
MASK = "***"


def mask(text: str) -> str:
    return _SECRET_PARAMETER.sub(rf"\g<key>{MASK}", text)


class MaskSecrets(logging.Filter):
    """Rewrites the record's message and string arguments with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask(a) if isinstance(a, str) else a for a in record.args)
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    """Add the filter to a logger once (uvicorn logs each request to `uvicorn.access`)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, MaskSecrets) for f in logger.filters):
        logger.addFilter(MaskSecrets())
