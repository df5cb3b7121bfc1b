"""The ingestion group: read the configured source once, validate, land raw tables and quarantine the rest."""

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, DataVersion, MaterializeResult, MetadataValue, multi_asset

from lmrec_assets.ingestion.sources.base import RawTable
from lmrec_assets.ingestion.sources.files import load_interactions_file
from lmrec_assets.ingestion.validate import Validated, validate_interactions, validate_items, validate_users
from lmrec_assets.lineage import record_artifact, unchanged
from lmrec_assets.resources import DatasetResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata, replace_rows, table_exists

OWNERS = ["team:data-platform"]
CODE_VERSION = "1"  # bump when validation or landing rules change
_SPECS = {
    "items": AssetSpec(
        "raw_items", group_name="ingestion", kinds={"duckdb", "python"}, owners=OWNERS, code_version=CODE_VERSION,
        description="Accepted items with their text fields (title, categories, description) → raw.items.",
    ),
    "users": AssetSpec(
        "raw_users", group_name="ingestion", kinds={"duckdb", "python"}, owners=OWNERS, code_version=CODE_VERSION,
        description="Accepted users with optional sensitive attributes → raw.users (empty when the source has none).",
    ),
    "interactions": AssetSpec(
        "raw_interactions", group_name="ingestion", kinds={"duckdb", "python"}, owners=OWNERS, code_version=CODE_VERSION,
        description="Accepted user-item events → raw.interactions; malformed rows → raw.rejected_rows with a reason.",
    ),
}
_EMPTY_USERS = pd.DataFrame(
    {c: pd.Series(dtype="string") for c in ["user_id", "gender", "age_bracket", "occupation"]}
    | {"source_row": pd.Series(dtype="int64")}
)


@multi_asset(specs=list(_SPECS.values()), pool=WAREHOUSE_POOL, can_subset=False)
def raw_tables(context: AssetExecutionContext, dataset: DatasetResource, warehouse: WarehouseResource):
    """Load the source once so items, users and interactions are validated against each other."""
    source = dataset.load()
    items = validate_items(source.items)
    users = validate_users(source.users) if source.users is not None else None
    interactions = validate_interactions(
        source.interactions,
        known_items=pd.Index(items.accepted["item_id"]),
        known_users=pd.Index(users.accepted["user_id"]) if users is not None else None,
    )
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    batches = {"items": (source.items, items), "users": (source.users, users), "interactions": (source.interactions, interactions)}

    with warehouse.connect() as con:
        con.begin()
        _create_bookkeeping_tables(con)
        outcomes = {
            entity: _land(con, entity, raw, checked, loaded_at) for entity, (raw, checked) in batches.items()
        }
        increments = _land_increments(con, dataset.landing_files(), loaded_at)
        versions = {entity: raw.batch_id if raw is not None else "none" for entity, (raw, _) in batches.items()}
        versions["interactions"] = _interactions_version(con, versions["interactions"])
        for entity, (raw, checked) in batches.items():
            if not unchanged(con, f"raw_{entity}", versions[entity]):
                record_artifact(
                    con, asset_key=f"raw_{entity}", version=versions[entity], run_id=context.run_id,
                    code_version=CODE_VERSION, parent_keys=[],
                    source=(raw.source_file, raw.sha256) if raw is not None else None,
                    details={"source_file": raw.source_file if raw else "", "sha256": raw.sha256 if raw else "",
                             "n_read": checked.n_read if checked else 0,
                             "increments": list(increments.get("batch_id", [])) if entity == "interactions" else []},
                )
        con.commit()

    for entity, (raw, checked) in batches.items():
        metadata = _metadata(raw, checked, outcomes[entity])
        if entity == "interactions":
            metadata["increments"] = MetadataValue.md(increments.to_markdown(index=False) if len(increments) else "none")
        yield MaterializeResult(asset_key=_SPECS[entity].key, data_version=DataVersion(versions[entity]), metadata=metadata)


def _create_bookkeeping_tables(con) -> None:
    con.execute("create schema if not exists raw")
    con.execute(
        """create table if not exists raw.load_batches (entity varchar, batch_id varchar, source_file varchar,
           sha256 varchar, n_read bigint, n_accepted bigint, n_rejected bigint, loaded_at timestamp)"""
    )
    con.execute(
        """create table if not exists raw.rejected_rows (entity varchar, source_file varchar, batch_id varchar,
           source_row bigint, reason varchar, record varchar, rejected_at timestamp)"""
    )


def _increment_batches() -> str:
    return "(select batch_id from raw.load_batches where entity = 'interactions_increment')"


def _interactions_version(con, snapshot_batch: str) -> str:
    """The snapshot batch plus every appended increment (what dbt's planned versions see as raw_interactions)."""
    increments = sorted(con.execute(_increment_batches()[1:-1]).df()["batch_id"])
    if not increments:
        return snapshot_batch
    return hashlib.sha256(f"{snapshot_batch}|{increments}".encode()).hexdigest()[:16]


