import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from events.logs import REDACTED, JsonFormatter, RedactSecrets, redact, request_context

API_KEY = "prov_" + "A1b2C3d4E5" * 4 + "xyz" + "Zz9Yy8"  # the shape of libs/apikeys' keys
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the services' handler (filter + formatter) into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter("validator"))
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, out
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_every_field(logged):
    logger, out = logged
    logger.warning("consumer paused: %s", "broker gone")
    (line,) = lines(out)
    assert line["level"] == "WARNING" and line["service"] == "validator"
    assert line["logger"] == "test.logs" and line["message"] == "consumer paused: broker gone"
    assert str(line["timestamp"]).endswith("Z") and "T" in str(line["timestamp"])
    assert line["trace_id"] is None and line["span_id"] is None and line["request_id"] is None


def test_trace_span_and_request_ids_come_from_the_context(logged):
    logger, out = logged
    tracer = TracerProvider().get_tracer("test")
    with (
        request_context("0b6c5c0e-1f4e-4c55-9d55-2f1d2c3b4a59"),
        tracer.start_as_current_span("x") as span,
    ):
        logger.info("handling")
    logger.info("after")
    inside, after = lines(out)
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["request_id"] == "0b6c5c0e-1f4e-4c55-9d55-2f1d2c3b4a59"
    assert after["request_id"] is None and after["trace_id"] is None


def test_an_exception_is_written_as_text_and_masked(logged):
    logger, out = logged
    try:
        raise ConnectionError("could not reach postgresql://svc:hunter2@db:5432/x")
    except ConnectionError:
        logger.exception("database down")
    (line,) = lines(out)
    assert "ConnectionError" in str(line["exception"]) and "Traceback" in str(line["exception"])
    assert "hunter2" not in out.getvalue()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login with password=hunter2 failed", "hunter2"),
        ("password: hunter2", "hunter2"),
        ('{"password": "hunter 2", "name": "orders"}', "hunter 2"),
        ("{'db_password': 'hunter2', 'name': 'orders'}", "hunter2"),
        ('body {\\"client_secret\\": \\"s3cr3t-value\\"}', "s3cr3t-value"),
        ("api_key=abc123def and API-Key: xyz789", "abc123def"),
        ("api_key=abc123def and API-Key: xyz789", "xyz789"),
        ("private_key='-----BEGIN-----abc'", "BEGIN-----abc"),
        ("GET /x?access_token=tok123&page=2", "tok123"),
        ("refresh-token = tok456", "tok456"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("sent Bearer abc.def.ghi upstream", "abc.def.ghi"),
        ("credentials=u:p", "u:p"),
        (f"refused key {API_KEY}", API_KEY[5:]),
        (f"jwt {JWT}", JWT),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rejected", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("connect postgresql://orders_owner:pa55word@127.0.0.1:5432/orders", "pa55word"),
        ("postgresql+asyncpg://auditor:pw%40x@h/audit", "pw%40x"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----", "MIIEvQ"),
    ],
)
def test_secrets_are_masked(text: str, secret: str):
    masked = redact(text)
    assert secret not in masked and REDACTED in masked, masked


def test_masking_keeps_what_is_not_secret():
    assert redact('{"password": "x", "name": "orders"}') == (
        '{"password": "[REDACTED]", "name": "orders"}'
    )
    assert redact("postgresql://orders_owner:pw@h:5432/orders") == (
        "postgresql://orders_owner:[REDACTED]@h:5432/orders"
    )
    assert redact("Authorization: Bearer abc") == "Authorization: Bearer [REDACTED]"
    for plain in (
        "request 5f0c done in 0.2 s by ann, http://127.0.0.1:8000/v1/requests",
        "refused a bearer token, basic checks passed",
    ):
        assert redact(plain) == plain


def test_the_filter_masks_arguments_and_exception_text(logged):
    logger, out = logged
    logger.info("connecting with %s as %r", "postgresql://u:topsecret@h/db", {"token": "t0k3n"})
    try:
        raise ValueError("password=hunter2")
    except ValueError:
        logger.exception("failed for api_key=%s", API_KEY)
    text = out.getvalue()
    for secret in ("topsecret", "t0k3n", "hunter2", API_KEY):
        assert secret not in text
    assert len(lines(out)) == 2


def test_a_service_process_writes_json_lines_to_stderr():
    """configure_logging as a service's process runs it: uvicorn's handlers replaced too."""
    program = """
import logging, logging.config
logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
    "handlers": {"default": {"class": "logging.StreamHandler"}},
    "loggers": {"uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False}}})
from events.logs import configure_logging
configure_logging("allocator")
logging.getLogger("uvicorn.error").info("Started server process")
logging.getLogger("allocator.handlers").warning("login password=%s refused", "hunter2")
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    started, refused = (json.loads(line) for line in done.stderr.splitlines())
    assert started["logger"] == "uvicorn.error" and started["service"] == "allocator"
    assert refused["message"] == f"login password={REDACTED} refused"
    assert "hunter2" not in done.stderr
