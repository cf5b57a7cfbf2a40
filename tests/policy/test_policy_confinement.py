"""Hostile policy edits (issue 14, items 1, 2 and 4). Promise 8: a policy edit is input like any
other: it reads data only from the workspace's data directory, parses in bounded time and
memory, and cannot make the gateway serve its keys or state. Promise 2: no cell value ever
enters an error message, a log line or an audit entry."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.data.confine import Unconfined, private_dirs, read_confined, resolve_confined
from gateway.data.sources import SourceCache
from gateway.errors import ConfigError
from gateway.policy.check import PolicyError
from gateway.policy.files import load_policies
from gateway.settings import Workspace
from tests.conftest import Demo, token_for
from tests.policy.test_policy_engine import admin_token, bearer


def key_header(home: Path) -> str:
    """The first line of the workspace's generated token-signing key (its PEM header). Read at
    run time: no key material, not even a header, is written into the repository."""
    return (home / "keys" / "token-es256.key").read_text().splitlines()[0]


# A dataset whose one column is named after the PEM header of the token-signing key, released
# raw: exactly the edit that once served the key through `rows`.
LEAK = """\
dataset:
  id: leak
  title: Leak
  source: {source}
  columns:
    "{pem}": {{type: string, class: public}}
grants:
  - id: leak-all
    clients: [demo]
    purposes: [statistics]
    columns:
      "{pem}": keep
