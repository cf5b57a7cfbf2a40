"""Promise 2 over time: a view whose synthetic values avoid the workspace's real values is keyed
by the version of every dataset's data, not only its own, so a change to another dataset never
serves a view computed against the old real values (from memory or from disk)."""

from __future__ import annotations

import pandas as pd

from gateway.data.sources import SourceCache
from gateway.model.grant import TransformSpec
from gateway.policy.files import load_policies
from gateway.privacy.views import ViewCache, avoids_real_values, real_values_of
from gateway.privacy.viewstore import ViewStore
from gateway.runtime.services import read_secret, released_view_maker
from tests.conftest import Demo

GRANT = "demo-residents"  # synthesizes id_card: never equal to any real 身份证号 of the workspace


def test_another_datasets_new_value_is_avoided_after_it_changes(demo: Demo) -> None:
    """Promise 2: a synthetic 身份证号 of the residents view that becomes a real value of the
    enterprise registry (only that file changes) is not served again: the view is computed
    afresh, in the same process and after a restart (the view store on disk)."""
    settings = demo.settings
    ws = settings.workspace
    policy = load_policies(ws.policies, demo.home)
    grant = next(g for g in policy.grants if g.id == GRANT)
    dataset = policy.datasets[grant.dataset]
    client = sorted(grant.clients)[0]
    secret = read_secret(settings)
    views = ViewCache(store=ViewStore(ws.state / "views", secret))
    before = released_view_maker(settings, SourceCache(ws), views, policy)(dataset, grant, client)
    synthetic = before.frame["id_card"].dropna().iloc[0]

    registry = ws.data / "enterprise_registry.csv"
    table = pd.read_csv(registry, dtype=str, keep_default_na=False)
    table.loc[0, "legal_rep_id_card"] = synthetic  # now a real value of the workspace
    table.to_csv(registry, index=False)

    # The same process (its view cache), with the file seen changed:
    again = released_view_maker(settings, SourceCache(ws), views, policy)(dataset, grant, client)
    # A restart: a new cache in front of the same view store on disk.
    restarted = ViewCache(store=ViewStore(ws.state / "views", secret))
    after = released_view_maker(settings, SourceCache(ws), restarted, policy)(
        dataset, grant, client
    )
    for view in (again, after):
        assert view.key != before.key
        assert synthetic not in set(view.frame["id_card"].dropna())
    assert again.key == after.key


def test_a_view_without_synthetic_values_keeps_its_key() -> None:
    """Only views that avoid real values depend on the other datasets' versions."""
    token = TransformSpec("pseudonymize", (("length", 20),))
    formatted = TransformSpec("pseudonymize", (("format", "id_card"),))

    class Grant:  # the one attribute these functions read
        def __init__(self, *specs: TransformSpec) -> None:
            self.columns = tuple((f"c{i}", s) for i, s in enumerate(specs))

    assert not avoids_real_values(Grant(token, TransformSpec("keep")))  # type: ignore[arg-type]
    assert avoids_real_values(Grant(token, formatted))  # type: ignore[arg-type]
    assert avoids_real_values(Grant(TransformSpec("synthesize", (("kind", "name"),))))  # type: ignore[arg-type]
    assert real_values_of(Grant(token), "v1") == ""  # type: ignore[arg-type]
    assert real_values_of(Grant(formatted), "v1") == "v1"  # type: ignore[arg-type]
