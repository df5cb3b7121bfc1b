"""The serving group: what analysts query. The serving database is rebuilt beside the live one and swapped in
with one atomic rename, so a reader sees the old state or the new one, never a mix, and never blocks the pipeline.

Tables: recommendations (the newest recommendations run: every model served now; each row with an explanation and
its source: the grounded template, or the generative model's own sentence once it passes the grounding check), items,
evaluation_metrics,
explanation_quality, generation_metrics and fairness_summary (once their assets have run), lineage_artifacts, champion,
catalogue. Views: latest_recommendations, champion_recommendations, model_leaderboard, recommendation_lineage.
Sensitive user attributes are not published: fairness_summary holds only aggregates over groups of users.

The champion is chosen at every publish: the published model with the best valid NDCG@10 (segment 'all') among those
whose checks pass — the `recommendations_quality` rules applied to each model's own rows, and the
`fairness_gaps_within_threshold` thresholds applied to each model's fairness_summary row. It is chosen on valid only,
so the test metrics stay an unbiased report of it.
"""

import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset
from pydantic import Field

from lmrec_assets.automation import PUBLISHED_FRESHNESS
from lmrec_assets.evaluation.fairness_assets import FairnessThresholdsConfig, resolved_thresholds, threshold_outcomes
from lmrec_assets.evaluation.published_explanations import (
    EXPLAIN_TOP_N,
    explanation_quality,
    held_out_feature_matching,
    load_catalogue,
    recommendation_explanations,
)
from lmrec_assets.evaluation.quality import _RECS_LISTS_SQL, _RECS_ROWS_SQL
from lmrec_assets.lineage import create_views, record_artifact, reuse_if_unchanged
from lmrec_assets.resources import ServingResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, quote_identifier, table_exists

# 2: explanations, explanation_quality and fairness_summary; 3: generation_metrics; 4: champion;
# 5: explanation_source, LM-written explanations of the generative models and their counts in explanation_quality
CODE_VERSION = "5"
PREVIEW_ROWS = 3  # per model, in the publish's metadata
# The lineage rows a publish copies and versions: not its own, and not those of the assets that read the serving file
# (the fairness report shows published explanations). Counting a reader's row would make every publish trigger the
# next one: publish → report row → a new publish version → a new report version, on a refresh without new data.
SERVING_READERS = ("published_recommendations", "fairness_report")
PUBLISHED_LINEAGE = "asset_key not in (" + ", ".join(f"'{key}'" for key in SERVING_READERS) + ")"

