"""The tables analysts read carry a freshness policy, so a refresh that stops landing shows as stale in the UI."""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetKey, Definitions

from lmrec_assets.automation import PUBLISHED_FRESHNESS
from lmrec_assets.definitions import defs


def test_definitions_load_with_freshness_on_the_published_tables():
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    for key in ("published_recommendations", "recommendations"):
        assert graph.get(AssetKey(key)).freshness_policy == PUBLISHED_FRESHNESS, key
    assert PUBLISHED_FRESHNESS.fail_window.to_timedelta() == timedelta(hours=26)
    assert PUBLISHED_FRESHNESS.warn_window.to_timedelta() == timedelta(hours=25)
