"""Materialized, desensitized views: computed once per (data version, grant, policy, scope) and
then only sliced. Everything a caller sees, filters or pages over comes from a view."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.model.dataset import Dataset
from gateway.model.grant import Grant
from gateway.privacy.filters import row_mask
from gateway.privacy.fingerprint import VERSION as FINGERPRINT_VERSION
from gateway.privacy.fingerprint import apply_fingerprint
from gateway.privacy.floorcheck import measured_floor
from gateway.privacy.kanon import PrivacyReport, PrivacyUnreachable, enforce
from gateway.privacy.ladders import ladder
from gateway.privacy.recover import recovery_of
from gateway.privacy.risk import Risk, class_sizes, measure
from gateway.privacy.transforms import (
    CATALOGUE,
    SyntheticClash,
    TransformContext,
    draws_against_real_values,
)
from gateway.privacy.viewstore import ViewStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


@dataclass(frozen=True)
class ReleasedColumn:
    name: str
    type: str
    transform: str
    category: str  # GB/T 37964 technique


@dataclass(frozen=True, eq=False)
class View:
    dataset: str
    grant: str
    policy: str
    source_version: str
    columns: tuple[ReleasedColumn, ...]
    frame: pd.DataFrame  # in source order (policy tests and explain refer to it)
    privacy: PrivacyReport | None = None  # the privacy model achieved over the whole view
    order: npt.NDArray[np.int64] | None = None  # keyed permutation: the order callers see
    key: str = ""  # identifies this view (cursors are bound to it)
    risk: Risk | None = None  # re-identification risk over the released quasi-identifiers
    # Figures derived from the frame, computed once per view (gateway/privacy/assess.py).
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def ordered(self) -> pd.DataFrame:
        """The view in its keyed order: a row's position reveals nothing about the source."""
        if self.order is None:
            return self.frame
        return self.frame.iloc[self.order].reset_index(drop=True)

    @cached_property
    def transforms(self) -> tuple[str, ...]:
        """`column:transform` of each released column (every call's audit entry names them:
        built once per view)."""
        return tuple(f"{c.name}:{c.transform}" for c in self.columns)


def materialize(
    source: pd.DataFrame,
    source_version: str,
    dataset: Dataset,
    grant: Grant,
    policy: str,
    ctx: TransformContext,
) -> View:
    """The grant's view of the whole source: its row filter (on source values), its transforms
    (columns not named are not released), the recipient's fingerprint, then its privacy model
    over every released quasi-identifier, checked again on the final rows. Raises
    PrivacyUnreachable when the model or a release floor cannot be met: nothing is released."""
    import pandas as pd

    if grant.row_filter is not None:
        source = source[row_mask(source, grant.row_filter).to_numpy()]
    released: dict[str, pd.Series] = {}
    columns: list[ReleasedColumn] = []
    ctx = replace(ctx, source=source)  # date_shift reads its subject column
    for name, spec in grant.columns:
        definition = CATALOGUE[spec.name]
        column = dataset.column(name)
        if column is None:  # the loader rejects this; keep the view builder total anyway
            raise KeyError(name)
        try:
            released[name] = definition.apply(source[name], spec.options, ctx)
        except SyntheticClash as exc:
            raise PrivacyUnreachable(f"column {name!r}: {exc}") from exc
        out_type = definition.output_type or column.type
        columns.append(ReleasedColumn(name, out_type.value, spec.name, definition.category))
    frame = pd.DataFrame(released, index=source.index)
    # Per-recipient marks come before the privacy model: the model is computed over the values
    # that actually leave, marks included (promise 4).
    frame = apply_fingerprint(frame, source, dataset, grant, ctx.secret, ctx.client_id)
    qis = grant.quasi_identifiers()
    report = None
    if grant.privacy is not None:
        specs = dict(grant.columns)
        files = dict(grant.privacy.tables)
        steps = {}
        for qi in qis:
            column = dataset.column(qi)
            assert column is not None  # noqa: S101 - checked above
            steps[qi] = ladder(specs[qi], column, frame[qi], source[qi], files.get(qi))
        frame, report = enforce(frame, grant.privacy, steps)
        generalized = {
            qi
            for qi, level in zip(grant.privacy.quasi_identifiers, report.levels, strict=False)
            if level
        }
        # A generalized quasi-identifier holds labels ("30-39", "*"): text, whatever it was.
        columns = [replace(c, type="string") if c.name in generalized else c for c in columns]
        _verify(frame, grant)
    risk = measure(frame, source, qis, _masks(grant), recovery_of(grant.columns))
    _check_floors(grant, dataset, risk)
    frame = frame.reset_index(drop=True)
    key = key_of(source_version, dataset, grant, policy, ctx)
    return View(
        dataset.id,
        grant.id,
        policy,
        source_version,
        tuple(columns),
        frame,
        report,
        keyed_order(ctx.secret, key, len(frame)),
        key,
        risk,
    )


