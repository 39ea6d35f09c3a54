"""Alembic's entry for the deployer's database (events.migrations runs it)."""

from deployer.migrations import SCHEMA
from events.migrations import run_env

run_env(SCHEMA)
