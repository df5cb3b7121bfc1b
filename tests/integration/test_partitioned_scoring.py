"""Scoring in parts (model × user bucket): the same lists in-process and on the multiprocess executor with two
processes, whatever the number of buckets; a failed part publishes nothing and, once fixed, re-runs alone.

Each test works on a copy of the demo pipeline's warehouse (the fixture's own files are never written); the models'
artifacts are read where the fixture trained them. K = 10 makes a new recommendations version, and the reference is
the fixture's own in-process run (one bucket, K = 20) cut at rank 10: top-K is deterministic, ties by item index.
The Celery executor is covered by tests/integration/test_celery.py, which compares its tables with the in-process ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from lmrec_assets.definitions import all_assets
from lmrec_assets.lineage import TABLE as LINEAGE
from tests.integration.pipeline import resources_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
K = 10


def scoring_config(k: int, user_buckets: int) -> dict:
    return {"ops": {"recommendations": {"ops": {"plan_recommendations": {"config": {"k": k, "user_buckets": user_buckets}}}}}}


def copy_warehouse(demo_dir: Path, to: Path) -> Path:
    (to / "warehouse").mkdir(parents=True)
    shutil.copy(demo_dir / "warehouse" / "lmrec.duckdb", to / "warehouse" / "lmrec.duckdb")
    return to / "warehouse" / "lmrec.duckdb"


def latest_lists(warehouse: Path, max_rank: int = K) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select model, model_version, user_id, rank, item_id, score from recs.latest_recommendations "
            "where rank <= ? order by model, user_id, rank", [max_rank],
        ).df()


def recommendations_asset():
    return [a for a in all_assets if any(k.to_user_string() == "recommendations" for k in a.keys)]


def score_in_process(data_dir: Path, k: int, user_buckets: int, instance: DagsterInstance | None = None,
                     raise_on_error: bool = True):
    return materialize(recommendations_asset(), resources=resources_for(data_dir),
                       instance=instance or DagsterInstance.ephemeral(), run_config=scoring_config(k, user_buckets),
                       raise_on_error=raise_on_error)


def test_lists_are_the_same_in_process_and_on_two_processes_for_any_bucket_count(demo_pipeline, tmp_path):
    _, demo_dir = demo_pipeline
    reference = latest_lists(demo_dir / "warehouse" / "lmrec.duckdb")
    assert reference.groupby("model").user_id.nunique().min() > 10

    in_process = tmp_path / "in_process"
    warehouse = copy_warehouse(demo_dir, in_process)
    result = score_in_process(in_process, K, user_buckets=3)
    assert result.success
    parts = sorted((in_process / "partitions" / "recommendations").glob("*/*.bucket-*.parquet"))
    assert len(parts) == 3 * reference.model.nunique()
    pd.testing.assert_frame_equal(latest_lists(warehouse), reference, check_exact=False, atol=1e-5)

    # Two step processes (the multiprocess executor), two buckets: the deployment path, a persistent DAGSTER_HOME.
    two = tmp_path / "multiprocess"
    warehouse = copy_warehouse(demo_dir, two)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    run_config = scoring_config(K, user_buckets=2) | {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    (tmp_path / "run.json").write_text(json.dumps(run_config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMREC_")} | {
        "DAGSTER_HOME": str(home), "LMREC_DATA_DIR": str(two), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    run = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "lmrec_assets.definitions", "--select", "recommendations",
         "-c", str(tmp_path / "run.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=480,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "score_recommendation_part[sasrec_1]" in run.stdout + run.stderr  # the parts were steps of their own
    same_lists(latest_lists(warehouse), reference)


def same_lists(lists: pd.DataFrame, reference: pd.DataFrame) -> None:
    """The same items at every rank; scores equal up to float noise: a bf16 language model's log-likelihoods computed
    in another process (its own thread pool) differ by up to about 0.3%, never enough to reorder these lists."""
    keys = ["model", "model_version", "user_id", "rank", "item_id"]
    pd.testing.assert_frame_equal(lists[keys], reference[keys])
    for model, scores in lists.groupby("model").score:
        expected = reference.loc[reference.model == model, "score"]
        assert (abs(scores.to_numpy() - expected.to_numpy()) <= 1e-2 * abs(expected.to_numpy()) + 1e-5).all(), model


def test_a_failed_part_publishes_nothing_and_reruns_alone(demo_pipeline, tmp_path):
    _, demo_dir = demo_pipeline
    warehouse = copy_warehouse(demo_dir, tmp_path)
    before = latest_lists(warehouse, max_rank=20)
    with duckdb.connect(str(warehouse)) as con:
        good_path = con.execute(
            "select artifact_path from models.model_registry where model = 'ease' order by created_at desc limit 1"
        ).fetchone()[0]
        # A broken artifact for EASE (its weights file emptied), in a copy: the fixture's own stays intact.
        broken = tmp_path / "broken_ease"
        shutil.copytree(good_path, broken)
        for weights in [p for p in broken.rglob("*") if p.is_file() and p.suffix in {".safetensors", ".npz", ".npy"}]:
            weights.write_bytes(b"")
        con.execute("update models.model_registry set artifact_path = ? where artifact_path = ?", [str(broken), good_path])

    instance = DagsterInstance.ephemeral()
    failed = score_in_process(tmp_path, K, user_buckets=2, instance=instance, raise_on_error=False)
    assert not failed.success
    assert {e.step_key for e in failed.all_events if e.is_step_failure} == {
        "recommendations.score_recommendation_part[ease_0]", "recommendations.score_recommendation_part[ease_1]"}
    pd.testing.assert_frame_equal(latest_lists(warehouse, max_rank=20), before)  # nothing half-published
    folder = next((tmp_path / "partitions" / "recommendations").iterdir())
    made = {p.name for p in folder.glob("*.bucket-*.parquet")}
    assert made and not any(name.startswith("ease.") for name in made)

    with duckdb.connect(str(warehouse)) as con:
        con.execute("update models.model_registry set artifact_path = ? where artifact_path = ?", [good_path, str(broken)])
    fixed = score_in_process(tmp_path, K, user_buckets=2, instance=instance)
    assert fixed.success
    part_steps = [e.step_key for e in fixed.all_events
              if e.is_step_success and "score_recommendation_part" in e.step_key]
    assert len(part_steps) == len(made) + 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        details = json.loads(con.execute(
            f"select details from {LINEAGE} where asset_key = 'recommendations' order by created_at desc limit 1"
        ).fetchone()[0])
        files = json.loads(con.execute(
            f"select files from {LINEAGE} where asset_key = 'recommendations' order by created_at desc limit 1"
        ).fetchone()[0])
    assert details["parts_scored"] == 2 and details["parts_kept"] == len(made)  # only EASE's two parts ran again
    assert {name for name in files if name.endswith(".parquet")} >= {f"ease.bucket-000{b}-of-0002.parquet" for b in (0, 1)}
    same_lists(latest_lists(warehouse), latest_lists(demo_dir / "warehouse" / "lmrec.duckdb"))
