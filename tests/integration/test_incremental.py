"""Incremental ingestion from the landing folder (append once, never duplicate) and the sensor that triggers it."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest
from dagster import RunRequest, SkipReason, build_sensor_context

from lmrec_assets.automation import landing_folder_sensor
from tests.integration.pipeline import materialize_all

pytestmark = pytest.mark.integration
RAW = ["raw_items", "raw_users", "raw_interactions"]


@pytest.fixture()
def warehouse_copy(demo_pipeline, tmp_path):
    _, shared_dir = demo_pipeline
    shutil.copytree(shared_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "landing").mkdir(exist_ok=True)
    return tmp_path


def counts(data_dir) -> tuple[int, int]:
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        return con.execute("select (select count(*) from raw.interactions), (select count(*) from raw.rejected_rows)").fetchone()


def test_landing_files_are_appended_once_and_never_duplicated(warehouse_copy):
    data_dir = warehouse_copy
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        existing = con.execute('select user_id, item_id, "timestamp", rating from raw.interactions limit 1').df()
        fresh = con.execute(
            """select u.user_id, i.item_id, (select max("timestamp") from raw.interactions) + 3600 as "timestamp", 4.0 as rating
               from (select user_id from raw.users order by user_id limit 3) as u
               cross join (select item_id from raw.items order by item_id desc limit 2) as i
               anti join raw.interactions as r using (user_id, item_id)"""
        ).df()
    unknown = pd.DataFrame([{"user_id": fresh.user_id[0], "item_id": "no-such-item", "timestamp": fresh.timestamp[0], "rating": 3.0}])
    pd.concat([fresh, existing, unknown]).to_csv(data_dir / "landing" / "2026-11-25.csv", index=False)
    before_rows, before_rejected = counts(data_dir)

    result = materialize_all(data_dir, selection=RAW)
    increments = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "raw_interactions")
    assert "2026-11-25.csv" in increments.materialization.metadata["increments"].value
    rows, rejected = counts(data_dir)
    assert rows == before_rows + len(fresh)
    assert rejected == before_rejected + 2
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        reasons = set(con.execute("select reason from raw.rejected_rows where source_file like '%2026-11-25.csv'").df().reason)
        batch = con.execute("select n_read, n_accepted, n_rejected from raw.load_batches where entity = 'interactions_increment'").fetchone()
    assert reasons == {"already loaded", "unknown item_id"}
    assert batch == (len(fresh) + 2, len(fresh), 2)

    materialize_all(data_dir, selection=RAW)  # the same file again: nothing appended
    assert counts(data_dir) == (rows, rejected)


def test_sensor_requests_a_refresh_for_new_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LMREC_LANDING_DIR", str(tmp_path))
    assert isinstance(landing_folder_sensor(build_sensor_context()), SkipReason)
    (tmp_path / "drop.csv").write_text("user_id,item_id,timestamp\nu1,i1,1700000000\n")
    context = build_sensor_context()
    request = landing_folder_sensor(context)
    assert isinstance(request, RunRequest) and "drop.csv" in request.tags["lmrec/files"]
    assert isinstance(landing_folder_sensor(build_sensor_context(cursor=context.cursor)), SkipReason)
