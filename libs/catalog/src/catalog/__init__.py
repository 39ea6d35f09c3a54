"""The catalog: what can be requested, declared as data under `items/`."""

from catalog.loader import Catalog, CatalogItem, ParameterProblem, load_catalog

__all__ = ["Catalog", "CatalogItem", "ParameterProblem", "load_catalog"]
