"""Alembic's entry for the validator's database (events.migrations runs it)."""

from events.migrations import run_env
from validator.migrations import SCHEMA

run_env(SCHEMA)
