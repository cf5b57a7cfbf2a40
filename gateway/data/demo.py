"""Deterministic demo datasets: the same seed gives the same bytes on any day, in any process.

Everything random comes from one NumPy generator seeded explicitly; Chinese names, street names
and company words come from faker's zh_CN provider tables (sampled by NumPy, not by faker's
per-call API, which is slow and date-dependent). Check characters are computed by our own code.
Ages are computed against a fixed reference date, never "today".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from faker.providers.address.zh_CN import Provider as AddressProvider
from faker.providers.company.zh_CN import Provider as CompanyProvider
from faker.providers.person.zh_CN import Provider as PersonProvider

from gateway.data.checksums import (
    CREDIT_CHARSET,
    credit_check_chars,
    id_check_digits,
    org_code_check,
)
from gateway.fsutil import new_private, private_dir

DEFAULT_SEED = 20261129
DEFAULT_ROWS = 20_000
AS_OF = dt.date(2026, 1, 1)  # reference date for ages; fixed so the data never drifts

# (GB/T 2260 code, province, city, district): real codes, so 身份证号 regions match addresses.
REGIONS: tuple[tuple[str, str, str, str], ...] = (
    ("110101", "北京市", "北京市", "东城区"),
    ("110102", "北京市", "北京市", "西城区"),
    ("110105", "北京市", "北京市", "朝阳区"),
    ("110108", "北京市", "北京市", "海淀区"),
    ("120101", "天津市", "天津市", "和平区"),
    ("310101", "上海市", "上海市", "黄浦区"),
    ("310104", "上海市", "上海市", "徐汇区"),
    ("310115", "上海市", "上海市", "浦东新区"),
    ("320102", "江苏省", "南京市", "玄武区"),
    ("320106", "江苏省", "南京市", "鼓楼区"),
    ("330102", "浙江省", "杭州市", "上城区"),
    ("330106", "浙江省", "杭州市", "西湖区"),
    ("420102", "湖北省", "武汉市", "江岸区"),
    ("420106", "湖北省", "武汉市", "武昌区"),
    ("440103", "广东省", "广州市", "荔湾区"),
    ("440104", "广东省", "广州市", "越秀区"),
    ("440106", "广东省", "广州市", "天河区"),
    ("440303", "广东省", "深圳市", "罗湖区"),
    ("440304", "广东省", "深圳市", "福田区"),
    ("440305", "广东省", "深圳市", "南山区"),
    ("500103", "重庆市", "重庆市", "渝中区"),
    ("510104", "四川省", "成都市", "锦江区"),
    ("510107", "四川省", "成都市", "武侯区"),
    ("610113", "陕西省", "西安市", "雁塔区"),
)

INDUSTRIES = (
    "制造业",
    "批发和零售业",
    "信息传输、软件和信息技术服务业",
    "建筑业",
    "租赁和商务服务业",
    "科学研究和技术服务业",
    "交通运输、仓储和邮政业",
    "住宿和餐饮业",
    "金融业",
    "文化、体育和娱乐业",
)
_INDUSTRY_WORDS = ("制造", "商贸", "科技", "建设", "咨询", "技术", "物流", "餐饮", "投资", "文化")
MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
)


def _digits(rng: np.random.Generator, n: int, width: int) -> npt.NDArray[np.int64]:
    return rng.integers(0, 10, size=(n, width), dtype=np.int64)


def _join_digits(matrix: npt.NDArray[np.int64]) -> pd.Series:
    # One string per row from a digit matrix, without a Python loop per row.
    text = matrix.astype(np.uint8) + ord("0")
    return pd.Series(text.view(f"S{matrix.shape[1]}").ravel()).str.decode("ascii")


def _names(rng: np.random.Generator, n: int) -> pd.Series:
    surnames = list(PersonProvider.last_names.keys())
    weights = np.array(list(PersonProvider.last_names.values()), dtype=np.float64)
    given = np.array(PersonProvider.first_names)
    last = np.array(surnames)[rng.choice(len(surnames), size=n, p=weights / weights.sum())]
    first1 = given[rng.integers(0, len(given), size=n)]
    first2 = given[rng.integers(0, len(given), size=n)]
    single = (np.char.str_len(first1) == 1) & (np.char.str_len(first2) == 1)
    two_chars = (rng.random(n) < 0.6) & single
    names = pd.Series(last) + pd.Series(first1) + pd.Series(np.where(two_chars, first2, ""))
    return names


def _mobiles(rng: np.random.Generator, n: int) -> pd.Series:
    prefixes = np.array(MOBILE_PREFIXES)[rng.integers(0, len(MOBILE_PREFIXES), size=n)]
    return pd.Series(prefixes) + _join_digits(_digits(rng, n, 8))


def _id_cards(
    rng: np.random.Generator, region_codes: pd.Series, birth: pd.Series, male: npt.NDArray[np.bool_]
) -> pd.Series:
    n = len(region_codes)
    seq = rng.integers(0, 100, size=n) * 10 + rng.integers(0, 5, size=n) * 2 + male.astype(int)
    first17 = (
        region_codes + birth.str.replace("-", "", regex=False) + pd.Series(seq).map("{:03d}".format)
    )
    digits = np.frombuffer("".join(first17).encode("ascii"), dtype=np.uint8).reshape(n, 17) - ord(
        "0"
    )
    return first17 + pd.Series(id_check_digits(digits.astype(np.int64)))


def _credit_codes(rng: np.random.Generator, region_codes: pd.Series, first: int) -> pd.Series:
    """Unique codes: the organisation-code digits are a bijection of the row number (mod 10^8)."""
    n = len(region_codes)
    numbers = (np.arange(first, first + n, dtype=np.int64) * 7919 + 1_234_567) % 10**8
    org8 = (numbers[:, None] // 10 ** np.arange(7, -1, -1)) % 10
    org = _join_digits(org8) + pd.Series(org_code_check(org8))
    first17 = "91" + region_codes + org  # 9: market regulator; 1: enterprise
    charset = np.frombuffer(CREDIT_CHARSET.encode("ascii"), dtype=np.uint8)
    raw = np.frombuffer("".join(first17).encode("ascii"), dtype=np.uint8).reshape(n, 17)
    values = np.searchsorted(charset, raw)  # CREDIT_CHARSET is in ASCII order
    return first17 + pd.Series(credit_check_chars(values.astype(np.int64)))


def _dates(rng: np.random.Generator, n: int, start: dt.date, end: dt.date) -> pd.Series:
    span = (end - start).days
    days = np.datetime64(start.isoformat()) + rng.integers(0, span + 1, size=n).astype(
        "timedelta64[D]"
    )
    return pd.Series(np.datetime_as_string(days, unit="D"))


def _streets(rng: np.random.Generator, n: int) -> pd.Series:
    cities = np.array(AddressProvider.cities)
    suffixes = np.array(AddressProvider.street_suffixes)
    street = pd.Series(cities[rng.integers(0, len(cities), size=n)]) + pd.Series(
        suffixes[rng.integers(0, len(suffixes), size=n)]
    )
    number = pd.Series(rng.integers(1, 400, size=n)).astype(str)
    return street + number + "号"


BLOCK = 1000  # rows are generated in blocks, each from its own seed: a prefix never changes


def _blocks(
    rows: int, seed: int, table: int, make: Callable[[np.random.Generator, int, int], pd.DataFrame]
) -> pd.DataFrame:
    """`rows` rows built block by block, so the first N rows are the same for any `rows` >= N."""
    count = max(1, -(-rows // BLOCK))
    frames = [make(np.random.default_rng([seed, table, b]), BLOCK, b * BLOCK) for b in range(count)]
    return pd.concat(frames, ignore_index=True).iloc[:rows].reset_index(drop=True)


def _regions(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        [REGIONS[i] for i in rng.integers(0, len(REGIONS), size=n)],
        columns=["code", "province", "city", "district"],
    )


def _enterprise_block(rng: np.random.Generator, n: int, first: int) -> pd.DataFrame:
    region = _regions(rng, n)
    industry_idx = rng.integers(0, len(INDUSTRIES), size=n)
    prefixes = np.array(CompanyProvider.company_prefixes)[
        rng.integers(0, len(CompanyProvider.company_prefixes), size=n)
    ]
    company = (
        region["city"].str.removesuffix("市")
        + pd.Series(prefixes)
        + pd.Series(np.array(_INDUSTRY_WORDS)[industry_idx])
        + pd.Series(np.where(rng.random(n) < 0.8, "有限公司", "股份有限公司"))
    )
    male = rng.random(n) < 0.7
    birth = _dates(rng, n, dt.date(1955, 1, 1), dt.date(2000, 12, 31))
    return pd.DataFrame(
        {
            "credit_code": _credit_codes(rng, region["code"], first),
            "company_name": company,
            "legal_rep_name": _names(rng, n),
            "legal_rep_id_card": _id_cards(rng, region["code"], birth, male),
            "legal_rep_mobile": _mobiles(rng, n),
            "registered_capital": (rng.lognormal(6.0, 1.4, size=n)).round().astype(np.int64) + 10,
            "industry": np.array(INDUSTRIES)[industry_idx],
            "province": region["province"],
            "city": region["city"],
            "district": region["district"],
            "founded": _dates(rng, n, dt.date(1990, 1, 1), dt.date(2025, 12, 31)),
        }
    )


def enterprise_registry(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    return _blocks(rows, seed, 1, _enterprise_block)


def _resident_block(
    employers: npt.NDArray[np.str_],
) -> Callable[[np.random.Generator, int, int], pd.DataFrame]:
    def make(rng: np.random.Generator, n: int, first: int) -> pd.DataFrame:
        region = _regions(rng, n)
        male = rng.random(n) < 0.51
        birth = _dates(rng, n, dt.date(1945, 1, 1), dt.date(2007, 12, 31))
        born = pd.to_datetime(birth)
        had_birthday = (born.dt.month < AS_OF.month) | (
            (born.dt.month == AS_OF.month) & (born.dt.day <= AS_OF.day)
        )
        age = AS_OF.year - born.dt.year - (~had_birthday).astype(int)
        employer = employers[rng.integers(0, len(employers), size=n)]
        income = (rng.lognormal(8.9, 0.55, size=n) / 10).round().astype(np.int64) * 10
        address = (
            region["province"].where(region["province"] != region["city"], "")
            + region["city"]
            + region["district"]
            + _streets(rng, n)
        )
        return pd.DataFrame(
            {
                "name": _names(rng, n),
                "id_card": _id_cards(rng, region["code"], birth, male),
                "gender": np.where(male, "男", "女"),
                "birth_date": birth,
                "age": age.astype(np.int64),
                "province": region["province"],
                "city": region["city"],
                "district": region["district"],
                "address": address,
                "mobile": _mobiles(rng, n),
                "employer_credit_code": employer,
                "monthly_income": income,
            }
        )

    return make


EMPLOYER_POOL = 1000  # residents work at the first 1000 enterprises, whatever the row count


def residents(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    employers = enterprise_registry(EMPLOYER_POOL, seed)["credit_code"].to_numpy().astype(str)
    return _blocks(rows, seed, 2, _resident_block(employers))


def write_demo_data(
    data_dir: Path, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED
) -> list[Path]:
    """Write the demo CSV files unless they exist; returns the files written."""
    private_dir(data_dir)
    written: list[Path] = []
    frames = {
        "enterprise_registry": enterprise_registry(rows, seed),
        "residents": residents(rows, seed),
    }
    for name, frame in frames.items():
        path = data_dir / f"{name}.csv"
        if path.exists():
            continue
        tmp = path.with_suffix(".csv.tmp")
        tmp.unlink(missing_ok=True)  # left by an interrupted run
        with new_private(tmp) as handle:  # raw personal data: 0600 from the start
            handle.write(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        tmp.replace(path)
        written.append(path)
    return written
