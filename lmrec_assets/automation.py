"""When the graph runs: the refresh job, the nightly schedule and the landing-folder sensor."""

import hashlib
import json
import os
from datetime import timedelta

from dagster import (
    AssetSelection,
    Backoff,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FreshnessPolicy,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from lmrec_assets.resources import landing_dir

LANDING_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl")

refresh_job = define_asset_job(
    "refresh_all",
    selection=AssetSelection.all() - AssetSelection.groups("experiments"),  # experiments run on demand only
    description="Ingest (snapshot + landing folder) → dbt → models → recommendations → evaluation → publish. "
    "Unchanged work is not redone: a refresh without new data re-uses every artifact, re-reports its metadata, "
    "re-runs the checks and leaves the serving file as it is.",
    # Transient failures (a locked file, a busy machine) get two more tries, 30 s then 60 s later.
    op_retry_policy=RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL),
)

nightly_refresh = ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_job,
    cron_schedule=os.environ.get("LMREC_REFRESH_CRON", "0 2 * * *"),
    execution_timezone=os.environ.get("LMREC_TIMEZONE", "UTC"),
    default_status=DefaultScheduleStatus.RUNNING,
    description="The nightly refresh (02:00 by default; set LMREC_REFRESH_CRON and LMREC_TIMEZONE).",
)


@sensor(job=refresh_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def landing_folder_sensor(context: SensorEvaluationContext):
    """Start a refresh when new or changed interaction files appear in the landing folder (LMREC_LANDING_DIR)."""
    folder = landing_dir()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = {
        path.name: f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
        for path in sorted(folder.glob("*")) if path.is_file() and path.suffix.lower() in LANDING_SUFFIXES
    }
    new = {name: signature for name, signature in current.items() if seen.get(name) != signature}
    if not new:
        return SkipReason(f"no new files in {folder}")
    context.update_cursor(json.dumps(current))
    run_key = hashlib.sha256(json.dumps(new, sort_keys=True).encode()).hexdigest()[:16]
    return RunRequest(run_key=run_key, tags={"lmrec/trigger": "landing", "lmrec/files": ",".join(sorted(new))[:200]})


# What analysts read counts as stale (the UI's freshness status) when the nightly refresh has not landed for more
# than a day: WARN an hour before the limit, FAIL after it (26 h by default, LMREC_STALE_AFTER_HOURS). The Dagster
# daemon evaluates it.
_STALE_AFTER = timedelta(hours=float(os.environ.get("LMREC_STALE_AFTER_HOURS", "26")))
PUBLISHED_FRESHNESS = FreshnessPolicy.time_window(fail_window=_STALE_AFTER, warn_window=_STALE_AFTER - timedelta(hours=1))
