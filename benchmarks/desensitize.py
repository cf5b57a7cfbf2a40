"""Desensitization against the libraries one would otherwise reach for, side by side in one run.

    python benchmarks/desensitize.py [--values 1000000] [--sample 20000] [--repeat 3]
                                     [--parts transforms,synthesize,adult,scale,mondrian-scale]
                                     [--ks 2,5,10,20] [--sizes 100000,250000,500000,1000000]

- transforms: mask, pseudonymize and generalize on `--values` values (ours, whole column) against
  Presidio's `AnonymizerEngine` called once per value (its usage: one text, one span);
- synthesize: ours on `--values` values against faker's zh_CN provider called once per value;
- adult: on Adult at each k of `--ks`, side by side: our full-domain lattice search, our
  Mondrian local recoding (hierarchy labels; hierarchy-guided cuts with set labels; sets without
  hierarchies), each with least-cost and median cuts, and anonypyx's Mondrian, with one
  information-loss function for all;
- scale: a demo dataset of 100k .. 1M rows, 4 quasi-identifiers, k = 5, lattice search, each
  size in a fresh process (time, and peak resident memory sampled every 5 ms);
- mondrian-scale: the same rows and sizes, 8 quasi-identifiers as the statistics view releases
  them (masks included), k = 5, Mondrian local recoding with median and least-cost cuts, each
  size and rule in a fresh process.

The per-value baselines are slow, so they run on a sample of `--sample` values and their rate
is extrapolated (said so in the output); ours always runs on all values. Baseline and ours are
interleaved, medians compared. Presidio, anonypyx (and pycanon, for the tests) are the `bench`
extra; a part whose library is missing is skipped with a note. No test asserts on timing.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from gateway.data import demo
from gateway.privacy.kanon import ncp
from gateway.privacy.lattice import anonymize, load_hierarchy
from gateway.privacy.mondrian import mondrian
from gateway.privacy.transforms import CATALOGUE, TransformContext

CTX = TransformContext(b"k" * 32, "client-a", "grant-a")
ADULT = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "adult"
ADULT_QIS = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
]
SCALE_QIS = ["gender", "birth_date", "district", "employer_credit_code"]
# What the statistics view releases that derives from a real value, masks included (province,
# city and the masked address are functions of the district and add no classes).
MONDRIAN_QIS = [
    "gender",
    "age",
    "birth_date",
    "district",
    "employer_credit_code",
    "name",
    "id_card",
    "mobile",
]
MONDRIAN_KINDS = {
    "gender": "categorical",
    "age": "numeric",
    "birth_date": "date",
    "district": "categorical",
    "employer_credit_code": "categorical",
    "name": "categorical",
    "id_card": "categorical",
    "mobile": "categorical",
}


def optional(name: str) -> ModuleType | None:
    """A benchmark-only library, or None (the part that needs it is then skipped)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def one_chunk(series: pd.Series) -> pd.Series:
    """The column rebuilt as one Arrow chunk. The demo generator concatenates 1,000-row blocks,
    and `pseudonymize` (token format) fails on a multi-chunk column (`ChunkedArray` has no
    `.dictionary`; reported, not fixed here), so every part gets single-chunk columns."""
    return pd.Series(series.to_numpy(dtype=object), dtype="string", index=series.index)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rates(
    name: str,
    baseline: Callable[[], object],
    baseline_values: int,
    ours: Callable[[], object],
    ours_values: int,
    repeat: int,
) -> float:
    """Interleaved runs; prints values per second for both (medians) and the speed ratio."""
    base_t: list[float] = []
    ours_t: list[float] = []
    for _ in range(repeat):
        base_t.append(timed(baseline))
        ours_t.append(timed(ours))
    base_rate = baseline_values / statistics.median(base_t)
    ours_rate = ours_values / statistics.median(ours_t)
    print(
        f"{name:<48} baseline {base_rate:>11,.0f} /s   ours {ours_rate:>11,.0f} /s   "
        f"ours/baseline speed {ours_rate / base_rate:7.1f}x"
    )
    return ours_rate


# --- mask, pseudonymize, generalize vs Presidio ---------------------------------------------


