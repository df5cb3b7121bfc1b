"""Lineage rows for every asset, the atomic publish seen by a concurrent reader, and the CLI over the serving DB."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import duckdb
import pytest

from lmrec_assets.definitions import all_assets
from tests.integration.pipeline import FORCE_PUBLISH, materialize_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(demo_pipeline, tmp_path_factory):
    _, shared_dir = demo_pipeline
    data_dir = tmp_path_factory.mktemp("serving")
    shutil.copytree(shared_dir, data_dir, dirs_exist_ok=True)
    return data_dir, data_dir / "serving" / "lmrec_serving.duckdb"


def test_every_asset_writes_linked_lineage_rows(published):
    data_dir, _ = published
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        rows = con.execute("select asset_key, version, code_version, parent_artifact_ids, sha256, file_path from lineage.artifacts").df()
        orphans = con.execute(
            """select count(*) from lineage.artifacts as a, unnest(cast(json(a.parent_artifact_ids) as varchar[])) as p(id)
               where p.id not in (select artifact_id from lineage.artifacts)"""
        ).fetchone()[0]
    expected = {key.to_user_string() for asset in all_assets for key in asset.keys}
    assert expected <= set(rows.asset_key)
    assert orphans == 0
    for row in rows.itertuples():
        if not row.asset_key.startswith("raw_"):
            assert json.loads(row.parent_artifact_ids), f"{row.asset_key} has no parents"
        assert row.code_version, row.asset_key
    weights = rows[rows.asset_key == "ease"].iloc[0]
    assert weights.sha256 and weights.file_path.endswith(weights.version)


def test_lineage_answers_which_data_models_and_code_made_a_row(published):
    _, serving = published
    with duckdb.connect(str(serving), read_only=True) as con:
        user = con.execute("select min(user_id) from recommendations").fetchone()[0]
        ancestry = con.execute(
            "select asset_key, depth, code_version from recommendation_lineage where model = 'ease' and user_id = ?", [user]
        ).df()
    assert {"ease", "split_train", "fct_interactions", "stg_interactions", "raw_interactions", "raw_items"} <= set(ancestry.asset_key)
    assert ancestry.depth.max() >= 4


def test_publish_is_atomic_for_a_reader_holding_a_connection(published):
    data_dir, serving = published
    reader = duckdb.connect(str(serving), read_only=True)
    before = reader.execute("select count(*), count(distinct publish_id), min(publish_id) from recommendations").fetchone()
    assert before[1] == 1

    seen_mixed, stop = [], threading.Event()

    def keep_reading():  # a second analyst who reconnects for every query during the publish
        while not stop.is_set():
            try:
                with duckdb.connect(str(serving), read_only=True) as con:
                    if con.execute("select count(distinct publish_id) from recommendations").fetchone()[0] != 1:
                        seen_mixed.append(True)
            except duckdb.Error:
                pass  # the file was being swapped at the instant of opening; a real client retries

    thread = threading.Thread(target=keep_reading)
    thread.start()
    try:
        result = materialize_all(data_dir, selection=["published_recommendations"], run_config=FORCE_PUBLISH)
    finally:
        stop.set()
        thread.join()
    assert result.success and not seen_mixed
    # The held connection still sees exactly the old publish; a new one sees the new publish.
    assert reader.execute("select count(*), count(distinct publish_id), min(publish_id) from recommendations").fetchone() == before
    reader.close()
    with duckdb.connect(str(serving), read_only=True) as con:
        after = con.execute("select count(*), count(distinct publish_id), min(publish_id) from recommendations").fetchone()
    assert after[0] == before[0] and after[1] == 1 and after[2] != before[2]
    assert not list(serving.parent.glob("*.tmp"))


def test_cli_reads_the_serving_database(published):
    data_dir, serving = published
    env = os.environ | {"LMREC_SERVING": str(serving), "LMREC_DATA_DIR": str(data_dir)}
    with duckdb.connect(str(serving), read_only=True) as con:
        user = con.execute("select min(user_id) from recommendations").fetchone()[0]

    def lmrec(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "lmrec_assets.cli", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    top = lmrec("recommend", "--user", user, "--model", "ease", "--k", "3")
    assert len(top.strip().splitlines()) == 1 + 3 and "ease" in top
    assert "raw_interactions" in lmrec("lineage", "--user", user, "--model", "ease")
    assert "model_leaderboard" in lmrec("summary") or "ndcg_at_10" in lmrec("summary")
