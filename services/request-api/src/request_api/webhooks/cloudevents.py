"""A journal row as a CloudEvent 1.0 in structured JSON mode, for webhooks and the stream."""

from __future__ import annotations

import json
from typing import Any

from request_api.webhooks.models import Activity

CONTENT_TYPE = "application/cloudevents+json"
SOURCE = "/request-api"


def cloud_event(activity: Activity) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(activity.id),
        "source": SOURCE,
        "type": activity.type,
        "subject": str(activity.request_id) if activity.request_id else None,
        "time": activity.occurred_at.isoformat(),
        "datacontenttype": "application/json",
        # The journal's order: a subscriber can tell which of two events came last.
        "sequence": str(activity.seq),
        "data": activity.data,
    }


def encode(event: dict[str, Any]) -> str:
    """The exact text that is signed and sent."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True)
