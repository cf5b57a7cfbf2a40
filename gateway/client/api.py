"""`GatewayClient`: the dataset API in a few calls.

    with GatewayClient.from_file("demo-client.json") as gw:
        frame = gw.to_pandas("residents", purpose="statistics")

Listing and schemas, pages in JSON, CSV or NDJSON (following each page's `Link: rel="next"`,
or a JSON page's `next`), all rows as dicts or a DataFrame, and whole downloads to a file (the
gateway's export endpoint when it has one, pages otherwise).
"""

from __future__ import annotations

import csv
import io
import json
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.client.errors import ClientError, ProblemError
from gateway.client.files import atomic_file, format_of, read_ndjson, write_page
from gateway.client.paging import next_link, resolve_next
from gateway.client.retry import RetryPolicy
from gateway.client.session import Params, ReceiptFields, Session

PAGE_FORMATS = ("json", "csv", "ndjson")
FilterValue = str | int | Sequence[str | int]
_EXPORT_ABSENT = frozenset({404, 405, 501})  # a gateway without the export endpoint


@dataclass(frozen=True)
class Page:
    """One page of released rows as the gateway sent it."""

    format: str
    body: bytes
    next_url: str | None
    receipt: ReceiptFields | None

    def records(self) -> list[dict[str, Any]]:
        """The page's rows as dicts (CSV cells are strings, as in the file)."""
        if self.format == "json":
            rows: list[dict[str, Any]] = json.loads(self.body)["rows"]
            return rows
        text = self.body.decode("utf-8")
        if self.format == "ndjson":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return list(csv.DictReader(io.StringIO(text)))

    @property
    def view(self) -> dict[str, Any] | None:
        """A JSON page's description of the view (policy hash, privacy model, ...)."""
        if self.format != "json":
            return None
        view: dict[str, Any] = json.loads(self.body)["view"]
        return view


def query_params(
    purpose: str,
    *,
    size: int | None = None,
    columns: Sequence[str] = (),
    sort: str | None = None,
    descending: bool = False,
    filters: Mapping[str, FilterValue] | None = None,
) -> list[tuple[str, str]]:
    """The rows endpoint's query string for these arguments (filters as `col__op=value`; a list
    value is joined with commas, for `__in`)."""
    params = [("purpose", purpose)]
    if size is not None:
        params.append(("_size", str(size)))
    params.extend(("_col", name) for name in columns)
    if sort is not None:
        params.append(("_sort_desc" if descending else "_sort", sort))
    for name, value in (filters or {}).items():
        if name.startswith("_") or name == "purpose":
            raise ValueError(
                f"{name!r} is not a filter: use the named arguments (purpose, size, columns, sort)"
            )
        if isinstance(value, str | int):
            params.append((name, str(value)))
        else:
            params.append((name, ",".join(str(v) for v in value)))
    return params


