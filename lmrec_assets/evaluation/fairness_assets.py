"""The fairness assets: who each model serves well, what it shows, how the models that read a prompt react when it names
a sensitive attribute, and an exposure-aware re-ranking that trades a little accuracy for a wider spread of items.

- `fairness_metrics` → evaluation.fairness_metrics (long format) and the evaluation.fairness_summary view;
- `fairness_gaps_within_threshold` (asset check) compares the summary with configurable thresholds;
- `exposure_reranking` → evaluation.mitigation_tradeoff: the accuracy / exposure / group-gap trade-off of `rerank`
  over λ, with λ chosen on the valid split and reported on the test split.

The metric functions live in `fairness.py` and `rerank.py`; this module only scores the saved models and wires the
results into tables. (No `from __future__ import annotations` here: Dagster must resolve the Config annotations.)
"""

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from lmrec_assets.evaluation.fairness import (
    catalogue_coverage,
    counterfactual_prompt,
    exposure_gini,
    jaccard_at_k,
    long_tail_share,
    popularity_lift,
    prag_at_k,
    serp_at_k,
    snsr_snsv,
    user_group_metrics,
)
from lmrec_assets.evaluation.quality import SEVERITY_ENV_PREFIX
from lmrec_assets.evaluation.quality import _read as read_warehouse  # read-only unless this process holds it open
from lmrec_assets.models.ranking import batches, mask_seen, masked_scores, target_ranks, top_k
from lmrec_assets.evaluation.rerank import rerank
from lmrec_assets.lineage import latest_artifacts, record_artifact, reuse_if_unchanged
from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.base import PromptRecommender, Recommender, Split, SplitData
from lmrec_assets.models.cards import fairness_section, set_section
from lmrec_assets.models.data import load_split_data
from lmrec_assets.models.registry import latest_versions, load_model
from lmrec_assets.resources import WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, frame_metadata, replace_rows

CODE_VERSION = "2"  # exposure_reranking (and fairness_metrics up to 2); 2: log exposure penalty, 300 candidates, denser λ grid
METRICS_CODE_VERSION = "3"  # fairness_metrics; 3: counterfactual prompts for every model that reads one
USER_ATTRIBUTES = ("gender", "age_bracket", "occupation", "activity_level")  # columns of marts.dim_users
COUNTERFACTUAL_ATTRIBUTES = ("gender", "age_bracket", "occupation")  # those with a template in fairness.py
# The models that read a text prompt (base.PromptRecommender), whose prompt can state an attribute: zero_shot_prompt,
# lm_finetune, lm_prompt_tuning, generative_p5, lm_rerank. Every registered model that implements the protocol is probed.
COUNTERFACTUAL_MODELS = tuple(name for name, (cls, _) in MODELS.items() if issubclass(cls, PromptRecommender))
USER_KS = (10, 20)
ITEM_KS = (10, 20)
COUNTERFACTUAL_KS = (10, 20)
SIMILARITIES: dict[str, Callable[[Sequence, Sequence, int], float]] = {
    "jaccard": jaccard_at_k, "serp": serp_at_k, "prag": prag_at_k,
}
CATALOGUE = "catalogue"  # `attribute` of item-side rows: they describe the whole catalogue, not a user group
ALL = "all"  # `group` of rows that summarise every group of an attribute
FAIRNESS_COLUMNS = ["model", "model_version", "run_id", "split", "side", "attribute", "group", "metric", "value",
                    "n_users", "k", "evaluated_at"]
TRADEOFF_COLUMNS = ["model", "model_version", "run_id", "split", "lam", "k", "ndcg", "hr", "ndcg_cost",
                    "exposure_gini", "gini_change", "catalogue_coverage", "long_tail_share", "popularity_lift",
                    "worst_gap", "worst_gap_attribute", "gap_change",
                    *[f"gap_{a}" for a in USER_ATTRIBUTES], "selected", "n_users", "n_candidates", "evaluated_at"]


# --- user side --------------------------------------------------------------------------------------------------------


def user_attributes(con: duckdb.DuckDBPyConnection, user_ids: np.ndarray) -> pd.DataFrame:
    """USER_ATTRIBUTES of every user, row u = dense user index u (NULL where the source has no value)."""
    frame = con.execute(f"select user_id, {', '.join(USER_ATTRIBUTES)} from marts.dim_users").df()
    return frame.set_index("user_id").reindex(user_ids).reset_index(drop=True)[list(USER_ATTRIBUTES)]