def _verify(frame: pd.DataFrame, grant: Grant) -> None:
    """The outsider's check on what actually leaves: group the whole released view by every
    quasi-identifier and count. A model that does not hold is never released."""
    model = grant.privacy
    assert model is not None  # noqa: S101 - called only with a model
    if frame.empty:
        return
    sizes = class_sizes(frame, model.quasi_identifiers)
    if int(sizes.min()) < model.k:
        raise PrivacyUnreachable(
            f"the released view has a class of {int(sizes.min())} row(s) over "
            f"{', '.join(model.quasi_identifiers)}, below k={model.k}"
        )
    if model.l is not None and model.sensitive is not None and model.quasi_identifiers:
        keys = list(model.quasi_identifiers)
        distinct = frame.groupby(keys, dropna=False, sort=False)[model.sensitive].nunique(
            dropna=False
        )
        if int(distinct.min()) < model.l:
            raise PrivacyUnreachable(
                f"the released view has a class with {int(distinct.min())} distinct value(s) of "
                f"{model.sensitive}, below l={model.l}"
            )


def _masks(grant: Grant) -> dict[str, str]:
    return {
        name: str(spec.options.get("char", "*"))
        for name, spec in grant.columns
        if spec.name == "mask"
    }


def _check_floors(grant: Grant, dataset: Dataset, risk: Risk) -> None:
    """Measured release floors (promise 2, `floorcheck.measured_floor`): a column whose released
    values mostly equal the real ones, show them through a mask, or give them back to an
    outsider counts as raw; the view is withheld (the loader refuses the declared cases)."""
    problem = measured_floor(grant, dataset, risk)
    if problem is not None:
        raise PrivacyUnreachable(problem)


# The packages whose code decides a view's values: this one and those it builds on (the
# grant model and its defaults, such as a token's scope; the policy loader that fills them in;
# synthetic identifiers and checksums). tests/privacy/test_viewstore.py checks the list covers
# every gateway package a module here imports.
VIEW_CODE = ("privacy", "model", "policy", "data")


def view_code_files() -> list[Path]:
    """The modules `CODE_VERSION` hashes."""
    root = Path(__file__).parent.parent
    return sorted(module for package in VIEW_CODE for module in (root / package).rglob("*.py"))


def _code_version() -> str:
    """A hash of the code that computes views: an upgrade that changes a transform, a privacy
    model or a default they rely on never serves a view computed by the old code from disk."""
    digest = hashlib.sha256()
    root = Path(__file__).parent.parent
    for module in view_code_files():
        digest.update(module.relative_to(root).as_posix().encode() + b"\x00")
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


def key_of(
    source_version: str, dataset: Dataset, grant: Grant, policy: str, ctx: TransformContext
) -> str:
    """`view_key` of the view `materialize` makes of these (the one the store holds it under)."""
    return view_key(
        source_version,
        dataset.id,
        grant.id,
        policy,
        ctx.client_id,
        real_values_of(grant, ctx.real_values),
    )


def avoids_real_values(grant: Grant) -> bool:
    """Whether a transform of the grant draws against the workspace's real values (synthetic
    and format-preserving values avoid every real value of their kind, in every dataset)."""
    return any(draws_against_real_values(spec.name, spec.params) for _, spec in grant.columns)


