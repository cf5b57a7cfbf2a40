"""Policy reload without risk: a changed policy directory is loaded, validated and its policy
tests run before the new set replaces the active one in one reference swap. A bad edit leaves
the last good set active, and is reported in `GET /v1/admin/status` and in the audit log; a good
one is logged with the old and new hash and the files changed. Each worker reloads itself; the
shared registry makes sure one of them, not all, writes each audit event.

A reload blocks (it parses, validates and materializes views), so it always runs in a worker
thread, never on the event loop: `reload` refuses to run there. Parsing a candidate set is
bounded in size and time (gateway/policy/yamlsrc.py). A rejection message never quotes data:
policy-test failures name values by keyed hash, and an unexpected exception is reported by its
type and place only (its text may quote a cell)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.events import Event, policy_rejected, policy_reloaded
from gateway.errors import AuditUnavailable, ConfigError
from gateway.model.policyset import PolicySet
from gateway.policy.engine import Engine
from gateway.policy.files import load_policies
from gateway.policy.history import load_set, store_set
from gateway.policy.testing import load_cases, run_cases
from gateway.runtime.services import Services, view_maker

log = logging.getLogger("gateway.policy")


@dataclass
class PolicyStatus:
    active: str
    loaded_at: float
    files: tuple[str, ...]
    last_error: str | None = None
    last_attempt: float | None = None
    reloads: int = 0
    history: list[str] = field(default_factory=list)


def fingerprint(directory: Path) -> str:
    """Changes whenever a policy or policy-test file is added, removed or edited."""
    digest = hashlib.sha256()
    paths = [
        *directory.glob("*.y*ml"),
        *directory.glob("tests/*.y*ml"),
        *directory.glob("hierarchies/*"),
    ]
    for path in sorted(paths):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        digest.update(
            f"{path.relative_to(directory)}\x00{stat.st_size}\x00{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def check_policy_set(svc: Services, policy: PolicySet) -> list[str]:
    """Run the policy tests against a candidate set; the failures (empty when all pass)."""
    ws = svc.settings.workspace
    cases = load_cases(ws.policies / "tests")
    view_of = view_maker(svc.settings, svc.sources, svc.views, policy)
    return [
        f"{r.file}: {r.name}: {r.message}"
        for r in run_cases(Engine(policy), cases, view_of, secret=svc.pseudonym_secret)
        if not r.passed
    ]


def describe_rejection(exc: BaseException) -> str:
    """What the status, the log and the audit entry say about a rejected candidate. A
    ConfigError's message is written for people and quotes no data; any other exception's text
    might (pandas quotes the cell it choked on), so only its type and place are shown."""
    if isinstance(exc, ConfigError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where} (message withheld: it may quote data)"


def _off_the_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # a worker thread (or a command): fine
    raise RuntimeError(
        "PolicyReloader.reload blocks; run it in a worker thread (anyio.to_thread.run_sync)"
    )


class PolicyReloader:
    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._lock = threading.Lock()
        self._directory = svc.settings.workspace.policies
        self._seen = fingerprint(self._directory)
        policy = svc.policy
        self.status = PolicyStatus(policy.hash, time.time(), policy.files)
        sets = svc.settings.workspace.policy_sets
        try:
            store_set(sets, policy.sources)
        except OSError as exc:
            raise ConfigError(f"cannot keep the active policy set in {sets}: {exc}") from exc
        previous = svc.registry.shared("policy.active")
        if svc.registry.claim("policy.active", policy.hash):
            # A set that went live at start (first start, or files edited while stopped).
            files = _changed(sets, previous, policy)
            self._event(policy_reloaded(previous, policy.hash, files, "start", "gateway"))

    def changed(self) -> bool:
        return fingerprint(self._directory) != self._seen

    def reload(self, trigger: str, actor: str = "gateway") -> PolicyStatus:
        """Load, check and swap in the policy directory's set. `actor`: who asked (the admin
        API's client id; "gateway" for file changes and signals), recorded in the entry."""
        _off_the_event_loop()
        with self._lock:
            self._seen = fingerprint(self._directory)
            self.status.last_attempt = time.time()
            old = self._svc.policy
            try:
                new = load_policies(self._directory, self._svc.settings.home)
                failures = check_policy_set(self._svc, new)
                if failures:
                    raise ConfigError("policy tests failed:\n" + "\n".join(failures))
                sets = self._svc.settings.workspace.policy_sets
                try:
                    store_set(sets, new.sources)  # kept before it goes live, or it does not
                except OSError as exc:
                    raise ConfigError(f"cannot keep the policy set in {sets}: {exc}") from exc
            except Exception as exc:  # any failure rejects the candidate; the watcher lives on
                error = describe_rejection(exc)
                self.status.last_error = error
                log.error(
                    "policy reload (%s) rejected; keeping %s: %s", trigger, old.hash[:12], error
                )
                if self._svc.registry.claim("policy.rejected", self._seen):
                    self._event(policy_rejected(old.hash, _short(error), trigger, actor))
                return self.status
            self.status.last_error = None
            if new.hash == old.hash:
                return self.status
            self._svc.engine = Engine(new)  # the swap: one reference assignment
            self.status.active = new.hash
            self.status.loaded_at = time.time()
            self.status.files = new.files
            self.status.reloads += 1
            log.info("policy set %s active (was %s; %s)", new.hash[:12], old.hash[:12], trigger)
            if self._svc.registry.claim("policy.active", new.hash):
                changed = sorted(
                    name
                    for name in set(old.file_hashes) | set(new.file_hashes)
                    if old.file_hashes.get(name) != new.file_hashes.get(name)
                )
                self._event(policy_reloaded(old.hash, new.hash, changed, trigger, actor))
            return self.status

    def _event(self, event: Event) -> None:
        try:
            self._svc.audit_log.append(event)
        except AuditUnavailable:
            log.exception("could not log %s", event["action"])


def _changed(sets: Path, previous: str | None, new: PolicySet) -> list[str]:
    """The files that differ from the previous live set (all of them when it is not kept)."""
    try:
        before = load_set(sets, previous) if previous else {}
    except ConfigError:
        before = {}
    now = new.sources
    return sorted(name for name in set(before) | set(now) if before.get(name) != now.get(name))


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."
