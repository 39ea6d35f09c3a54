"""The ASGI middleware in front of every POST: claims the key, runs the route once, keeps its
answer. It runs before routing, so it authenticates the caller itself to learn whose key it
is (keys are per tenant and per caller); a caller it cannot authenticate passes on to the
route's own 401."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apikeys import Caller
from events import ServiceRuntime
from events.http import problem
from request_api.idempotency import repository
from request_api.idempotency.rules import KeyOf, Outcome, decide, fingerprint, valid_key

HEADER = "idempotency-key"
# The answer headers worth replaying; the others describe the connection, not the result.
KEPT_HEADERS = ("content-type", "location", "etag")
# An answer marked `no-store` carries a secret shown once (a new API key, a webhook's signing
# secret): only that it happened is kept, and a retry learns it was done, not the secret.
SECRET_NOT_KEPT = (
    "The first request with this Idempotency-Key succeeded; its answer held a secret that is "
    "shown only once."
)


class IdempotencyKeys:
    def __init__(
        self,
        app: ASGIApp,
        *,
        runtime: ServiceRuntime,
        authenticate: Callable[[Request], Awaitable[Caller]],
        max_body_bytes: int,
        keep_for: timedelta = timedelta(hours=24),
        lock_for: timedelta = timedelta(minutes=5),
    ) -> None:
        self.app, self.runtime, self.authenticate = app, runtime, authenticate
        self.max_body_bytes, self.keep_for, self.lock_for = max_body_bytes, keep_for, lock_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = Headers(scope=scope).get(HEADER) if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not valid_key(key):
            response = problem(
                400,
                "Invalid Idempotency-Key",
                "An Idempotency-Key is 1 to 255 visible ASCII characters.",
                errors=[{"field": "Idempotency-Key", "message": "1-255 visible ASCII"}],
            )
            await response(scope, receive, send)
            return
        body, complete = await _read_body(receive, self.max_body_bytes)
        replay = _replaying(body, receive, more=not complete)
        try:
            caller = await self.authenticate(Request(scope, replay))
        except HTTPException:
            caller = None
        if caller is None or not complete:
            # Unauthenticated, or too large: the route answers 401 or 413 and nothing is done.
            await self.app(scope, replay, send)
            return
        print_ = fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        of = KeyOf(caller.tenant, caller.key_id, key)
        outcome, record = await self._claim(of, print_)
        if outcome is Outcome.PROCEED:
            await self._run_once(scope, replay, send, of)
        elif outcome is Outcome.REPLAY and record is not None and record[2] is not None:
            await _send_stored(send, record)
        elif outcome is Outcome.REPLAY:
            await problem(409, "Already done", SECRET_NOT_KEPT)(scope, replay, send)
        elif outcome is Outcome.MISMATCH:
            detail = "This Idempotency-Key was used for a different request."
            await problem(422, "Idempotency-Key reused", detail)(scope, replay, send)
        else:
            detail = "The first request with this Idempotency-Key is still being processed."
            headers = {"Retry-After": "1"}
            await problem(409, "Request in progress", detail, headers=headers)(scope, replay, send)

    async def _claim(
        self, of: KeyOf, print_: str
    ) -> tuple[Outcome, tuple[int, dict[str, str], bytes | None] | None]:
        now = datetime.now(UTC)
        async with self.runtime.tenant_transaction(of.tenant) as session:
            if await repository.claim_new(
                session,
                of,
                fingerprint=print_,
                now=now,
                ttl=self.keep_for,
            ):
                return Outcome.PROCEED, None
            record = await repository.locked(session, of)
            if record is None:  # expired and purged in between
                outcome = Outcome.PROCEED
            else:
                outcome = decide(repository.stored(record), print_, now=now, lock_for=self.lock_for)
            if outcome is Outcome.PROCEED:
                await repository.restart(
                    session,
                    of,
                    fingerprint=print_,
                    now=now,
                    ttl=self.keep_for,
                )
            if outcome is Outcome.REPLAY and record is not None:
                return outcome, (
                    record.status_code or 200,
                    record.headers or {},
                    record.body,
                )
            return outcome, None

    async def _run_once(self, scope: Scope, receive: Receive, send: Send, of: KeyOf) -> None:
        status = 500
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        secret = False

        async def keeping_send(message: Message) -> None:
            nonlocal status, headers, secret
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = Headers(raw=message.get("headers", []))
                headers = {name: kept[name] for name in KEPT_HEADERS if name in kept}
                secret = "no-store" in kept.get("cache-control", "")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, keeping_send)
        finally:
            async with self.runtime.tenant_transaction(of.tenant) as session:
                # A server error or a rate limit did nothing: the caller may simply retry.
                if status >= 500 or status == 429:
                    await repository.release(session, of)
                else:
                    await repository.complete(
                        session,
                        of,
                        status_code=status,
                        headers=headers,
                        body=None if secret else b"".join(chunks),
                    )


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, or as much as `limit` allows (then False: the route will refuse it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, receive: Receive, *, more: bool) -> Receive:
    """A receive that gives the route the body already read, then the real stream's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def _send_stored(send: Send, record: tuple[int, dict[str, str], bytes | None]) -> None:
    status, headers, body = record
    body = body or b""
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    raw += [(b"idempotent-replayed", b"true"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
