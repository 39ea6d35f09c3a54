"""Webhook secrets and signatures per Standard Webhooks: `whsec_` + base64 of the key, and
`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`.

Signed here with the standard library: the request-api does not declare the
`standardwebhooks` package; the tests verify these signatures with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
