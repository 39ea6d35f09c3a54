"""Pure rendering of a concrete configuration from an item's defaults and the parameters."""

from __future__ import annotations

from typing import Any

from catalog import CatalogItem
from events.contracts.configuration import PostgresConfiguration


class CannotConfigure(ValueError):
    pass


def render(item: CatalogItem | None, parameters: dict[str, Any]) -> PostgresConfiguration:
    if item is None:
        raise CannotConfigure("the catalog item no longer exists")
    if item.name not in ("postgres_database", "postgres_schema"):
        raise CannotConfigure(f"no configuration template for {item.name}")
    name = str(parameters["name"])
    connection_limit = int(parameters.get("connection_limit", item.defaults["connection_limit"]))
    if item.name == "postgres_database":
        return PostgresConfiguration(
            database=name,
            owner_role=f"{name}_db_owner",
            connection_limit=connection_limit,
            extensions=list(parameters.get("extensions", item.defaults.get("extensions", []))),
        )
    return PostgresConfiguration(
        database=str(item.defaults["shared_database"]),
        schema_name=name,
        owner_role=f"{name}_schema_owner",
        connection_limit=connection_limit,
    )
