"""A generated secret is a canary: after it is shown, it must be found nowhere else — no Kafka
topic (dead letters included), log, trace, metrics page or database dump holds it, in plain,
base64 or hex form. Passwords the deployer generates, API keys and webhook signing secrets."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tests.e2e.client import SERVICES, Platform
from tests.kafka_tools import produce, read_topic
from tests.polling import eventually

from devstack import postgres
from events.envelope import Envelope

pytestmark = pytest.mark.integration


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    ]


def found_in(blob: bytes, secret: str) -> list[bytes]:
    return [form for form in forms(secret) if form in blob]


async def every_topic(platform: Platform) -> dict[str, bytes]:
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.stack.bootstrap_servers)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if not t.startswith("__")]
    finally:
        await admin.close()
    contents = {}
    for topic in topics:
        records = await read_topic(
            platform.stack.bootstrap_servers, topic, at_least=0, timeout_s=2, settle_s=0.5
        )
        contents[topic] = b"\n".join(
            (r.value or b"") + b"".join(k.encode() + v for k, v in r.headers) for r in records
        )
    return contents


def dump_of_every_database(platform: Platform) -> bytes:
    config = platform.stack.config
    command = [
        str(postgres.bin_dir() / "pg_dumpall"),
        "-h",
        str(config.pg_socket_dir),
        "-p",
        str(config.pg_port),
        "-U",
        "postgres",
    ]
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        cwd="/tmp",
        capture_output=True,
        check=True,
    )
    return done.stdout


async def test_revealed_passwords_are_nowhere_else(platform: Platform):
    """Canaries: a database password, its rotation, a directory account's password, an API
    key and a webhook signing secret."""
    database = await platform.completed("postgres_database", name=f"canary_{uuid.uuid4().hex[:10]}")
    reveal = await platform.api.get(f"/v1/resources/{database['resource_id']}/credentials")
    first = reveal.json()["password"]
    rotated = await platform.modify(database["resource_id"], rotate=True)
    assert rotated["status"] == "completed", rotated
    second = (await platform.reveal(database["resource_id"]))["password"]
    account = await platform.completed(
        "directory_account",
        name=f"canary_{uuid.uuid4().hex[:10]}",
        given_name="Canary",
        family_name="Bird",
        department="web",
    )
    directory = (await platform.reveal(account["resource_id"]))["password"]
    # Secrets the API shows once: a new API key and a webhook's signing secret (asked with an
    # Idempotency-Key, whose stored answer must not keep them either).
    key = await platform.api.post(
        "/v1/keys",
        json={"name": "canary-bot", "roles": ["requester"]},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    hook = await platform.api.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/canary", "event_types": ["request.completed"]},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    api_key, signing_secret = key.json()["secret"], hook.json()["secret"]
    secrets = [first, second, directory, api_key, signing_secret]
    secrets.append(signing_secret.removeprefix("whsec_"))  # the key itself, base64
    assert len(set(secrets)) == 6 and all(len(secret) >= 24 for secret in secrets)

    topics = await every_topic(platform)
    assert "deadletter.deployer" in topics and "provisioning.deployment" in topics
    config = platform.stack.config
    # Logs and traces, and the targets' own files: the directory's database, the receiver's.
    files = [
        path
        for folder in (config.logs_dir, config.traces_dir, config.ldap_dir, config.receiver_dir)
        for path in folder.rglob("*")
        if path.is_file()
    ]
    async with httpx.AsyncClient() as client:
        metrics = {
            name: (await client.get(f"{platform.stack.service_url(name)}/metrics")).content
            for name in SERVICES
        }
    dump = dump_of_every_database(platform)
    # The role's password is in the dump only as its SCRAM verifier.
    assert b"CREATE ROLE" in dump and b"SCRAM-SHA-256$4096:" in dump
    for secret in secrets:
        for topic, blob in topics.items():
            assert not found_in(blob, secret), topic
        for path in files:
            assert not found_in(path.read_bytes(), secret), path
        for name, page in metrics.items():
            assert not found_in(page, secret), name
        assert not found_in(dump, secret)
    assert found_in(reveal.content, first)  # the search itself finds what is there


LOG_FIELDS = {
    "timestamp",
    "level",
    "service",
    "logger",
    "message",
    "trace_id",
    "span_id",
    "request_id",
}


async def test_logs_are_json_lines_with_secrets_masked(platform: Platform):
    """Secrets that reach a log line are masked by the services' filter: a request with a
    password parameter, and malformed events carrying a password, a database URL with its
    password and a bearer token, which the validator dead-letters and logs with the reason
    (pydantic's error repeats the input). Every line of every service's log is one JSON
    object with the fields the platform's log pipeline reads."""
    canaries = [f"c{uuid.uuid4().hex[:12]}" for _ in range(4)]
    refused = await platform.api.post(
        "/v1/requests",
        json={
            "catalog_item": "postgres_schema",
            "parameters": {"name": f"log_{uuid.uuid4().hex[:8]}", "password": canaries[0]},
        },
    )
    assert refused.status_code == 422
    carried = [
        {"password": canaries[1]},
        {"dsn": f"postgresql://svc:{canaries[2]}@db/x"},
        {"auth": f"Bearer {canaries[3]}"},
    ]
    poison = {str(uuid.uuid4()): data for data in carried}
    await produce(
        platform.stack.bootstrap_servers,
        "provisioning.requests",
        [
            (subject.encode(), malformed_submission(subject, data).to_bytes())
            for subject, data in poison.items()
        ],
    )
    config = platform.stack.config

    async def dead_letter_lines() -> list[dict[str, object]]:
        lines = json_lines(config.log_file("validator"))
        return [
            line
            for line in lines
            if line["request_id"] in poison and "dead-lettering" in str(line["message"])
        ]

    async def all_logged() -> list[dict[str, object]] | None:
        lines = await dead_letter_lines()
        return lines if len(lines) == len(poison) else None

    for line in await eventually(all_logged, what="the dead letters logged"):
        assert "[REDACTED]" in str(line["message"]), line  # the filter did the masking
        assert line["level"] == "ERROR" and line["service"] == "validator"
    logs = [config.log_file(name) for name in SERVICES]
    logs += [p for name in SERVICES for p in config.logs_dir.glob(f"{name}-*.log")]
    for path in logs:
        for line in json_lines(path):
            assert set(line) >= LOG_FIELDS, (path, line)
        text = path.read_text(errors="replace")
        for canary in canaries:
            assert canary not in text, path


def malformed_submission(subject: str, data: dict[str, str]) -> Envelope:
    return Envelope(
        id=uuid.uuid4(),
        source="test",
        type="request.submitted",
        subject=subject,
        time=datetime.now(UTC),
        data=data,
    )


def json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a service's log, each of which must be a JSON object."""
    lines = []
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if text.strip():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                raise AssertionError(f"{path}:{number} is not JSON: {text[:200]}") from None
            assert isinstance(line, dict), (path, number)
            lines.append(line)
    return lines
