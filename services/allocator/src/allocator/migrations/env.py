"""Alembic's entry for the allocator's database (events.migrations runs it)."""

from allocator.migrations import SCHEMA
from events.migrations import run_env

run_env(SCHEMA)
