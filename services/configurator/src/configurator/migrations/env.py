"""Alembic's entry for the configurator's database (events.migrations runs it)."""

from configurator.migrations import SCHEMA
from events.migrations import run_env

run_env(SCHEMA)
