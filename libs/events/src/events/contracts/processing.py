"""Events the runtime itself publishes about handling a request's events (any service)."""

import uuid
from datetime import datetime
from typing import Literal

from events.envelope import Event

TOPIC = "provisioning.processing"


class ProcessingRetried(Event):
    """A handler failed and was run again: it then succeeded, or the runtime gave up (the
    message was dead-lettered). Makes the time lost to retries visible in the audit."""

    type = "processing.retried"
    topic = TOPIC

    service: str
    handled_type: str
    handled_event_id: uuid.UUID
    # Every try, the first included.
    attempts: int
    outcome: Literal["succeeded", "gave_up"]
    first_failed_at: datetime
    last_error: str
