"""Handlers register on a router; a service includes its routers in its consumer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from events.context import HandlerContext
from events.envelope import Envelope, Event

E = TypeVar("E", bound=Event)

Handler = Callable[[Any, HandlerContext[Any]], Awaitable[None]]
# Called when a message is dead-lettered: the event that tells the pipeline the step gave up,
# so the request still reaches a terminal status.
FailureEvent = Callable[[Any, str], Event | None]
EnvelopeHandler = Callable[[Envelope, HandlerContext[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    event_class: type[Event]
    handler: Handler
    on_failure: FailureEvent | None


class Router:
    def __init__(self) -> None:
        self.registrations: dict[str, Registration] = {}
        self.fallback: EnvelopeHandler | None = None
        self.fallback_topics: tuple[str, ...] = ()

    def on(
        self, event_class: type[E], *, on_failure: Callable[[E, str], Event | None] | None = None
    ) -> Callable[[Callable[[E, HandlerContext[Any]], Awaitable[None]]], Handler]:
        def register(handler: Callable[[E, HandlerContext[Any]], Awaitable[None]]) -> Handler:
            if event_class.type in self.registrations:
                raise ValueError(f"{event_class.type} already has a handler")
            self.registrations[event_class.type] = Registration(event_class, handler, on_failure)
            return handler

        return register

    def on_every_envelope(self, *topics: str) -> Callable[[EnvelopeHandler], EnvelopeHandler]:
        """Receive every well-formed envelope on `topics`, of any type (the auditor's need)."""

        def register(handler: EnvelopeHandler) -> EnvelopeHandler:
            self.fallback = handler
            self.fallback_topics = topics
            return handler

        return register

    def topics(self) -> set[str]:
        return {r.event_class.topic for r in self.registrations.values()} | set(
            self.fallback_topics
        )
