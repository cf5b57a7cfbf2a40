"""The policy model: datasets (schema and classification) and grants (who gets which view)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Classification(StrEnum):
    PUBLIC = "public"
    PERSONAL = "personal"
    SENSITIVE = "sensitive"

    @property
    def protected(self) -> bool:
        """Personal and sensitive columns are never released raw without a justification."""
        return self is not Classification.PUBLIC


class ColumnType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DATE = "date"


# GB/T 43697-2024 data grades; English aliases accepted in files.
GRADES = {
    "一般": "一般",
    "重要": "重要",
    "核心": "核心",
    "general": "一般",
    "important": "重要",
    "core": "核心",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    classification: Classification
    grade: str = "一般"
    description: str = ""


@dataclass(frozen=True)
class Dataset:
    id: str
    title: str
    description: str
    licence: str
    source: Path
    columns: tuple[Column, ...]
    file: str

    def column(self, name: str) -> Column | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None


@dataclass(frozen=True)
class TransformSpec:
    """One column's transform in a grant: its name and validated parameters."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class Grant:
    id: str
    dataset: str
    clients: frozenset[str]
    columns: tuple[tuple[str, TransformSpec], ...]  # released columns, in release order
    max_rows: int
    file: str
    line: int


@dataclass(frozen=True)
class PolicySet:
    datasets: Mapping[str, Dataset]
    grants: tuple[Grant, ...]
    hash: str  # SHA-256 over the policy files; named by every decision and audit entry

    def grant_for(self, client_id: str, dataset_id: str) -> Grant | None:
        """Deny by default: the one grant naming this client for this dataset, or None."""
        for grant in self.grants:
            if grant.dataset == dataset_id and client_id in grant.clients:
                return grant
        return None

    def grants_of(self, client_id: str) -> list[Grant]:
        return [grant for grant in self.grants if client_id in grant.clients]
