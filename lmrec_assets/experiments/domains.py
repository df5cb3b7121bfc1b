"""The data sets (domains) an experiment reads, each ingested and split by the real pipeline into its own warehouse.

A domain is prepared by materializing the ingestion and features groups (raw_tables → dbt build) with resources that
point at `<root>/<domain>/`, exactly what the main graph does for its one configured data set; skip-unchanged makes a
second preparation of the same files a no-op. The split is then read with `load_split_data`, like every model asset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from lmrec_assets.models.base import SplitData
from lmrec_assets.models.data import load_split_data
from lmrec_assets.resources import PROJECT_ROOT


@dataclass(frozen=True)
class DomainSpec:
    """One data set: a `DatasetResource` source plus how many users to evaluate on (0: all)."""

    name: str
    source: str  # demo | movielens-100k | movielens-1m | movielens-latest-small | files
    path: str = ""
    files_spec: dict | None = None
    seed: int = 7  # demo only
    scale: float = 1.0  # demo only
    eval_users: int = 0  # seeded sample of valid/test users (full ranking is kept); 0: every user

    def dataset_config(self, landing_dir: Path) -> dict:
        return {"source": self.source, "path": self.path, "files_spec": json.dumps(self.files_spec or {}),
                "seed": self.seed, "scale": self.scale, "landing_dir": str(landing_dir)}


def shared_data_dir() -> Path:
    """Where the real data sets live (never inside the repository): LMREC_SHARED_DATA or ../shared/data."""
    return Path(os.environ.get("LMREC_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def movielens_100k() -> DomainSpec:
    return DomainSpec("ml100k", "movielens-100k", path=str(shared_data_dir() / "ml-100k"))


def amazon_toys(eval_users: int = 0) -> DomainSpec:
    """Amazon Toys & Games 5-core (P5/POD ids): ordered sequences (position = time order) + item titles/categories;
    the files source unescapes HTML entities in titles."""
    folder = shared_data_dir() / "amazon-toys"
    spec = {"interactions": str(folder / "sequential.txt"), "items": str(folder / "Toys_item_text.jsonl"),
            "sequence_format": True}
    return DomainSpec("toys", "files", files_spec=spec, eval_users=eval_users)


def prepare_domain(spec: DomainSpec, root: Path) -> SplitData:
    """Ingest + dbt-split `spec` into `root/<name>/warehouse/lmrec.duckdb` (skipped when unchanged), read the split."""
    from dagster import AssetSelection, DagsterInstance, materialize
    from dagster_dbt import DbtCliResource

    from lmrec_assets.features import DBT_EXECUTABLE, dbt_features, dbt_project
    from lmrec_assets.ingestion.assets import raw_tables
    from lmrec_assets.resources import ArtifactStoreResource, DatasetResource, WarehouseResource

    folder = root / spec.name
    warehouse = folder / "warehouse" / "lmrec.duckdb"
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "artifacts": ArtifactStoreResource(data_dir=str(folder)),
        "dataset": DatasetResource(**spec.dataset_config(folder / "landing")),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    }
    # The dbt asset hands its warehouse to dbt through LMREC_WAREHOUSE; put the caller's value back afterwards.
    previous = os.environ.get("LMREC_WAREHOUSE")
    try:
        materialize([raw_tables, dbt_features], resources=resources, instance=DagsterInstance.ephemeral(),
                    selection=AssetSelection.groups("ingestion", "features"), raise_on_error=True)
    finally:
        if previous is None:
            os.environ.pop("LMREC_WAREHOUSE", None)
        else:
            os.environ["LMREC_WAREHOUSE"] = previous
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return load_split_data(con)
