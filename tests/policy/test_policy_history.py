"""Policy history (issue 17 item 3; promise 8: every decision names the policy set it used, and
that set is kept, so an auditor can read what it said): sets are kept content-addressed with
their exact bytes, history and diff answer from the verified log, `audit explain` prints the
grant that decided an entry, and exports by time carry the sets their entries name."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.bundle import read_bundle
from gateway.audit.verify import verify_path
from gateway.cli import main
from gateway.errors import ConfigError
from gateway.policy.files import load_policies
from gateway.policy.history import grant_source, load_set, store_set
from tests.conftest import BASE, Demo
from tests.workload import ACME_GRANT, Workload, raw_entries, run


def reloads(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in raw if e["kind"] == "admin" and e["action"] == "policy.reload"]


def test_every_live_set_is_kept_with_its_exact_bytes(workload: Workload) -> None:
    """Each set a policy.reload entry names is kept under state/policy-sets/<hash>, private
    (dirs 0700, files 0600), byte for byte: the current one equals the workspace's files,
    hierarchy included."""
    ws = workload.settings.workspace
    raw = raw_entries(workload.settings)
    named = [e["new"] for e in reloads(raw)]
    assert len(named) == 2
    for digest in named:
        files = load_set(ws.policy_sets, digest)
        assert any(name.startswith("hierarchy:") for name in files)
    current = load_policies(ws.policies, ws.home)
    assert named[-1] == current.hash
    kept = load_set(ws.policy_sets, current.hash)
    assert (
        kept["enterprise_registry.yaml"] == (ws.policies / "enterprise_registry.yaml").read_bytes()
    )
    assert (
        kept["hierarchy:policies/hierarchies/city.csv"]
        == (ws.policies / "hierarchies" / "city.csv").read_bytes()
    )
    for path in [ws.policy_sets, *ws.policy_sets.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_history_lists_versions_with_time_actor_and_trigger(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy history` lists the sets that went live as the log records them: the one at start
    (actor gateway) and the admin API's reload (actor: the client id that asked)."""
    raw = raw_entries(workload.settings)
    code, out, err = run(capsys, "policy", "history", "--home", str(workload.home), "--json")
    assert code == 0, err
    versions = json.loads(out)
    expected = [
        (e["idx"], e["ts"], e["new"], e["old"], e["actor"], e["trigger"]) for e in reloads(raw)
    ]
    assert [
        (v["idx"], v["ts"], v["hash"], v["previous"], v["actor"], v["trigger"]) for v in versions
    ] == expected
    assert [(v["actor"], v["trigger"]) for v in versions] == [
        ("gateway", "start"),
        ("ops", "admin endpoint"),
    ]
    assert versions[1]["files"] == ["enterprise_registry.yaml"]
    assert all(v["stored"] for v in versions)
    code, out, _ = run(capsys, "policy", "history", "--home", str(workload.home))
    assert "admin endpoint" in out
    assert versions[1]["hash"][:12] in out


def test_diff_shows_the_added_grant(workload: Workload, capsys: pytest.CaptureFixture[str]) -> None:
    """`policy diff A B` (hash prefixes) is a unified diff of the files that changed."""
    old, new = (e["new"] for e in reloads(raw_entries(workload.settings)))
    code, out, err = run(capsys, "policy", "diff", old[:8], new[:10], "--home", str(workload.home))
    assert code == 0, err
    assert f"--- {old[:12]}/enterprise_registry.yaml" in out
    assert f"+++ {new[:12]}/enterprise_registry.yaml" in out
    added = [
        line[1:] for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")
    ]
    assert "\n".join(added) + "\n" == ACME_GRANT
    assert "residents.yaml" not in out
    code, _, err = run(capsys, "policy", "diff", "abc", new, "--home", str(workload.home))
    assert code == 1
    assert "6+ hex digits" in err


