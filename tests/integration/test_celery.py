"""The production profile: steps on a Celery worker (Redis broker), Dagster's storage in PostgreSQL, and the same
recommendation tables as the in-process run.

Redis and PostgreSQL come from the OS packages (`.ci/run` installs redis-server when it is missing) and are started
here on loopback in temporary folders; the test skips, saying why, when either cannot be started. The worker runs
two processes (concurrency 2): the scoring parts (two user buckets per model) run side by side outside the warehouse
pool, while the instance's pool limit keeps the warehouse to one writer.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from lmrec_assets.definitions import all_assets

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TRAINED = ("popularity", "ease", "sasrec")
QUICK = {"max_epochs": 1, "max_minutes": 0.25}  # what the in-process demo_pipeline fixture trained them with


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)")
    port, folder = free_port(), tempfile.mkdtemp(prefix="lmrec-redis-")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port(port):
            pytest.skip(f"redis-server did not start on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found (Debian: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="lmrec-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the packages' `postgres` account
        try:
            shutil.chown(folder, "postgres")
        except (LookupError, PermissionError):
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        as_user = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), folder / "data"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True)

    try:
        made = run(initdb, "-D", str(data), "-U", "lmrec", "--auth=trust", "-E", "UTF8", "--no-sync")
        if made.returncode != 0:
            pytest.skip(f"initdb failed: {made.stderr.strip()[-300:]}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "postgres.log"), "-w", "start")
        if started.returncode != 0:
            pytest.skip(f"PostgreSQL did not start: {started.stderr.strip()[-300:]}")
        yield f"postgresql://lmrec@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def selection() -> str:
    keys = {
        key.to_user_string()
        for asset in all_assets
        for key in asset.keys
        if asset.group_names_by_key[key] in {"ingestion", "features", "recommendations"}
    }
    return ",".join(sorted(keys | set(TRAINED)))


def recommendations(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select model, model_version, user_id, rank, item_id, score from recs.latest_recommendations "
            "where model in (select unnest(?)) order by all",
            [list(TRAINED)],
        ).df()


def test_celery_run_with_postgres_storage_makes_the_in_process_tables(demo_pipeline, redis_url, postgres_url, tmp_path):
    pytest.importorskip("dagster_celery", reason="the `production` extra (dagster-celery) is not installed")
    pytest.importorskip("dagster_postgres", reason="the `production` extra (dagster-postgres) is not installed")
    _, in_process_dir = demo_pipeline
    home, data_dir = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster-production.yaml", home / "dagster.yaml")
    celery = {"broker": f"{redis_url}/0", "backend": f"{redis_url}/1"}
    (tmp_path / "worker.yaml").write_text(json.dumps({"execution": {"config": celery}}))
    scoring = {"recommendations": {"ops": {"plan_recommendations": {"config": {"user_buckets": 2}}}}}
    run_config = {"execution": {"config": {"celery": celery}},
                  "ops": {**{name: {"config": QUICK} for name in TRAINED}, **scoring}}
    (tmp_path / "run.json").write_text(json.dumps(run_config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMREC_")} | {
        "DAGSTER_HOME": str(home),
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships with psycopg2.
        "LMREC_POSTGRES_URL": postgres_url.replace("postgresql://", "postgresql+psycopg2://"),
        "LMREC_DATA_DIR": str(data_dir),
        "LMREC_DEMO_SCALE": "0.1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_TARGET_PATH": str(tmp_path / "dbt_target"),
    }
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "w") as log:
        worker = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(tmp_path / "worker.yaml"),
             "-n", "lmrec-test", "--", "--concurrency=2", "--pool=prefork"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        run = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "lmrec_assets.definitions", "--select", selection(),
             "-c", str(tmp_path / "run.json")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=480,
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:] + "\nworker:\n" + worker_log.read_text()[-3000:]
    assert "execute_plan" in worker_log.read_text() and "succeeded" in worker_log.read_text(), "steps did not run on the worker"

    import psycopg2  # the run and its events are in PostgreSQL, not in SQLite files under DAGSTER_HOME

    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("select status from runs")
        assert [status for (status,) in cur.fetchall()] == ["SUCCESS"]
        cur.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cur.fetchone()[0] > 10
        cur.execute("select distinct step_key from event_logs where step_key like '%score_recommendation_part%'")
        parts = {step for (step,) in cur.fetchall()}
        assert {f"recommendations.score_recommendation_part[{m}_{b}]" for m in TRAINED for b in (0, 1)} <= parts
    assert not list(home.rglob("*.db")), "storage fell back to SQLite"

    # Same model versions and lists; SASRec's scores may differ in the last float bits (multi-threaded training).
    pd.testing.assert_frame_equal(recommendations(data_dir / "warehouse" / "lmrec.duckdb"),
                                  recommendations(in_process_dir / "warehouse" / "lmrec.duckdb"), check_exact=False, atol=1e-4)