def attributes_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A content hash of the users' attributes: model versions do not cover them, and the group metrics do."""
    row = con.execute(f"select count(*), bit_xor(hash(user_id, {', '.join(USER_ATTRIBUTES)})) from marts.dim_users").fetchone()
    return f"{row[0]}-{row[1] or 0:016x}"


def content_version(*parts: object) -> str:
    """Same inputs → same version: what lets a refresh without changes skip the asset."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def large_groups_only(groups: pd.DataFrame, min_users: int) -> pd.DataFrame:
    """`groups` with the values held by fewer than `min_users` rows set to unknown: a group of five users has an
    NDCG of 0 or of a lucky hit, so its "gap" says nothing. Unknown users are left out of that attribute only."""
    kept = groups.copy()
    for column in kept.columns:
        counts = kept[column].map(kept[column].value_counts())
        kept[column] = kept[column].where(counts >= min_users)
    return kept


def range_p_value(values: np.ndarray, labels: np.ndarray, n_permutations: int, rng: np.random.Generator) -> float:
    """Permutation p-value of the gap (max - min group mean of `values`): the share of random relabellings of the
    users (group sizes kept) whose gap is at least the observed one. The statistic is the gap over all groups, so
    picking the best and worst group is part of the null distribution (no multiple-comparison bias)."""
    codes, uniques = pd.factorize(labels)
    n_groups = len(uniques)
    counts = np.bincount(codes, minlength=n_groups)

    def gaps(code_rows: np.ndarray) -> np.ndarray:
        offsets = code_rows + n_groups * np.arange(len(code_rows))[:, None]
        sums = np.bincount(offsets.ravel(), weights=np.tile(values, len(code_rows)), minlength=len(code_rows) * n_groups)
        means = sums.reshape(len(code_rows), n_groups) / counts
        return means.max(axis=1) - means.min(axis=1)

    observed = gaps(codes[None, :])[0]
    null = gaps(rng.permuted(np.tile(codes, (n_permutations, 1)), axis=1))
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations))


def user_side_rows(ranks: np.ndarray, groups: pd.DataFrame, min_group_users: int, n_permutations: int, seed: int) -> pd.DataFrame:
    """Per-group HR/NDCG at USER_KS for every group, and per attribute the gap summary over the large groups.

    Summary rows: metric `<m>_gap` (max - min), `<m>_ratio` (min / max) and `ndcg_gap_p_value`, with `group` = the
    worst large group and `n_users` = the users in the large groups.
    """
    rows = []
    large = large_groups_only(groups, min_group_users)
    for k in USER_KS:
        table = user_group_metrics(ranks, groups, k=k)
        for r in table.itertuples():
            rows.append({"attribute": r.attribute, "group": r.group, "metric": r.metric.split("@")[0],
                         "value": r.value, "n_users": r.n_users, "k": k})
        summary = user_group_metrics(ranks, large, k=k)
        for (attribute, metric), part in summary.groupby(["attribute", "metric"]):
            if len(part) < 2:
                continue  # one large group: nothing to compare
            name, first = metric.split("@")[0], part.iloc[0]
            common = {"attribute": attribute, "group": first.worst_group, "n_users": int(part.n_users.sum()), "k": k}
            rows.append({**common, "metric": f"{name}_gap", "value": first.difference})
            rows.append({**common, "metric": f"{name}_ratio", "value": first.ratio})
            if name == "ndcg":
                known = large[attribute].notna().to_numpy()
                per_user = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
                p_value = range_p_value(per_user[known], large[attribute][known].astype(str).to_numpy(),
                                        n_permutations, np.random.default_rng(seed))
                rows.append({**common, "metric": "ndcg_gap_p_value", "value": p_value})
    return pd.DataFrame(rows).assign(side="user")


def held_out_ranks(model: Recommender, data: SplitData, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Test users and the full-ranking rank of their held-out item, exactly as `ranking.evaluate` computes them."""
    users = data.evaluation_users("test")
    histories = data.histories(data.conditioning("test"))
    ranks = [target_ranks(masked_scores(model, chunk, histories), data.test_items[chunk]) for chunk in batches(users, batch_size)]
    return users, np.concatenate(ranks) if ranks else np.array([], dtype=np.int64)


# --- item side --------------------------------------------------------------------------------------------------------


