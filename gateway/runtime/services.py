"""Everything a running gateway holds, built once from Settings and passed down explicitly."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from gateway.aggregate.budget import Budgets
from gateway.audit.incremental import IncrementalVerifier
from gateway.audit.signing import Signer, load_signer
from gateway.audit.store import AuditLog
from gateway.auth.issuers import IssuerKeys, load_issuers
from gateway.auth.keys import TokenKeyring
from gateway.auth.limits import AuthThrottle, InFlight, Limiter
from gateway.auth.registry import ClientRegistry
from gateway.auth.server import TokenServer
from gateway.auth.tokens import AccessTokenValidator
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.data.realvalues import RealValues
from gateway.data.sources import SourceCache
from gateway.errors import ConfigError
from gateway.model.dataset import Dataset
from gateway.model.grant import Grant
from gateway.model.policyset import PolicySet
from gateway.policy.engine import Engine
from gateway.policy.files import load_policies
from gateway.policy.testing import ViewOf
from gateway.privacy.assess import FiguresOf, figures
from gateway.privacy.transforms import TransformContext
from gateway.privacy.views import View, ViewCache, avoids_real_values
from gateway.privacy.viewstore import ViewStore
from gateway.query import Cursors
from gateway.runtime.metrics import Metrics
from gateway.runtime.pages import CachedPage, PageCache
from gateway.runtime.released import ReleasedTables
from gateway.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine  # replaced whole (one reference assignment) when policies are reloaded
    registry: ClientRegistry
    token_keys: TokenKeyring
    token_server: TokenServer
    tokens: AccessTokenValidator
    limiter: Limiter
    audit_log: AuditLog
    pseudonym_secret: bytes
    sources: SourceCache
    views: ViewCache
    cursors: Cursors
    pages: PageCache[CachedPage]
    links: PageCache[str]  # the Link header of a page, by path, raw query and cursor
    inflight: InFlight
    metrics: Metrics
    real_values: RealValues
    budgets: Budgets | None = None  # differential-privacy budgets (gateway/aggregate/budget.py)
    released: ReleasedTables = field(default_factory=ReleasedTables)  # views as Arrow (export)
    # The live log's verified prefix, kept between console page views and usage reports.
    verified_log: IncrementalVerifier = field(default_factory=IncrementalVerifier)

    def context(self, client_id: str, grant: Grant) -> TransformContext:
        """What the transforms of one (client, grant) view may depend on (looks at the data
        files when the grant's view avoids real values: call it off the event loop)."""
        policy = self.engine.policy
        return TransformContext(
            self.pseudonym_secret,
            client_id,
            grant.id,
            taken=partial(self.real_values.of, policy),
            real_values=self.real_values.version(policy) if avoids_real_values(grant) else "",
        )

    @property
    def policy(self) -> PolicySet:
        return self.engine.policy

    def close(self) -> None:
        self.audit_log.close()
        self.registry.close()
        if self.budgets is not None:
            self.budgets.close()


def read_secret(settings: Settings) -> bytes:
    path = settings.workspace.pseudonym_secret
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        raise ConfigError(
            f"pseudonymization secret {path} is missing; run `gateway init`"
        ) from None
    except ValueError:
        raise ConfigError(f"{path} must hold the secret as hex") from None
    if len(secret) < 32:
        raise ConfigError(
            f"{path} holds fewer than 32 bytes; generate a new one with `gateway init`"
        )
    return secret


def _rotated_signer(settings: Settings, kid: str) -> Signer | None:
    """After `gateway keys rotate audit`, the new key is at the usual path."""
    signer = load_signer(settings.workspace.audit_key)
    return signer if signer.kid == kid else None


def released_view_maker(
    settings: Settings, sources: SourceCache, views: ViewCache, policy: PolicySet
) -> Callable[[Dataset, Grant, str], View]:
    """A function giving the released View of (dataset, grant, client) under `policy`."""
    secret = read_secret(settings)
    real = RealValues(sources)

    def view_of(dataset: Dataset, grant: Grant, client_id: str) -> View:
        source = sources.load(dataset)
        version = real.version(policy) if avoids_real_values(grant) else ""
        ctx = TransformContext(
            secret, client_id, grant.id, taken=partial(real.of, policy), real_values=version
        )
        return views.get(source.frame, source.version, dataset, grant, policy.hash, ctx)

    return view_of


def view_maker(
    settings: Settings, sources: SourceCache, views: ViewCache, policy: PolicySet
) -> ViewOf:
    """A function giving the released rows of (dataset, grant, client): for policy tests."""
    view_of = released_view_maker(settings, sources, views, policy)
    return lambda dataset, grant, client_id: view_of(dataset, grant, client_id).frame


def figures_maker(
    settings: Settings, sources: SourceCache, views: ViewCache, policy: PolicySet
) -> FiguresOf:
    """A function giving the privacy figures of (dataset, grant, client): for check, explain
    and the admin status."""
    view_of = released_view_maker(settings, sources, views, policy)
    return lambda dataset, grant, client_id: figures(view_of(dataset, grant, client_id), grant)


def build_services(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Services:
    """Load and check everything at start-up; raise ConfigError with a helpful message.
    `clock` is where the parts that count time read it (tests pass one they move by hand)."""
    ws = settings.workspace
    policy = load_policies(ws.policies, ws.home)
    registry = ClientRegistry(settings.registry_database, clock=clock)
    keyring = TokenKeyring(
        ws.keys, ttl=settings.token_ttl, leeway=settings.token_leeway, clock=clock
    )
    external = [IssuerKeys(config) for config in load_issuers(ws.issuers, ws.home)]
    validator = AccessTokenValidator(
        keyring,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway=settings.token_leeway,
        registry=registry,
        external=external,
    )
    signer = load_signer(ws.audit_key)
    secret = read_secret(settings)
    sources = SourceCache(ws)
    return Services(
        settings=settings,
        engine=Engine(policy),
        registry=registry,
        token_keys=keyring,
        token_server=TokenServer(
            registry,
            keyring,
            validator,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=settings.token_ttl,
            throttle=AuthThrottle(
                registry,
                per_client=settings.auth_fail_per_client,
                per_address=settings.auth_fail_per_address,
                window=settings.auth_fail_window,
                clock=clock,
            ),
            hash_threads=settings.auth_hash_threads,
        ),
        tokens=validator,
        limiter=Limiter(registry, settings.rate_per_minute, clock=clock),
        audit_log=AuditLog(
            settings.audit_database,
            signer,
            busy_timeout_ms=settings.audit_busy_timeout_ms,
            signer_for=lambda kid: _rotated_signer(settings, kid),
            clock=clock,
            # SQLite: entries are encoded, signed and committed by a writer process of this
            # worker's own, off the event loop's GIL, unless the settings ask for the thread
            # (PostgreSQL keeps the writer thread).
            writer_process=settings.audit_writer == "process",
            key_path=ws.audit_key,
        ),
        pseudonym_secret=secret,
        sources=sources,
        real_values=RealValues(sources),
        views=ViewCache(store=ViewStore(ws.state / "views", secret)),
        cursors=Cursors(
            hmac.new(secret, b"public-data-gateway/cursor/v1", hashlib.sha256).digest()
        ),
        pages=PageCache(),
        links=PageCache(),
        inflight=InFlight(settings.max_inflight),
        metrics=Metrics(),
        # Durable commits: a spend lost in a crash would hand privacy budget back.
        budgets=Budgets(replace(settings.registry_database, synchronous="FULL", durable=True)),
        verified_log=IncrementalVerifier(full_every_s=settings.audit_full_verify_seconds),
    )
