"""The lmrec code location: wiring only."""

from dagster import Definitions
from dagster_dbt import DbtCliResource

from lmrec_assets.automation import landing_folder_sensor, nightly_refresh, refresh_job
from lmrec_assets.evaluation.assets import evaluation_metrics
from lmrec_assets.evaluation.fairness_assets import exposure_reranking, fairness_checks, fairness_metrics
from lmrec_assets.evaluation.generation_assets import generation_metrics
from lmrec_assets.evaluation.quality import quality_checks
from lmrec_assets.evaluation.report import fairness_report
from lmrec_assets.executors import lmrec_executor
from lmrec_assets.experiments.assets import experiment_assets
from lmrec_assets.features import DBT_EXECUTABLE, dbt_features, dbt_project
from lmrec_assets.ingestion.assets import raw_tables
from lmrec_assets.models.assets import model_assets
from lmrec_assets.models.embeddings import item_embeddings
from lmrec_assets.recommend import recommendations
from lmrec_assets.resources import default_resources
from lmrec_assets.serving import published_recommendations

all_assets = [raw_tables, dbt_features, item_embeddings, *model_assets, recommendations, evaluation_metrics,
              generation_metrics, fairness_metrics, exposure_reranking, fairness_report, published_recommendations]

defs = Definitions(
    # The experiments group is on-demand only: not in all_assets, the refresh job or `make demo`.
    assets=[*all_assets, *experiment_assets],
    asset_checks=[*quality_checks, *fairness_checks],
    jobs=[refresh_job],
    schedules=[nightly_refresh],
    sensors=[landing_folder_sensor],
    # Every step writes the one DuckDB file through a pool of 1, so separate step processes buy no parallelism and
    # cost an import of torch/transformers per step: in-process by default; multiprocess or Celery are run config.
    executor=lmrec_executor,
    resources={**default_resources(), "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