def train_item_counts(data: SplitData) -> np.ndarray:
    items = np.concatenate(data.train_sequences) if data.train_sequences else np.array([], dtype=np.int64)
    return np.bincount(items, minlength=data.n_items)


def recommendation_matrix(recs: pd.DataFrame, data: SplitData) -> tuple[np.ndarray, np.ndarray]:
    """One model's recommendation rows as (dense user indices, users × K dense item indices in rank order)."""
    recs = recs.sort_values(["user_id", "rank"])
    users = pd.Index(data.user_ids).get_indexer(recs["user_id"].drop_duplicates())
    items = pd.Index(data.item_ids).get_indexer(recs["item_id"]).reshape(len(users), -1)
    return users, items


def item_side_metrics(recommended: np.ndarray, histories: list[np.ndarray], counts: np.ndarray) -> dict[str, float]:
    """Exposure Gini, coverage, popularity lift and long-tail share of users × k lists (`histories` row-aligned)."""
    return {
        "exposure_gini": exposure_gini(recommended, len(counts)),
        "catalogue_coverage": catalogue_coverage(recommended, len(counts)),
        "popularity_lift": popularity_lift(recommended, counts, histories),
        "long_tail_share": long_tail_share(recommended, counts),
    }


def item_side_rows(recs: pd.DataFrame, data: SplitData, counts: np.ndarray) -> pd.DataFrame:
    """Item-side metrics of the published lists (conditioned on each user's whole history) at ITEM_KS."""
    users, items = recommendation_matrix(recs, data)
    full = data.histories("test")
    rows = []
    for k in ITEM_KS:
        if items.shape[1] < k:
            continue  # the published lists are shorter than k
        metrics = item_side_metrics(items[:, :k], [full[u] for u in users], counts)
        rows += [{"metric": m, "value": v, "k": k} for m, v in metrics.items()]
    return pd.DataFrame(rows).assign(side="item", attribute=CATALOGUE, group=ALL, n_users=len(users))


# --- counterfactual prompts (FaiRLLM) -----------------------------------------------------------------------------------


def counterfactual_rows(
    model: PromptRecommender, data: SplitData, attributes: pd.DataFrame, users: np.ndarray, batch_size: int = 1024
) -> tuple[pd.DataFrame, int]:
    """FaiRLLM on a model that reads a prompt: every sampled test user's prompt (`model.user_prompts`, conditioned
    on train + valid as at test time) is re-stated once per value of each sensitive attribute ("As a female viewer, a
    viewer who recently watched ..."), scored by `model.score_prompts` with seen items masked, and each top-K is
    compared with the neutral prompt's (the neutral scores are exactly `model.score`'s).

    Rows: per (attribute, value, similarity, K) the mean similarity over the users; per (attribute, similarity, K)
    `snsr_<similarity>` and `snsv_<similarity>` with group = ALL. Every user gets every value, whatever their own.
    Also returns how many prompts were scored (users × (1 + values)): the cost of the probe.
    """
    histories = data.histories(data.conditioning("test"))
    neutral = model.user_prompts(users, histories)
    variants = [(a, v) for a in COUNTERFACTUAL_ATTRIBUTES for v in sorted(attributes[a].dropna().astype(str).unique())]
    prompts = neutral + [counterfactual_prompt(p, a, v) for a, v in variants for p in neutral]
    rows_users = np.tile(users, 1 + len(variants))  # row j reads prompts[j]: block 0 neutral, then one per value
    max_k = max(COUNTERFACTUAL_KS)
    blocks = []
    for start in range(0, len(prompts), batch_size):
        chunk = rows_users[start : start + batch_size]
        scores = np.asarray(model.score_prompts(chunk, histories, prompts[start : start + batch_size]), dtype=np.float32)
        if not np.isfinite(scores).all():
            raise ValueError(f"{model.name} produced non-finite scores for counterfactual prompts")
        blocks.append(top_k(mask_seen(scores, chunk, histories), max_k)[0])
    top_lists = np.concatenate(blocks) if blocks else np.zeros((0, max_k), dtype=np.int64)

    n = len(users)
    reference = top_lists[:n]
    rows = []
    for index, (attribute, value) in enumerate(variants):
        lists = top_lists[n * (index + 1) : n * (index + 2)]
        for name, similarity in SIMILARITIES.items():
            for k in COUNTERFACTUAL_KS:
                mean = np.mean([similarity(list(a), list(b), k) for a, b in zip(reference, lists)])
                rows.append({"attribute": attribute, "group": value, "metric": name, "k": k, "value": float(mean)})
    per_value = pd.DataFrame(rows)
    for (attribute, name, k), part in per_value.groupby(["attribute", "metric", "k"]):
        snsr, snsv = snsr_snsv(dict(zip(part["group"], part["value"])))
        rows.append({"attribute": attribute, "group": ALL, "metric": f"snsr_{name}", "k": k, "value": snsr})
        rows.append({"attribute": attribute, "group": ALL, "metric": f"snsv_{name}", "k": k, "value": snsv})
    return pd.DataFrame(rows).assign(side="counterfactual", n_users=n), len(prompts)