def transforms(values: int, sample: int, repeat: int) -> None:
    presidio = optional("presidio_anonymizer")
    if presidio is None:
        print("transforms: presidio-anonymizer not installed (pip install -e '.[bench]'), skipped")
        return
    entities = importlib.import_module("presidio_anonymizer.entities")
    engine = presidio.AnonymizerEngine()
    people = demo.residents(values)
    ids = one_chunk(people["id_card"])
    employers = one_chunk(people["employer_credit_code"])
    id_sample = ids.iloc[:sample].tolist()
    employer_sample = employers.iloc[:sample].tolist()

    def per_value(texts: list[str], start: int, end: int, operator: Any) -> Callable[[], object]:
        """Presidio on each value: the span [start, len - end) is the entity."""
        ops = {"ID": operator}

        def run() -> list[str]:
            return [
                engine.anonymize(
                    text=t,
                    analyzer_results=[entities.RecognizerResult("ID", start, len(t) - end, 1.0)],
                    operators=ops,
                ).text
                for t in texts
            ]

        return run

    mask_op = entities.OperatorConfig(
        "mask", {"masking_char": "*", "chars_to_mask": 11, "from_end": False}
    )
    salt = hashlib.sha256(b"benchmark salt").digest()
    hash_op = entities.OperatorConfig("hash", {"hash_type": "sha256", "salt": salt})

    def decade(text: str) -> str:  # what our id_card preset releases at level city, birth decade
        return text[:4] + "00 " + text[6:9] + "0s"

    general_op = entities.OperatorConfig("custom", {"lambda": decade})
    mask = CATALOGUE["mask"].apply
    pseudo = CATALOGUE["pseudonymize"].apply
    general = CATALOGUE["generalize"].apply

    print(
        f"values={values:,} (ours, whole column); Presidio AnonymizerEngine per value on a "
        f"{sample:,}-value sample, rate extrapolated; repeat={repeat} (median of interleaved runs)"
    )
    rates(
        "mask id_card (Presidio mask)",
        per_value(id_sample, 6, 1, mask_op),
        len(id_sample),
        lambda: mask(ids, {"preset": "id_card"}, CTX),
        values,
        repeat,
    )
    rates(
        "pseudonymize id_card, unique (Presidio hash)",
        per_value(id_sample, 0, 0, hash_op),
        len(id_sample),
        lambda: pseudo(ids, {}, CTX),
        values,
        repeat,
    )
    rates(
        "pseudonymize employer, repeats (Presidio hash)",
        per_value(employer_sample, 0, 0, hash_op),
        len(employer_sample),
        lambda: pseudo(employers, {}, CTX),
        values,
        repeat,
    )
    rates(
        "generalize id_card (Presidio custom lambda)",
        per_value(id_sample, 0, 0, general_op),
        len(id_sample),
        lambda: general(ids, {"preset": "id_card", "level": "city", "birth": "decade"}, CTX),
        values,
        repeat,
    )


# --- synthesize vs faker --------------------------------------------------------------------


def synthesize(values: int, sample: int, repeat: int) -> None:
    from faker import Faker

    fake = Faker("zh_CN")
    fake.seed_instance(20261129)
    people = demo.residents(values)
    synth = CATALOGUE["synthesize"].apply
    print(
        f"values={values:,} (ours, whole column); faker zh_CN per value on a {sample:,}-value "
        f"sample, rate extrapolated; repeat={repeat}"
    )
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("name", "name", fake.name),
        ("id_card", "id_card", fake.ssn),
        ("mobile", "mobile", fake.phone_number),
        ("address", "address", fake.address),
    ]
    for kind, column, method in cases:
        column_values = one_chunk(people[column])
        rows = range(sample)
        rates(
            f"synthesize {kind} (faker {method.__name__})",
            lambda method=method, rows=rows: [method() for _ in rows],  # type: ignore[misc]
            sample,
            lambda column_values=column_values, kind=kind: synth(  # type: ignore[misc]
                column_values, {"kind": kind}, CTX
            ),
            values,
            repeat,
        )


# --- k-anonymity on Adult vs anonypyx (Mondrian) --------------------------------------------


