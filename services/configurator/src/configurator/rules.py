"""Pure rendering of a concrete configuration from the item's template, its defaults and the
request's parameters."""

from __future__ import annotations

from typing import Any

from catalog import CatalogItem


class CannotConfigure(ValueError):
    pass


def render(
    item: CatalogItem | None,
    parameters: dict[str, Any],
    *,
    units: dict[str, str] | None = None,
    facts: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The driver and its configuration, filled from the item's defaults, the request's
    parameters, the units the allocator took (`{seat}`, `{ip}`) and request facts such as
    `{tenant}`. A template value that is exactly "{name}" takes the value as it is (a number,
    a list); any other string is formatted; lists and objects are filled item by item."""
    if item is None:
        raise CannotConfigure("the catalog item no longer exists")
    spec = item.configuration
    if not spec.get("template"):
        raise CannotConfigure(f"no configuration template for {item.name}")
    values = {**(facts or {}), **item.defaults, **parameters, **(units or {})}
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
    if isinstance(template, list):
        filled: list[Any] = []
        for part in template:
            value = _fill(part, values)
            # A "{name}" element holding a list (a person's further groups) joins the list's
            # own elements rather than nesting inside it.
            if isinstance(part, str) and isinstance(value, list):
                filled.extend(value)
            else:
                filled.append(value)
        return filled
    if isinstance(template, dict):
        return {key: _fill(part, values) for key, part in template.items()}
    return template
