"""A policy set: the datasets and grants of one validated set of policy files, and its hash."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gateway.model.dataset import Dataset
from gateway.model.grant import Grant


@dataclass(frozen=True)
class PolicySet:
    datasets: Mapping[str, Dataset]
    grants: tuple[Grant, ...]
    hash: str  # SHA-256 over the policy files; named by every decision and audit entry
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    file_hashes: Mapping[str, str] = field(default_factory=dict)  # name -> SHA-256 of content
    # The exact bytes hashed (policy files and hierarchies), kept in the policy history when the
    # set goes live (gateway/policy/history.py).
    sources: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def purposes(self) -> frozenset[str]:
        """Every purpose some grant of the set declares (asked on every call: kept)."""
        return frozenset(purpose for grant in self.grants for purpose in grant.purposes)

    def grants_of(self, client_id: str) -> list[Grant]:
        return [grant for grant in self.grants if client_id in grant.clients]
