"""The lmrec code location: wiring only."""

import os

from dagster import DefaultScheduleStatus, Definitions, ScheduleDefinition, define_asset_job
from dagster_dbt import DbtCliResource

from lmrec_assets.evaluation.assets import evaluation_metrics
from lmrec_assets.evaluation.quality import quality_checks
from lmrec_assets.features import DBT_EXECUTABLE, dbt_features, dbt_project
from lmrec_assets.ingestion.assets import raw_tables
from lmrec_assets.models.assets import model_assets
from lmrec_assets.recommend import recommendations
from lmrec_assets.resources import default_resources
from lmrec_assets.serving import published_recommendations

all_assets = [raw_tables, dbt_features, *model_assets, recommendations, evaluation_metrics,
              published_recommendations]

refresh_job = define_asset_job(
    "refresh_all", selection="*", description="Ingest → dbt → models → recommendations → evaluation → publish."
)
nightly_refresh = ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_job,
    cron_schedule=os.environ.get("LMREC_REFRESH_CRON", "0 2 * * *"),
    execution_timezone=os.environ.get("LMREC_TIMEZONE", "UTC"),
    default_status=DefaultScheduleStatus.RUNNING,
    description="The nightly refresh of the whole graph (02:00 by default; LMREC_REFRESH_CRON, LMREC_TIMEZONE).",
)

defs = Definitions(
    assets=all_assets,
    asset_checks=quality_checks,
    jobs=[refresh_job],
    schedules=[nightly_refresh],
    resources={**default_resources(), "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
