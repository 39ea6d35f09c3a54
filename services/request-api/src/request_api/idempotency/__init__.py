"""`Idempotency-Key` on every POST: a retried POST gets the first answer instead of a second
effect (draft-ietf-httpapi-idempotency-key-header)."""
