"""The features group: the dbt project wired once. Every dbt model is an asset, every dbt test an asset check."""

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, Output
from dagster_dbt import (
    DagsterDbtProjectPreparer,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from lmrec_assets.lineage import MATERIALIZED_IN_RUN, latest_artifacts, previous_metadata, record_artifact
from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, relation_metadata

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# The venv's dbt, even when the venv is not activated (e.g. `.venv/bin/dagster dev`): this interpreter's own first.
_VENV_DBT = Path(sys.executable).with_name("dbt")
DBT_EXECUTABLE = str(_VENV_DBT) if _VENV_DBT.is_file() else (shutil.which("dbt") or "dbt")


class VenvDbtPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparer runs a bare `dbt`, found only on an activated venv's PATH; this one runs DBT_EXECUTABLE
    (the project has no packages, so parsing is the whole preparation)."""

    def prepare(self, project: DbtProject) -> None:
        DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()


# `dagster dev` re-parses on start; CLI runs and tests use the manifest that `make` (or the test fixture) prepared.
VenvDbtPreparer().prepare_if_dev(dbt_project)


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
    manifest = dbt_project_manifest()
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    with warehouse.connect() as con:
        planned = planned_versions(con, manifest)
        recorded = latest_artifacts(con, selected)
    # dbt profiles read only environment variables, so the resource's path is handed over this way.
    os.environ["LMREC_WAREHOUSE"] = str(Path(warehouse.path).resolve())
    if set(recorded["asset_key"]) == selected and all(
        planned[name] == version for name, version in zip(recorded["asset_key"], recorded["version"])
    ):
        # Same SQL, same raw batches: every table would come out identical, so nothing is rebuilt and no lineage row
        # is added. The tables are still described as they are now and the dbt tests still run against them, so the
        # UI shows real row counts and real test results for this refresh, and no blocking check goes without a
        # result. No data_version is passed (a beta argument of Output): Dagster derives the same one as a build's,
        # from the code version and the upstream data versions.
        context.log.info("dbt models unchanged (same SQL and same raw batches): `dbt test` instead of `dbt build`")
        artifact_ids = dict(zip(recorded["asset_key"], recorded["artifact_id"]))
        runs = dict(zip(recorded["asset_key"], recorded["run_id"]))
        with warehouse.connect(read_only=True) as con:
            outputs = [
                Output(
                    None, output_name=context.assets_def.get_output_name_for_asset_key(AssetKey(node["name"])),
                    metadata={
                        # what dbt reported when it built this version, with the table as it is now on top
                        **(previous_metadata(context.instance, node["name"], run_id=runs[node["name"]]) or {}),
                        **relation_metadata(con, f'{node["schema"]}.{node["alias"]}'),
                        "outcome": "unchanged (same SQL and raw batches): not rebuilt; dbt tests re-run",
                        MATERIALIZED_IN_RUN: runs[node["name"]],
                        "lineage_artifact_id": artifact_ids[node["name"]],
                    },
                )
                for node in _selected_models(manifest, selected, planned)
            ]
        yield from outputs
        yield from dbt.cli(["test"], context=context.op_execution_context).stream()
        return

    # The op context: dagster-dbt reads `context.op`, deprecated on the asset context (a DeprecationWarning per run).
    invocation = dbt.cli(["build"], context=context.op_execution_context)
    # Collect first: the dbt process holds DuckDB's write lock until it exits, and only then can the tables be read
    # back for the row count, column schema and preview that every asset shows in the UI.
    events = list(invocation.stream())
    with warehouse.connect() as con:
        con.begin()
        for event in events:
            node = manifest["nodes"].get(event.metadata["unique_id"].value) if isinstance(event, Output) else None
            if node is not None and node["resource_type"] == "model":
                # Row counts and column schemas are read back from DuckDB so every model shows them in the UI.
                event = event.with_metadata({
                    **event.metadata,
                    **relation_metadata(con, f'{node["schema"]}.{node["alias"]}'),
                    "outcome": "built",
                    "lineage_artifact_id": _record_lineage(con, node, manifest, planned[node["name"]], context.run_id),
                })
            yield event
        con.commit()


def dbt_project_manifest() -> Mapping[str, Any]:
    return json.loads(dbt_project.manifest_path.read_text())


def planned_versions(con, manifest: Mapping[str, Any]) -> dict[str, str]:
    """Each dbt model's version before building it: its SQL checksum plus its parents' versions, recursively down
    to the raw batches. Equal versions mean an identical table, which is what lets a refresh skip dbt.
    The result is in dependency order (parents first)."""
    raw = latest_artifacts(con, [f"raw_{s['name']}" for s in manifest["sources"].values()])
    versions = dict(zip(raw["asset_key"], raw["version"]))

    def version_of(unique_id: str) -> str:
        name = _asset_name(manifest, unique_id)
        if name not in versions:
            node = manifest["nodes"][unique_id]
            parents = sorted({version_of(parent) for parent in node["depends_on"]["nodes"]})
            versions[name] = hashlib.sha256(f"{node['checksum']['checksum'][:16]}|{parents}".encode()).hexdigest()[:16]
        return versions[name]

    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] == "model":
            version_of(unique_id)
    return versions


def _selected_models(manifest: Mapping[str, Any], selected: set[str], planned: Mapping[str, str]) -> list:
    """The selected dbt models' manifest nodes, parents first."""
    nodes = {node["name"]: node for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    return [nodes[name] for name in planned if name in selected and name in nodes]


def _record_lineage(con, node: Mapping[str, Any], manifest: Mapping[str, Any], version: str, run_id: str) -> str:
    parent_keys = [_asset_name(manifest, parent) for parent in node["depends_on"]["nodes"]]
    return record_artifact(
        con, asset_key=node["name"], version=version, run_id=run_id, code_version=node["checksum"]["checksum"][:16],
        parent_keys=parent_keys, details={"relation": f'{node["schema"]}.{node["alias"]}', "unique_id": node["unique_id"]},
    )


def _asset_name(manifest: Mapping[str, Any], unique_id: str) -> str:
    if unique_id in manifest["sources"]:
        return f"raw_{manifest['sources'][unique_id]['name']}"
    return manifest["nodes"][unique_id]["name"]
