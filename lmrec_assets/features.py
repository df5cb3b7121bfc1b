"""The features group: the dbt project wired once. Every dbt model is an asset, every dbt test an asset check."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dagster dev` re-parses on start; CLI runs and tests use the manifest that `make` (or the test fixture) prepared.
dbt_project.prepare_if_dev()


class LmrecDbtTranslator(DagsterDbtTranslator):
    """Owns keys and groups: models keep their dbt names; sources map to the ingestion assets that fill them."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["sources"].get(unique_id) or manifest["nodes"].get(unique_id, {})
        if node.get("resource_type") == "source":
            return spec.replace_attributes(key=AssetKey(f"raw_{node['name']}"))
        return spec.replace_attributes(
            key=AssetKey(node["name"]),
            group_name="features",
            owners=["team:data-platform"],
            kinds={"dbt", "duckdb"},
        )


translator = LmrecDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=translator, pool=WAREHOUSE_POOL)
def dbt_features(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Staging → intermediate → marts, with the leave-one-out split, built and tested by `dbt build`."""
    # dbt profiles read only environment variables, so the resource's path is handed over this way.
    os.environ["LMREC_WAREHOUSE"] = str(Path(warehouse.path).resolve())
    yield from dbt.cli(["build"], context=context).stream()