# (name, grain, meaning): the analyst catalogue, published as a table so it is always next to the data it describes.
CATALOGUE = [
    ("recommendations", "model × user × rank", "Top-K items per user from each model's latest run; seen items excluded. "
     "`explanation`: why; `explanation_source`: how it was made: 'template' (names only the user's own history "
     "titles and shared categories; deterministic) or 'lm_generated' (the generative model's own sentence for its "
     "top ranks, published only when it names at least one of the item's categories, none it lacks, and is not "
     "empty or looping; otherwise the row has the template)."),
    ("latest_recommendations", "model × user × rank", "recommendations with item titles, explanations and their "
     "source (view)."),
    ("champion_recommendations", "user × rank", "latest_recommendations of the champion model only, plus `champion` "
     "(its name) and `chosen_because` (view). Start here when you need one list per user."),
    ("champion", "one row", "The model served by default: best valid NDCG@10 (segment 'all') among the published models "
     "whose recommendations-quality rules and fairness thresholds pass; `reason` names the runner-up and any model left "
     "out and why. Chosen on valid, so model_leaderboard's test metrics report it without selection bias."),
    ("items", "item", "The catalogue: title, categories, description, item_text (what the LMs read), popularity."),
    ("evaluation_metrics", "model × version × split × segment × K", "HR, NDCG, Recall, Precision, MRR, coverage; "
     "full ranking. segment 'all' = every evaluated user, 'cold_items' = users whose held-out item has no train "
     "interactions."),
    ("generation_metrics", "model × split × task × template × metric", "Generative models' text metrics: BLEU-1/4, "
     "ROUGE-1/2/L F1 (0-100), USR, FMR/FCR/DIV, hallucination rate of unconstrained decoding, HR/NDCG@10 per prompt "
     "template (trained vs unseen), on a sample of users."),
    ("model_leaderboard", "model", "Test metrics at K = 10 for each model's published version, best first (view)."),
    ("explanation_quality", "model", "PEPLER metrics of the published explanations: usr (distinct sentences ÷ all), fcr "
     "(categories ever named ÷ all), div (categories two explanations share, lower = more diverse), fmr (test split: "
     "the template explanation of the held-out item names one of its categories; the same for every model; "
     "generation_metrics has the LM's). LM explanations: n_lm_generated (sentences written), n_lm_published "
     "(rows with source 'lm_generated'), n_hallucinations_rejected (named a category the item lacks), "
     "n_ungrounded_rejected (named none of its categories), n_degenerate_rejected (empty, unfinished or looping), "
     "hallucination_rate_generated (hallucinations ÷ written) and "
     "hallucination_rate_published (published LM rows naming a category the item lacks, re-checked: 0)."),
    ("fairness_summary", "model", "Per published model: worst user-group NDCG@10 gap, ratio and p-value per attribute, "
     "exposure Gini, coverage, popularity lift, long-tail share of the top-10, and counterfactual-prompt SNSR/SNSV "
     "for the models that read a prompt (aggregates only)."),
    ("lineage_artifacts", "artifact", "One row per materialized artifact: version, run, code version, parents, sha256 "
     "(the publishes' own rows and the fairness report's, which reads this file, stay in the warehouse's "
     "lineage.artifacts)."),
    ("recommendation_lineage", "model × user × ancestor", "Every artifact behind a (model, user) row: raw batches, "
     "dbt models, model weights, code versions (view)."),
    ("catalogue", "table", "This list."),
]


class PublishConfig(Config):
    force: bool = Field(False, description="Publish even when nothing it publishes has changed according to lineage "
                        "(e.g. after warehouse tables were edited by hand).")
    explain_top_n: int = Field(EXPLAIN_TOP_N, ge=0, description="Ranks per user (1..n) whose explanation the "
                               "generative models write themselves; the rest keep the template. Decoding cost grows "
                               "with users × n; 0: templates only.")