def information_loss(
    source: pd.DataFrame, released: pd.DataFrame, qis: Sequence[str], numeric: Sequence[str]
) -> tuple[float, int, int, int]:
    """One measure for any release: (NCP, discernibility, smallest class, classes).

    `released` holds the released quasi-identifier labels, indexed by source row (suppressed
    rows absent). A label stands for the source values of the released rows that carry it: a
    numeric cell costs (max - min) / (column max - min) of those values, a categorical cell
    (distinct - 1) / (column distinct - 1) (Xu et al.'s normalized certainty penalty, the measure
    ARX calls loss); a suppressed row costs 1 per quasi-identifier. Discernibility (Bayardo and
    Agrawal): each released row costs its class size, each suppressed row the source size."""
    n = len(source)
    kept = source.loc[released.index]
    cost = 0.0
    for qi in qis:
        label = released[qi].astype("string").fillna("\x00").to_numpy()
        if qi in numeric:
            column = pd.to_numeric(source[qi])
            values = pd.to_numeric(kept[qi])
            grouped = values.groupby(label)
            span = grouped.transform("max") - grouped.transform("min")
            cost += float((span / (column.max() - column.min())).sum())
        else:
            domain = source[qi].astype("string").nunique(dropna=False)
            distinct = kept[qi].astype("string").groupby(label).transform("nunique")
            cost += float(((distinct - 1) / max(domain - 1, 1)).sum())
    suppressed = n - len(released)
    ncp = (cost + suppressed * len(qis)) / (n * len(qis))
    sizes = released[list(qis)].astype("string").fillna("\x00").value_counts()
    discernibility = int((sizes.astype("int64") ** 2).sum()) + suppressed * n
    return ncp, discernibility, int(sizes.min()) if len(sizes) else 0, len(sizes)


def mondrian_labels(frame: pd.DataFrame, partitions: Sequence[Any], qis: Sequence[str]) -> Any:
    """anonypyx's human-readable labels per row (interval `min-max`, sorted value sets)."""
    part = np.empty(len(frame), dtype=np.int64)
    for number, rows in enumerate(partitions):
        part[np.asarray(rows)] = number
    labels = pd.DataFrame(index=frame.index)
    for qi in qis:
        grouped = frame[qi].groupby(part)
        if frame[qi].dtype.name == "category":
            text = grouped.agg(lambda s: ",".join(sorted(str(v) for v in s.unique())))
        else:
            low, high = grouped.min(), grouped.max()
            text = low.astype(str).where(low == high, low.astype(str) + "-" + high.astype(str))
        labels[qi] = text.to_numpy()[part]
    return labels