"""
SOURCE_LINE = 4  # the line of `source:` in LEAK


def leak_problems(home: Path, source: str) -> list[str]:
    """Load the demo policies plus LEAK naming `source`; the problems (PolicyError expected)."""
    (home / "policies" / "leak.yaml").write_text(LEAK.format(source=source, pem=key_header(home)))
    with pytest.raises(PolicyError) as info:
        load_policies(home / "policies", home)
    return [str(p) for p in info.value.problems]


def hostile_sources(home: Path) -> dict[str, str]:
    """Each way a source once could, or might, name a file outside data/ (set up on disk)."""
    data, keys = home / "data", home / "keys"
    (data / "key-link.csv").symlink_to(keys / "token-es256.key")
    (data / "keys-dir").symlink_to(keys)
    (data / "zero.csv").symlink_to("/dev/zero")
    os.mkfifo(data / "pipe.csv")
    (data / "a-directory.csv").mkdir()
    outside = home.parent / "outside.csv"
    outside.write_text(f"{key_header(home)}\nsecret\n")
    (data / "outside-link.csv").symlink_to(outside)
    (data / "loop.csv").symlink_to(data / "loop.csv")
    return {
        "keys/token-es256.key": "leads into keys/",
        str(keys / "token-es256.key"): "absolute path",
        "../keys/token-es256.key": "contains '..'",
        "data/../keys/token-es256.key": "contains '..'",
        "data/key-link.csv": "leads into keys/",
        "data/keys-dir/token-es256.key": "leads into keys/",
        "data/outside-link.csv": "leads outside data/",
        "state/registry.sqlite3": "leads into state/",
        "audit/log.sqlite3": "leads into audit/",
        "/dev/zero": "absolute path",
        "data/zero.csv": "leads outside data/",
        "data/pipe.csv": "not a regular file",
        "data/a-directory.csv": "not a regular file",
        "data": "leads outside data/",
        "policies/residents.yaml": "leads outside data/",
        "data/loop.csv": "cannot be resolved",
        "data/missing.csv": "does not exist",
    }


def test_sources_outside_data_are_refused_at_load_with_file_line(demo: Demo) -> None:
    """Promise 8: a dataset source is a regular file inside data/ after following links: an
    absolute path, '..', a link (file or directory) leading out, keys/, state/, audit/, a FIFO
    or a device are each refused at load, at leak.yaml:4 (dataset.source)."""
    for source, why in hostile_sources(demo.home).items():
        found = leak_problems(demo.home, source)
        mine = [p for p in found if p.startswith(f"leak.yaml:{SOURCE_LINE}: dataset.source: ")]
        assert mine, (source, found)
        assert why in mine[0], (source, mine)
        assert all("BEGIN" not in p.replace(key_header(demo.home), "") for p in found)


def test_hierarchy_files_outside_policies_and_data_are_refused(demo: Demo) -> None:
    """Promise 8: a hierarchy file (generalize `hierarchy:` or privacy `hierarchies:`) must be a
    regular file under policies/ or data/; keys/, '..', links leading out are refused with
    file:line, and the file is never read."""
    home = demo.home
    policy = home / "policies" / "enterprise_registry.yaml"
    good = policy.read_text()
    assert "hierarchy: policies/hierarchies/industry.csv" in good
    line = good.splitlines().index(
        next(x for x in good.splitlines() if "hierarchy: policies/hierarchies/industry.csv" in x)
    )
    (home / "policies" / "hierarchies" / "evil.csv").symlink_to(home / "keys" / "ca.key")
    os.mkfifo(home / "policies" / "hierarchies" / "pipe.csv")
    for written, why in {
        "keys/ca.key": "leads into keys/",
        "policies/../keys/ca.key": "contains '..'",
        str(home / "keys" / "ca.key"): "absolute path",
        "policies/hierarchies/evil.csv": "leads into keys/",
        "policies/hierarchies/pipe.csv": "not a regular file",
        "/dev/zero": "absolute path",
    }.items():
        policy.write_text(good.replace("policies/hierarchies/industry.csv", written))
        with pytest.raises(PolicyError) as info:
            load_policies(home / "policies", home)
        found = [str(p) for p in info.value.problems]
        assert any(
            p.startswith(f"enterprise_registry.yaml:{line + 1}: ") and why in p for p in found
        ), (written, found)
    policy.write_text(good)
    residents = home / "policies" / "residents.yaml"
    text = residents.read_text()
    assert "hierarchies: {city: policies/hierarchies/city.csv}" in text
    residents.write_text(text.replace("policies/hierarchies/city.csv", "keys/ca.key"))
    with pytest.raises(PolicyError) as info:
        load_policies(home / "policies", home)
    assert any(
        "privacy.hierarchies.city" in str(p) and "leads into keys/" in str(p)
        for p in info.value.problems
    )


def test_the_running_gateway_never_serves_its_key(client: TestClient, demo: Demo) -> None:
    """Promise 8: the edit that once served the token-signing key is rejected at reload (the
    status names leak.yaml:4), the last good set stays active and `rows` answers 404."""
    admin = admin_token(client, demo)
    token = token_for(client, demo.client_id, demo.client_secret)
    key = (demo.home / "keys" / "token-es256.key").read_text()
    for source in ("keys/token-es256.key", "data/key-link.csv", "data/../keys/token-es256.key"):
        if source == "data/key-link.csv":
            (demo.home / "data" / "key-link.csv").symlink_to(demo.home / "keys" / "token-es256.key")
        (demo.home / "policies" / "leak.yaml").write_text(
            LEAK.format(source=source, pem=key_header(demo.home))
        )
        response = client.post("/v1/admin/reload", headers=bearer(admin))
        assert response.status_code == 422
        assert f"leak.yaml:{SOURCE_LINE}: dataset.source" in response.json()["policy"]["last_error"]
        rows = client.get("/v1/datasets/leak/rows?purpose=statistics", headers=bearer(token))
        assert rows.status_code == 404
        body = rows.text
        assert "PRIVATE" not in body
        assert key.splitlines()[1] not in body


def test_a_source_swapped_for_a_link_after_load_is_not_read(demo: Demo) -> None:
    """Promise 8, defence in depth: a source (or a directory on its way) replaced by a link into
    keys/ after the policy loaded is refused when read; the key never reaches a frame."""
    home = demo.home
    (home / "data" / "sub").mkdir()
    (home / "data" / "sub" / "token-es256.key").write_text(f"{key_header(home)}\nharmless\n")
    (home / "policies" / "leak.yaml").write_text(
        LEAK.format(source="data/sub/token-es256.key", pem=key_header(home))
    )
    policy = load_policies(home / "policies", home)
    dataset = policy.datasets["leak"]
    assert SourceCache(demo.settings.workspace).load(dataset).frame.shape == (1, 1)
    # The directory on the way becomes a link to keys/ (which holds a file of that name).
    shutil.rmtree(home / "data" / "sub")
    (home / "data" / "sub").symlink_to(home / "keys")
    with pytest.raises(ConfigError, match="without following a link") as info:
        SourceCache(demo.settings.workspace).load(dataset)
    assert "BEGIN" not in str(info.value).replace(key_header(home), "")
    # The file itself becomes a link.
    (home / "data" / "sub").unlink()
    (home / "data" / "sub").mkdir()
    (home / "data" / "sub" / "token-es256.key").symlink_to(home / "keys" / "token-es256.key")
    with pytest.raises(ConfigError, match="without following a link"):
        SourceCache(demo.settings.workspace).load(dataset)
    # And a FIFO in its place is refused without waiting for a writer.
    (home / "data" / "sub" / "token-es256.key").unlink()
    os.mkfifo(home / "data" / "sub" / "token-es256.key")
    with pytest.raises(ConfigError, match="not a regular file"):
        SourceCache(demo.settings.workspace).load(dataset)


def test_a_bad_cell_is_named_by_column_and_row_not_by_value(demo: Demo) -> None:
    """Promise 2: a source cell that does not parse as its declared type is reported by column
    and row position; the cell itself never appears in the message."""
    home = demo.home
    raw = "110101199001011234X"
    (home / "data" / "people.csv").write_text(f"n\n1\n2\n{raw}\n")
    (home / "policies" / "leak.yaml").write_text(
        LEAK.replace('"{pem}": {{type: string', "n: {{type: integer")
        .replace('"{pem}": keep', "n: keep")
        .format(source="data/people.csv")
    )
    dataset = load_policies(home / "policies", home).datasets["leak"]
    with pytest.raises(ConfigError) as info:
        SourceCache(demo.settings.workspace).load(dataset)
    message = str(info.value)
    assert "'n'" in message
    assert "row 2" in message
    assert not re.search(r"1101011990", message)


# --- item 2: no cell value in any message ------------------------------------------------------

# An admin lowers two columns of the register to grade 一般 (the floors would refuse a raw 重要
# column at load) and releases them raw with a justification: the edit loads, and the policy
# test below, which expects masked names, fails on the raw values.
RAW_RELEASE = {
    "class: personal,  grade: 重要, description: 法定代表人姓名": (
        "class: personal,  grade: 一般, description: 法定代表人姓名"
    ),
    "class: sensitive, grade: 重要, description: 法定代表人身份证号": (
        "class: sensitive, grade: 一般, description: 法定代表人身份证号"
    ),
    "      legal_rep_name: {transform: mask, preset: chinese_name}\n": (
        "      legal_rep_name: {transform: keep, justification: 核验身份需要原始姓名（测试）}\n"
    ),
    "      legal_rep_id_card: {transform: pseudonymize}": (
        "      legal_rep_id_card: {transform: keep, justification: 核验身份需要原始证件号（测试）}"
    ),
}
MASKED_NAMES_CASE = """\
cases:
  - name: legal representatives' names are masked
    client: demo
    dataset: enterprise_registry
    purpose: credit-assessment
    at: 2026-06-01
    expect: allow
    values:
      legal_rep_name: ["詹*", "郑*", "赵**"]
