import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from events.outbound import AllowList
from request_api.webhooks import cloudevents, event_types, rules, signing
from request_api.webhooks.delivery import owed
from request_api.webhooks.models import Activity, WebhookSubscription
from request_api.webhooks.stream import resume_after

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_exact_types_and_wildcards_match():
    assert event_types.matches(["request.completed"], "request.completed")
    assert event_types.matches(["request.*"], "request.rolled_back")
    assert event_types.matches(["*"], "resource.drift_detected")
    assert event_types.matches(["resource.retired", "request.failed"], "request.failed")
    assert not event_types.matches(["request.*"], "resource.active")
    assert not event_types.matches(["request.complete"], "request.completed")


def test_every_terminal_status_and_resource_change_is_a_known_type():
    for status in ("completed", "rejected", "failed", "rolled_back", "cancelled"):
        assert f"request.{status}" in event_types.TERMINAL
    assert {"request.submitted", "resource.active", "resource.drift_detected"} <= event_types.KNOWN


def test_patterns_matching_nothing_are_named():
    assert event_types.unknown_patterns(["request.*", "request.finished", "*", "lease.*"]) == [
        "request.finished",
        "lease.*",
    ]


def test_backoff_doubles_up_to_the_cap():
    delays = [rules.retry_delay_s(n, base_s=1.0, cap_s=10.0, jitter=0.0) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@given(attempts=st.integers(1, 60), jitter=st.floats(0.0, 0.999))
def test_jitter_takes_at_most_half_away(attempts: int, jitter: float):
    ceiling = min(300.0, 2.0 * 2 ** (attempts - 1))
    delay = rules.retry_delay_s(attempts, base_s=2.0, cap_s=300.0, jitter=jitter)
    assert ceiling / 2 <= delay <= ceiling


def test_gives_up_after_the_last_attempt():
    assert not rules.gives_up(4, max_attempts=5)
    assert rules.gives_up(5, max_attempts=5)


PRIVATE = "must not point at a private or reserved address"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/in", None),
        ("http://203.0.113.9:8080/hook", PRIVATE),
        ("http://8.8.8.8/hook", None),
        ("ftp://example.com/hook", "must be an http or https URL"),
        ("file:///etc/passwd", "must be an http or https URL"),
        ("https://user:pw@example.com/", "must not carry credentials"),
        ("http://127.0.0.1:9000/", PRIVATE),
        ("http://10.1.2.3/", PRIVATE),
        (
            "http://169.254.169.254/latest/meta-data",
            "must not point at a private or reserved address",
        ),
        ("http://[::1]/", PRIVATE),
        ("http://[::ffff:10.0.0.1]/", PRIVATE),
        ("http://localhost/", "must not point at this host"),
        ("http:///nohost", "must name a host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com/a b", "must not contain spaces or control characters"),
        ("http://example.com/\x00", "must not contain spaces or control characters"),
    ],
)
def test_urls_are_public_http_endpoints(url: str, problem: str | None):
    assert rules.url_problem(url, allow_list=AllowList()) == problem


def test_private_urls_pass_where_the_allow_list_names_them():
    network = AllowList.parse("127.0.0.1/32")
    assert rules.url_problem("http://127.0.0.1:9000/", allow_list=network) is None
    assert rules.url_problem("gopher://127.0.0.1/", allow_list=network) is not None
    assert rules.url_problem("http://10.0.0.1/", allow_list=network) == PRIVATE
    endpoint = AllowList.parse("127.0.0.1:8090,localhost:8090")
    assert rules.url_problem("http://127.0.0.1:8090/in", allow_list=endpoint) is None
    assert rules.url_problem("http://127.0.0.1:8091/in", allow_list=endpoint) == PRIVATE
    assert rules.url_problem("http://localhost:8090/in", allow_list=endpoint) is None
    assert rules.url_problem("http://127.0.0.1/", allow_list=endpoint) == PRIVATE


@pytest.mark.parametrize(
    "url",
    ["http://100.64.0.1/", "http://[fe80::1]/", "http://[fd00::1]/", "http://[2002:a00:1::]/"],
)
def test_cgnat_link_local_unique_local_and_6to4_of_private_urls_are_refused(url: str):
    assert rules.url_problem(url, allow_list=AllowList()) == PRIVATE


def test_signature_verifies_with_the_standard_webhooks_library():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    body = '{"type":"request.completed"}'
    sent_at = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "webhook-id": "evt-1",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signing.sign(secret, "evt-1", sent_at, body),
    }
    assert Webhook(secret).verify(body, headers) == {"type": "request.completed"}


def test_secrets_differ():
    assert signing.new_secret() != signing.new_secret()


def _activity(type_: str, *, tenant: str = "engineering", at: datetime = NOW) -> Activity:
    return Activity(
        seq=7,
        id=uuid.uuid4(),
        tenant=tenant,
        type=type_,
        request_id=uuid.uuid4(),
        resource_id=None,
        data={"status": type_.split(".")[1]},
        txid=1,
        occurred_at=at,
    )


def _subscription(patterns: list[str], *, tenant: str = "engineering") -> WebhookSubscription:
    return WebhookSubscription(
        id=uuid.uuid4(),
        tenant=tenant,
        url="https://example.com",
        event_types=patterns,
        enabled=True,
        secret_nonce=b"",
        secret_sealed=b"",
        created_by="ops",
        created_at=NOW - timedelta(minutes=1),
    )


def test_a_row_is_owed_to_matching_subscriptions_of_its_tenant_only():
    wanted = _subscription(["request.*"])
    other_type = _subscription(["resource.*"])
    other_tenant = _subscription(["*"], tenant="finance")
    deliveries = owed(_activity("request.completed"), [wanted, other_type, other_tenant])
    assert [d["subscription_id"] for d in deliveries] == [wanted.id]
    assert deliveries[0]["status"] == "pending"


def test_a_new_subscription_does_not_replay_the_past():
    subscription = _subscription(["*"])
    assert owed(_activity("request.completed", at=NOW - timedelta(hours=1)), [subscription]) == []


def test_a_journal_row_is_a_cloud_event_about_its_request():
    activity = _activity("request.completed")
    event = cloudevents.cloud_event(activity)
    assert event["specversion"] == "1.0"
    assert event["id"] == str(activity.id)
    assert event["subject"] == str(activity.request_id)
    assert event["type"] == "request.completed"
    assert event["data"] == {"status": "completed"}
    assert event["time"] == NOW.isoformat()


@pytest.mark.parametrize(
    ("header", "after"),
    [(None, 0), ("", 0), ("42", 42), ("-1", 0), ("4x", 0), ("\u00b2", 0), ("9" * 19, 0)],
)
def test_a_stream_resumes_after_one_of_its_own_event_ids_only(header: str | None, after: int):
    assert resume_after(header) == after
