"""Demo datasets: the same seed gives the same bytes in any process, with valid, consistent IDs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from gateway.data import demo
from gateway.data.checksums import credit_code_valid, id_card_valid

SCRIPT = (
    "import sys, pathlib; from gateway.data.demo import write_demo_data; "
    "write_demo_data(pathlib.Path(sys.argv[1]), rows=1500, seed=7)"
)


def digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.csv"))
    }


def test_same_seed_same_bytes_across_processes(tmp_path: Path) -> None:
    """Two processes with different hash seeds write byte-identical files."""
    outputs = []
    for hash_seed in ("1", "2"):
        target = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", SCRIPT, str(target)], check=True, env=env, timeout=120
        )
        outputs.append(digest(target))
    assert outputs[0] == outputs[1]
    assert set(outputs[0]) == {"enterprise_registry.csv", "residents.csv"}


def test_different_seeds_differ() -> None:
    """The seed matters."""
    a = demo.enterprise_registry(200, seed=1)
    b = demo.enterprise_registry(200, seed=2)
    assert not a.equals(b)


def test_identifiers_are_valid_and_consistent() -> None:
    """身份证号 carry a valid check digit and match birth date, gender and region; credit codes
    carry a valid GB 32100 check character and their region."""
    enterprises = demo.enterprise_registry(3000)
    people = demo.residents(3000)
    assert people["id_card"].map(id_card_valid).all()
    assert enterprises["legal_rep_id_card"].map(id_card_valid).all()
    assert enterprises["credit_code"].map(credit_code_valid).all()
    assert enterprises["credit_code"].is_unique
    assert (people["id_card"].str.slice(6, 14) == people["birth_date"].str.replace("-", "")).all()
    odd = people["id_card"].str.slice(16, 17).astype(int) % 2 == 1
    assert ((people["gender"] == "男") == odd).all()
    codes = {d: c for c, _, _, d in demo.REGIONS}
    assert (people["id_card"].str.slice(0, 6) == people["district"].map(codes)).all()
    assert (enterprises["credit_code"].str.slice(2, 8) == enterprises["district"].map(codes)).all()
    assert people["employer_credit_code"].isin(set(enterprises["credit_code"])).all()


def test_first_rows_do_not_depend_on_the_row_count() -> None:
    """Rows are generated in seeded blocks: the first N rows are the same for any total, so
    examples and policy tests hold for `--rows 2000` and the default alike."""
    small, large = demo.residents(1500), demo.residents(4000)
    pd.testing.assert_frame_equal(small, large.iloc[:1500])
    ent_small, ent_large = demo.enterprise_registry(1200), demo.enterprise_registry(3000)
    pd.testing.assert_frame_equal(ent_small, ent_large.iloc[:1200])


def test_ages_are_relative_to_a_fixed_date() -> None:
    """Age is computed against AS_OF, so the data does not change from day to day."""
    people = demo.residents(500)
    born = pd.to_datetime(people["birth_date"])
    as_of = pd.Timestamp(demo.AS_OF)
    expected = [as_of.year - b.year - ((as_of.month, as_of.day) < (b.month, b.day)) for b in born]
    assert people["age"].tolist() == expected


def test_names_and_addresses_look_chinese() -> None:
    """Names are 2-4 Han characters; addresses start with the row's city and district."""
    people = demo.residents(500)
    assert people["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,4}").all()
    assert (people.apply(lambda r: (r["city"] + r["district"]) in r["address"], axis=1)).all()
