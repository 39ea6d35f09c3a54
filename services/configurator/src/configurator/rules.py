"""Pure rendering of a concrete configuration from the item's template, its defaults and the
request's parameters."""

from __future__ import annotations

from typing import Any

from catalog import CatalogItem


class CannotConfigure(ValueError):
    pass


def render(item: CatalogItem | None, parameters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The driver and its configuration. A template value that is exactly "{name}" takes the
    value as it is (a number, a list); any other string is formatted."""
    if item is None:
        raise CannotConfigure("the catalog item no longer exists")
    spec = item.configuration
    if not spec.get("template"):
        raise CannotConfigure(f"no configuration template for {item.name}")
    values = {**item.defaults, **parameters}
    try:
        return str(spec["driver"]), {
            key: _fill(template, values) for key, template in spec["template"].items()
        }
    except KeyError as missing:
        raise CannotConfigure(f"the template of {item.name} needs {missing}") from missing


def _fill(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template.count("{") == 1:
            return values[template[1:-1]]
        return template.format_map(values)
    return template
