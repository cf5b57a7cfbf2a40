"""Materialized views on disk, so a restart or another worker process does not recompute them.

Each view is two files under `state/views/`: `<name>.parquet` (the released frame, in source
order) and `<name>.json` (its columns, privacy report and the MAC of the Parquet bytes). The name
is an HMAC of the view key under the workspace secret, so a new secret never reads an old file,
and the sidecar is authenticated with the same secret: a file that was altered, truncated or
half-written is treated as absent and the view is computed again (never released as found).
Keys include the data's content hash and the policy set's hash, so a change of either simply
misses; the oldest files beyond the capacity are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.fsutil import private_dir
from gateway.privacy.kanon import PrivacyReport
from gateway.privacy.risk import Risk

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("gateway.views")

FORMAT = "public-data-gateway/view/v1"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True, eq=False)
class StoredView:
    """What the disk holds for one view: the frame and its description."""

    frame: pd.DataFrame
    columns: list[dict[str, str]]
    privacy: PrivacyReport | None
    risk: Risk | None = None


class ViewStore:
    def __init__(self, directory: Path, secret: bytes, capacity: int = 64) -> None:
        self._dir = directory
        self._key = hmac.new(secret, b"public-data-gateway/view-store/v1", hashlib.sha256).digest()
        self._capacity = capacity

    def _name(self, key: str) -> str:
        return hmac.new(self._key, b"name\x00" + key.encode(), hashlib.sha256).hexdigest()[:40]

    def _mac(self, key: str, body: bytes) -> str:
        return hmac.new(
            self._key, b"mac\x00" + key.encode() + b"\x00" + body, hashlib.sha256
        ).hexdigest()

    def load(self, key: str) -> StoredView | None:
        import pandas as pd

        name = self._name(key)
        meta_path, data_path = self._dir / f"{name}.json", self._dir / f"{name}.parquet"
        try:
            meta_bytes = meta_path.read_bytes()
            data = data_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("view cache: cannot read %s (%s); computing the view again", name, exc)
            return None
        try:
            sidecar = json.loads(meta_bytes)
            body = json.dumps(sidecar["meta"], sort_keys=True).encode()
            meta = sidecar["meta"]
            if not (
                hmac.compare_digest(str(sidecar["mac"]), self._mac(key, body))
                and meta["format"] == FORMAT
                and meta["key"] == key
                and hmac.compare_digest(str(meta["data"]), hashlib.sha256(data).hexdigest())
            ):
                raise ValueError("authentication failed")
            frame = pd.read_parquet(io.BytesIO(data))
            if list(frame.columns) != [c["name"] for c in meta["columns"]]:
                raise ValueError("columns differ from the description")
            privacy = meta["privacy"]
            report = None
            if privacy is not None:
                privacy["levels"] = tuple(privacy["levels"])
                report = PrivacyReport(**privacy)
            risk = None if meta.get("risk") is None else Risk.from_dict(meta["risk"])
        except (ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("view cache: ignoring %s (%s); computing the view again", name, exc)
            return None
        with contextlib.suppress(OSError):
            os.utime(data_path)  # most recently used: pruned last
        return StoredView(frame, list(meta["columns"]), report, risk)

    def save(
        self,
        key: str,
        frame: pd.DataFrame,
        columns: list[dict[str, str]],
        privacy: PrivacyReport | None,
        risk: Risk | None = None,
    ) -> None:
        """Best effort: a view that cannot be written is simply computed again next time."""
        try:
            private_dir(self._dir)
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            data = buffer.getvalue()
            meta = {
                "format": FORMAT,
                "key": key,
                "data": hashlib.sha256(data).hexdigest(),
                "columns": columns,
                "privacy": None if privacy is None else asdict(privacy),
                "risk": None if risk is None else asdict(risk),
            }
            body = json.dumps(meta, sort_keys=True).encode()
            sidecar = json.dumps({"meta": meta, "mac": self._mac(key, body)}).encode()
            name = self._name(key)
            _atomic_write(self._dir / f"{name}.parquet", data)
            _atomic_write(self._dir / f"{name}.json", sidecar)
            self._prune()
        except (OSError, ValueError, TypeError) as exc:  # pyarrow raises ArrowInvalid(ValueError)
            log.warning("view cache: cannot store a view (%s); it stays in memory only", exc)

    def _prune(self) -> None:
        files = sorted(self._dir.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
        for stale in files[: max(0, len(files) - self._capacity)]:
            stale.unlink(missing_ok=True)
            stale.with_suffix(".json").unlink(missing_ok=True)
