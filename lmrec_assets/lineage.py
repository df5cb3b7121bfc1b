"""Lineage of every artifact: one row per materialized asset version in `lineage.artifacts`.

Each row names the asset, its version, the Dagster run and code version that made it, the versions of its inputs
and the artifact ids of its parents (so ancestry is a recursive walk), and for files (weights, adapters,
embeddings, reports) their path and sha256. Rows are written in the same transaction as the data they describe.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
from dagster import AssetKey, BetaWarning, DataVersion, MaterializeResult, MetadataValue, Output


from lmrec_assets.warehouse import replace_rows, table_exists

TABLE = "lineage.artifacts"
_DDL = f"""
create table if not exists {TABLE} (
    artifact_id varchar primary key,
    asset_key varchar not null,
    version varchar not null,
    run_id varchar not null,
    code_version varchar,
    input_versions json,
    parent_artifact_ids json,
    file_path varchar,
    sha256 varchar,
    files json,
    details json,
    created_at timestamp not null
)
"""


def sha256_files(paths: Iterable[Path]) -> dict[str, str]:
    digests = {}
    for path in sorted(paths):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests[path.name] = digest.hexdigest()
    return digests


def latest_artifacts(con: duckdb.DuckDBPyConnection, asset_keys: Iterable[str]) -> pd.DataFrame:
    keys = sorted(set(asset_keys))
    if not keys or not table_exists(con, TABLE):
        return pd.DataFrame(columns=["asset_key", "version", "artifact_id", "run_id"])
    return con.execute(
        f"""
        select asset_key, version, artifact_id, run_id from {TABLE}
        where asset_key in (select unnest(?))
        qualify row_number() over (partition by asset_key order by created_at desc) = 1
        """,
        [keys],
    ).df()


def unchanged(con: duckdb.DuckDBPyConnection, asset_key: str, version: str) -> bool:
    """True when the newest artifact of `asset_key` already has `version`: recomputing would change nothing."""
    latest = latest_artifacts(con, [asset_key])
    return len(latest) == 1 and latest["version"].iloc[0] == version


# A re-reported materialization names the run that really materialized the version and what that run did.
MATERIALIZED_IN_RUN = "materialized_in_run"
MATERIALIZED_OUTCOME = "materialized_outcome"
_DATA_VERSION_TAG = "dagster/data_version"  # dagster._core.definitions.data_version.DATA_VERSION_TAG
_REUSED_KEYS = {"outcome", MATERIALIZED_IN_RUN, MATERIALIZED_OUTCOME}


def previous_metadata(
    instance, asset_key: str, version: str | None = None, run_id: str | None = None, search: int = 20
) -> dict | None:
    """The metadata of this Dagster instance's newest materialization of `asset_key` at data version `version`, or
    made by run `run_id` (re-reported ones included: they carry their origin along), plus where it came from; None
    when there is none."""
    for record in instance.fetch_materializations(AssetKey(asset_key), limit=search).records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        metadata = dict(materialization.metadata)
        origin_run = _text(metadata.get(MATERIALIZED_IN_RUN)) or record.run_id
        if (version is not None and materialization.tags.get(_DATA_VERSION_TAG) != version) or (
            run_id is not None and origin_run != run_id
        ):
            continue
        origin_outcome = _text(metadata.get(MATERIALIZED_OUTCOME)) or _text(metadata.get("outcome")) or "materialized"
        kept = {key: value for key, value in metadata.items() if key not in _REUSED_KEYS}
        return kept | {MATERIALIZED_IN_RUN: origin_run, MATERIALIZED_OUTCOME: origin_outcome}
    return None


def reuse_if_unchanged(context, con, asset_key: str, version: str, why: str, current: dict | None = None):
    """Skip-unchanged for one asset: None when `version` is new (compute it), otherwise the MaterializeResult to
    return instead of recomputing. It re-reports the metadata of the run that made this version (row counts,
    schemas, metrics, curves, plots stay in the UI) and adds no lineage row. `current` is metadata that can be read
    cheaply from what is there now, used when this Dagster instance never saw that materialization."""
    if not unchanged(con, asset_key, version):
        return None
    return reuse(context, asset_key, version, why, current)


def reuse(context, asset_key: str, version: str, why: str, current: dict | None = None) -> MaterializeResult:
    """The MaterializeResult of an asset whose `version` already exists (see `reuse_if_unchanged`)."""
    previous = previous_metadata(context.instance, asset_key, version)
    if previous is not None:
        context.log.info(f"{asset_key} {version}: unchanged ({why}); re-reporting the materialization of run "
                         f"{previous[MATERIALIZED_IN_RUN]}")
        metadata = previous | {"outcome": f"unchanged ({why}): not recomputed"}
    else:
        context.log.info(f"{asset_key} {version}: unchanged ({why}); not recomputed")
        metadata = (current or {}) | {
            "outcome": f"unchanged ({why}): not recomputed",
            MATERIALIZED_OUTCOME: "made before; this Dagster instance has no record of that materialization",
        }
    return MaterializeResult(asset_key=AssetKey(asset_key), data_version=DataVersion(version), metadata=metadata)


def versioned_output(version: str, metadata: dict) -> Output:
    """The output of a graph asset's last op with its data version (what MaterializeResult carries for an @asset):
    Output's `data_version` is marked beta, though it is how ops report a version; the warning is not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return Output(None, data_version=DataVersion(version), metadata=metadata)


