"""The signing keys one process holds for a log: the active one (it changes when a key is
rotated, in this process or another) and every one it used, for receipts."""

from __future__ import annotations

from collections.abc import Callable

from gateway.audit.signing import Signer
from gateway.errors import AuditUnavailable
from gateway.store.db import Connection

SignerSource = Callable[[str], Signer | None]


class Signers:
    def __init__(self, signer: Signer, signer_for: SignerSource | None = None) -> None:
        self.active = signer
        self._used: dict[str, Signer] = {signer.kid: signer}  # every key this process used
        self._signer_for = signer_for  # finds the private key of a kid after a rotation

    def used(self, kid: str) -> Signer:
        """The signer that signed entries with this key id (for their receipts)."""
        return self._used[kid]

    def in_force(self, conn: Connection) -> Signer:
        """The signer of the newest key window (it changes when a key is rotated)."""
        row = conn.execute("SELECT kid FROM keys ORDER BY from_idx DESC LIMIT 1").fetchone()
        return self.of(None if row is None else str(row[0]))

    def of(self, kid: str | None) -> Signer:
        """The signer of `kid` (None: the active one); raises AuditUnavailable when this
        process cannot find its private key."""
        if kid is None or kid == self.active.kid:
            return self.active
        found = self._signer_for(kid) if self._signer_for else None
        if found is None or found.kid != kid:
            raise AuditUnavailable(f"the active audit key {kid} is not available to this process")
        self.install(found)
        return found

    def install(self, signer: Signer) -> None:
        """Sign with `signer` from now on."""
        self.active = signer
        self._used[signer.kid] = signer
