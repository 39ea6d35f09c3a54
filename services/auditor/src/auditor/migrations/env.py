"""Alembic's entry for the auditor's database (events.migrations runs it)."""

from auditor.migrations import SCHEMA
from events.migrations import run_env

run_env(SCHEMA)