class GatewayClient:
    """A developer's client for one gateway. Authenticates with a client secret or a private
    key (`private_key_jwt`); retries 429 and 503 after `Retry-After` (at most `attempts` tries,
    waits of at most `max_wait` s); with `audit_keys`, checks every answer's Audit-Receipt."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        private_key: str | Path | bytes | None = None,
        ca_cert: str | Path | None = None,
        verify: ssl.SSLContext | bool = True,
        scope: str | None = None,
        token_url: str | None = None,
        audit_keys: Iterable[str | Path | Ed25519PublicKey] | None = None,
        attempts: int = 4,
        max_wait: float = 60.0,
        leeway: int = 60,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith("https://"):
            raise ClientError("the gateway's URL must start with https://")
        tls: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_cert)) if ca_cert is not None else verify
        )
        self._session = Session(
            base_url,
            client_id,
            client_secret=client_secret,
            private_key=private_key,
            verify=tls,
            scope=scope,
            token_url=token_url,
            retry=RetryPolicy(attempts=attempts, max_wait=max_wait),
            leeway=leeway,
            timeout=timeout,
            audit_keys=audit_keys,
            sleep=sleep,
        )

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> GatewayClient:
        """A client from a credentials file such as `gateway init --demo`'s demo-client.json
        (`client_id`, `client_secret`, `base_url`, `token_url`, `ca_cert`)."""
        creds = json.loads(Path(path).read_text(encoding="utf-8"))
        settings = {
            "client_secret": creds.get("client_secret"),
            "token_url": creds.get("token_url"),
            "ca_cert": creds.get("ca_cert"),
            **options,
        }
        return cls(creds["base_url"], creds["client_id"], **settings)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def token(self) -> Mapping[str, Any]:
        """The access token in use (`access_token`, `expires_at`, `scope`)."""
        return self._session.token

    @property
    def last_receipt(self) -> ReceiptFields | None:
        """The fields of the last answer's Audit-Receipt (idx, leaf, ts, kid, ...)."""
        return self._session.last_receipt

    def get_json(self, path: str, params: Params = ()) -> Any:
        """GET any JSON endpoint of the gateway (a path such as `/v1/datasets`)."""
        return json.loads(self._session.get(path, params).content)

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets you hold a grant for, with their released columns."""
        items: list[dict[str, Any]] = self.get_json("/v1/datasets")["datasets"]
        return items

    def dataset(self, dataset: str, purpose: str | None = None) -> dict[str, Any]:
        """One dataset's released schema (with the privacy model achieved, for a purpose)."""
        params = [("purpose", purpose)] if purpose else []
        schema: dict[str, Any] = self.get_json(_path(dataset), params)
        return schema

    def pages(
        self,
        dataset: str,
        *,
        purpose: str,
        format: str = "json",
        size: int | None = None,
        columns: Sequence[str] = (),
        sort: str | None = None,
        descending: bool = False,
        filters: Mapping[str, FilterValue] | None = None,
    ) -> Iterator[Page]:
        """Every page of the rows matching the query, in order, each row exactly once."""
        if format not in PAGE_FORMATS:
            raise ValueError(f"format must be one of {', '.join(PAGE_FORMATS)}")
        params: list[tuple[str, str]] = query_params(
            purpose, size=size, columns=columns, sort=sort, descending=descending, filters=filters
        )
        params.append(("_format", format))
        url, seen = _path(dataset) + "/rows", set()
        while True:
            response = self._session.get(url, params)
            link = next_link(response.headers.get("link"))
            if link is not None:
                next_url: str | None = resolve_next(self._session.base_url, str(response.url), link)
                next_params: Params = []
            else:
                cursor = json.loads(response.content).get("next") if format == "json" else None
                next_url = _path(dataset) + "/rows" if cursor else None
                next_params = [*(p for p in params if p[0] != "_next"), ("_next", str(cursor))]
            yield Page(format, response.content, next_url, self._session.last_receipt)
            if next_url is None:
                return
            key = (next_url, tuple(next_params))
            if key in seen:
                raise ClientError("the gateway sent the same next page twice; stopping")
            seen.add(key)
            url, params = next_url, list(next_params)

    def rows(
        self,
        dataset: str,
        *,
        purpose: str,
        size: int | None = None,
        columns: Sequence[str] = (),
        sort: str | None = None,
        descending: bool = False,
        filters: Mapping[str, FilterValue] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every released row matching the query, as a dict, paging as needed."""
        for page in self.pages(
            dataset,
            purpose=purpose,
            size=size,
            columns=columns,
            sort=sort,
            descending=descending,
            filters=filters,
        ):
            yield from page.records()

    def to_pandas(
        self,
        dataset: str,
        *,
        purpose: str,
        columns: Sequence[str] = (),
        filters: Mapping[str, FilterValue] | None = None,
    ) -> pd.DataFrame:
        """Every released row matching the filters as a DataFrame (values exactly as released:
        generalized bands and masked codes stay text)."""
        with tempfile.TemporaryDirectory(prefix="gateway-client-") as temp:
            path = self.export(
                dataset,
                Path(temp) / "rows.ndjson",
                purpose=purpose,
                columns=columns,
                filters=filters,
            )
            return read_ndjson(path, list(columns) or None)

    def export(
        self,
        dataset: str,
        path: str | Path,
        *,
        purpose: str,
        format: str | None = None,
        columns: Sequence[str] = (),
        filters: Mapping[str, FilterValue] | None = None,
    ) -> Path:
        """Download every released row matching the filters into `path` (CSV, NDJSON or
        Parquet, from the suffix or `format`). Uses `/v1/datasets/{id}/export` when the gateway
        answers it, and pages otherwise. The file appears only once it is complete."""
        target = Path(path)
        fmt = format_of(target, format)
        params = [*query_params(purpose, columns=columns, filters=filters), ("format", fmt)]
        try:
            with (
                self._session.open(_path(dataset) + "/export", params) as response,
                atomic_file(target) as out,
            ):
                for chunk in response.iter_bytes():
                    out.write(chunk)
            return target
        except ProblemError as exc:
            if exc.status not in _EXPORT_ABSENT:
                raise
        pages = self.pages(dataset, purpose=purpose, columns=columns, filters=filters)
        if fmt == "parquet":
            frames = [_frame(page) for page in pages]
            with atomic_file(target) as out:
                pd.concat(frames, ignore_index=True).to_parquet(out, index=False)
            return target
        with atomic_file(target) as out:
            for number, page in enumerate(pages):
                write_page(out, _frame(page), fmt, first=number == 0)
        return target


def _path(dataset: str) -> str:
    if not dataset or dataset in {".", ".."}:
        raise ValueError("name a dataset")
    return "/v1/datasets/" + quote(dataset, safe="")


def _frame(page: Page) -> pd.DataFrame:
    view = page.view or {}
    return pd.DataFrame(page.records(), columns=view.get("columns"))
