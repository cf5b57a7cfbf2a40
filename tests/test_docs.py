"""Examples in the docs run: the policy example loads and the mask preset table is what the
transforms really produce."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from gateway.policy.files import load_policies
from gateway.privacy.transforms import CATALOGUE, TransformContext

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_policy_example_in_docs_loads(tmp_path: Path) -> None:
    """The complete example in docs/policies.md is a valid policy file."""
    text = (DOCS / "policies.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, flags=re.S)
    assert example is not None
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "residents.yaml").write_text(example.group(1))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "residents.csv").write_text(
        "name,id_card,gender,age,city,mobile\n张三,11010519491231002X,男,76,北京市,13812345678\n"
    )
    policy = load_policies(tmp_path / "policies", tmp_path)
    assert [name for name, _ in policy.grants[0].columns] == [
        "name",
        "id_card",
        "gender",
        "age",
        "city",
        "mobile",
    ]


def test_mask_preset_table_matches_the_code() -> None:
    """Each row of the preset table in docs/policies.md is the real output of that preset."""
    text = (DOCS / "policies.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \| `([^`]+)`", text, flags=re.M)
    presets = {preset: (raw, released) for preset, raw, released in rows}
    assert set(presets) == {
        "id_card",
        "mobile",
        "bank_card",
        "credit_code",
        "chinese_name",
        "email",
        "address",
    }
    ctx = TransformContext(b"s" * 32, "c", "g")
    for preset, (raw, released) in presets.items():
        out = CATALOGUE["mask"].apply(pd.Series([raw], dtype="string"), {"preset": preset}, ctx)
        assert out[0] == released, preset
