"""Logs as JSON lines: one object a line with the time, level, service, logger, message and the
trace, span and request it belongs to; secrets masked before anything is written.

The stdlib's `logging.Formatter` with `json.dumps` is enough: no dependency, and the fields are
exactly the ones we choose (the request id comes from a context variable that the consume
loop sets per message and the HTTP routes set from their `request_id` path parameter).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REDACTED = "[REDACTED]"

# Names whose values are secrets: the platform's list (the auditor masks the same in its
# records), plus what HTTP calls them. An underscore also matches a hyphen or nothing.
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "private_key",
    "credential",
    "api_key",
    "authorization",
    "cookie",
)
_WORDS = "|".join(word.replace("_", "[-_]?") for word in SECRET_WORDS)
_QUOTED = r'\\"(?:[^"\\]|\\[^"])*\\"|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
# `password=x`, `"password": "x"`, `'db_password': 'x'`, `Authorization: Bearer x`, and the
# same inside a JSON string (`\"token\": \"x\"`).
_KEY_VALUE = re.compile(
    rf"(?<![\w.\\-])(?P<key>\\?[\"']?[\w.-]*(?:{_WORDS})[\w.-]*\\?[\"']?)(?P<sep>\s*[:=]\s*)"
    rf"(?P<value>{_QUOTED}|(?:(?:bearer|basic)\s+)?[^\s,;&'\"}}\])]+)",
    re.IGNORECASE,
)
_PATTERNS = (
    # PEM private keys.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
        ),
        REDACTED,
    ),
    # A password in a URL: postgresql://user:password@host/db.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@"), rf"\1{REDACTED}@"),
    # Credentials as HTTP writes them (capitalised: "a bearer token" in prose is no secret).
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # JSON web tokens: a header and a payload, each base64url JSON (`eyJ`), and a signature.
    (re.compile(r"\beyJ[\w-]*\.eyJ[\w-]*\.[\w-]*"), REDACTED),
    # The platform's API keys (libs/apikeys: `prov_` + base62) and webhook signing secrets.
    (re.compile(r"\bprov_[0-9A-Za-z]{16,}"), f"prov_{REDACTED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"), f"whsec_{REDACTED}"),
)


def redact(text: str) -> str:
    """`text` with every secret it visibly holds replaced by [REDACTED]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _KEY_VALUE.sub(_masked_value, text)


def _masked_value(match: re.Match[str]) -> str:
    value = match["value"]
    if "REDACTED" in value:  # `Authorization: Bearer [REDACTED]`, masked already
        return match[0]
    quote = '\\"' if value.startswith('\\"') else value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message, its arguments and its exception text, so that no
    handler after it can write them."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line. Trace, span and request ids are read when the record is
    formatted, so the handler must format in the logging task (a StreamHandler does)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
            "span_id": format(span.span_id, "016x") if span.is_valid else None,
            "request_id": REQUEST_ID.get(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str)


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log lines written inside carry `request_id`."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def configure_logging(service: str) -> None:
    """JSON lines on stderr, secrets masked, for the root logger and uvicorn's, unless the
    process configured logging already (a test runner)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter(service))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # uvicorn gave its loggers plain-text handlers before it called the app factory: they
    # write through ours instead. (Without handlers, as its access log under
    # --no-access-log, a logger is left silent.)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        if uvicorn_logger.handlers:
            uvicorn_logger.handlers.clear()
            uvicorn_logger.propagate = True
    logging.captureWarnings(True)
