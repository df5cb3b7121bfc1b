"""Skip unchanged: a refresh with no new data recomputes nothing (no dbt build, no training, no re-scoring)."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from tests.integration.pipeline import materialize_all, quick_training_config

pytestmark = pytest.mark.integration


def test_refresh_without_new_data_reuses_every_artifact(demo_pipeline, tmp_path):
    _, shared_dir = demo_pipeline
    shutil.copytree(shared_dir, tmp_path, dirs_exist_ok=True)
    warehouse = tmp_path / "warehouse" / "lmrec.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        artifacts_before = con.execute("select asset_key, version from lineage.artifacts order by all").fetchall()

    result = materialize_all(tmp_path, run_config=quick_training_config())

    outcomes = {
        event.asset_key.to_user_string(): event.materialization.metadata["outcome"].value
        for event in result.get_asset_materialization_events()
        if "outcome" in event.materialization.metadata
    }
    recomputed = {key: outcome for key, outcome in outcomes.items()
                  if not outcome.startswith("skip") and key != "published_recommendations"}
    assert not recomputed, recomputed
    assert {"fct_interactions", "split_train", "ease", "recommendations", "evaluation_metrics"} <= set(outcomes)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        new_artifacts = set(con.execute("select asset_key, version from lineage.artifacts").fetchall()) - set(artifacts_before)
    assert {key for key, _ in new_artifacts} <= {"published_recommendations"}
