"""Datasets: their columns, each with a type, a classification, a grade and a kind."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Classification(StrEnum):
    PUBLIC = "public"
    PERSONAL = "personal"
    SENSITIVE = "sensitive"

    @property
    def protected(self) -> bool:
        """Personal and sensitive columns are never released raw without a justification."""
        return self is not Classification.PUBLIC


# What a column's values are, where it matters (synthetic and format-preserving values are kept
# apart from every real value of the same kind in the workspace; masks know the value's length).
KINDS = ("name", "id_card", "mobile", "address", "company", "credit_code", "email", "bank_card")


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
    kind: str | None = None  # what the values are (id_card, mobile, name, ...): see KINDS


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
