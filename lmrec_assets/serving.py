"""The serving group: what analysts query. The serving database is rebuilt beside the live one and swapped in
with one atomic rename, so a reader sees the old state or the new one, never a mix, and never blocks the pipeline.

Tables: recommendations (latest run per model, each row with a grounded explanation), items, evaluation_metrics,
explanation_quality, generation_metrics and fairness_summary (once their assets have run), lineage_artifacts, catalogue.
Views: latest_recommendations, model_leaderboard, recommendation_lineage.
Sensitive user attributes are not published: fairness_summary holds only aggregates over groups of users.
"""

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from lmrec_assets.automation import PUBLISHED_FRESHNESS
from lmrec_assets.evaluation.published_explanations import (
    explanation_quality,
    held_out_feature_matching,
    load_catalogue,
    recommendation_explanations,
)
from lmrec_assets.lineage import create_views, record_artifact
from lmrec_assets.resources import ServingResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, quote_identifier, table_exists

CODE_VERSION = "3"  # 2: explanations, explanation_quality and fairness_summary; 3: generation_metrics

# (name, grain, meaning): the analyst catalogue, published as a table so it is always next to the data it describes.
CATALOGUE = [
    ("recommendations", "model × user × rank", "Top-K items per user from each model's latest run; seen items excluded. "
     "`explanation`: why, naming only the user's own history titles and shared categories (deterministic)."),
    ("latest_recommendations", "model × user × rank", "recommendations with item titles and explanations (view)."),
    ("items", "item", "The catalogue: title, categories, description, item_text (what the LMs read), popularity."),
    ("evaluation_metrics", "model × version × split × K", "HR, NDCG, Recall, Precision, MRR, coverage; full ranking."),
    ("generation_metrics", "model × split × task × template × metric", "Generative models' text metrics: BLEU-1/4, "
     "ROUGE-1/2/L F1 (0-100), USR, FMR/FCR/DIV, hallucination rate of unconstrained decoding, HR/NDCG@10 per prompt "
     "template (trained vs unseen), on a sample of users."),
    ("model_leaderboard", "model", "Test metrics at K = 10 for each model's published version, best first (view)."),
    ("explanation_quality", "model", "PEPLER metrics of the published explanations: usr (distinct sentences ÷ all), fcr "
     "(categories ever named ÷ all), div (categories two explanations share, lower = more diverse), fmr (test split: "
     "the explanation of the held-out item names one of its categories; the same for every model, since an "
     "explanation depends only on history and item)."),
    ("fairness_summary", "model", "Per published model: worst user-group NDCG@10 gap, ratio and p-value per attribute, "
     "exposure Gini, coverage, popularity lift, long-tail share of the top-10, and counterfactual-prompt SNSR/SNSV "
     "(aggregates only)."),
    ("lineage_artifacts", "artifact", "One row per materialized artifact: version, run, code version, parents, sha256."),
    ("recommendation_lineage", "model × user × ancestor", "Every artifact behind a (model, user) row: raw batches, "
     "dbt models, model weights, code versions (view)."),
    ("catalogue", "table", "This list."),
]


@asset(
    group_name="serving",
    deps=["recommendations", "evaluation_metrics", "generation_metrics", "fairness_metrics"],
    kinds={"duckdb", "python"},
    owners=["team:data-platform"],
    description="Publishes the latest recommendations (with explanations), metrics, explanation quality, the "
    "fairness summary and lineage to the serving database with an atomic swap; runs only when the blocking checks "
    "on `recommendations` pass.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
    freshness_policy=PUBLISHED_FRESHNESS,
)
def published_recommendations(
    context: AssetExecutionContext, warehouse: WarehouseResource, serving: ServingResource
) -> MaterializeResult:
    final = Path(serving.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f".{final.name}.*.tmp*"):  # from a killed publish (publishes never overlap: pool)
        leftover.unlink()
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    publish_id = context.run_id
    published_at = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        with warehouse.connect() as con:
            con.execute("attach ? as serving", [str(staging)])
            _build(con, publish_id, published_at)
            counts = {t: con.execute(f"select count(*) from serving.{t}").fetchone()[0]
                      for t in ("recommendations", "items", "evaluation_metrics", "explanation_quality", "lineage_artifacts")}
            leaderboard = con.execute("select * from serving.model_leaderboard").df()
            quality = con.execute("select * from serving.explanation_quality order by model").df()
            con.execute("checkpoint serving")
            con.execute("detach serving")
            os.replace(staging, final)  # the atomic publish: readers holding the old file keep reading it
            con.begin()
            record_artifact(con, asset_key="published_recommendations", version=publish_id[:16], run_id=context.run_id,
                            code_version=CODE_VERSION,
                            parent_keys=["recommendations", "evaluation_metrics", "generation_metrics", "fairness_metrics"], path=final)
            con.commit()
    finally:
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".wal").unlink(missing_ok=True)
    return MaterializeResult(metadata={
        "serving_path": MetadataValue.path(str(final)),
        "publish_id": publish_id,
        "dagster/row_count": counts["recommendations"],
        **{f"rows_{table}": n for table, n in counts.items()},
        "model_leaderboard": MetadataValue.md(leaderboard.round(4).to_markdown(index=False)),
        "explanation_quality": MetadataValue.md(quality.round(4).to_markdown(index=False)),
    })


