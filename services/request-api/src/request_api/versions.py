"""Optimistic concurrency: a request's or resource's version is its ETag, and `If-Match` makes
a change conditional on the version the caller last saw (RFC 9110 §13.1.1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from events.http import ProblemError

IfMatch = Annotated[str | None, Header(description="The ETag last read: changes only that version")]


def etag(version: int) -> str:
    return f'"{version}"'


def matches(if_match: str | None, version: int) -> bool:
    """Whether the precondition holds. No header: unconditional. Weak tags never match, as
    RFC 9110 asks `If-Match` to compare strongly."""
    if if_match is None:
        return True
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or etag(version) in tags


def require_match(if_match: str | None, version: int) -> None:
    if not matches(if_match, version):
        raise ProblemError(
            412,
            "Precondition failed",
            f"It has changed since: its current version is {version}; read it again.",
            current_version=version,
        )