def test_explain_prints_the_grant_that_decided_an_entry(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given an entry, the auditor sees the policy set and the grant's exact lines; a refusal
    with no grant says so."""
    raw = raw_entries(workload.settings)
    allowed = next(e for e in raw if e.get("grant") == "demo-residents")
    code, out, err = run(
        capsys, "audit", "explain", str(allowed["idx"]), "--home", str(workload.home)
    )
    assert code == 0, err
    assert "residents.yaml, line" in out
    assert "- id: demo-residents\n" in out
    assert "k: 5" in out
    assert "demo-residents-planning" not in out  # only the grant that decided it
    refused = next(e for e in raw if e.get("reason") == "no_grant")
    code, out, _ = run(
        capsys, "audit", "explain", str(refused["idx"]), "--home", str(workload.home), "--json"
    )
    body = json.loads(out)
    assert body["text"] is None
    assert "no grant" in body["note"]
    code, _, err = run(capsys, "audit", "explain", "999999", "--home", str(workload.home))
    assert code == 1


def test_export_by_time_carries_its_policy_sets(
    workload: Workload, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`audit export --since/--until` writes exactly the entries of that time range, which
    verify, with the policy sets they name; explain works from the bundle alone, and an altered
    set in a bundle is refused."""
    raw = raw_entries(workload.settings)
    since, until = raw[3]["ts"], raw[-3]["ts"]

    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")

    bundle = tmp_path / "b"
    home = str(workload.home)
    code, out, err = run(
        capsys, "audit", "export", "--home", home, "--out", str(bundle),
        "--since", iso(since), "--until", iso(until),
    )  # fmt: skip
    assert code == 0, err
    expected = [e["idx"] for e in raw if since <= e["ts"] < until]
    assert [e.idx for e in read_bundle(bundle).entries] == expected
    pub = workload.settings.workspace.audit_pub
    _, report = verify_path(bundle, [pub])
    assert report.ok, report.problems
    named = {
        e[k] for e in raw if e["idx"] in expected for k in ("policy", "new", "old") if e.get(k)
    }
    assert {p.name for p in (bundle / "policy-sets").iterdir()} == named
    allowed = next(e for e in raw if e.get("grant") == "demo-residents" and e["idx"] in expected)
    workload.settings.workspace.policy_sets.rename(tmp_path / "moved")  # the bundle alone
    code, out, err = run(
        capsys, "audit", "explain", str(allowed["idx"]), "--bundle", str(bundle), "--key", str(pub)
    )
    assert code == 0, err
    assert "- id: demo-residents\n" in out
    # Hostile: a grant made looser inside the bundle's copy of the set.
    kept = bundle / "policy-sets" / allowed["policy"]
    manifest = json.loads((kept / "manifest.json").read_text())
    blob = kept / "files" / manifest["files"]["residents.yaml"]
    assert b"k: 5" in blob.read_bytes()
    blob.write_bytes(blob.read_bytes().replace(b"k: 5", b"k: 1"))
    code, out, err = run(
        capsys, "audit", "explain", str(allowed["idx"]), "--bundle", str(bundle), "--key", str(pub)
    )
    assert code == 1
    assert "altered" in err


def test_kept_sets_refuse_hostile_contents(tmp_path: Path) -> None:
    """A kept set is read only through its manifest's content hashes: a blob that is a link, a
    name that is not a hash, an altered manifest and an empty set are all refused."""
    sets = tmp_path / "sets"
    digest = store_set(sets, {"a.yaml": b"grants: []\n", "hierarchy:policies/h.csv": b"x;*\n"})
    assert (
        store_set(sets, {"a.yaml": b"grants: []\n", "hierarchy:policies/h.csv": b"x;*\n"}) == digest
    )
    assert load_set(sets, digest)["a.yaml"] == b"grants: []\n"
    for bad in ("../" + digest, digest.upper(), "0" * 63, "x" * 10_000):
        with pytest.raises(ConfigError, match="not a policy hash"):
            load_set(sets, bad)
    with pytest.raises(ConfigError, match="empty"):
        store_set(sets, {})
    manifest = sets / digest / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"]["../../etc/passwd"] = data["files"].pop("a.yaml")
    manifest.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="does not match its hash"):
        load_set(sets, digest)
    other = store_set(sets, {"b.yaml": b"grants: []\n"})
    blob = next((sets / other / "files").iterdir())
    blob.unlink()
    blob.symlink_to("/etc/hostname")
    with pytest.raises(ConfigError, match="missing"):
        load_set(sets, other)


