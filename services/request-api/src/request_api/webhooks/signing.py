"""Webhook secrets and signatures per Standard Webhooks: `whsec_` + base64 of the key, and
`v1,` + base64 HMAC-SHA256 over `id.timestamp.body` (signed by the `standardwebhooks`
library, as the deployer's webhook drivers are)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, sent_at: datetime, body: str) -> str:
    return Webhook(secret).sign(message_id, sent_at, body)