def adult(ks: Sequence[int], repeat: int) -> None:
    if not ADULT.is_dir():
        print("adult: ../shared/benchmarks/adult not present, skipped")
        return
    frame = pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str)
    hierarchies = {q: load_hierarchy(ADULT / f"adult_hierarchy_{q}.csv") for q in ADULT_QIS}
    categorical = {q: h for q, h in hierarchies.items() if q != "age"}
    kinds = {q: "categorical" for q in ADULT_QIS} | {"age": "numeric"}
    anonypyx = optional("anonypyx")
    typed = frame.copy()
    typed["age"] = typed["age"].astype("int64")
    for qi in ADULT_QIS:
        if qi != "age":
            typed[qi] = typed[qi].astype("category")
    print(
        f"adult: {len(frame):,} rows, {len(ADULT_QIS)} QIs (age numeric for Mondrian and "
        "anonypyx). full-domain = lattice search, ARX hierarchies, <= 5 % suppression; "
        "mondrian = strict Mondrian local recoding: 'hier' releases the covering hierarchy "
        "label, 'hier+sets' the set of values when narrower, 'sets' uses no hierarchy; cuts "
        "at the least-cost feasible boundary ('median': LeFevre's, nearest the median row); "
        f"ours: median of {repeat} runs (wall and CPU time), anonypyx: one run. NCP and "
        "discernibility by one function for all; 'own NCP' is what each method reports."
    )
    header = (
        f"{'':<6}{'method':<27}{'time s':>8}{'cpu s':>8}{'suppr.':>8}{'NCP':>8}{'own NCP':>9}"
        f"{'discernibility':>16}{'min class':>10}{'classes':>9}"
    )
    print(header)
    for k in ks:
        released = frame
        own = 0.0

        def full_domain(k: int = k) -> pd.DataFrame:
            nonlocal own
            out, solution = anonymize(frame, ADULT_QIS, hierarchies, k, 0.05)
            own = ncp(frame, out.index, tuple(ADULT_QIS), solution.levels, hierarchies)
            return out

        wall, cpu, released = measured(full_domain, repeat)
        row(k, "full-domain", wall, cpu, frame, released, ["age"], own)
        for method, tables, sets, cuts in (
            (f"mondrian {name}{suffix}", tables, sets, cuts)
            for name, tables, sets in (
                ("hier", categorical, False),
                ("hier+sets", categorical, True),
                ("sets", {}, False),
            )
            for cuts, suffix in (("median", " median"), ("least-cost", ""))
        ):

            def local(
                k: int = k, tables: Any = tables, sets: bool = sets, cuts: str = cuts
            ) -> pd.DataFrame:
                nonlocal own
                out, report = mondrian(
                    frame, ADULT_QIS, k, kinds=kinds, hierarchies=tables, set_labels=sets, cuts=cuts
                )
                own = report.ncp
                return out

            wall, cpu, released = measured(local, repeat)
            row(k, method, wall, cpu, frame, released, ["age"], own)
        if anonypyx is None:
            print(f"{'':<6}anonypyx not installed (pip install -e '.[bench]'), skipped")
            continue
        anonymiser = anonypyx.Anonymiser(
            typed, k=k, feature_columns=ADULT_QIS, generalisation_strategy="human-readable"
        )
        start, clock = time.perf_counter(), time.process_time()
        # What Anonymiser.anonymise() does, keeping the partitions to measure the same loss.
        partitions = anonymiser.algorithm.partition(anonymiser.parameters)
        schema = anonymiser.generalisation_strategy_type.create_for_data(typed, ADULT_QIS)
        schema.generalise(typed, partitions)
        seconds, cpu = time.perf_counter() - start, time.process_time() - clock
        labels = mondrian_labels(typed, partitions, ADULT_QIS)
        row(k, "anonypyx", seconds, cpu, typed, labels, ["age"], None)


def measured(fn: Callable[[], pd.DataFrame], repeat: int) -> tuple[float, float, pd.DataFrame]:
    """Median wall and CPU seconds of `repeat` runs, and the last result."""
    walls: list[float] = []
    cpus: list[float] = []
    result = pd.DataFrame()
    for _ in range(repeat):
        start, clock = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - clock)
    return statistics.median(walls), statistics.median(cpus), result


def row(
    k: int,
    method: str,
    seconds: float,
    cpu: float,
    source: pd.DataFrame,
    released: pd.DataFrame,
    numeric: Sequence[str],
    own: float | None,
) -> None:
    loss, disc, smallest, classes = information_loss(source, released, ADULT_QIS, numeric)
    suppressed = 1 - len(released) / len(source)
    reported = f"{own:9.3f}" if own is not None else f"{'-':>9}"
    print(
        f"{'k=' + str(k):<6}{method:<27}{seconds:8.2f}{cpu:8.2f}{suppressed:8.1%}{loss:8.3f}"
        f"{reported}{disc:16,d}{smallest:10d}{classes:9d}"
    )


# --- scale: 100k .. 1M demo rows, 4 quasi-identifiers, k = 5 --------------------------------


