"""Alembic's entry for the request-api's database (events.migrations runs it)."""

from events.migrations import run_env
from request_api.migrations import SCHEMA

run_env(SCHEMA)