def counterfactual_sample(data: SplitData, n_users: int, seed: int) -> np.ndarray:
    """A fixed random sample of test users (all of them when there are fewer), sorted."""
    users = data.evaluation_users("test")
    if len(users) <= n_users:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=n_users, replace=False))


# --- the fairness_metrics asset and the summary view ---------------------------------------------------------------


class FairnessConfig(Config):
    min_group_users: int = 20  # gaps compare only groups with at least this many test users
    n_permutations: int = 1000  # for the p-value of each attribute's NDCG@10 gap
    counterfactual_users: int = 100  # test users sampled for the counterfactual prompts (cost ~ users × values)
    seed: int = 7
    batch_size: int = 1024


def _summary_view_sql() -> str:
    """evaluation.fairness_summary: one row per model from its latest evaluation, at K = 10. The columns come from the
    constant attribute lists above (never from data), one `max(...) filter (...)` per column."""

    def pick(side: str, attribute: str, metric: str, column: str = "value") -> str:
        return f"max({column}) filter (where side = '{side}' and attribute = '{attribute}' and metric = '{metric}' and k = 10)"

    columns = []
    for a in USER_ATTRIBUTES:
        columns += [f"{pick('user', a, 'ndcg_gap')} as {a}_ndcg_gap_at_10",
                    f"{pick('user', a, 'ndcg_ratio')} as {a}_ndcg_ratio_at_10",
                    f"{pick('user', a, 'ndcg_gap_p_value')} as {a}_gap_p_value",
                    f"{pick('user', a, 'ndcg_gap', column=chr(34) + 'group' + chr(34))} as {a}_worst_group"]
    columns += [f"{pick('item', CATALOGUE, m)} as {m}_at_10"
                for m in ("exposure_gini", "catalogue_coverage", "popularity_lift", "long_tail_share")]
    for a in COUNTERFACTUAL_ATTRIBUTES:
        columns += [f"{pick('counterfactual', a, 'snsr_jaccard')} as {a}_snsr_jaccard_at_10",
                    f"{pick('counterfactual', a, 'snsv_jaccard')} as {a}_snsv_jaccard_at_10"]
    separator = ",\n            "
    return f"""
        create or replace view evaluation.fairness_summary as
        with latest as (
            select * from evaluation.fairness_metrics
            qualify evaluated_at = max(evaluated_at) over (partition by model)
        )
        select
            model, any_value(model_version) as model_version, max(evaluated_at) as evaluated_at,
            {separator.join(columns)}
        from latest
        group by model
        order by model
    """


SUMMARY_VIEW_SQL = _summary_view_sql()


