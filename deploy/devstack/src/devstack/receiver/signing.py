"""The systems the receiver plays, and how it checks that a call to one of them is signed:
Standard Webhooks under that system's secret, sent at most five minutes away from now."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Literal

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SYSTEMS = ("licence-vendor", "mdm")
System = Literal["licence-vendor", "mdm"]
TOLERANCE_S = 5 * 60  # as the reference library's verify


def signature_verdict(webhook: Webhook, body: bytes, headers: Mapping[str, str]) -> str:
    """Whether a call is signed under `webhook`'s secret: "valid", or why not ("missing",
    "stale" when sent more than five minutes away from now, "invalid")."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signature):
        return "missing"
    try:
        sent = float(timestamp)
    except ValueError:
        return "invalid"
    if not math.isfinite(sent):
        return "invalid"
    if abs(time.time() - sent) > TOLERANCE_S:
        return "stale"
    signed = {"webhook-id": webhook_id, "webhook-timestamp": timestamp}
    try:
        webhook.verify(body, signed | {"webhook-signature": signature}, json_parse=False)
    except (WebhookVerificationError, ValueError):  # ValueError: malformed base64 or UTF-8
        return "invalid"
    return "valid"
