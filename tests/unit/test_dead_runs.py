"""A run killed outright never frees its pool slot; the next run's executor frees it (and marks the run failed)
when the run's process is gone, and leaves a live run's slot alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from lmrec_assets.executors import HOST_TAG, PID_TAG, release_dead_runs
from lmrec_assets.warehouse import WAREHOUSE_POOL


def started_run(instance: DagsterInstance, run_id: str, pid: int) -> None:
    instance.add_run(DagsterRun(job_name="refresh_all", run_id=run_id, status=DagsterRunStatus.STARTED,
                                tags={HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}))
    instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, run_id, "step")


def test_slots_of_killed_runs_are_freed_and_live_runs_keep_theirs(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(WAREHOUSE_POOL, 2)
        started_run(instance, "killed", gone.pid)
        started_run(instance, "alive", os.getpid())

        assert release_dead_runs(instance, current_run_id="next") == ["killed"]

        assert instance.get_run_by_id("killed").status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id("alive").status == DagsterRunStatus.STARTED
        assert storage.get_concurrency_run_ids() == {"alive"}
