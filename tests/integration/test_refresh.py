"""A refresh without new data: nothing recomputed, no lineage row added, the serving file left as it is, every asset
showing its last real metadata and every check a real result, and a log without warnings."""

from __future__ import annotations

import gc
import logging
import shutil
import warnings

import duckdb
import pytest

from tests.integration.pipeline import materialize_all, quick_training_config

pytestmark = pytest.mark.integration


def materializations(result) -> dict:
    return {event.asset_key.to_user_string(): event.materialization.metadata
            for event in result.get_asset_materialization_events()}


def test_refresh_without_new_data_reuses_every_artifact_and_reports_it_truthfully(
    demo_pipeline, demo_instance, tmp_path, caplog
):
    first, shared_dir = demo_pipeline
    shutil.copytree(shared_dir, tmp_path, dirs_exist_ok=True)
    warehouse = tmp_path / "warehouse" / "lmrec.duckdb"
    serving = tmp_path / "serving" / "lmrec_serving.duckdb"
    serving_before = serving.stat()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        artifacts_before = con.execute("select * from lineage.artifacts order by all").fetchall()

    caplog.set_level(logging.WARNING)
    # Objects other tests left behind (e.g. a temporary Dagster instance's directory after the Celery test) warn when
    # collected; collect them now so only this refresh's own warnings are recorded below.
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The same Dagster instance as the first run, as for a nightly refresh.
        result = materialize_all(tmp_path, instance=demo_instance, run_config=quick_training_config())

    # Nothing recomputed: no lineage row (published_recommendations included), the serving file not rewritten.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select * from lineage.artifacts order by all").fetchall() == artifacts_before
    assert (serving.stat().st_ino, serving.stat().st_mtime_ns) == (serving_before.st_ino, serving_before.st_mtime_ns)

    # Every asset re-reports what the run that made its version reported (metrics, curves, row counts, schemas,
    # previews, the fairness report), and says it was not recomputed.
    before, after = materializations(first), materializations(result)
    assert set(after) == set(before)
    for key, metadata in after.items():
        outcome = metadata["outcome"].value
        assert outcome.startswith("unchanged") or key.startswith("raw_"), (key, outcome)
        missing = set(before[key]) - set(metadata)
        assert not missing, (key, missing)
        if not key.startswith("raw_"):
            assert metadata["materialized_in_run"].value == first.run_id, key
    assert "not rewritten" in after["published_recommendations"]["outcome"].value
    for key, name in [("recommendations", "dagster/row_count"), ("ease", "valid_ndcg_at_10"),
                      ("sasrec", "training_curve"), ("fct_interactions", "dagster/row_count"),
                      ("published_recommendations", "champion")]:
        assert after[key][name] == before[key][name], (key, name)

    # Every check has a real result in this run (the dbt tests ran against the unchanged tables).
    checks_before = {e.asset_check_key for e in first.get_asset_check_evaluations()}
    checks_after = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
    assert set(checks_after) == checks_before
    assert all(checks_after[e.asset_check_key].passed == e.passed for e in first.get_asset_check_evaluations())

    # No warnings: not in the run's event log, not from Python logging, not as Python warnings.
    entries = demo_instance.all_logs(result.run_id)
    logged = [entry.user_message for entry in entries if entry.level >= logging.WARNING]
    assert not logged, logged
    assert not [entry.user_message for entry in entries if "did not yield" in entry.user_message]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [f"{w.category.__name__}: {w.message}" for w in caught]
