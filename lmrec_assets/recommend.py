"""The recommendations group: top-K per user for every trained model, written once for all models."""

import hashlib
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset

from lmrec_assets.automation import PUBLISHED_FRESHNESS
from lmrec_assets.models.ranking import batches, masked_scores, top_k
from lmrec_assets.lineage import create_views, record_artifact, reuse_if_unchanged
from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.base import Recommender, SplitData
from lmrec_assets.models.data import load_split_data
from lmrec_assets.models.registry import latest_versions, load_model
from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata, replace_rows

CODE_VERSION = "2"  # 2: latest_recommendations = the newest run (skipped models drop out)
VERSIONS_KEPT = 3  # older versions are pruned so the table stays small; lineage keeps the history


class RecommendationsConfig(Config):
    k: int = 20
    batch_size: int = 2048


def recommend_top_k(model: Recommender, data: SplitData, k: int, batch_size: int) -> pd.DataFrame:
    """Top-K for every user, conditioned on (and masking) the user's whole history: train, valid and test."""
    histories = data.histories("test")
    frames = []
    for users in batches(np.arange(data.n_users), batch_size):
        items, scores = top_k(masked_scores(model, users, histories), k)
        frames.append(pd.DataFrame({
            "user_id": np.repeat(data.user_ids[users], items.shape[1]),
            "rank": np.tile(np.arange(1, items.shape[1] + 1), len(users)).astype(np.int32),
            "item_id": data.item_ids[items.ravel()],
            "score": scores.ravel().astype(np.float64),
        }))
    return pd.concat(frames, ignore_index=True)


@asset(
    group_name="recommendations",
    deps=list(MODELS),
    kinds={"duckdb", "python"},
    owners=["team:ml"],
    description="Top-K items per user for every model (seen items excluded) → recs.recommendations; "
    "recs.latest_recommendations shows the newest run (every model served now; a skipped model is not in it).",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
    freshness_policy=PUBLISHED_FRESHNESS,
)
def recommendations(context: AssetExecutionContext, config: RecommendationsConfig, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        registry = latest_versions(con, list(MODELS))
        version = _version(registry, config.k)
        if reused := reuse_if_unchanged(context, con, "recommendations", version, "same model versions"):
            return reused
        data = load_split_data(con)
    generated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    per_model = []
    for row in registry.itertuples():
        model = load_model(row.model, row.artifact_path)
        recs = recommend_top_k(model, data, config.k, config.batch_size)
        per_model.append(recs.assign(model=row.model, model_version=row.model_version, run_id=context.run_id, generated_at=generated_at))
        context.log.info(f"{row.model} {row.model_version}: {len(recs)} rows")
    table = pd.concat(per_model, ignore_index=True)[
        ["model", "model_version", "run_id", "user_id", "rank", "item_id", "score", "generated_at"]
    ]

    with warehouse.connect() as con:
        con.begin()
        replace_rows(con, "recs.recommendations", table, where="run_id = ?", params=(context.run_id,))
        con.execute(
            """
            delete from recs.recommendations where (model, model_version) not in (
                select model, model_version from (
                    select model, model_version, max(generated_at) as last_at from recs.recommendations
                    group by all
                ) qualify row_number() over (partition by model order by last_at desc) <= ?
            )
            """,
            [VERSIONS_KEPT],
        )
        con.execute(
            """
            create or replace view recs.latest_recommendations as
            select * from recs.recommendations
            where run_id = (select run_id from recs.recommendations order by generated_at desc limit 1)
            """
        )
        record_artifact(
            con, asset_key="recommendations", version=version, run_id=context.run_id,
            code_version=CODE_VERSION, parent_keys=registry["model"],
            details={"k": config.k, "model_versions": dict(zip(registry["model"], registry["model_version"]))},
        )
        create_views(con)
        con.commit()
    return MaterializeResult(data_version=DataVersion(version), metadata={
        **frame_metadata(table),
        "outcome": "made",
        "models": MetadataValue.md(registry[["model", "model_version", "valid_ndcg_at_10"]].to_markdown(index=False)),
        "k": config.k,
    })


def _version(registry: pd.DataFrame, k: int) -> str:
    """Recommendations are a function of the model versions and K."""
    return hashlib.sha256(f"{sorted(zip(registry['model'], registry['model_version']))}|{k}".encode()).hexdigest()[:16]
