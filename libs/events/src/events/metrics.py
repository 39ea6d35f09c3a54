"""Prometheus metrics of the runtime, in a registry owned by one service instance."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class RuntimeMetrics:
    registry: CollectorRegistry
    messages_processed: Counter
    handler_duration: Histogram
    dead_letters: Counter
    outbox_published: Counter
    outbox_backlog: Gauge

    @classmethod
    def create(cls) -> RuntimeMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            messages_processed=Counter(
                "events_processed",
                "Messages taken from Kafka, by event type and outcome.",
                ["event_type", "outcome"],
                registry=registry,
            ),
            handler_duration=Histogram(
                "event_handler_duration_seconds",
                "Time spent in one handler call.",
                ["event_type"],
                registry=registry,
            ),
            dead_letters=Counter(
                "events_dead_lettered",
                "Messages sent to the dead-letter topic.",
                ["topic"],
                registry=registry,
            ),
            outbox_published=Counter(
                "outbox_published", "Outbox messages published to Kafka.", registry=registry
            ),
            outbox_backlog=Gauge(
                "outbox_backlog", "Outbox messages not yet published.", registry=registry
            ),
        )