def real_values_of(grant: Grant, version: str) -> str:
    """The version of the workspace's real values the grant's view depends on: `version` (a
    digest over every dataset's version, `RealValues.version`) when the grant's view avoids
    real values, else nothing (a change to another dataset leaves its view as it is)."""
    return version if avoids_real_values(grant) else ""


def view_key(
    source_version: str,
    dataset: str,
    grant: str,
    policy: str,
    client_id: str,
    real_values: str = "",
) -> str:
    """Identifies a view: the data's content hash, the grant, the policy set, the client, the
    version of the other datasets' real values its synthetic values avoid (if any), and the
    version of the code computing it (transforms, privacy models, fingerprint), so a view
    computed otherwise is never read back from disk."""
    parts = [source_version, dataset, grant, policy, client_id, FINGERPRINT_VERSION, CODE_VERSION]
    if real_values:
        parts.append(real_values)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def keyed_order(secret: bytes, key: str, rows: int) -> npt.NDArray[np.int64]:
    """The permutation callers see the view in, keyed by the workspace secret."""
    import numpy as np

    seed = hmac.new(secret, b"public-data-gateway/view-order/v1\x00" + key.encode(), hashlib.sha256)
    order = np.random.default_rng(int.from_bytes(seed.digest()[:8], "big")).permutation(rows)
    return order.astype(np.int64)


class ViewCache:
    """A small LRU of materialized views, shared by the threads of one worker process, in front
    of an optional on-disk store shared by processes and restarts."""

    def __init__(self, capacity: int = 32, store: ViewStore | None = None) -> None:
        self._capacity = capacity
        self._store = store
        self._lock = threading.Lock()
        self._views: OrderedDict[tuple[str, ...], View] = OrderedDict()
        self._building: dict[tuple[str, ...], threading.Lock] = {}

    def peek(
        self,
        source_version: str,
        dataset: Dataset,
        grant: Grant,
        policy: str,
        client_id: str,
        real_values: str = "",
    ) -> View | None:
        """The view if it is already materialized (never builds one). `real_values`: the
        version of the workspace's real values (`RealValues.peek_version`)."""
        real = real_values_of(grant, real_values)
        key = (source_version, dataset.id, grant.id, policy, client_id, real)
        with self._lock:
            return self._views.get(key)

    def get(
        self,
        source: pd.DataFrame,
        source_version: str,
        dataset: Dataset,
        grant: Grant,
        policy: str,
        ctx: TransformContext,
    ) -> View:
        real = real_values_of(grant, ctx.real_values)
        key = (source_version, dataset.id, grant.id, policy, ctx.client_id, real)
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view
            building = self._building.setdefault(key, threading.Lock())
        # Single flight: concurrent requests for the same view wait for one computation.
        with building:
            with self._lock:
                view = self._views.get(key)
            if view is None:
                view = self._load(source_version, dataset, grant, policy, ctx)
            if view is None:
                view = materialize(source, source_version, dataset, grant, policy, ctx)
                if self._store is not None:
                    self._store.save(
                        view.key,
                        view.frame,
                        [asdict(c) for c in view.columns],
                        view.privacy,
                        view.risk,
                    )
            # A view read back from the store is kept too: otherwise every request after a
            # restart would re-read, re-authenticate and re-permute it.
            with self._lock:
                self._views[key] = view
                self._views.move_to_end(key)
                while len(self._views) > self._capacity:
                    self._views.popitem(last=False)
        with self._lock:
            self._building.pop(key, None)
        return view

    def _load(
        self,
        source_version: str,
        dataset: Dataset,
        grant: Grant,
        policy: str,
        ctx: TransformContext,
    ) -> View | None:
        if self._store is None:
            return None
        key = key_of(source_version, dataset, grant, policy, ctx)
        stored = self._store.load(key)
        if stored is None:
            return None
        return View(
            dataset.id,
            grant.id,
            policy,
            source_version,
            tuple(ReleasedColumn(**c) for c in stored.columns),
            stored.frame,
            stored.privacy,
            keyed_order(ctx.secret, key, len(stored.frame)),
            key,
            stored.risk,
        )