def _land(con, entity: str, raw: RawTable | None, checked: Validated | None, loaded_at: datetime) -> str:
    """Replace the entity's raw rows with this batch, unless exactly this batch is already there (idempotent)."""
    batch_id = raw.batch_id if raw is not None else "none"
    if table_exists(con, "raw.load_batches"):
        current = con.execute(
            "select batch_id from raw.load_batches where entity = ? order by loaded_at desc limit 1", [entity]
        ).fetchone()
        if current is not None and current[0] == batch_id and table_exists(con, f"raw.{entity}"):
            return "skipped: this batch is already loaded"

    accepted = checked.accepted if checked is not None else _EMPTY_USERS
    accepted = accepted.assign(batch_id=batch_id, source_file=raw.source_file if raw else "", loaded_at=loaded_at)
    # A new snapshot replaces the previous one; rows appended from the landing folder stay.
    keep_increments = f"batch_id not in {_increment_batches()}"
    replace_rows(con, f"raw.{entity}", accepted, where=keep_increments if entity == "interactions" else "")
    if checked is not None:
        rejected = checked.rejected.assign(rejected_at=loaded_at)
        replace_rows(con, "raw.rejected_rows", rejected, where=f"entity = ? and {keep_increments}", params=(entity,))
    replace_rows(
        con,
        "raw.load_batches",
        pd.DataFrame([{
            "entity": entity, "batch_id": batch_id, "source_file": raw.source_file if raw else "",
            "sha256": raw.sha256 if raw else "", "n_read": checked.n_read if checked else 0,
            "n_accepted": len(checked.accepted) if checked else 0, "n_rejected": len(checked.rejected) if checked else 0,
            "loaded_at": loaded_at,
        }]),
        where="entity = ? and batch_id = ?",
        params=(entity, batch_id),
    )
    return "loaded"


def _land_increments(con, files: list[Path], loaded_at: datetime) -> pd.DataFrame:
    """Append interaction files from the landing folder, each file once (by sha256), never duplicating a row."""
    done = set(con.execute(_increment_batches()[1:-1]).df()["batch_id"])
    items = pd.Index(con.execute("select item_id from raw.items").df()["item_id"])
    users_frame = con.execute("select user_id from raw.users").df()
    users = pd.Index(users_frame["user_id"]) if len(users_frame) else None
    landed = []
    for path in files:
        raw = load_interactions_file(path)
        if raw.batch_id in done:
            continue
        checked = validate_interactions(raw, known_items=items, known_users=users)
        accepted, duplicates = _split_already_loaded(con, checked.accepted)
        rejected = pd.concat([checked.rejected, _rejections(duplicates, raw, "already loaded")], ignore_index=True)
        replace_rows(con, "raw.interactions",
                     accepted.assign(batch_id=raw.batch_id, source_file=raw.source_file, loaded_at=loaded_at),
                     where="batch_id = ?", params=(raw.batch_id,))
        replace_rows(con, "raw.rejected_rows", rejected.assign(rejected_at=loaded_at),
                     where="entity = 'interactions' and batch_id = ?", params=(raw.batch_id,))
        summary = {"entity": "interactions_increment", "batch_id": raw.batch_id, "source_file": raw.source_file,
                   "sha256": raw.sha256, "n_read": checked.n_read, "n_accepted": len(accepted),
                   "n_rejected": len(rejected), "loaded_at": loaded_at}
        assert summary["n_read"] == summary["n_accepted"] + summary["n_rejected"]
        replace_rows(con, "raw.load_batches", pd.DataFrame([summary]), where="entity = ? and batch_id = ?",
                     params=("interactions_increment", raw.batch_id))
        landed.append(summary)
    return pd.DataFrame(landed)


def _split_already_loaded(con, accepted: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    con.register("_candidates", accepted[["user_id", "item_id", "timestamp"]].reset_index())
    try:
        seen = con.execute(
            """select c.index from _candidates as c
               semi join raw.interactions as r using (user_id, item_id, "timestamp")"""
        ).df()["index"]
    finally:
        con.unregister("_candidates")
    is_seen = accepted.index.isin(seen)
    return accepted[~is_seen], accepted[is_seen]


def _rejections(rows: pd.DataFrame, raw: RawTable, reason: str) -> pd.DataFrame:
    return pd.DataFrame({
        "entity": "interactions", "source_file": raw.source_file, "batch_id": raw.batch_id,
        "source_row": rows["source_row"].astype("int64"), "reason": reason,
        "record": [json.dumps({k: str(v) for k, v in r.items()}) for r in rows.to_dict(orient="records")],
    })


def _metadata(raw: RawTable | None, checked: Validated | None, outcome: str) -> dict:
    if raw is None or checked is None:
        return {"outcome": "source has no users file", "n_read": 0, "n_accepted": 0, "n_rejected": 0}
    reasons = checked.rejected["reason"].value_counts()
    return {
        **frame_metadata(checked.accepted),
        "outcome": outcome,
        "source_file": raw.source_file,
        "sha256": raw.sha256,
        "batch_id": raw.batch_id,
        "n_read": checked.n_read,
        "n_accepted": len(checked.accepted),
        "n_rejected": len(checked.rejected),
        "rejected_reasons": MetadataValue.md(
            reasons.rename_axis("reason").reset_index(name="rows").to_markdown(index=False) if len(reasons) else "none"
        ),
    }