"""


def _everything_written(demo: Demo) -> bytes:
    """The bytes of every audit-log file of the workspace (the database and its journal)."""
    audit = demo.home / "audit"
    return b"".join(p.read_bytes() for p in sorted(audit.iterdir()) if p.is_file())


def test_a_failing_policy_test_never_quotes_a_cell(
    client: TestClient,
    demo: Demo,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Promise 2: an edit releasing 姓名 and 身份证号 raw fails a policy test; the failure
    names column, row and a keyed hash, and no source value of those columns appears in the
    rejection text, the status body, the audit log's bytes, the log or `gateway policy test`."""
    import pandas as pd

    from gateway.cli import main

    source = pd.read_csv(demo.home / "data" / "enterprise_registry.csv", dtype="string")
    columns = ("legal_rep_id_card", "legal_rep_name")
    secrets_ = {v for c in columns for v in source[c].dropna().tolist() if len(v) > 1}
    admin = admin_token(client, demo)
    (demo.home / "policies" / "tests" / "masked.yaml").write_text(MASKED_NAMES_CASE)
    policy = demo.home / "policies" / "enterprise_registry.yaml"
    text = policy.read_text()
    for old, new in RAW_RELEASE.items():
        assert old in text
        text = text.replace(old, new)
    policy.write_text(text)
    with caplog.at_level(logging.DEBUG):
        response = client.post("/v1/admin/reload", headers=bearer(admin))
        status = client.get("/v1/admin/status", headers=bearer(admin))
    assert response.status_code == 422
    error = response.json()["policy"]["last_error"]
    assert "policy tests failed" in error
    assert "legal_rep_name: 3 of 3 values differ (row 0: released #" in error
    code = main(["policy", "test", "--home", str(demo.home)])
    printed = capsys.readouterr()
    assert code == 1
    # The hashes are keyed by the workspace secret: the CLI and the server agree.
    tag = re.search(r"row 0: released (#[0-9a-f]{12})", error)
    assert tag is not None
    assert tag.group(1) in printed.out
    places = {
        "rejection": error,
        "status": status.text,
        "log": caplog.text + "".join(str(r.exc_info) for r in caplog.records),
        "cli": printed.out + printed.err,
    }
    audit = _everything_written(demo)
    for value in secrets_:
        for where, content in places.items():
            assert value not in content, where
        assert value.encode() not in audit


