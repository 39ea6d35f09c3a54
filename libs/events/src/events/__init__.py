"""Shared runtime of every service: event contracts, consume loop, outbox relay, tracing."""

from events.context import HandlerContext
from events.envelope import Envelope, Event
from events.errors import PermanentError, RetryableError
from events.router import Router
from events.service import ServiceRuntime, create_service_app
from events.settings import ServiceSettings

__all__ = [
    "Envelope",
    "Event",
    "HandlerContext",
    "PermanentError",
    "RetryableError",
    "Router",
    "ServiceRuntime",
    "ServiceSettings",
    "create_service_app",
]
