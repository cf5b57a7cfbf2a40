"""Deterministic demo datasets: the same seed gives the same bytes on any day, in any process.

Everything random comes from one NumPy generator seeded explicitly; Chinese names, street names
and company words come from faker's zh_CN provider tables (sampled by NumPy, not by faker's
per-call API, which is slow and date-dependent). Check characters are computed by our own code.
Ages are computed against a fixed reference date, never "today".
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from gateway.data import ascii
from gateway.data.checksums import (
    CREDIT_CHARSET,
    credit_check_chars,
    id_check_digits,
    org_code_check,
)
from gateway.data.words import faker_words
from gateway.fsutil import new_private, private_dir

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

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


BLOCK = 1000  # rows are drawn in blocks, each from its own seed: a prefix never changes

Draws: TypeAlias = "dict[str, npt.NDArray[Any]]"


def _take(pool: Sequence[str] | npt.NDArray[np.str_], index: npt.NDArray[Any]) -> pd.Series:
    """The pool's word per index, as an Arrow-backed string Series (taken by Arrow: a NumPy
    string array per row would cost a conversion per value)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    words = pa.array(list(pool), type=pa.large_string())
    return pd.Series(words.take(pa.array(np.asarray(index, dtype=np.int64))), dtype="str")


def _blocks(
    rows: int, seed: int, table: int, draw: Callable[[np.random.Generator], Draws]
) -> Draws:
    """The random draws of `rows` rows, block by block (BLOCK rows from the generator seeded
    with (seed, table, block)), so the first N rows are the same for any `rows` >= N. Only the
    draws are made per block; the text is then built once over all rows (vectorized)."""
    import numpy as np

    count = max(1, -(-rows // BLOCK))
    parts = [draw(np.random.default_rng([seed, table, b])) for b in range(count)]
    return {key: np.concatenate([part[key] for part in parts])[:rows] for key in parts[0]}


# Each `_draw_*` makes its generator's calls in one fixed order: that order is the data.


def _draw_names(rng: np.random.Generator, out: Draws) -> None:
    weights = faker_words().surname_weights / faker_words().surname_weights.sum()
    out["surname"] = rng.choice(len(faker_words().surnames), size=BLOCK, p=weights)
    out["given1"] = rng.integers(0, len(faker_words().given), size=BLOCK)
    out["given2"] = rng.integers(0, len(faker_words().given), size=BLOCK)
    out["two_chars"] = rng.random(BLOCK) < 0.6


def _draw_id_cards(rng: np.random.Generator, out: Draws) -> None:
    out["sequence"] = rng.integers(0, 100, size=BLOCK) * 10 + rng.integers(0, 5, size=BLOCK) * 2


def _draw_mobiles(rng: np.random.Generator, out: Draws) -> None:
    import numpy as np

    out["mobile_prefix"] = rng.integers(0, len(MOBILE_PREFIXES), size=BLOCK)
    out["mobile_digits"] = rng.integers(0, 10, size=(BLOCK, 8), dtype=np.int64)


def _draw_days(rng: np.random.Generator, start: dt.date, end: dt.date) -> npt.NDArray[np.int64]:
    days: npt.NDArray[np.int64] = rng.integers(0, (end - start).days + 1, size=BLOCK)
    return days


def _names(draws: Draws) -> pd.Series:
    import numpy as np

    one_char = np.char.str_len(faker_words().given) == 1
    single = one_char[draws["given1"]] & one_char[draws["given2"]]
    second = _take(faker_words().given, draws["given2"]).where(draws["two_chars"] & single, "")
    return (
        _take(faker_words().surnames, draws["surname"])
        + _take(faker_words().given, draws["given1"])
        + second
    )


def _mobiles(draws: Draws) -> pd.Series:
    import numpy as np

    prefixes = _take(MOBILE_PREFIXES, draws["mobile_prefix"])
    return prefixes + ascii.text((draws["mobile_digits"] + ord("0")).astype(np.uint8))


def _id_cards(
    region_codes: pd.Series, birth: pd.Series, draws: Draws, male: npt.NDArray[np.bool_]
) -> pd.Series:
    import numpy as np

    sequence = draws["sequence"] + male.astype(np.int64)
    first17 = np.hstack(
        [
            ascii.text_rows(region_codes, 6),
            ascii.text_rows(birth, 10)[:, [0, 1, 2, 3, 5, 6, 8, 9]],
            ascii.digits(sequence, 3),
        ]
    )
    check = ascii.chars(id_check_digits((first17 - ord("0")).astype(np.int64)))
    return ascii.text(np.hstack([first17, check[:, None]]))


def _credit_codes(region_codes: pd.Series) -> pd.Series:
    """Unique codes: the organisation-code digits are a bijection of the row number (mod 10^8)."""
    import numpy as np

    n = len(region_codes)
    numbers = (np.arange(n, dtype=np.int64) * 7919 + 1_234_567) % 10**8
    org8 = (numbers[:, None] // 10 ** np.arange(7, -1, -1)) % 10
    first17 = np.hstack(
        [
            np.broadcast_to(ascii.pool(["91"]), (n, 2)),  # 9: market regulator; 1: enterprise
            ascii.text_rows(region_codes, 6),
            (org8 + ord("0")).astype(np.uint8),
            ascii.chars(org_code_check(org8))[:, None],
        ]
    )
    charset = np.frombuffer(CREDIT_CHARSET.encode("ascii"), dtype=np.uint8)
    values = np.searchsorted(charset, first17)  # CREDIT_CHARSET is in ASCII order
    check = ascii.chars(credit_check_chars(values.astype(np.int64)))
    return ascii.text(np.hstack([first17, check[:, None]]))


def _dates(days: npt.NDArray[np.int64], start: dt.date) -> pd.Series:
    """ISO dates `start + days`, each distinct day formatted once."""
    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(days)
    moments = np.datetime64(start.isoformat()) + np.asarray(distinct).astype("timedelta64[D]")
    return _take(np.datetime_as_string(moments, unit="D"), codes)


def _regions(index: npt.NDArray[np.int64]) -> pd.DataFrame:
    import pandas as pd

    columns = ["code", "province", "city", "district"]
    return pd.DataFrame(
        {name: _take([r[j] for r in REGIONS], index) for j, name in enumerate(columns)}
    )


def _draw_enterprise(rng: np.random.Generator) -> Draws:
    out: Draws = {"region": rng.integers(0, len(REGIONS), size=BLOCK)}
    out["industry"] = rng.integers(0, len(INDUSTRIES), size=BLOCK)
    out["prefix"] = rng.integers(0, len(faker_words().company_prefixes), size=BLOCK)
    out["limited"] = rng.random(BLOCK) < 0.8
    out["male"] = rng.random(BLOCK) < 0.7
    out["birth"] = _draw_days(rng, dt.date(1955, 1, 1), dt.date(2000, 12, 31))
    _draw_names(rng, out)
    _draw_id_cards(rng, out)
    _draw_mobiles(rng, out)
    out["capital"] = rng.lognormal(6.0, 1.4, size=BLOCK)
    out["founded"] = _draw_days(rng, dt.date(1990, 1, 1), dt.date(2025, 12, 31))
    return out


def enterprise_registry(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    draws = _blocks(rows, seed, 1, _draw_enterprise)
    region = _regions(draws["region"])
    company = (
        region["city"].str.removesuffix("市")
        + _take(faker_words().company_prefixes, draws["prefix"])
        + _take(_INDUSTRY_WORDS, draws["industry"])
        + _take(["股份有限公司", "有限公司"], draws["limited"])
    )
    birth = _dates(draws["birth"], dt.date(1955, 1, 1))
    return pd.DataFrame(
        {
            "credit_code": _credit_codes(region["code"]),
            "company_name": company,
            "legal_rep_name": _names(draws),
            "legal_rep_id_card": _id_cards(region["code"], birth, draws, draws["male"]),
            "legal_rep_mobile": _mobiles(draws),
            "registered_capital": draws["capital"].round().astype(np.int64) + 10,
            "industry": _take(INDUSTRIES, draws["industry"]),
            "province": region["province"],
            "city": region["city"],
            "district": region["district"],
            "founded": _dates(draws["founded"], dt.date(1990, 1, 1)),
        }
    )


def _draw_resident(employers: int) -> Callable[[np.random.Generator], Draws]:
    def draw(rng: np.random.Generator) -> Draws:
        out: Draws = {"region": rng.integers(0, len(REGIONS), size=BLOCK)}
        out["male"] = rng.random(BLOCK) < 0.51
        out["birth"] = _draw_days(rng, dt.date(1945, 1, 1), dt.date(2007, 12, 31))
        out["employer"] = rng.integers(0, employers, size=BLOCK)
        out["income"] = rng.lognormal(8.9, 0.55, size=BLOCK)
        out["street_city"] = rng.integers(0, len(faker_words().cities), size=BLOCK)
        out["street_suffix"] = rng.integers(0, len(faker_words().street_suffixes), size=BLOCK)
        out["street_number"] = rng.integers(1, 400, size=BLOCK)
        _draw_names(rng, out)
        _draw_id_cards(rng, out)
        _draw_mobiles(rng, out)
        return out

    return draw


EMPLOYER_POOL = 1000  # residents work at the first 1000 enterprises, whatever the row count


def residents(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    employers = enterprise_registry(EMPLOYER_POOL, seed)["credit_code"].to_numpy().astype(str)
    draws = _blocks(rows, seed, 2, _draw_resident(len(employers)))
    region = _regions(draws["region"])
    birth = _dates(draws["birth"], dt.date(1945, 1, 1))
    born = np.datetime64("1945-01-01") + draws["birth"].astype("timedelta64[D]")
    year = born.astype("datetime64[Y]")
    month = born.astype("datetime64[M]")
    month_number = (month - year).astype(np.int64) + 1
    day = (born - month).astype(np.int64) + 1
    had_birthday = (month_number < AS_OF.month) | (
        (month_number == AS_OF.month) & (day <= AS_OF.day)
    )
    age = AS_OF.year - (year.astype(np.int64) + 1970) - (~had_birthday).astype(np.int64)
    street = (
        _take(faker_words().cities, draws["street_city"])
        + _take(faker_words().street_suffixes, draws["street_suffix"])
        + pd.Series(draws["street_number"]).astype(str)
        + "号"
    )
    address = (
        region["province"].where(region["province"] != region["city"], "")
        + region["city"]
        + region["district"]
        + street
    )
    income = (draws["income"] / 10).round().astype(np.int64) * 10
    return pd.DataFrame(
        {
            "name": _names(draws),
            "id_card": _id_cards(region["code"], birth, draws, draws["male"]),
            "gender": _take(["女", "男"], draws["male"]),
            "birth_date": birth,
            "age": age.astype(np.int64),
            "province": region["province"],
            "city": region["city"],
            "district": region["district"],
            "address": address,
            "mobile": _mobiles(draws),
            "employer_credit_code": _take(employers, draws["employer"]),
            "monthly_income": income,
        }
    )


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes of `frame.to_csv(index=False, lineterminator="\n")` (UTF-8), written by Arrow
    (15x faster at a million rows). Arrow quotes every text value unless told not to quote at
    all, and then refuses a value that needs quotes (a comma, a quote, a line break): such a
    frame, a header that needs quotes, or a column that is neither text nor integers (floats
    are formatted differently) is written by pandas."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [str(name) for name in frame.columns]
    plain = all(name and not any(c in name for c in ',"\r\n') for name in names) and all(
        isinstance(t, pd.StringDtype) or pd.api.types.is_integer_dtype(t) for t in frame.dtypes
    )
    if plain:
        out = io.BytesIO()
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        try:
            pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), out, options)
        except pa.ArrowInvalid:
            pass
        else:
            return (",".join(names) + "\n").encode("utf-8") + out.getvalue()
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


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
            handle.write(csv_bytes(frame))
        tmp.replace(path)
        written.append(path)
    return written
