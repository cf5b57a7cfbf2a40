"""Leak-tracing robustness matrix (issue 9): 20 clients hold one grant to the residents dataset;
each in turn leaks 1 %, 5 % or 20 % of its rows, 3 columns (at least one of them a fingerprint
carrier) or all, shuffled, with renamed columns, one column dropped, or values re-encoded (CSV
in GB 18030 with padded, upper-cased, reformatted values; JSON with numbers as floats). A control
row leaks 3 columns that carry nothing recipient-specific: the right answer there is "no
attribution". Prints the correct attribution rate and the false attributions per condition.

The grant is the hardest case for tracing: every keyed transform has `scope: grant`, so the
pseudonyms and synthetic values are the same for all 20 clients and only the fingerprint
(docs/transforms.md#fingerprints) tells them apart. It has no privacy model: a model recodes every
released quasi-identifier, the carriers included (marks come before the model), so a view with a
model keeps only what of its marks survives its recoding (interval bounds); the matrix measures
the marks themselves, like the register's model-free `market-analysis` grant.

    python benchmarks/trace_matrix.py [--rows 2000] [--clients 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gateway.data.demo import residents
from gateway.data.sources import SourceCache
from gateway.policy.files import load_policies
from gateway.privacy.transforms import TransformContext
from gateway.privacy.views import materialize
from gateway.settings import Workspace
from gateway.trace.attribute import Candidate, Pool, attribute
from gateway.trace.extract import read_extract

DATASET = """\
dataset:
  id: residents
  title: 居民基本信息（演示数据）
  description: matrix
  licence: test
  source: data/residents.csv
  columns:
    name:                 {type: string,  class: personal}
    id_card:              {type: string,  class: sensitive}
    gender:               {type: string,  class: personal}
    birth_date:           {type: date,    class: personal}
    age:                  {type: integer, class: personal}
    province:             {type: string,  class: public}
    city:                 {type: string,  class: public}
    district:             {type: string,  class: public}
    address:              {type: string,  class: personal}
    mobile:               {type: string,  class: personal}
    employer_credit_code: {type: string,  class: public}
    monthly_income:       {type: integer, class: sensitive}
grants:
  - id: shared-research
    clients: [{clients}]
    purposes: [research]
    columns:
      name: {{transform: synthesize, kind: name, scope: grant}}
      gender: {{transform: keep, justification: 矩阵基准按性别分组}}
      birth_date: {{transform: date_shift, subject: id_card, max_days: 30, scope: grant}}
      age: {{transform: generalize, width: 20}}
      city: keep
      address: {{transform: mask, preset: address, justification: 矩阵：只显示到区县}}
      mobile: {{transform: pseudonymize, format: mobile, scope: grant}}
      employer_credit_code: keep
      monthly_income: {{transform: perturb, noise: laplace, scale: 200, scope: grant}}
"""
CARRIERS = ("birth_date", "address", "monthly_income")
STRONG = ("birth_date", "monthly_income")  # a keyed change on a value with many distinct values
PLAIN = ("gender", "age", "city", "name", "mobile", "employer_credit_code")
THREE = "3 columns, 1+ of income/birth"
WEAK = "3 columns, address mask only"
ALL = "all columns"
CONTROL = "3 columns, no carrier (control)"
KINDS = (THREE, WEAK, ALL, CONTROL)
FRACTIONS = (0.01, 0.05, 0.20)
VARIANTS = ("shuffled", "one column dropped", "re-encoded CSV", "re-encoded JSON")


@dataclass(frozen=True)
class Fleet:
    pool: Pool
    views: dict[str, pd.DataFrame]  # client -> its released view, in its keyed order


@dataclass
class Cell:
    cases: int = 0
    correct: int = 0
    none: int = 0
    wrong: int = 0


def _reencode_csv(frame: pd.DataFrame, rng: np.random.Generator) -> bytes:
    out = frame.astype("string")
    for name in out.columns:
        column = out[name]
        numeric = column.str.fullmatch(r"-?\d+").fillna(False).astype(bool)
        if numeric.all():
            as_int = pd.to_numeric(column).astype("Int64")
            column = as_int.map(lambda v: f"{v:,}.0" if pd.notna(v) else "").astype("string")
        dated = column.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
        if dated.all():
            moments = pd.to_datetime(column)
            column = (
                moments.dt.year.astype(str)
                + "/"
                + moments.dt.month.astype(str)
                + "/"
                + moments.dt.day.astype(str)
            ).astype("string")
        out[name] = "  " + column.str.upper() + " "
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode("gb18030")


def _reencode_json(frame: pd.DataFrame) -> bytes:
    records = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        records.append(
            {k: float(v) if isinstance(v, int | np.integer) else v for k, v in row.items()}
        )
    return json.dumps(records, ensure_ascii=False, indent=1).encode()


def leak(
    view: pd.DataFrame, fraction: float, columns: list[str], variant: str, seed: int, tmp: Path
) -> Path:
    """One leaked file: a shuffled sample of rows, renamed columns, in the variant's encoding."""
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * len(view)))
    sample = view.iloc[rng.permutation(len(view))[:count]][columns].reset_index(drop=True)
    if variant == "one column dropped" and len(columns) > 1:
        droppable = [c for c in columns if c not in CARRIERS] or columns[1:]
        sample = sample.drop(columns=[droppable[int(rng.integers(len(droppable)))]])
    sample.columns = [f"字段{i}" for i in range(len(sample.columns))]  # renamed
    path = tmp / f"leak-{seed}"
    if variant == "re-encoded CSV":
        path = path.with_suffix(".csv")
        path.write_bytes(_reencode_csv(sample, rng))
    elif variant == "re-encoded JSON":
        path = path.with_suffix(".json")
        path.write_bytes(_reencode_json(sample))
    elif variant == "shuffled":
        path = path.with_suffix(".ndjson")
        path.write_text(sample.to_json(orient="records", lines=True, force_ascii=False))
    else:
        path = path.with_suffix(".csv")
        sample.to_csv(path, index=False)
    return path