def scale_hierarchies(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """ARX hierarchy files for the scale run's quasi-identifiers."""
    files: dict[str, Path] = {}

    def write(name: str, table: pd.DataFrame) -> None:
        path = folder / f"{name}.csv"
        table.to_csv(path, sep=";", header=False, index=False)
        files[name] = path

    write("gender", pd.DataFrame({"v": ["男", "女"], "top": "*"}))
    dates = pd.Series(frame["birth_date"].astype("string").unique())
    write(
        "birth_date",
        pd.DataFrame(
            {
                "v": dates,
                "month": dates.str.slice(0, 7),
                "year": dates.str.slice(0, 4),
                "decade": dates.str.slice(0, 3) + "0s",
                "top": "*",
            }
        ),
    )
    regions = pd.DataFrame(demo.REGIONS, columns=["code", "province", "city", "district"])
    write("district", regions[["district", "city", "province"]].assign(top="*"))
    codes = pd.Series(frame["employer_credit_code"].astype("string").unique())
    write(
        "employer_credit_code",
        pd.DataFrame(
            {
                "v": codes,
                "region": codes.str.slice(2, 8),
                "province": codes.str.slice(2, 4) + "0000",
                "top": "*",
            }
        ),
    )
    return files


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def scale_child(data: Path, folder: Path, k: int) -> None:
    """In a fresh process: read the frame, then time one search while sampling RSS."""
    frame = pd.read_parquet(data)
    hierarchies = {q: load_hierarchy(folder / f"{q}.csv") for q in SCALE_QIS}
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    before = rss_bytes()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    released, solution = anonymize(frame, SCALE_QIS, hierarchies, k, 0.05)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak = max(peak, rss_bytes())
    result = {
        "rows": len(frame),
        "seconds": seconds,
        "frame_bytes": frame_bytes,
        "rss_before": before,
        "rss_peak": peak,
        "levels": list(solution.levels),
        "suppressed": solution.suppressed,
        "k": solution.k,
        "nodes": solution.evaluated,
        "released": len(released),
    }
    print(json.dumps(result))


def scale(sizes: Sequence[int], k: int) -> None:
    rows = max(sizes)
    start = time.perf_counter()
    people = demo.residents(rows)
    made = time.perf_counter() - start
    print(
        f"scale: demo residents, QIs {', '.join(SCALE_QIS)}, k={k}, <= 5 % suppression; "
        f"{rows:,} rows generated in {made:.1f} s; each size in a fresh process; memory = "
        "resident set size sampled every 5 ms (frame: pandas memory_usage(deep=True))"
    )
    print(
        f"{'rows':>10}{'time s':>9}{'s/100k':>8}{'frame MiB':>11}{'RSS before':>12}"
        f"{'RSS peak':>10}{'peak-before':>13}{'/frame':>8}{'suppr.':>8}  levels"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scale_hierarchies(people, folder)
        for size in sizes:
            data = folder / f"residents-{size}.parquet"
            people.iloc[:size].to_parquet(data)
            command = [sys.executable, __file__, "--scale-child", str(data), str(folder), str(k)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(output.strip().splitlines()[-1])
            mib = 1024 * 1024
            extra = r["rss_peak"] - r["rss_before"]
            print(
                f"{r['rows']:>10,}{r['seconds']:9.2f}{r['seconds'] / r['rows'] * 1e5:8.2f}"
                f"{r['frame_bytes'] / mib:11.0f}{r['rss_before'] / mib:12.0f}"
                f"{r['rss_peak'] / mib:10.0f}{extra / mib:13.0f}"
                f"{extra / r['frame_bytes']:8.2f}{r['suppressed'] / r['rows']:8.1%}  "
                f"{tuple(r['levels'])}"
            )


# --- Mondrian at scale: 100k .. 1M demo rows, 8 quasi-identifiers, k = 5 ------------------


def mondrian_frame(people: pd.DataFrame) -> pd.DataFrame:
    """The quasi-identifiers as the statistics view releases them: name, 身份证号 and mobile
    through their masks, the rest as they are."""
    mask = CATALOGUE["mask"].apply
    frame = people[MONDRIAN_QIS].copy()
    for column, preset in (("name", "chinese_name"), ("id_card", "id_card"), ("mobile", "mobile")):
        frame[column] = mask(one_chunk(people[column]), {"preset": preset}, CTX)
    return frame


def mondrian_hierarchies(frame: pd.DataFrame, folder: Path) -> None:
    """ARX hierarchy files: the scale run's, and the masks' own ladders (身份证号 region 6 -> 4
    -> 2 digits -> none; mobile 3+4 -> 3 -> none)."""
    scale_hierarchies(frame, folder)
    ids = pd.Series(frame["id_card"].astype("string").unique())
    mobiles = pd.Series(frame["mobile"].astype("string").unique())
    ladders = {
        "id_card": pd.DataFrame(
            {
                "v": ids,
                "region4": ids.str.slice(0, 4) + "*" * 14,
                "region2": ids.str.slice(0, 2) + "*" * 16,
                "top": "*",
            }
        ),
        "mobile": pd.DataFrame({"v": mobiles, "prefix": mobiles.str.slice(0, 3) + "*" * 8}).assign(
            top="*"
        ),
    }
    for name, table in ladders.items():
        table.to_csv(folder / f"{name}.csv", sep=";", header=False, index=False)


def mondrian_child(data: Path, folder: Path, k: int, cuts: str) -> None:
    """In a fresh process: read the frame, then time one Mondrian run while sampling RSS."""
    frame = pd.read_parquet(data)
    hierarchies = {
        q: load_hierarchy(folder / f"{q}.csv")
        for q in ("gender", "district", "employer_credit_code", "id_card", "mobile")
    }
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    before = rss_bytes()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start, clock = time.perf_counter(), time.process_time()
    released, report = mondrian(
        frame,
        MONDRIAN_QIS,
        k,
        kinds=MONDRIAN_KINDS,
        hierarchies=hierarchies,
        set_labels=True,
        cuts=cuts,
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - clock
    done.set()
    sampler.join()
    peak = max(peak, rss_bytes())
    smallest = int(released[MONDRIAN_QIS].value_counts(dropna=False).min())
    assert smallest == report.k >= k, "the released view must be k-anonymous"
    result = {
        "rows": len(frame),
        "cuts": cuts,
        "seconds": seconds,
        "cpu": cpu,
        "frame_bytes": frame_bytes,
        "rss_before": before,
        "rss_peak": peak,
        "suppressed": report.suppressed,
        "k": report.k,
        "classes": report.classes,
        "ncp": report.ncp,
    }
    print(json.dumps(result))


def mondrian_scale(sizes: Sequence[int], k: int) -> None:
    rows = max(sizes)
    start = time.perf_counter()
    people = mondrian_frame(demo.residents(rows))
    made = time.perf_counter() - start
    print(
        f"mondrian-scale: demo residents, QIs {', '.join(MONDRIAN_QIS)} (name, id_card, mobile "
        f"masked), k={k}, strict Mondrian with set labels, least-cost and median cuts side by "
        f"side; {rows:,} rows generated in "
        f"{made:.1f} s; each size in a fresh process; memory as in the scale part"
    )
    print(
        f"{'rows':>10}{'cuts':>11}{'time s':>9}{'cpu s':>8}{'frame MiB':>11}{'RSS before':>12}"
        f"{'RSS peak':>10}{'peak-before':>13}{'/frame':>8}{'suppr.':>8}{'NCP':>7}{'k':>4}"
        f"{'classes':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mondrian_hierarchies(people, folder)
        for size, cuts in ((size, cuts) for size in sizes for cuts in ("median", "least-cost")):
            data = folder / f"residents-{size}.parquet"
            people.iloc[:size].to_parquet(data)
            command = [sys.executable, __file__, "--mondrian-child", str(data), str(folder), str(k)]
            command.append(cuts)
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(output.strip().splitlines()[-1])
            mib = 1024 * 1024
            extra = r["rss_peak"] - r["rss_before"]
            print(
                f"{r['rows']:>10,}{r['cuts']:>11}{r['seconds']:9.2f}{r['cpu']:8.2f}"
                f"{r['frame_bytes'] / mib:11.0f}{r['rss_before'] / mib:12.0f}"
                f"{r['rss_peak'] / mib:10.0f}{extra / mib:13.0f}"
                f"{extra / r['frame_bytes']:8.2f}{r['suppressed'] / r['rows']:8.1%}"
                f"{r['ncp']:7.3f}{r['k']:4d}{r['classes']:9,d}"
            )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--scale-child":
        scale_child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) == 6 and sys.argv[1] == "--mondrian-child":
        mondrian_child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="transforms,synthesize,adult,scale,mondrian-scale")
    parser.add_argument("--ks", default="2,5,10,20", help="k values of the adult part")
    parser.add_argument("--sizes", default="100000,250000,500000,1000000")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "transforms" in parts:
        transforms(args.values, args.sample, args.repeat)
    if "synthesize" in parts:
        synthesize(args.values, args.sample, args.repeat)
    if "adult" in parts:
        adult([int(k) for k in args.ks.split(",")], args.repeat)
    if "scale" in parts:
        scale([int(s) for s in args.sizes.split(",")], 5)
    if "mondrian-scale" in parts:
        mondrian_scale([int(s) for s in args.sizes.split(",")], 5)


if __name__ == "__main__":
    main()
