"""Alembic's entry for the API keys' `identity` database (events.migrations runs it)."""

from events.migrations import run_env
from request_api.identity_migrations import SCHEMA

run_env(SCHEMA)