@asset(
    group_name="serving",
    deps=["recommendations", "evaluation_metrics", "generation_metrics", "fairness_metrics"],
    kinds={"duckdb", "python"},
    owners=["team:data-platform"],
    description="Publishes the latest recommendations (with explanations: grounded templates, and for the generative "
    "models' top ranks their own sentences once checked for hallucinated categories), metrics, explanation quality, the "
    "fairness summary and lineage to the serving database with an atomic swap, and chooses the champion (best valid "
    "NDCG@10 among the models whose quality rules and fairness thresholds pass) → champion, "
    "champion_recommendations; runs only when the blocking checks on `recommendations` pass.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
    freshness_policy=PUBLISHED_FRESHNESS,
)
def published_recommendations(
    context: AssetExecutionContext, config: PublishConfig, warehouse: WarehouseResource, serving: ServingResource
) -> MaterializeResult:
    final = Path(serving.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f".{final.name}.*.tmp*"):  # from a killed publish (publishes never overlap: pool)
        leftover.unlink()
    with warehouse.connect(read_only=True) as con:
        version = publish_version(con, config)
        if final.is_file() and not config.force and (reused := reuse_if_unchanged(
            context, con, "published_recommendations", version,
            "nothing it publishes has changed since the last publish: the serving file is not rewritten",
            current={"serving_path": MetadataValue.path(str(final))},
        )):
            return reused
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    publish_id = context.run_id
    published_at = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        with warehouse.connect() as con:
            con.execute("attach ? as serving", [str(staging)])
            candidates, champion = _build(con, publish_id, published_at, config.explain_top_n)
            counts = {t: con.execute(f"select count(*) from serving.{t}").fetchone()[0]
                      for t in ("recommendations", "items", "evaluation_metrics", "explanation_quality", "lineage_artifacts")}
            leaderboard = con.execute("select * from serving.model_leaderboard").df()
            quality = con.execute("select * from serving.explanation_quality order by model").df()
            preview = con.execute(
                "select model, user_id, rank, title, explanation, explanation_source from serving.latest_recommendations "
                "qualify row_number() over (partition by model order by user_id, rank) <= ? order by model, user_id, rank",
                [PREVIEW_ROWS],
            ).df()
            con.execute("checkpoint serving")
            con.execute("detach serving")
            os.replace(staging, final)  # the atomic publish: readers holding the old file keep reading it
            con.begin()
            record_artifact(con, asset_key="published_recommendations", version=version, run_id=context.run_id,
                            code_version=CODE_VERSION,
                            parent_keys=["recommendations", "evaluation_metrics", "generation_metrics", "fairness_metrics"], path=final)
            con.commit()
    finally:
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".wal").unlink(missing_ok=True)
    return MaterializeResult(data_version=DataVersion(version), metadata={
        "outcome": "published",
        "serving_path": MetadataValue.path(str(final)),
        "publish_id": publish_id,
        "dagster/row_count": counts["recommendations"],
        **{f"rows_{table}": n for table, n in counts.items()},
        "model_leaderboard": MetadataValue.md(leaderboard.round(4).to_markdown(index=False)),
        "explanation_quality": MetadataValue.md(quality.round(4).to_markdown(index=False)),
        "recommendations_preview": MetadataValue.md(preview.to_markdown(index=False)),
        "champion": champion["model"] if champion else "none (no published model has valid metrics)",
        "champion_reason": champion["reason"] if champion else "",
        "champion_candidates": MetadataValue.md(candidates.round(4).to_markdown(index=False)),
    })