def test_grant_source_finds_exact_lines() -> None:
    """The grant's own lines, from the first to the last, whatever the file's other grants."""
    text = (
        "dataset: {id: d}\n"
        "grants:\n"
        "  - id: one\n"
        "    clients: [a]\n"
        "  # between\n"
        "  - id: two\n"
        "    clients: [b]\n"
        "    columns: {x: keep}\n"
    )
    found = grant_source({"d.yaml": text.encode()}, "two")
    assert found is not None
    assert (found.file, found.line) == ("d.yaml", 6)
    assert found.text == "  - id: two\n    clients: [b]\n    columns: {x: keep}\n"
    first = grant_source({"d.yaml": text.encode()}, "one")
    assert first is not None
    assert first.text == "  - id: one\n    clients: [a]\n"
    assert grant_source({"d.yaml": text.encode()}, "three") is None
    assert grant_source({"d.yaml": b"\xff: [unclosed"}, "one") is None


def test_policy_hash_recomputes_from_a_bundle_as_documented(
    workload: Workload, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """docs/audit-format.md section 9: an auditor recomputes each carried set's hash from its
    manifest and files with SHA-256 alone, and finds the hash the signed entries name."""
    bundle = tmp_path / "b"
    assert main(["audit", "export", "--home", str(workload.home), "--out", str(bundle)]) == 0
    capsys.readouterr()
    for kept in (bundle / "policy-sets").iterdir():
        manifest = json.loads((kept / "manifest.json").read_text())
        digest = hashlib.sha256()
        for name in sorted(manifest["files"]):
            content = (kept / "files" / manifest["files"][name]).read_bytes()
            assert hashlib.sha256(content).hexdigest() == manifest["files"][name]
            digest.update(
                name.encode() + b"\x00" + hashlib.sha256(content).hexdigest().encode() + b"\n"
            )
        assert digest.hexdigest() == kept.name == manifest["hash"]


def test_a_set_that_cannot_be_kept_does_not_go_live(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promise 8 with history: if the new set's files cannot be kept (a full disk), the reload
    is rejected, the last good set keeps serving, and the rejection names trigger and actor."""
    import gateway.runtime.reloader as reloader_module

    # This test reloads itself: the file watcher must not race it (an hour between looks, in
    # place of the GATEWAY_POLICY_POLL_SECONDS setting's 2 s).
    app = create_app(demo.settings, policy_poll_seconds=3600.0)
    with TestClient(app, base_url=BASE) as client:
        reloader = _app_state(client).reloader
        before = reloader.status.active
        policy = demo.settings.workspace.policies / "residents.yaml"
        policy.write_text(
            policy.read_text().replace("rows_per_request: 500", "rows_per_request: 400")
        )

        def full(directory: Path, sources: object) -> str:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(reloader_module, "store_set", full)
        status = reloader.reload("admin endpoint", "ops")
        assert status.active == before
        assert "cannot keep the policy set" in str(status.last_error)
    rejected = [e for e in raw_entries(demo.settings) if e.get("action") == "policy.rejected"]
    assert [(e["actor"], e["trigger"], e["active"]) for e in rejected] == [
        ("ops", "admin endpoint", before)
    ]


def _app_state(client: TestClient) -> Any:
    app: Any = client.app
    while not hasattr(app, "state"):
        app = app.app
    return app.state
