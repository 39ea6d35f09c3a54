"""Validator settings, from the environment."""

from pathlib import Path

from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "validator"
    # The deployment's own tenants' entitlements, over the catalog items' (catalog.load_catalog).
    entitlements_file: Path | None = None
