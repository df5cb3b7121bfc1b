"""generative_p5 inside the demo graph: its text metrics land in the warehouse and the serving database."""

from __future__ import annotations

import duckdb
import pytest

pytestmark = pytest.mark.integration


def test_generation_metrics_cover_every_task_and_template(demo_pipeline):
    result, data_dir = demo_pipeline
    assert "generation_metrics" in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        rows = con.execute("select split, task, template, metric, value, n_users from evaluation.generation_metrics").df()
    assert set(zip(rows.task, rows.template)) == {("sequential", "sequential"), ("sequential", "sequential_unseen"),
                                                   ("explanation", "explanation")}
    test = rows[rows.split == "test"].set_index(["template", "metric"])["value"]
    for template in ("sequential", "sequential_unseen"):
        assert 0 <= test[template, "ndcg_at_10"] <= test[template, "hr_at_10"] <= 1
        assert 0 <= test[template, "hallucination_rate"] <= 1
    assert {"bleu_1", "bleu_4", "rouge_1", "rouge_2", "rouge_l", "usr", "fmr", "fcr", "div"} <= set(
        rows[rows.task == "explanation"].metric)
    assert (rows.n_users > 0).all() and rows.value.notna().all()
    with duckdb.connect(str(data_dir / "serving" / "lmrec_serving.duckdb"), read_only=True) as serving:
        assert serving.execute("select count(*) from generation_metrics").fetchone()[0] == len(rows)