def _build(con, publish_id: str, published_at: datetime) -> None:
    """Fill the attached `serving` database from the warehouse (the caller swaps it in)."""
    catalogue = load_catalogue(con)
    explanations = recommendation_explanations(con, catalogue)
    con.register("_explanations", explanations)
    try:
        con.execute(
            """
            create table serving.recommendations as
            select r.*, e.explanation, ? as publish_id, ?::timestamp as published_at
            from recs.latest_recommendations as r
            join _explanations as e using (model, user_id, rank)
            order by r.user_id, r.model, r.rank  -- clustered by user: a user's lookup reads one small range
            """,
            [publish_id, published_at],
        )
    finally:
        con.unregister("_explanations")
    quality = explanation_quality(explanations, catalogue, *held_out_feature_matching(con, catalogue))
    con.register("_quality", quality)
    try:
        con.execute("create table serving.explanation_quality as select * from _quality order by model")
    finally:
        con.unregister("_quality")
    con.execute(
        "create table serving.items as select item_id, title, categories, description, item_text, n_interactions "
        "from marts.dim_items order by item_id"
    )
    con.execute(
        """
        create table serving.evaluation_metrics as
        select m.* from evaluation.evaluation_metrics as m
        join (select distinct model, model_version from serving.recommendations) using (model, model_version)
        """
    )
    if table_exists(con, "evaluation.generation_metrics"):
        con.execute(
            """
            create table serving.generation_metrics as
            select g.* from evaluation.generation_metrics as g
            join (select distinct model, model_version from serving.recommendations) using (model, model_version)
            """
        )
    if table_exists(con, "evaluation.fairness_summary"):
        con.execute(
            """
            create table serving.fairness_summary as
            select f.* from evaluation.fairness_summary as f
            join (select distinct model, model_version from serving.recommendations) using (model, model_version)
            """
        )
    con.execute("create table serving.lineage_artifacts as select * from lineage.artifacts")
    con.execute("create table serving.catalogue (name varchar, grain varchar, meaning varchar)")
    con.executemany("insert into serving.catalogue values (?, ?, ?)", CATALOGUE)
    warehouse_catalog = con.execute("select current_database()").fetchone()[0]
    con.execute("use serving")
    try:
        con.execute(
            """
            create view latest_recommendations as
            select r.model, r.model_version, r.user_id, r.rank, r.item_id, i.title, r.score, r.explanation,
                   r.generated_at, r.run_id
            from recommendations as r join items as i using (item_id)
            """
        )
        con.execute(
            """
            create view model_leaderboard as
            select model, model_version, hr as hr_at_10, ndcg as ndcg_at_10, mrr as mrr_at_10, coverage, n_users, protocol
            from evaluation_metrics where split = 'test' and segment = 'all' and k = 10
            qualify evaluated_at = max(evaluated_at) over (partition by model)
            order by ndcg desc
            """
        )
        create_views(con, table="lineage_artifacts", view="artifact_ancestry")
        con.execute(
            """
            create view recommendation_lineage as
            select r.model, r.user_id, a.depth, a.asset_key, a.version, a.run_id, a.code_version, a.file_path,
                   a.sha256, a.details, a.created_at
            from (select distinct model, model_version, user_id from recommendations) as r
            join lineage_artifacts as m on m.asset_key = r.model and m.version = r.model_version
            join artifact_ancestry as a on a.artifact_id = m.artifact_id
            """
        )
    finally:
        con.execute(f"use {quote_identifier(warehouse_catalog)}")  # named after the configured file: quote it
