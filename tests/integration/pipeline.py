"""Materialize the real asset graph (real DuckDB file, real dbt build, real Dagster) into a temporary folder."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from dagster_dbt import DbtCliResource

from lmrec_assets.definitions import all_assets
from lmrec_assets.features import DBT_EXECUTABLE, dbt_project
from lmrec_assets.resources import ArtifactStoreResource, DatasetResource, WarehouseResource


def resources_for(data_dir: Path, **dataset) -> dict:
    return {
        "warehouse": WarehouseResource(path=str(data_dir / "warehouse" / "lmrec.duckdb")),
        "artifacts": ArtifactStoreResource(data_dir=str(data_dir)),
        "dataset": DatasetResource(**({"source": "demo", "scale": 0.1} | dataset)),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    }


def materialize_all(data_dir: Path, instance: DagsterInstance | None = None, selection=None, **dataset) -> ExecuteInProcessResult:
    return materialize(
        all_assets,
        resources=resources_for(data_dir, **dataset),
        instance=instance or DagsterInstance.ephemeral(),
        selection=selection,
        raise_on_error=True,
    )