def publish_version(con, config: PublishConfig) -> str:
    """What a publish would contain: every lineage row it copies (each asset whose data it publishes adds one when
    that data changes), the champion rules' thresholds, the LM explanation depth and this code. Equal versions mean
    an identical serving file."""
    artifacts = con.execute(
        "select coalesce(string_agg(artifact_id, ',' order by artifact_id), '') from lineage.artifacts "
        f"where {PUBLISHED_LINEAGE}"
    ).fetchone()[0] if table_exists(con, "lineage.artifacts") else ""
    thresholds = resolved_thresholds(FairnessThresholdsConfig())
    payload = f"{CODE_VERSION}|{thresholds}|{config.explain_top_n}|{artifacts}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _build(con, publish_id: str, published_at: datetime, explain_top_n: int) -> tuple[pd.DataFrame, dict | None]:
    """Fill the attached `serving` database from the warehouse (the caller swaps it in). Returns the champion
    candidates (one row per published model, with its checks) and the champion row (None when there is none)."""
    catalogue = load_catalogue(con)
    explanations = recommendation_explanations(con, catalogue, explain_top_n)
    con.register("_explanations", explanations)
    try:
        con.execute(
            """
            create table serving.recommendations as
            select r.*, e.explanation, e.explanation_source, ? as publish_id, ?::timestamp as published_at
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
    has_fairness = table_exists(con, "evaluation.fairness_summary")
    if has_fairness:
        con.execute(
            """
            create table serving.fairness_summary as
            select f.* from evaluation.fairness_summary as f
            join (select distinct model, model_version from serving.recommendations) using (model, model_version)
            """
        )
    candidates = champion_candidates(con, has_fairness, FairnessThresholdsConfig())
    champion = choose_champion(candidates, fairness_published=has_fairness)
    con.execute(
        "create table serving.champion "
        "(model varchar, model_version varchar, valid_ndcg_at_10 double, reason varchar, chosen_at timestamp)"
    )
    if champion is not None:
        champion["chosen_at"] = published_at
        con.execute("insert into serving.champion values (?, ?, ?, ?, ?)", [champion[c] for c in CHAMPION_COLUMNS])
    con.execute(f"create table serving.lineage_artifacts as select * from lineage.artifacts where {PUBLISHED_LINEAGE}")
    con.execute("create table serving.catalogue (name varchar, grain varchar, meaning varchar)")
    con.executemany("insert into serving.catalogue values (?, ?, ?)", CATALOGUE)
    warehouse_catalog = con.execute("select current_database()").fetchone()[0]
    con.execute("use serving")
    try:
        con.execute(
            """
            create view latest_recommendations as
            select r.model, r.model_version, r.user_id, r.rank, r.item_id, i.title, r.score, r.explanation,
                   r.explanation_source, r.generated_at, r.run_id
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
        con.execute(
            """
            create view champion_recommendations as
            select r.*, c.model as champion, c.reason as chosen_because
            from latest_recommendations as r join champion as c using (model, model_version)
            """
        )
        create_views(con, table="lineage_artifacts", view="artifact_ancestry")
        con.execute(
            """
            create view recommendation_lineage as
            select r.model, r.user_id, a.depth, a.asset_key, a.version, a.run_id, a.code_version, a.file_path,
                   a.sha256, a.details, a.created_at, a.ancestor_id
            from (select distinct model, model_version, user_id from recommendations) as r
            join (  -- the newest row of each version (a version is recorded again only after an interrupted run)
                select * from lineage_artifacts
                qualify row_number() over (partition by asset_key, version order by created_at desc) = 1
            ) as m on m.asset_key = r.model and m.version = r.model_version
            join artifact_ancestry as a on a.artifact_id = m.artifact_id
            """
        )
    finally:
        con.execute(f"use {quote_identifier(warehouse_catalog)}")  # named after the configured file: quote it
    return candidates, champion


# --- the champion ---------------------------------------------------------------------------------------------------

CHAMPION_COLUMNS = ["model", "model_version", "valid_ndcg_at_10", "reason", "chosen_at"]
PASSED = "passed"

# The recommendations_quality rules (the same row and list flags), counted per model instead of over the whole table.
_QUALITY_PER_MODEL_SQL = f"""
with rows as ({_RECS_ROWS_SQL}),
lists as ({_RECS_LISTS_SQL}),
per_rows as (
    select model,
           count(*) filter (where is_seen) as "seen items",
           count(*) filter (where not in_catalogue) as "items outside the catalogue",
           count(*) filter (where not score_is_finite) as "non-finite scores",
           count(*) filter (where score_rises) as "scores rising with rank",
           count(*) - count(distinct (user_id, rank)) as "repeated ranks",
           count(*) - count(distinct (user_id, item_id)) as "repeated items"
    from rows group by model
),
per_lists as (
    select model, count(*) filter (where n_rows <> k or n_ranks <> k or max_rank <> k or min_rank <> 1)
           as "lists without exactly K ranks 1..K"
    from lists group by model
)
select * from per_rows join per_lists using (model) order by model
"""


def quality_by_model(con) -> dict[str, str]:
    """model -> 'passed' or 'failed: <what>' under the recommendations_quality rules, for each model's latest run."""
    frame = con.execute(_QUALITY_PER_MODEL_SQL, [None]).df().set_index("model")
    out = {}
    for model, counts in frame.iterrows():
        problems = [f"{int(n)} {what}" for what, n in counts.items() if n > 0]
        out[model] = f"failed: {', '.join(problems)}" if problems else PASSED
    return out


def fairness_by_model(summary: pd.DataFrame, config: FairnessThresholdsConfig) -> dict[str, str]:
    """model -> 'passed', 'exempt' or 'failed: <measures>' under the fairness_gaps_within_threshold thresholds
    (`config`, then LMREC_FAIRNESS_* environment variables, then the defaults: what the check uses)."""
    outcomes = threshold_outcomes(summary, config)
    out = {}
    for model in summary["model"]:
        if model in config.exempt_models:
            out[model] = "exempt"
            continue
        failed = outcomes[(outcomes.model == model) & ~outcomes.passed]
        out[model] = PASSED if failed.empty else "failed: " + ", ".join(
            f"{r.measure} {r.observed:.3f} > {r.threshold:g}" for r in failed.itertuples()
        )
    return out


def champion_candidates(con, has_fairness: bool, config: FairnessThresholdsConfig) -> pd.DataFrame:
    """One row per published model: its version, valid NDCG@10 (segment 'all', latest evaluation of the published
    version; NaN when not evaluated), and its quality and fairness outcomes. Reads the attached serving tables."""
    frame = con.execute(
        """
        select p.model, p.model_version, m.ndcg as valid_ndcg_at_10
        from (select distinct model, model_version from serving.recommendations) as p
        left join (
            select model, model_version, ndcg from serving.evaluation_metrics
            where split = 'valid' and segment = 'all' and k = 10
            qualify evaluated_at = max(evaluated_at) over (partition by model)
        ) as m using (model, model_version)
        order by p.model
        """
    ).df()
    quality = quality_by_model(con)
    frame["quality"] = frame["model"].map(quality).fillna("not checked")
    if has_fairness:
        fairness = fairness_by_model(con.execute("select * from serving.fairness_summary").df(), config)
        frame["fairness"] = frame["model"].map(fairness).fillna("not evaluated")
    else:
        frame["fairness"] = "not evaluated"
    return frame


def _names(frame: pd.DataFrame) -> str:
    return ", ".join(frame["model"])


def choose_champion(candidates: pd.DataFrame, fairness_published: bool) -> dict | None:
    """The champion: best valid NDCG@10 among the models whose checks pass (quality passed, fairness not failed).

    Ties go to the model name in alphabetical order. When no model passes every check, the best of all evaluated
    models is chosen and the reason says so. Returns None when no published model has a valid NDCG@10.
    Returns {model, model_version, valid_ndcg_at_10, reason} (the caller adds chosen_at).
    """
    evaluated = candidates[candidates["valid_ndcg_at_10"].notna()]
    failed = evaluated[(evaluated["quality"] != PASSED) | evaluated["fairness"].str.startswith("failed")]
    passing = evaluated.drop(index=failed.index)
    pool = passing if not passing.empty else evaluated
    if pool.empty:
        return None
    ranked = pool.assign(_negative=-pool["valid_ndcg_at_10"]).sort_values(["_negative", "model"])
    best = ranked.iloc[0]
    n = len(ranked)
    if not passing.empty:
        reason = f"best valid NDCG@10 ({best.valid_ndcg_at_10:.4f}) among {n} model{'s' * (n != 1)} whose checks passed"
    else:
        reason = (f"no model passed every check, so best valid NDCG@10 ({best.valid_ndcg_at_10:.4f}) among all {n} "
                  f"evaluated model{'s' * (n != 1)}")
    if n > 1:
        runner_up = ranked.iloc[1]
        reason += f"; runner-up {runner_up.model} {runner_up.valid_ndcg_at_10:.4f}"
    else:
        reason += "; no runner-up"
    if not failed.empty:
        parts = []
        for r in failed.itertuples():
            why = []
            if r.quality != PASSED:
                why.append(f"quality {r.quality}")
            if r.fairness.startswith("failed"):
                why.append(f"fairness {r.fairness}")
            parts.append(f"{r.model} ({'; '.join(why)})")
        reason += f"; {'left out' if not passing.empty else 'failed'}: " + ", ".join(parts)
    not_evaluated = candidates[candidates["valid_ndcg_at_10"].isna()]
    if not not_evaluated.empty:
        reason += f"; no valid metrics for the published version of {_names(not_evaluated)}"
    if not fairness_published:
        reason += ("; no per-model fairness results exist (fairness_metrics has not run), so only the "
                   "recommendations-quality rules were checked, for every evaluated model")
    else:
        unchecked = evaluated[evaluated["fairness"] == "not evaluated"]
        if not unchecked.empty:
            reason += f"; no fairness result for the published version of {_names(unchecked)} (kept)"
    return {"model": best.model, "model_version": best.model_version,
            "valid_ndcg_at_10": float(best.valid_ndcg_at_10), "reason": reason}
