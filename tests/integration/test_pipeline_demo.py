"""The whole graph on a tiny demo: ingestion → dbt build (+ tests as checks) → models → recommendations → metrics."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from lmrec_assets.models.assets import MODELS
from tests.integration.pipeline import materialize_all

pytestmark = pytest.mark.integration
K = 20


@pytest.fixture(scope="module")
def run(demo_pipeline, tmp_path_factory):
    result, shared_dir = demo_pipeline
    data_dir = tmp_path_factory.mktemp("lmrec")  # a private copy: the last test re-ingests into it
    shutil.copytree(shared_dir, data_dir, dirs_exist_ok=True)
    con = duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True)
    yield result, con, data_dir
    con.close()


def test_every_asset_and_check_succeeds(run):
    result, _, _ = run
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_items", "raw_users", "raw_interactions", "stg_interactions", "split_test", "dim_items",
            "recommendations", "evaluation_metrics", *MODELS} <= keys
    checks = result.get_asset_check_evaluations()
    assert len(checks) >= 20
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]


def test_ingestion_counts_add_up(run):
    _, con, _ = run
    for entity, n_read, n_accepted, n_rejected in con.execute(
        "select entity, n_read, n_accepted, n_rejected from raw.load_batches"
    ).fetchall():
        assert n_read == n_accepted + n_rejected, entity
        table = {"items": "raw.items", "users": "raw.users", "interactions": "raw.interactions"}[entity]
        assert con.execute(f"select count(*) from {table}").fetchone()[0] == n_accepted


def test_split_invariants(run):
    _, con, _ = run
    eligible = con.execute("select count(*) from marts.dim_users where is_evaluated").fetchone()[0]
    assert eligible > 0
    for split in ("valid", "test"):
        n, n_users = con.execute(f"select count(*), count(distinct user_id) from marts.split_{split}").fetchone()
        assert n == n_users == eligible
    leaks = con.execute(
        """select count(*) from marts.split_test t join marts.split_train r using (user_id)
           where r.event_ts > t.event_ts or r.position > t.position"""
    ).fetchone()[0]
    assert leaks == 0
    total = con.execute("select count(*) from marts.fct_interactions").fetchone()[0]
    parts = sum(con.execute(f"select count(*) from marts.split_{s}").fetchone()[0] for s in ("train", "valid", "test"))
    assert total == parts == con.execute("select count(*) from raw.interactions").fetchone()[0]


def test_recommendations_are_top_k_unseen_catalogue_items(run):
    _, con, _ = run
    n_users = con.execute("select count(*) from marts.dim_users").fetchone()[0]
    per_model = con.execute(
        "select model, count(*), count(distinct user_id), min(rank), max(rank) from recs.latest_recommendations group by model"
    ).fetchall()
    assert {row[0] for row in per_model} == set(MODELS)
    for model, n_rows, users, lo, hi in per_model:
        assert (n_rows, users, lo, hi) == (n_users * K, n_users, 1, K), model
    seen = con.execute(
        "select count(*) from recs.latest_recommendations r join marts.fct_interactions f using (user_id, item_id)"
    ).fetchone()[0]
    unknown = con.execute(
        "select count(*) from recs.latest_recommendations r anti join marts.dim_items using (item_id)"
    ).fetchone()[0]
    non_increasing = con.execute(
        """select count(*) from (select score, lag(score) over (partition by model, user_id order by rank) as prev
           from recs.latest_recommendations) where score > prev"""
    ).fetchone()[0]
    assert seen == unknown == non_increasing == 0


def test_metrics_rows_and_protocol(run):
    _, con, _ = run
    everything = con.execute(
        "select model, split, segment, k, hr, ndcg, mrr, recall, precision, coverage, n_users, protocol "
        "from evaluation.evaluation_metrics"
    ).df()
    rows = everything[everything.segment == "all"]
    assert len(rows) == len(MODELS) * 2 * 3
    assert set(rows.k) == {5, 10, 20} and set(rows.split) == {"valid", "test"}
    assert ((rows.ndcg <= rows.hr) & (rows.mrr <= rows.ndcg) & (rows.recall == rows.hr)).all()
    assert rows.protocol.str.contains("full ranking").all()
    test10 = rows[(rows.split == "test") & (rows.k == 10)].set_index("model")
    assert test10.loc["ease", "ndcg"] > test10.loc["popularity", "ndcg"]


def test_cold_item_segment_is_reported_and_id_only_models_score_zero_there(run):
    _, con, _ = run
    cold = con.execute(
        "select model, hr, n_users from evaluation.evaluation_metrics where segment = 'cold_items' and split = 'test' and k = 10"
    ).df().set_index("model")
    expected = con.execute(
        """select count(*) from marts.split_test as t
           where not exists (select 1 from marts.split_train as r where r.item_id = t.item_id)"""
    ).fetchone()[0]
    if expected == 0:
        pytest.skip("this tiny demo has no cold test targets")
    assert (cold.n_users == expected).all()
    # An item with no train interactions has no learned signal in ID-only models: popularity ranks it last and EASE
    # scores it 0 (its row and column of B are zero), below every positively scored item.
    assert cold.loc["popularity", "hr"] == 0 and cold.loc["ease", "hr"] <= 0.05


def test_reingesting_the_same_source_adds_nothing(run):
    _, con, data_dir = run
    before = con.execute("select count(*) from raw.interactions").fetchone()[0]
    con.close()
    result = materialize_all(data_dir, selection=["raw_items", "raw_users", "raw_interactions"])
    outcomes = {e.asset_key.to_user_string(): e.materialization.metadata["outcome"].value
                for e in result.get_asset_materialization_events()}
    assert set(outcomes.values()) == {"skipped: this batch is already loaded"}
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as again:
        assert again.execute("select count(*) from raw.interactions").fetchone()[0] == before

