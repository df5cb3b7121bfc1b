"""Materialize the real asset graph (real DuckDB file, real dbt build, real Dagster) into a temporary folder."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from dagster_dbt import DbtCliResource

from lmrec_assets.definitions import all_assets
from lmrec_assets.evaluation.fairness_assets import fairness_checks
from lmrec_assets.evaluation.quality import quality_checks
from lmrec_assets.models.assets import MODELS
from lmrec_assets.features import DBT_EXECUTABLE, dbt_project
from lmrec_assets.resources import (
    ArtifactStoreResource,
    DatasetResource,
    ServingResource,
    TrainingProfileResource,
    WarehouseResource,
)


# A publish although nothing changed according to lineage (unchanged data leaves the serving file as it is).
FORCE_PUBLISH = {"ops": {"published_recommendations": {"config": {"force": True}}}}


def resources_for(data_dir: Path, **dataset) -> dict:
    return {
        "warehouse": WarehouseResource(path=str(data_dir / "warehouse" / "lmrec.duckdb")),
        "serving": ServingResource(path=str(data_dir / "serving" / "lmrec_serving.duckdb")),
        "artifacts": ArtifactStoreResource(data_dir=str(data_dir)),
        "dataset": DatasetResource(**({"source": "demo", "scale": 0.1, "landing_dir": str(data_dir / "landing")} | dataset)),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        "training": TrainingProfileResource(),  # profile from the dataset: demo here, nightly for MovieLens
    }


def quick_training_config(max_epochs: int = 1, max_minutes: float = 0.25, counterfactual_users: int = 40) -> dict:
    """Run config that caps every model's training budget (and the counterfactual-prompt sample, whose cost is one LM
    pass per user and attribute value): tests check wiring and invariants, not quality."""
    ops = {name: {"config": {"max_epochs": max_epochs, "max_minutes": max_minutes}} for name in MODELS}
    return {"ops": {**ops, "fairness_metrics": {"config": {"counterfactual_users": counterfactual_users}}}}


def materialize_all(
    data_dir: Path, instance: DagsterInstance | None = None, selection=None, run_config: dict | None = None, **dataset
) -> ExecuteInProcessResult:
    return materialize(
        [*all_assets, *quality_checks, *fairness_checks],
        resources=resources_for(data_dir, **dataset),
        instance=instance or DagsterInstance.ephemeral(),
        selection=selection,
        run_config=run_config,
        raise_on_error=True,
    )