# --- item 4: YAML alias bombs, sizes, depth; serving never waits for a parse ---------------------


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level lists the previous one ten times (10**(levels+1) strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_policy_file_is_refused_before_expansion(demo: Demo) -> None:
    """Promise 8: a policy file with anchors and aliases (10**9 strings once expanded) is refused
    at its first anchor, with file:line, before anything is constructed: the call returns."""
    (demo.home / "policies" / "bomb.yaml").write_text(billion_laughs())
    with pytest.raises(PolicyError) as info:
        load_policies(demo.home / "policies", demo.home)
    assert [str(p) for p in info.value.problems] == [
        "bomb.yaml:1: yaml: anchor &a0 is not allowed in policy files; write the value out"
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("dataset: *nowhere\n", 1, "alias *nowhere is not allowed"),
        ("dataset:\n  id: x\n  <<: {title: y}\n", 3, "merge key << is not allowed"),
        ("dataset: &d {id: x}\n", 1, "anchor &d is not allowed"),
        ("dataset:\n  title: " + "[" * 40 + "]" * 40 + "\n", 2, "nested deeper than 32 levels"),
        ("grants: [" + "1," * 60_000 + "]\n", 1, "more than 50000 keys, values and items"),
    ],
)
def test_yaml_features_policies_need_not_are_refused(
    demo: Demo, text: str, line: int, message: str
) -> None:
    """Promise 8: aliases, anchors, merge keys, deep nesting and huge node counts are refused
    with file:line before any value is built."""
    (demo.home / "policies" / "odd.yaml").write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policies(demo.home / "policies", demo.home)
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith(f"odd.yaml:{line}: yaml: ") and message in p for p in found), found


def test_oversized_and_unreadable_policy_files_are_refused(demo: Demo) -> None:
    """Promise 8: a policy file over 1 MiB, a set over 8 MiB, a FIFO or a link to a device in
    the policy directory is refused by name without being read to the end (or waited on)."""
    policies = demo.home / "policies"
    (policies / "huge.yaml").write_text("# " + "x" * (1 << 20) + "\n")
    os.mkfifo(policies / "pipe.yaml")
    (policies / "zero.yaml").symlink_to("/dev/zero")
    with pytest.raises(PolicyError) as info:
        load_policies(policies, demo.home)
    found = [str(p) for p in info.value.problems]
    assert any(
        p.startswith("huge.yaml:1: (file): ") and "more than the 1048576 allowed" in p
        for p in found
    )
    assert any(p.startswith("pipe.yaml:1: (file): ") and "not a regular file" in p for p in found)
    assert any(p.startswith("zero.yaml:1: (file): ") and "outside" in p for p in found)
    for name in ("huge.yaml", "pipe.yaml", "zero.yaml"):
        (policies / name).unlink()
    for i in range(9):  # nine legal files of just under 1 MiB each
        (policies / f"pad{i}.yaml").write_text("# " + "x" * ((1 << 20) - 10) + "\n")
    with pytest.raises(PolicyError) as info:
        load_policies(policies, demo.home)
    assert any("together exceed 8388608 bytes" in str(p) for p in info.value.problems)


def test_a_billion_laughs_policy_test_file_is_refused(client: TestClient, demo: Demo) -> None:
    """Promise 8: the same bomb in a policy-test file rejects the reload with file:line; the
    gateway keeps answering with the last good set."""
    admin = admin_token(client, demo)
    (demo.home / "policies" / "tests" / "bomb.yaml").write_text(billion_laughs())
    response = client.post("/v1/admin/reload", headers=bearer(admin))
    assert response.status_code == 422
    assert "bomb.yaml:1: anchor &a0 is not allowed" in response.json()["policy"]["last_error"]
    (demo.home / "policies" / "tests" / "bomb.yaml").unlink()
    (demo.home / "policies" / "bomb.yaml").write_text(billion_laughs())
    response = client.post("/v1/admin/reload", headers=bearer(admin))
    assert response.status_code == 422
    assert "bomb.yaml:1: yaml: anchor &a0" in response.json()["policy"]["last_error"]
    assert client.get("/healthz").status_code == 200