def _text(value) -> str | None:
    if value is None:
        return None
    return str(value.value) if isinstance(value, MetadataValue) else str(value)


def record_artifact(
    con: duckdb.DuckDBPyConnection,
    *,
    asset_key: str,
    version: str,
    run_id: str,
    code_version: str | None,
    parent_keys: Iterable[str],
    path: Path | None = None,
    details: dict | None = None,
    source: tuple[str, str] | None = None,
) -> str:
    """Write one lineage row (call inside the transaction that writes the artifact). Returns its artifact id.

    `path` may be a file or a folder (all files inside are hashed); `details` holds anything else worth keeping,
    e.g. the base LM and its weights' sha256 for a language model. `source` = (file or generator name, sha256) of
    an input batch that is hashed already (ingestion), recorded as is. A single file's sha256 is the file's own.
    """
    con.execute("create schema if not exists lineage")
    con.execute(_DDL)
    parents = latest_artifacts(con, parent_keys)
    files = {}
    if path is not None:
        files = sha256_files([p for p in Path(path).rglob("*") if p.is_file()] if Path(path).is_dir() else [Path(path)])
    artifact_id = hashlib.sha256(f"{asset_key}|{version}|{run_id}".encode()).hexdigest()[:16]
    row = pd.DataFrame([{
        "artifact_id": artifact_id,
        "asset_key": asset_key,
        "version": version,
        "run_id": run_id,
        "code_version": code_version or "",
        "input_versions": json.dumps(dict(zip(parents["asset_key"], parents["version"])), sort_keys=True),
        "parent_artifact_ids": json.dumps(sorted(parents["artifact_id"])),
        "file_path": str(path) if path is not None else (source[0] if source else None),
        "sha256": _digest(path, files) if files else (source[1] if source else None),
        "files": json.dumps(files, sort_keys=True) if files else None,
        "details": json.dumps(details or {}, sort_keys=True, default=str),
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }])
    replace_rows(con, TABLE, row, where="artifact_id = ?", params=(artifact_id,))
    return artifact_id


def _digest(path: Path, files: dict[str, str]) -> str:
    """A file's sha256 (what `sha256sum` prints); for a folder, the sha256 of its {name: sha256} listing."""
    if not Path(path).is_dir() and len(files) == 1:
        return next(iter(files.values()))
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def create_views(con: duckdb.DuckDBPyConnection, table: str = TABLE, view: str = "lineage.artifact_ancestry") -> None:
    """`view`: every (artifact, ancestor) pair of `table`, once, with its shortest distance (0 = the artifact)."""
    con.execute(
        f"""
        create or replace view {view} as
        with recursive walk(artifact_id, ancestor_id, depth) as (
            select artifact_id, artifact_id, 0 from {table}
            union all
            select w.artifact_id, p.parent_id, w.depth + 1
            from walk as w
            join (
                select artifact_id, unnest(cast(json(parent_artifact_ids) as varchar[])) as parent_id from {table}
            ) as p on p.artifact_id = w.ancestor_id
            where w.depth < 20
        )
        -- an ancestor reached along several paths is listed once, at its shortest distance
        select w.artifact_id, w.depth, a.* exclude (artifact_id), a.artifact_id as ancestor_id
        from (select artifact_id, ancestor_id, min(depth) as depth from walk group by all) as w
        join {table} as a on a.artifact_id = w.ancestor_id
        """
    )
