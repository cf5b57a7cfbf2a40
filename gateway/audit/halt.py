"""The halt protocol. A failed write halts the log: this process refuses appends at once, and
the halt is recorded in the database so every other worker refuses too, until an operator runs
`gateway audit resume`.

The halt note may itself fail to be written (a full disk fails every write): the halted process
then remembers the halt alone. So `resume` also advances a resume counter (meta key `resumed`)
that every process reads with each batch; a process halted at counter N resumes once it reads a
larger one, whether or not its note ever reached the database, and retries writing its note
meanwhile so that `gateway audit status` and `resume` can see the halt."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from gateway.audit.connection import WriteConnection
from gateway.audit.schema import SEQUENCER, resume_count
from gateway.errors import ConfigError
from gateway.store.db import Database, Shared, StoreError


class Halt:
    """One process's view of the halt: why it refuses appends, if it does."""

    def __init__(self, write: WriteConnection, reader: Shared, resumes: str | None) -> None:
        self._write = write
        self._reader = reader
        self.reason: str | None = None
        self._saved = True
        self.resumes = resumes  # the resume counter as last read (meta `resumed`)
        self._at_halt: str | None = None  # ... as it was when this process halted
        self._saving = threading.Lock()  # held while a halt note is being written

    def current(self) -> str | None:
        """Why this process refuses appends, or None (an operator's resume is seen at once)."""
        if self.reason is not None and self._resumed():
            return None
        return self.reason

    def observe(self, halted: object, resumes: object) -> str | None:
        """What a batch read in its transaction: the halt note and the resume counter. Returns
        the note when the log is halted (by any process)."""
        self.resumes = None if resumes is None else str(resumes)
        if halted is None:
            return None
        self.reason, self._saved = str(halted), True
        self._at_halt = self.resumes
        return self.reason

    def snapshot(self) -> tuple[str, bool, str | None] | None:
        """This halt as (reason, note saved, resume counter at the halt), or None."""
        if self.reason is None:
            return None
        return (self.reason, self._saved, self._at_halt)

    def adopt(self, state: tuple[str, bool, str | None] | None) -> None:
        """Take on the halt the writer process reported (audit/procwriter.py): this process then
        refuses appends, retries its note and sees the operator's resume as if it had halted
        itself."""
        if state is None or self.reason is not None:
            return
        self.reason, self._saved, self._at_halt = state

    def halt(self, reason: str) -> None:
        """Stop appending, here and (if the database still accepts the note) everywhere."""
        self.reason = reason
        self._saved = False
        self._at_halt = self.resumes  # read in the failed batch's transaction
        self._save()

    def _save(self) -> None:
        """Record this process's halt in the database (if it accepts the note now)."""
        note = f"{self.reason} (at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})"
        with self._saving, self._write.lock, contextlib.suppress(StoreError):
            conn = self._write.get()
            with conn.transaction(SEQUENCER):
                if resume_count(conn) != self._at_halt:
                    return  # resumed meanwhile (`_resumed` sees it)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('halted', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (note,),
                )
            self._saved = True

    def _resumed(self) -> bool:
        """True once an operator has cleared the halt (`gateway audit resume`): the resume
        counter moved past the value it had when this process halted, or (an older `resume`)
        the recorded note is gone. Never write entries after a failed write without an
        operator: until then only the halt note itself is retried."""
        try:
            with self._reader.use() as read:
                halted, resumes = read.execute(
                    "SELECT (SELECT value FROM meta WHERE key = 'halted'),"
                    " (SELECT value FROM meta WHERE key = 'resumed')"
                ).fetchone()
        except StoreError:
            return False
        resumes = None if resumes is None else str(resumes)
        if resumes != self._at_halt or (halted is None and self._saved):
            self.reason, self._saved, self.resumes = None, True, resumes
            return True
        if not self._saved and not self._saving.locked():
            # Off the caller's thread (often the event loop): the write may wait for a lock.
            threading.Thread(target=self._save, name="audit-halt-note", daemon=True).start()
        return False


def resume(source: Path | Database) -> str | None:
    """Clear a halt (after the operator fixed its cause) and advance the resume counter, which
    also resumes processes whose halt note never reached the database (a full disk). Returns
    the recorded reason, if one was recorded."""
    database = Database.sqlite(source) if isinstance(source, Path) else source
    conn = database.connect()
    try:
        with conn.transaction(SEQUENCER):
            row = conn.execute("SELECT value FROM meta WHERE key = 'halted'").fetchone()
            count = resume_count(conn)
            conn.execute("DELETE FROM meta WHERE key = 'halted'")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('resumed', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(int(count or 0) + 1),),
            )
    except StoreError as exc:
        raise ConfigError(f"cannot resume the audit log {database.display}: {exc}") from exc
    finally:
        conn.close()
    return None if row is None else str(row[0])