def run_matrix(
    fleet: Fleet,
    views: dict[str, pd.DataFrame],
    tmp: Path,
    seed: int = 7,
    leakers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[tuple[str, str, str], Cell]:
    """(rows, columns, variant) -> outcomes over every leaking client."""
    results: dict[tuple[str, str, str], Cell] = {}
    rng = np.random.default_rng(seed)
    released = list(next(iter(views.values())).columns)
    for client, view in list(views.items())[:leakers]:
        for fraction in FRACTIONS:
            for kind in KINDS:
                for variant in VARIANTS if kind != CONTROL else ("shuffled",):
                    columns = _columns(kind, released, rng)
                    path = leak(view, fraction, columns, variant, int(rng.integers(1 << 31)), tmp)
                    outcome = attribute(read_extract(path).frame, fleet.pool)
                    path.unlink()
                    cell = results.setdefault((f"{fraction:.0%}", kind, variant), Cell())
                    cell.cases += 1
                    named = outcome.named
                    control = kind == CONTROL
                    if named is None:
                        cell.none += 1
                        cell.correct += control
                    elif named.client == client and not control:
                        cell.correct += 1
                    else:
                        cell.wrong += 1
        if progress is not None:
            progress(client)
    return results


def _columns(kind: str, released: list[str], rng: np.random.Generator) -> list[str]:
    if kind == ALL:
        return released
    if kind == CONTROL:
        return [str(c) for c in rng.choice(PLAIN, 3, replace=False)]
    carrier = str(rng.choice(STRONG)) if kind == THREE else "address"
    pool = [c for c in released if c != carrier and (kind == THREE or c not in STRONG)]
    chosen = [carrier, *(str(c) for c in rng.choice(pool, 2, replace=False))]
    return [str(c) for c in rng.permutation(chosen)]


def table(results: dict[tuple[str, str, str], Cell], rows: int) -> str:
    lines = [
        f"{'rows':>5} {'(n)':>6}  {'columns':<32} {'variant':<20} {'cases':>5} "
        f"{'correct':>8} {'none':>5} {'FALSE':>5}",
    ]
    for (fraction, kind, variant), cell in results.items():
        share = cell.correct / cell.cases if cell.cases else 0.0
        n = max(1, round(float(fraction.rstrip("%")) / 100 * rows))
        lines.append(
            f"{fraction:>5} {n:>6}  {kind:<32} {variant:<20} {cell.cases:>5} "
            f"{share:>8.0%} {cell.none:>5} {cell.wrong:>5}"
        )
    total = sum(c.cases for c in results.values())
    wrong = sum(c.wrong for c in results.values())
    lines.append(f"total cases {total}, false attributions {wrong}")
    return "\n".join(lines)


def fleet_views(home: Path, rows: int, clients: int) -> tuple[Fleet, dict[str, pd.DataFrame]]:
    """The fleet and each client's released view as the client received it."""
    (home / "data").mkdir(parents=True)
    (home / "policies").mkdir()
    residents(rows).to_csv(home / "data" / "residents.csv", index=False)
    names = [f"c{i:02d}" for i in range(1, clients + 1)]
    text = DATASET.replace("{clients}", ", ".join(names)).replace("{{", "{").replace("}}", "}")
    (home / "policies" / "residents.yaml").write_text(text)
    policy = load_policies(home / "policies", home)
    secret = secrets.token_bytes(32)
    grant = policy.grants[0]
    dataset = policy.datasets[grant.dataset]
    source = SourceCache(Workspace(home)).load(dataset)
    views, candidates = {}, []
    for name in names:
        ctx = TransformContext(secret, name, grant.id)
        view = materialize(source.frame, source.version, dataset, grant, policy.hash, ctx)
        views[name] = view.ordered
        candidates.append(Candidate.of(dataset.id, grant.id, name, view.key, view.ordered))
    return Fleet(Pool(candidates), views), views


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fleet, views = fleet_views(Path(tmp) / "ws", args.rows, args.clients)
        results = run_matrix(fleet, views, Path(tmp), args.seed)
    sys.stdout.write(
        f"{args.clients} clients, {args.rows} source rows, "
        f"{len(next(iter(views.values())))} released rows per view\n"
    )
    sys.stdout.write(table(results, len(next(iter(views.values())))) + "\n")
    sys.stdout.write(f"({time.perf_counter() - started:.1f} s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
