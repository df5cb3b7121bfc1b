"""The nightly profile through the real asset: ingest + dbt a tiny demo, train SASRec with `profile: nightly` and a
run budget set per run (resource config), the user's own values in the asset's run config; then the same run again
is skipped as unchanged."""

from __future__ import annotations

import json

import duckdb
import pytest
from dagster import AssetSelection

from lmrec_assets.models import profiles, sasrec
from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.cards import CARD_FILE
from tests.integration.pipeline import materialize_all

pytestmark = pytest.mark.integration


def test_nightly_profile_trains_quality_with_the_users_values_and_a_budget_share(tmp_path):
    run_config = {
        "resources": {"training": {"config": {"profile": "nightly", "budget_minutes": 3}}},
        # ensemble 1 equals SASRec's default and still wins over QUALITY's 3: it was typed.
        "ops": {"sasrec": {"config": {"max_epochs": 1, "ensemble": 1}}},
    }
    selection = AssetSelection.groups("ingestion", "features") | AssetSelection.assets("sasrec")
    result = materialize_all(tmp_path, selection=selection, run_config=run_config)

    share = profiles.budget_shares({n: c for n, (c, _) in MODELS.items()}, "nightly", 3.0)["sasrec"]
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}["sasrec"]
    assert metadata["outcome"].value == "trained"
    assert metadata["profile"].value == "nightly"
    assert metadata["budget_minutes"].value == 3.0
    assert metadata["budget_share_minutes"].value == share
    with duckdb.connect(str(tmp_path / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        path, version = con.execute("select artifact_path, model_version from models.model_registry where model = 'sasrec'").fetchone()
        details = json.loads(con.execute("select details from lineage.artifacts where asset_key = 'sasrec'").fetchone()[0])
    params = details["params"]
    assert (params["max_epochs"], params["ensemble"]) == (1, 1)  # the user's
    assert {k: params[k] for k in ("window_stride", "label_smoothing", "patience")} == {
        k: sasrec.QUALITY[k] for k in ("window_stride", "label_smoothing", "patience")}
    assert params["max_minutes"] == min(sasrec.QUALITY["max_minutes"], share)
    assert details["profile"] == "nightly" and details["budget_minutes"] == 3.0
    card = (tmp_path / "artifacts" / "sasrec" / version / CARD_FILE).read_text()
    assert str(tmp_path / "artifacts" / "sasrec" / version) == path
    assert "Training profile: `nightly`" in card and f"this model's share {share:g} min" in card

    again = materialize_all(tmp_path, selection=AssetSelection.assets("sasrec"), run_config=run_config)
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in again.get_asset_materialization_events()}["sasrec"]
    assert metadata["outcome"].value.startswith("unchanged (already trained") and metadata["model_version"].value == version
    assert metadata["profile"].value == "nightly"
