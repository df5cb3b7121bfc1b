"""The ingestion group: read the configured source once, validate, land raw tables and quarantine the rest."""

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, DataVersion, MaterializeResult, MetadataValue, multi_asset

from lmrec_assets.ingestion.sources.base import RawTable
from lmrec_assets.ingestion.validate import Validated, validate_interactions, validate_items, validate_users
from lmrec_assets.lineage import record_artifact
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
        outcomes = {
            entity: _land(con, entity, raw, checked, loaded_at, context.run_id) for entity, (raw, checked) in batches.items()
        }
        con.commit()

    for entity, (raw, checked) in batches.items():
        yield MaterializeResult(
            asset_key=_SPECS[entity].key,
            data_version=DataVersion(raw.sha256 if raw is not None else "no-users"),
            metadata=_metadata(raw, checked, outcomes[entity]),
        )


def _land(con, entity: str, raw: RawTable | None, checked: Validated | None, loaded_at: datetime, run_id: str) -> str:
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
    replace_rows(con, f"raw.{entity}", accepted)
    if checked is not None:
        rejected = checked.rejected.assign(rejected_at=loaded_at)
        replace_rows(con, "raw.rejected_rows", rejected, where="entity = ?", params=(entity,))
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
    source_path = Path(raw.source_file) if raw is not None and Path(raw.source_file).is_file() else None
    record_artifact(
        con, asset_key=f"raw_{entity}", version=batch_id, run_id=run_id, code_version=CODE_VERSION, parent_keys=[],
        path=source_path,
        details={"source_file": raw.source_file if raw else "", "sha256": raw.sha256 if raw else "",
                 "n_read": checked.n_read if checked else 0, "n_rejected": len(checked.rejected) if checked else 0},
    )
    return "loaded"


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