def test_healthz_answers_while_a_large_set_is_parsed(
    client: TestClient, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promise 8: parsing a large but legal candidate set never blocks serving: /healthz answers
    while the reload is still in progress (the parse is held until healthz has answered; were
    the parse on the event loop, healthz would wait for it and the order would flip)."""
    from gateway.policy import files, yamlsrc

    admin = admin_token(client, demo)
    (demo.home / "data" / "big.csv").write_text("n\n1\n")
    description = "\n".join("    " + "很长的说明" * 30 for _ in range(2000))
    (demo.home / "policies" / "big.yaml").write_text(
        "dataset:\n  id: big\n  title: Big\n  source: data/big.csv\n"
        f"  description: |\n{description}\n  columns:\n    n: {{type: integer, class: public}}\n"
    )
    assert (demo.home / "policies" / "big.yaml").stat().st_size > 700_000
    started, release = threading.Event(), threading.Event()
    real = yamlsrc.load_located
    order: list[str] = []

    def held(text: str, *, deadline: float | None = None) -> Any:
        if not started.is_set():
            started.set()
            release.wait(60)
        return real(text, deadline=deadline)

    monkeypatch.setattr(files, "load_located", held)

    def reload() -> None:
        reloaded = client.post("/v1/admin/reload", headers=bearer(admin))
        order.append(f"reload {reloaded.status_code}")

    worker = threading.Thread(target=reload)
    worker.start()
    try:
        assert started.wait(60)
        health = client.get("/healthz")
        order.append(f"healthz {health.status_code}")
    finally:
        release.set()
        worker.join(120)
    assert order == ["healthz 200", "reload 200"]


COMPONENTS = ["data", "keys", "state", "audit", "policies", "..", ".", "x.csv", "sub", "out", "in"]


@settings(max_examples=300, deadline=None)
@example(parts=["data", "in", "x.csv"], absolute=False)  # accepted: a link within data/
@example(parts=["data", "sub", "in"], absolute=False)  # accepted
@example(parts=["data", "out", "x.csv"], absolute=False)  # refused: a linked directory into keys/
@given(parts=st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=6), absolute=st.booleans())
def test_any_accepted_source_is_a_regular_file_inside_data(
    maze: Path, parts: list[str], absolute: bool
) -> None:
    """Promise 8 (property): whatever path a policy writes, an accepted source is a regular
    file inside data/ after following links, and never inside keys/, state/ or audit/."""
    written = ("/" if absolute else "") + "/".join(parts)
    ws = Workspace(maze)
    try:
        real = resolve_confined(maze, written, (ws.data,), private_dirs(ws))
    except Unconfined:
        return
    assert real.is_file()
    assert real.is_relative_to(ws.data.resolve())
    assert not any(real.is_relative_to(d.resolve()) for d in private_dirs(ws))
    assert read_confined(real, (ws.data,), private_dirs(ws)) == real.read_bytes()


@pytest.fixture(scope="module")
def maze(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose data/ holds files, subdirectories and links in and out."""
    home = tmp_path_factory.mktemp("maze")
    for name in ("data/sub", "keys", "state", "audit", "policies"):
        (home / name).mkdir(parents=True)
    for name in ("data/x.csv", "data/sub/x.csv", "keys/x.csv", "state/x.csv", "audit/x.csv"):
        (home / name).write_text("a\n1\n")
    (home / "policies" / "x.csv").write_text("a\n1\n")
    (home / "data" / "out").symlink_to(home / "keys")
    (home / "data" / "in").symlink_to(home / "data" / "sub")
    (home / "data" / "sub" / "out").symlink_to(home / "keys" / "x.csv")
    (home / "data" / "sub" / "in").symlink_to(home / "data" / "x.csv")
    return home


def test_a_logged_library_error_never_quotes_its_message() -> None:
    """Promise 2: the server's log formatter shows a library exception's type and frames, never
    its message (pandas quotes the offending cell); the gateway's own errors keep theirs."""
    import json as json_
    import sys

    from gateway.logs import JsonFormatter

    raw = "110101199001011234"
    for error, shown in (
        (ValueError(f"Unable to parse string {raw!r}"), False),
        (ConfigError("data/x.csv is missing"), True),
    ):
        try:
            raise error
        except Exception:
            record = logging.LogRecord(
                "gateway", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
            )
        line = json_.loads(JsonFormatter().format(record))
        assert type(error).__name__ in line["error"]
        assert raw not in line["error"]
        assert ("data/x.csv is missing" in line["error"]) is shown