@asset(
    group_name="evaluation",
    deps=[*MODELS, "recommendations"],
    kinds={"duckdb", "python"},
    owners=["team:ml"],
    description="Fairness of every model → evaluation.fairness_metrics (long format) + evaluation.fairness_summary "
    "(one row per model). User side: HR/NDCG@10,20 per gender, age bracket, occupation and activity level on the "
    "test split, with each attribute's gap, ratio and permutation p-value over groups of ≥ min_group_users. Item "
    "side: exposure Gini, coverage, popularity lift and long-tail share of the published top-10/20 "
    "(split = 'serving'). Counterfactual (FaiRLLM): for every model that reads a prompt "
    f"({', '.join(COUNTERFACTUAL_MODELS)}), how its top-10/20 moves when the prompt names a gender, age or "
    "occupation (Jaccard, SERP*, PRAG* per value; SNSR/SNSV per attribute), on one sample of test users.",
    pool=WAREHOUSE_POOL,
    code_version=METRICS_CODE_VERSION,
)
def fairness_metrics(context: AssetExecutionContext, config: FairnessConfig, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        registry = latest_versions(con, list(MODELS))
        recs_version = latest_artifacts(con, ["recommendations"])["version"].tolist()
        version = content_version(METRICS_CODE_VERSION, sorted(zip(registry["model"], registry["model_version"])),
                                  config.model_dump(), recs_version, attributes_fingerprint(con))
        if reused := reuse_if_unchanged(context, con, "fairness_metrics", version, "same models and lists"):
            return reused
        data = load_split_data(con)
        attributes = user_attributes(con, data.user_ids)
        recs = con.execute(
            "select model, model_version, user_id, rank, item_id from recs.latest_recommendations"
        ).df()
    counts = train_item_counts(data)
    sample = counterfactual_sample(data, config.counterfactual_users, config.seed)
    evaluated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    frames, probes = [], {}
    for row in registry.itertuples():
        model = load_model(row.model, row.artifact_path)
        users, ranks = held_out_ranks(model, data, config.batch_size)
        groups = attributes.iloc[users].reset_index(drop=True)
        parts = [user_side_rows(ranks, groups, config.min_group_users, config.n_permutations, config.seed).assign(split="test")]
        own_recs = recs[(recs.model == row.model) & (recs.model_version == row.model_version)]
        if own_recs.empty:
            context.log.warning(f"{row.model} {row.model_version}: no published recommendations, no item-side metrics")
        else:
            parts.append(item_side_rows(own_recs, data, counts).assign(split="serving"))
        if isinstance(model, PromptRecommender):
            started = time.perf_counter()
            rows, n_prompts = counterfactual_rows(model, data, attributes, sample, config.batch_size)
            probes[row.model] = {"prompts": n_prompts, "seconds": round(time.perf_counter() - started, 1)}
            context.log.info(f"{row.model}: {n_prompts} counterfactual prompts for {len(sample)} users in "
                             f"{probes[row.model]['seconds']} s")
            parts.append(rows.assign(split="test"))
        frames.append(pd.concat(parts, ignore_index=True).assign(
            model=row.model, model_version=row.model_version, run_id=context.run_id, evaluated_at=evaluated_at,
        ))
        context.log.info(f"{row.model} {row.model_version}: fairness metrics done")
    table = pd.concat(frames, ignore_index=True)[FAIRNESS_COLUMNS]
    table["n_users"] = table["n_users"].astype("int64")
    table["k"] = table["k"].astype("int64")

    with warehouse.connect() as con:
        con.begin()
        for row in registry.itertuples():
            replace_rows(con, "evaluation.fairness_metrics", table[table.model == row.model],
                         where="model = ? and model_version = ?", params=(row.model, row.model_version))
        con.execute(SUMMARY_VIEW_SQL)
        summary = con.execute("select * from evaluation.fairness_summary order by model").df()
        cards = {row.model: set_section(row.artifact_path, "fairness", fairness_section(summary[summary.model == row.model].iloc[0]))
                 for row in registry.itertuples() if (summary.model == row.model).any()}
        record_artifact(
            con, asset_key="fairness_metrics", version=version, run_id=context.run_id,
            code_version=METRICS_CODE_VERSION, parent_keys=[*registry["model"], "recommendations"],
            details={"model_versions": dict(zip(registry["model"], registry["model_version"])),
                     "min_group_users": config.min_group_users, "counterfactual_users": len(sample),
                     "model_card_sha256": {model: card[1] for model, card in cards.items() if card is not None}},
        )
        con.commit()

    return MaterializeResult(data_version=DataVersion(version), metadata={
        **frame_metadata(table, preview_rows=0),
        "outcome": "computed",
        "summary": MetadataValue.md(summary.drop(columns=["evaluated_at"]).round(4).T.to_markdown()),
        "counterfactual_sample": MetadataValue.md(
            f"Counterfactual prompts were evaluated on a fixed random sample of {len(sample)} of "
            f"{len(data.evaluation_users('test'))} test users (`counterfactual_users` = {config.counterfactual_users}, "
            f"seed {config.seed}), for every model that reads a prompt: {', '.join(probes) or 'none registered'}."
        ),
        "counterfactual_prompts": sum(p["prompts"] for p in probes.values()),
        "counterfactual_cost": MetadataValue.md(
            pd.DataFrame([{"model": m, **p} for m, p in probes.items()], columns=["model", "prompts", "seconds"])
            .to_markdown(index=False)),
        "min_group_users": config.min_group_users,
    })


# --- the threshold check ------------------------------------------------------------------------------------------------

CHECK_NAME = "fairness_gaps_within_threshold"
THRESHOLD_ENV_PREFIX = "LMREC_FAIRNESS_"
# 1 - (worst large group's NDCG@10) / (best large group's): 0.25 = the worst group gets a quarter less. Gender is
# held to a tighter bound than brackets with many small groups, where some spread is expected.
DEFAULT_MAX_NDCG_RATIO_GAP = {"gender": 0.25, "age_bracket": 0.5, "occupation": 0.5, "activity_level": 0.5}
DEFAULT_MAX_EXPOSURE_GINI = 0.95
DEFAULT_SIGNIFICANCE = 0.05


class FairnessThresholdsConfig(Config):
    """Thresholds of `fairness_gaps_within_threshold`. Unset (empty / None) fields come from the environment —
    LMREC_FAIRNESS_MAX_NDCG_RATIO_GAP_<ATTRIBUTE>, LMREC_FAIRNESS_MAX_EXPOSURE_GINI, LMREC_FAIRNESS_SIGNIFICANCE,
    LMREC_CHECK_SEVERITY_FAIRNESS_GAPS_WITHIN_THRESHOLD — and then from the defaults in this module."""

    max_ndcg_ratio_gap: dict[str, float] = {}  # per attribute
    max_exposure_gini: float | None = None  # of the published top-10
    significance: float | None = None  # a gap fails only if its permutation p-value is at most this (1 = always)
    exempt_models: list[str] = ["popularity"]  # the non-personalised floor concentrates exposure by design
    severity: str | None = None  # WARN (default) or ERROR


def _setting(value: float | None, env: str, default: float) -> float:
    if value is not None:
        return float(value)
    return float(os.environ[env]) if env in os.environ else default


def resolved_thresholds(config: FairnessThresholdsConfig) -> tuple[dict[str, float], float, float, AssetCheckSeverity]:
    """(max NDCG ratio gap per attribute, max exposure Gini, significance, severity): run config > env > default."""
    gaps = {a: _setting(config.max_ndcg_ratio_gap.get(a), f"{THRESHOLD_ENV_PREFIX}MAX_NDCG_RATIO_GAP_{a.upper()}", d)
            for a, d in DEFAULT_MAX_NDCG_RATIO_GAP.items()}
    gini = _setting(config.max_exposure_gini, f"{THRESHOLD_ENV_PREFIX}MAX_EXPOSURE_GINI", DEFAULT_MAX_EXPOSURE_GINI)
    significance = _setting(config.significance, f"{THRESHOLD_ENV_PREFIX}SIGNIFICANCE", DEFAULT_SIGNIFICANCE)
    severity = config.severity or os.environ.get(f"{SEVERITY_ENV_PREFIX}{CHECK_NAME.upper()}", "WARN")
    try:
        return gaps, gini, significance, AssetCheckSeverity[severity.strip().upper()]
    except KeyError:
        raise ValueError(f"fairness check severity {severity!r}: use WARN or ERROR") from None


def threshold_outcomes(summary: pd.DataFrame, config: FairnessThresholdsConfig) -> pd.DataFrame:
    """One row per (model, measure): observed value, threshold, p-value and whether it passes."""
    gaps, max_gini, significance, _ = resolved_thresholds(config)
    rows = []
    for r in summary.to_dict("records"):
        if r["model"] in config.exempt_models:
            continue
        for attribute, limit in gaps.items():
            ratio, p_value = r[f"{attribute}_ndcg_ratio_at_10"], r[f"{attribute}_gap_p_value"]
            if pd.isna(ratio):
                continue  # fewer than two groups large enough to compare
            observed = 1.0 - ratio
            rows.append({"model": r["model"], "measure": f"NDCG@10 ratio gap, {attribute}",
                         "worst_group": r[f"{attribute}_worst_group"], "observed": observed, "threshold": limit,
                         "p_value": p_value, "passed": bool(observed <= limit or p_value > significance)})
        gini = r["exposure_gini_at_10"]
        if not pd.isna(gini):
            rows.append({"model": r["model"], "measure": "exposure Gini@10", "worst_group": None, "observed": gini,
                         "threshold": max_gini, "p_value": None, "passed": bool(gini <= max_gini)})
    return pd.DataFrame(rows, columns=["model", "measure", "worst_group", "observed", "threshold", "p_value", "passed"])


@asset_check(
    asset="fairness_metrics",
    pool=WAREHOUSE_POOL,
    description="Each model's NDCG@10 ratio gap per user attribute (large groups only; a gap fails only when its "
    "permutation p-value is significant) and exposure Gini@10 stay within configurable thresholds (WARN by default).",
)
def fairness_gaps_within_threshold(config: FairnessThresholdsConfig, warehouse: WarehouseResource) -> AssetCheckResult:
    gaps, max_gini, significance, severity = resolved_thresholds(config)
    with read_warehouse(warehouse) as con:
        summary = con.execute("select * from evaluation.fairness_summary").df()
    outcomes = threshold_outcomes(summary, config)
    failed = outcomes[~outcomes.passed]
    return AssetCheckResult(
        passed=bool(failed.empty),
        severity=severity,
        metadata={
            "outcomes": MetadataValue.md(outcomes.round(4).to_markdown(index=False)),
            "failed": ", ".join(f"{r.model}: {r.measure}" for r in failed.itertuples()) or "none",
            "n_failed": len(failed),
            "thresholds": MetadataValue.json({"max_ndcg_ratio_gap": gaps, "max_exposure_gini": max_gini,
                                              "significance": significance, "exempt_models": config.exempt_models}),
        },
    )


fairness_checks: list[AssetChecksDefinition] = [fairness_gaps_within_threshold]


# --- the mitigation: exposure-aware re-ranking --------------------------------------------------------------------------


class ExposureRerankingConfig(Config):
    # Denser where the trade-off bends: on ML-100K the exposure Gini falls fastest between λ 0.4 and 0.5.
    lambdas: list[float] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.42, 0.44, 0.46, 0.48, 0.5, 0.6, 0.7]
    n_candidates: int = 300  # each user's best unseen items that `rerank` may choose from (a wider pool spreads more)
    k: int = 10
    max_ndcg_cost: float = 0.05  # the chosen λ is the largest whose valid NDCG@k is at most 5% below λ = 0
    min_group_users: int = 20
    batch_size: int = 1024


