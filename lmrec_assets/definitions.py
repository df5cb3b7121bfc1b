"""The lmrec code location: wiring only."""

from dagster import Definitions, define_asset_job
from dagster_dbt import DbtCliResource

from lmrec_assets.evaluation.assets import evaluation_metrics
from lmrec_assets.features import DBT_EXECUTABLE, dbt_features, dbt_project
from lmrec_assets.ingestion.assets import raw_tables
from lmrec_assets.models.assets import model_assets
from lmrec_assets.recommend import recommendations
from lmrec_assets.resources import default_resources

all_assets = [raw_tables, dbt_features, *model_assets, recommendations, evaluation_metrics]

refresh_job = define_asset_job("refresh_all", selection="*", description="Ingest → dbt → models → recs → evaluation.")

defs = Definitions(
    assets=all_assets,
    jobs=[refresh_job],
    resources={**default_resources(), "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
