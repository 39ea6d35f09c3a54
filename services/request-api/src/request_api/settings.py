"""Request API settings, from the environment."""

from pathlib import Path

from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "request-api"
    # Its routes stage events in the outbox: requests are taken while Kafka is away.
    readiness_requires_kafka: bool = False
    identity_database_url: str
    # The deployment's own tenants' entitlements, over the catalog items' (catalog.load_catalog).
    entitlements_file: Path | None = None
    # The AES key (base64 of 32 bytes) that seals webhook signing secrets at rest.
    webhook_key_file: Path
    deployer_url: str = "http://127.0.0.1:8004"
    allocator_url: str = "http://127.0.0.1:8002"
    lease_sweep_interval_s: float = 30.0
    # How long before expiry `lease.expiring` is announced.
    lease_warning_s: float = 24 * 3600
    # Rate limits in the `limits` notation (see request_api.limits), per key (unless the key
    # has its own) and per tenant, and a cap on a tenant's requests in flight. Generous, so
    # that `make bench` and the e2e suite are never held back.
    rate_limit_per_key: str = "100/second"
    rate_limit_per_tenant: str = "300/second"
    in_flight_per_tenant: int = 5000
    in_flight_retry_after_s: int = 5
    # The approval clock: how often it looks for stages to escalate or deny, and a cap on
    # every approval wait (None in production; a test stack sets seconds).
    approval_sweep_interval_s: float = 10.0
    approval_time_cap_s: float | None = None
    # Webhooks: how often due deliveries are sent, each attempt's bound, the retries
    # (exponential from the base, capped, jittered) before a delivery is `failed`. Subscribers
    # on private networks must be named by OUTBOUND_ALLOW_LIST (events.outbound).
    webhook_delivery_interval_s: float = 1.0
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 12
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_cap_s: float = 3600.0
    webhook_batch_size: int = 200
    # How long the activity journal (SSE, webhooks) and the delivery log keep a row.
    journal_retention_days: float = 30.0
    # A request in a status of the way (not ended) for longer than this counts as stuck in
    # the `provisioning_requests_stuck` gauge, counted every `stuck_check_interval_s`.
    stuck_after_s: float = 900.0
    stuck_check_interval_s: float = 30.0