def candidates(model: Recommender, data: SplitData, split: Split, n_candidates: int, batch_size: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, users × C candidate items best first, their scores) for `split`'s users, seen items excluded.

    C is capped by the fewest unseen items any user has, so every candidate score is finite."""
    users = data.evaluation_users(split)
    histories = data.histories(data.conditioning(split))
    fewest_unseen = data.n_items - max((len(np.unique(histories[u])) for u in users), default=0)
    size = min(n_candidates, fewest_unseen)
    items, scores = [], []
    for chunk in batches(users, batch_size):
        best, values = top_k(masked_scores(model, chunk, histories), size)
        items.append(best)
        scores.append(values)
    return users, np.concatenate(items), np.concatenate(scores)


def tradeoff_rows(
    items: np.ndarray, scores: np.ndarray, targets: np.ndarray, groups: pd.DataFrame, histories: list[np.ndarray],
    counts: np.ndarray, config: ExposureRerankingConfig,
) -> pd.DataFrame:
    """Accuracy, exposure and group gaps of the re-ranked top-k for every λ (rows aligned: users of one split)."""
    large = large_groups_only(groups, config.min_group_users)
    k, rows = config.k, []
    for lam in config.lambdas:
        lists = rerank(items, scores, counts, k, lam)
        hits = lists == targets[:, None]
        ranks = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, k + 1)  # k + 1: the target is not in the list
        gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
        by_group = user_group_metrics(ranks, large, k=k)
        by_group = by_group[by_group.metric == f"ndcg@{k}"]
        gaps = {a: part.difference.iloc[0] for a, part in by_group.groupby("attribute") if len(part) >= 2}
        worst = max(gaps, key=gaps.get) if gaps else None
        rows.append({
            "lam": lam, "k": k, "ndcg": gains.mean(), "hr": (ranks <= k).mean(),
            **item_side_metrics(lists, histories, counts),
            "worst_gap": gaps[worst] if worst else np.nan, "worst_gap_attribute": worst,
            **{f"gap_{a}": gaps.get(a, np.nan) for a in USER_ATTRIBUTES},
            "n_users": len(lists), "n_candidates": items.shape[1],
        })
    return pd.DataFrame(rows)


def choose_lambda(table: pd.DataFrame, max_ndcg_cost: float) -> pd.DataFrame:
    """Relative changes against λ = 0 per split, and `selected`: the largest λ within the NDCG cost on *valid*."""

    def relative(column: str, part: pd.DataFrame) -> pd.Series:
        base = part.loc[part.lam == 0, column].iloc[0]
        return part[column] / base - 1.0 if base > 0 else pd.Series(0.0, index=part.index)

    table = table.copy()
    for split in table.split.unique():
        part = table[table.split == split]
        table.loc[part.index, "ndcg_cost"] = -relative("ndcg", part)
        table.loc[part.index, "gini_change"] = relative("exposure_gini", part)
        table.loc[part.index, "gap_change"] = relative("worst_gap", part)
    valid = table[table.split == "valid"]
    chosen = valid.loc[valid.ndcg_cost <= max_ndcg_cost + 1e-12, "lam"].max()
    table["selected"] = table.lam == chosen
    return table


@asset(
    group_name="evaluation",
    deps=list(MODELS),
    kinds={"duckdb", "python"},
    owners=["team:ml"],
    description="Mitigation: each model's top-100 unseen candidates re-ranked by `rerank` (relevance vs running "
    "item exposure) for λ ∈ {0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9} → evaluation.mitigation_tradeoff: NDCG@10, exposure "
    "Gini, coverage, long-tail share, popularity lift and the worst user-group NDCG@10 gap per λ, on the valid split "
    "(conditioned on train) and the test split (conditioned on train + valid). λ is chosen on valid — the largest "
    "with ≤ 5% NDCG@10 cost — and `selected` marks it on both splits; read the test rows for the outcome.",
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
)
def exposure_reranking(context: AssetExecutionContext, config: ExposureRerankingConfig, warehouse: WarehouseResource) -> MaterializeResult:
    if 0.0 not in config.lambdas:
        raise ValueError("lambdas must include 0 (the unmitigated baseline every change is measured against)")
    with warehouse.connect(read_only=True) as con:
        registry = latest_versions(con, list(MODELS))
        version = content_version(CODE_VERSION, sorted(zip(registry["model"], registry["model_version"])),
                                  config.model_dump(), attributes_fingerprint(con))
        if reused := reuse_if_unchanged(context, con, "exposure_reranking", version, "same model versions"):
            return reused
        data = load_split_data(con)
        attributes = user_attributes(con, data.user_ids)
    counts = train_item_counts(data)
    evaluated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    frames = []
    for row in registry.itertuples():
        model = load_model(row.model, row.artifact_path)
        per_split = []
        for split in ("valid", "test"):
            users, items, scores = candidates(model, data, split, config.n_candidates, config.batch_size)
            histories = data.histories(data.conditioning(split))
            per_split.append(tradeoff_rows(
                items, scores, data.targets(split)[users], attributes.iloc[users].reset_index(drop=True),
                [histories[u] for u in users], counts, config,
            ).assign(split=split))
        frames.append(choose_lambda(pd.concat(per_split, ignore_index=True), config.max_ndcg_cost).assign(
            model=row.model, model_version=row.model_version, run_id=context.run_id, evaluated_at=evaluated_at,
        ))
        context.log.info(f"{row.model} {row.model_version}: trade-off over {len(config.lambdas)} λ done")
    table = pd.concat(frames, ignore_index=True)[TRADEOFF_COLUMNS]

    with warehouse.connect() as con:
        con.begin()
        for row in registry.itertuples():
            replace_rows(con, "evaluation.mitigation_tradeoff", table[table.model == row.model],
                         where="model = ? and model_version = ?", params=(row.model, row.model_version))
        record_artifact(
            con, asset_key="exposure_reranking", version=version, run_id=context.run_id,
            code_version=CODE_VERSION, parent_keys=registry["model"],
            details={"model_versions": dict(zip(registry["model"], registry["model_version"])),
                     **config.model_dump()},
        )
        con.commit()

    chosen = table[table.selected & (table.split == "test")]
    return MaterializeResult(data_version=DataVersion(version), metadata={
        **frame_metadata(table, preview_rows=0),
        "outcome": "computed",
        "chosen_lambda_test": MetadataValue.md(chosen[
            ["model", "lam", "ndcg", "ndcg_cost", "exposure_gini", "gini_change", "worst_gap", "gap_change"]
        ].round(4).to_markdown(index=False)),
        "tradeoff": MetadataValue.md(table.drop(columns=["model_version", "run_id", "evaluated_at"]).round(4)
                                     .to_markdown(index=False)),
    })
