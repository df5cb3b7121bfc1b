"""Faults: a refresh killed (SIGKILL) mid-dbt, mid-training and mid-publish leaves the serving tables exactly as they
were, and the next refresh converges to the state an uninterrupted refresh reaches.

Each run is the real deployment path: `dagster asset materialize` in its own process group, with a temporary
DAGSTER_HOME holding deploy/dagster.yaml (the writer pool limit, in-process executor from the definitions), killed
with its dbt child when a marker shows it is inside the step: a dbt run file for a mart (mid-dbt), SASRec's
start-of-training log line (mid-training), the serving database's `.tmp` sibling (mid-publish).

To stay fast, the refresh covers ingestion, dbt, three models (popularity, EASE, SASRec), recommendations,
evaluation and the publish; the language models keep their already-trained versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from lmrec_assets.definitions import all_assets

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRAINED = ("popularity", "ease", "sasrec")
# SASRec stops on its epoch budget, never on the clock, so a resumed run trains exactly what an uninterrupted one does.
RUN_CONFIG = {"ops": {
    "popularity": {"config": {"max_epochs": 1, "max_minutes": 0.25}},
    "ease": {"config": {"max_epochs": 1, "max_minutes": 0.25}},
    "sasrec": {"config": {"max_epochs": 5, "max_minutes": 10.0, "patience": 10}},
}}


def refresh_selection() -> str:
    groups = {"ingestion", "features", "recommendations", "serving"}
    keys = {
        key.to_user_string()
        for asset in all_assets
        for key in asset.keys
        if asset.group_names_by_key[key] in groups
    }
    return ",".join(sorted(keys | {*TRAINED, "evaluation_metrics"}))


def add_new_interactions(data_dir: Path) -> None:
    """A nightly batch: two unseen items for each of five users, an hour after the newest event."""
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        fresh = con.execute(
            """select u.user_id, i.item_id, (select max("timestamp") from raw.interactions) + 3600 as "timestamp",
                      5.0 as rating
               from (select user_id from raw.users order by user_id limit 5) as u
               cross join (select item_id from raw.items order by item_id desc limit 2) as i
               anti join raw.interactions as r using (user_id, item_id)"""
        ).df()
    (data_dir / "landing").mkdir(exist_ok=True)
    fresh.to_csv(data_dir / "landing" / "nightly-batch.csv", index=False)


def start_refresh(data_dir: Path) -> subprocess.Popen:
    home = data_dir / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    (data_dir / "run_config.json").write_text(json.dumps(RUN_CONFIG))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMREC_")} | {
        "DAGSTER_HOME": str(home),
        "LMREC_DATA_DIR": str(data_dir),
        "LMREC_DEMO_SCALE": "0.1",
        "DBT_TARGET_PATH": str(data_dir / "dbt_target"),  # this run's dbt files, watched for the mid-dbt marker
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "lmrec_assets.definitions",
         "--select", refresh_selection(), "-c", str(data_dir / "run_config.json")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def run_refresh(data_dir: Path, kill_when: Callable[[Path, list[str]], bool] | None = None, timeout: float = 300) -> list[str]:
    """Run a refresh to the end, or SIGKILL its whole process group (dbt included) as soon as `kill_when` holds."""
    process = start_refresh(data_dir)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if kill_when is not None and kill_when(data_dir, lines):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                reader.join(timeout=5)
                return lines
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=5)
    assert kill_when is None, f"the run ended before the kill marker appeared:\n{''.join(lines[-30:])}"
    assert process.returncode == 0, "".join(lines[-60:])
    return lines


def mid_dbt(data_dir: Path, _lines: list[str]) -> bool:
    """dbt has built staging and is writing a mart."""
    return any((data_dir / "dbt_target").glob("*/run/*/models/marts/*.sql"))


def mid_training(_data_dir: Path, lines: list[str]) -> bool:
    """SASRec's fit has started (it logs its training windows first, then trains for a few epochs)."""
    return any("sasrec: " in line and " windows, " in line for line in lines[-20:])


def mid_publish(data_dir: Path, _lines: list[str]) -> bool:
    """The new serving database is being filled beside the live one."""
    return any((data_dir / "serving").glob(".*.tmp*"))


def serving_fingerprint(data_dir: Path) -> dict[str, str]:
    """sha256 of every serving table's rows (in a canonical order)."""
    with duckdb.connect(str(data_dir / "serving" / "lmrec_serving.duckdb"), read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "select table_name from information_schema.tables where table_type = 'BASE TABLE' order by 1"
        ).fetchall()]
        return {t: hashlib.sha256(repr(con.execute(f'select * from "{t}" order by all').fetchall()).encode()).hexdigest()
                for t in tables}


def published_state(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a refresh should converge to: the published recommendations and metrics (without run ids and times)."""
    with duckdb.connect(str(data_dir / "serving" / "lmrec_serving.duckdb"), read_only=True) as con:
        recs = con.execute(
            "select model, model_version, user_id, rank, item_id, score from recommendations order by all"
        ).df()
        metrics = con.execute("select * exclude (run_id, evaluated_at) from evaluation_metrics order by all").df()
    return recs, metrics


@pytest.fixture()
def before_refresh(demo_pipeline, tmp_path_factory) -> Callable[[], Path]:
    """A fresh copy of the published demo state with a new batch waiting in the landing folder."""
    _, shared_dir = demo_pipeline

    def copy() -> Path:
        data_dir = tmp_path_factory.mktemp("faults")
        shutil.copytree(shared_dir, data_dir, dirs_exist_ok=True)
        add_new_interactions(data_dir)
        return data_dir

    return copy


def test_killed_refreshes_leave_serving_untouched_and_the_next_run_converges(before_refresh):
    uninterrupted = before_refresh()
    run_refresh(uninterrupted)

    data_dir = before_refresh()
    published_before = serving_fingerprint(data_dir)
    with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
        sasrec_before = con.execute("select count(*) from models.model_registry where model = 'sasrec'").fetchone()[0]

    for marker in (mid_dbt, mid_training, mid_publish):
        run_refresh(data_dir, kill_when=marker)
        assert serving_fingerprint(data_dir) == published_before, f"killed {marker.__name__}: serving tables changed"
        if marker is mid_training:
            with duckdb.connect(str(data_dir / "warehouse" / "lmrec.duckdb"), read_only=True) as con:
                sasrec_after = con.execute("select count(*) from models.model_registry where model = 'sasrec'").fetchone()[0]
            assert sasrec_after == sasrec_before, "the kill came after SASRec had finished training"

    run_refresh(data_dir)
    assert serving_fingerprint(data_dir) != published_before
    recs, metrics = published_state(data_dir)
    expected_recs, expected_metrics = published_state(uninterrupted)
    # Same model versions, same lists; SASRec's scores may differ in the last float bits (multi-threaded training).
    pd.testing.assert_frame_equal(recs, expected_recs, check_exact=False, atol=1e-4)
    pd.testing.assert_frame_equal(metrics, expected_metrics, check_exact=False, atol=1e-6)
    assert not list((data_dir / "serving").glob(".*.tmp*")), "a killed publish's .tmp file was left behind"
