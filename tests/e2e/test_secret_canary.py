"""A generated secret is a canary: after it is shown, it must be found nowhere else — no Kafka
topic (dead letters included), log, trace, metrics page or database dump holds it, in plain,
base64 or hex form. Passwords the deployer generates, API keys and webhook signing secrets."""

from __future__ import annotations

import base64
import subprocess
import uuid

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tests.e2e.client import SERVICES, Platform
from tests.kafka_tools import read_topic

from devstack import postgres

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
