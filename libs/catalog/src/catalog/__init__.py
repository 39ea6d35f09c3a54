"""The catalog: what can be requested, declared as data under `items/`."""

from catalog.approvals import ApprovalStage, Approvers
from catalog.loader import Catalog, CatalogError, CatalogItem, load_catalog
from catalog.problems import ParameterProblem

__all__ = [
    "ApprovalStage",
    "Approvers",
    "Catalog",
    "CatalogError",
    "CatalogItem",
    "ParameterProblem",
    "load_catalog",
]
