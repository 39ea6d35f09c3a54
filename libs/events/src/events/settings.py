"""Settings every service shares, read from the environment when the app is created."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.consumer import ConsumerOptions
from events.outbound import AllowList


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str
    database_url: str
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    traces_dir: Path | None = None
    db_pool_size: int = 10
    consumer_batch_size: int = 200
    handler_max_attempts: int = 4
    handler_retry_backoff_s: float = 0.2
    # How long the group waits for a member that stopped heartbeating before it hands that
    # member's partitions to the others (a replica that died for good, or is frozen).
    kafka_session_timeout_ms: int = 10_000
    # This replica's stable name (`allocator-1`), where the deployment gives one that a
    # restart keeps: the consumer joins its group as a static member under it, so that a
    # restarted replica resumes its partitions without a rebalance. A static member does
    # not leave its group on shutdown: a replica removed for good hands its partitions over
    # only after the session timeout.
    service_instance: str | None = None
    kafka_timeout_s: float = 15.0
    relay_batch_size: int = 500
    # Whether /readyz fails while Kafka is unreachable. A service whose routes only stage
    # events in the outbox serves them without it, and says False.
    readiness_requires_kafka: bool = True
    max_body_bytes: int = 64 * 1024
    # How often metrics that are read rather than counted (consumer lag, outbox backlog) are.
    metrics_refresh_s: float = 5.0
    # Chaos testing, off unless set: {fault point: marker}. A fault point is an event type
    # (its handler fails before running) or a point a service names inside a handler; the
    # fault fires for messages whose data contains the marker.
    inject_faults: dict[str, str] = {}
    # The same, failing only a message's first try: the retry succeeds.
    transient_faults: dict[str, str] = {}
    # Addresses that outbound calls (webhooks, vendor endpoints) may reach although they are
    # not public: CIDRs and host:port entries, comma-separated. Empty: public addresses only.
    outbound_allow_list: str = ""

    @field_validator("outbound_allow_list")
    @classmethod
    def _parses(cls, value: str) -> str:
        AllowList.parse(value)  # a mistyped entry stops the service at start-up
        return value

    def allow_list(self) -> AllowList:
        return AllowList.parse(self.outbound_allow_list)

    def consumer_options(self) -> ConsumerOptions:
        return ConsumerOptions(
            batch_size=self.consumer_batch_size,
            max_attempts=self.handler_max_attempts,
            retry_backoff_s=self.handler_retry_backoff_s,
            session_timeout_ms=self.kafka_session_timeout_ms,
            group_instance_id=self.service_instance,
            kafka_timeout_s=self.kafka_timeout_s,
            inject_faults=self.inject_faults,
            transient_faults=self.transient_faults,
        )
