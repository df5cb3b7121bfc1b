"""The recommendations group: top-K per user for every trained model, scored as parts and written once for all.

Scoring every user with every model is the heaviest step after training, so it is split into parts: one per
(model, user bucket), users assigned to `user_buckets` buckets by a stable hash of their id. The asset is a graph:

    plan_recommendations (warehouse pool)   registry, version, skip-unchanged; snapshots the users' histories to
                                            partitions/recommendations/<version>/inputs.npz; one dynamic output per part
    score_recommendation_part (no pool)     one model × one bucket → <version>/<model>.bucket-<b>-of-<n>.parquet
    write_recommendations (warehouse pool)  every part file into recs.recommendations in one transaction

The parts read only files (the snapshot and the model's artifact), never the DuckDB file, so the multiprocess and
Celery executors run them side by side while the warehouse keeps its single writer. A part file is written under a
temporary name and renamed, so it exists only whole: a re-execution (or a later run of the same version) keeps the
parts already made and scores only the missing ones, so a killed part re-runs alone. The lists do not depend on the
executor or the number of buckets (tests/integration/test_partitioned_scoring.py).
"""

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from uuid import uuid4

import numpy as np
import pandas as pd
from dagster import (
    AssetIn,
    Config,
    DynamicOut,
    DynamicOutput,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    apply_freshness_policy,
    graph_asset,
    op,
)
from pydantic import Field

from lmrec_assets.automation import PUBLISHED_FRESHNESS
from lmrec_assets.lineage import create_views, record_artifact, reuse_if_unchanged, sha256_files, versioned_output
from lmrec_assets.models.assets import MODELS
from lmrec_assets.models.base import Recommender
from lmrec_assets.models.data import load_split_data
from lmrec_assets.models.ranking import batches, masked_scores, top_k
from lmrec_assets.models.registry import latest_versions, load_model
from lmrec_assets.resources import ArtifactStoreResource, WarehouseResource
from lmrec_assets.warehouse import WAREHOUSE_POOL, relation_metadata

CODE_VERSION = "3"  # 3: scored in parts (model × user bucket); 2: latest_recommendations = the newest run
VERSIONS_KEPT = 3  # older versions are pruned (table rows and part folders); lineage keeps the history
COLUMNS = ["model", "model_version", "run_id", "user_id", "rank", "item_id", "score", "generated_at"]


class RecommendationsConfig(Config):
    k: int = Field(20, ge=1, description="items per user and model")
    batch_size: int = Field(2048, ge=1, description="users scored at once within a part (memory: batch × items floats)")
    user_buckets: int = Field(
        1, ge=1, le=1024,
        description="user buckets per model: parts = models × buckets, run side by side on the multiprocess or "
        "Celery executor (the in-process executor runs them one after another)",
    )


@dataclass(frozen=True)
class Plan:
    version: str
    folder: str
    k: int
    user_buckets: int
    parts: int  # how many part files the write step must receive
    models: dict[str, tuple[str, float]]  # model → (version scored, valid NDCG@10), as the plan read the registry
    reused: dict | None  # the re-reported metadata when this version exists already (then no part is scored)


@dataclass(frozen=True)
class Part:
    model: str
    model_version: str
    artifact_path: str
    bucket: int
    n_buckets: int
    k: int
    batch_size: int
    inputs: str  # the histories snapshot
    path: str  # the part file this part writes


@dataclass(frozen=True)
class PartFile:
    model: str
    bucket: int
    path: str
    sha256: str
    rows: int
    scored: bool  # False: the file was there already (kept from an earlier attempt of this version)


def user_hash(user_ids: np.ndarray) -> np.ndarray:
    """A hash of each user id alone (a user's bucket is hash % buckets): the same in every process, run and executor."""
    return np.array([int.from_bytes(hashlib.sha256(str(u).encode()).digest()[:8], "big") for u in user_ids],
                    dtype=np.uint64)


def save_inputs(path: Path, user_ids: np.ndarray, item_ids: np.ndarray, histories: list[np.ndarray]) -> None:
    """What the parts read instead of the warehouse: ids and every user's whole history (flat + offsets, no pickle)."""
    offsets = np.cumsum([0] + [len(h) for h in histories]).astype(np.int64)
    flat = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64)
    tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp.npz")
    np.savez(tmp, user_ids=user_ids.astype(str), item_ids=item_ids.astype(str), offsets=offsets, flat=flat,
             user_hash=user_hash(user_ids))
    tmp.rename(path)


def load_inputs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """(user_ids, item_ids, user_hash, histories) as `save_inputs` wrote them."""
    with np.load(path, allow_pickle=False) as npz:
        offsets, flat = npz["offsets"], npz["flat"]
        histories = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        return npz["user_ids"], npz["item_ids"], npz["user_hash"], histories


def recommend_top_k(model: Recommender, users: np.ndarray, histories: list[np.ndarray], user_ids: np.ndarray,
                    item_ids: np.ndarray, k: int, batch_size: int) -> pd.DataFrame:
    """Top-K for `users` (dense indices), conditioned on (and masking) each user's whole history."""
    frames = []
    for batch in batches(users, batch_size):
        items, scores = top_k(masked_scores(model, batch, histories), k)
        frames.append(pd.DataFrame({
            "user_id": np.repeat(user_ids[batch], items.shape[1]),
            "rank": np.tile(np.arange(1, items.shape[1] + 1), len(batch)).astype(np.int32),
            "item_id": item_ids[items.ravel()],
            "score": scores.ravel().astype(np.float64),
        }))
    empty = pd.DataFrame({"user_id": pd.Series(dtype=str), "rank": pd.Series(dtype=np.int32),
                          "item_id": pd.Series(dtype=str), "score": pd.Series(dtype=np.float64)})
    return pd.concat(frames, ignore_index=True) if frames else empty


def sha256_file(path: Path) -> str:
    return sha256_files([path])[path.name]


@op(
    ins={"models": In(Nothing)},
    out={"plan": Out(Plan), "parts": DynamicOut(Optional[Part])},
    pool=WAREHOUSE_POOL,
    description="Which model versions to score and the users' histories, snapshotted for the parts.",
)
def plan_recommendations(context: OpExecutionContext, config: RecommendationsConfig, warehouse: WarehouseResource,
                         artifacts: ArtifactStoreResource):
    with warehouse.connect(read_only=True) as con:
        registry = latest_versions(con, list(MODELS))
        version = _version(registry, config.k)
        folder = Path(artifacts.data_dir) / "partitions" / "recommendations" / version
        if reused := reuse_if_unchanged(context, con, "recommendations", version, "same model versions"):
            yield Output(Plan(version, str(folder), config.k, config.user_buckets, 0, {}, dict(reused.metadata)), "plan")
            # One empty part: a fan-out with no part would skip the write step, and with it every asset downstream.
            yield DynamicOutput(None, mapping_key="unchanged", output_name="parts")
            return
        data = load_split_data(con)
    folder.mkdir(parents=True, exist_ok=True)
    inputs = folder / "inputs.npz"
    if not inputs.exists():  # a re-execution of this version keeps the snapshot its finished parts were scored from
        save_inputs(inputs, data.user_ids, data.item_ids, data.histories("test"))
    n = config.user_buckets
    models = {r.model: (r.model_version, r.valid_ndcg_at_10) for r in registry.itertuples()}
    yield Output(Plan(version, str(folder), config.k, n, len(registry) * n, models, None), "plan")
    for row in registry.itertuples():
        for bucket in range(n):
            part = Part(row.model, row.model_version, row.artifact_path, bucket, n, config.k, config.batch_size,
                        str(inputs), str(folder / f"{row.model}.bucket-{bucket:04d}-of-{n:04d}.parquet"))
            yield DynamicOutput(part, mapping_key=f"{row.model}_{bucket}", output_name="parts")
    context.log.info(f"recommendations {version}: {len(registry)} models × {n} user buckets")


@op(description="Top-K of one model for one bucket of users → a Parquet part file (reads files only, no warehouse).")
def score_recommendation_part(context: OpExecutionContext, part: Optional[Part]) -> Optional[PartFile]:
    if part is None:  # the version exists already: nothing to score
        return None
    path = Path(part.path)
    if path.exists():
        frame = pd.read_parquet(path, columns=["rank"])
        context.log.info(f"{part.model} bucket {part.bucket}/{part.n_buckets}: part kept from an earlier attempt")
        return PartFile(part.model, part.bucket, str(path), sha256_file(path), len(frame), scored=False)
    user_ids, item_ids, hashes, histories = load_inputs(Path(part.inputs))
    users = np.flatnonzero(hashes % np.uint64(part.n_buckets) == part.bucket)
    model = load_model(part.model, part.artifact_path)
    recs = recommend_top_k(model, users, histories, user_ids, item_ids, part.k, part.batch_size)
    recs.insert(0, "model_version", part.model_version)
    recs.insert(0, "model", part.model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid4().hex}.tmp")
    recs.to_parquet(tmp, index=False)
    tmp.rename(path)  # atomic: the part exists whole or not at all
    context.log.info(f"{part.model} {part.model_version} bucket {part.bucket}/{part.n_buckets}: "
                     f"{len(users)} users, {len(recs)} rows")
    return PartFile(part.model, part.bucket, str(path), sha256_file(path), len(recs), scored=True)


@op(
    out=Out(Nothing),
    pool=WAREHOUSE_POOL,
    description="Every part file into recs.recommendations in one transaction; prunes old versions.",
)
def write_recommendations(context: OpExecutionContext, plan: Plan, parts: list[Optional[PartFile]],
                          warehouse: WarehouseResource):
    if plan.reused is not None:
        yield versioned_output(plan.version, plan.reused)
        return
    parts = [part for part in parts if part is not None]
    if len(parts) != plan.parts:  # never publish a partial table
        raise RuntimeError(f"recommendations {plan.version}: {len(parts)} of {plan.parts} parts arrived")
    for part in parts:
        if sha256_file(Path(part.path)) != part.sha256:
            raise RuntimeError(f"part file {part.path} changed after it was scored")
    folder = Path(plan.folder)
    for stale in folder.glob(".*.tmp*"):  # left by a part killed mid-write; every part is whole by now
        stale.unlink(missing_ok=True)
    generated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    paths = sorted(part.path for part in parts)
    with warehouse.connect() as con:
        con.begin()
        con.execute("create schema if not exists recs")
        con.execute("""create table if not exists recs.recommendations (model varchar, model_version varchar,
                       run_id varchar, user_id varchar, rank integer, item_id varchar, score double,
                       generated_at timestamp)""")
        con.execute("delete from recs.recommendations where run_id = ?", [context.run_id])
        con.execute(
            f"insert into recs.recommendations ({', '.join(COLUMNS)}) "
            "select model, model_version, ?, user_id, rank, item_id, score, ? from read_parquet(?) order by all",
            [context.run_id, generated_at, paths],
        )
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
        # One lineage row; `files` holds every part file (and the histories snapshot) with its sha256.
        record_artifact(
            con, asset_key="recommendations", version=plan.version, run_id=context.run_id,
            code_version=CODE_VERSION, parent_keys=list(plan.models), path=folder,
            details={"k": plan.k, "user_buckets": plan.user_buckets,
                     "model_versions": {model: version for model, (version, _) in plan.models.items()},
                     "parts_scored": sum(p.scored for p in parts), "parts_kept": sum(not p.scored for p in parts)},
        )
        create_views(con)
        con.commit()
        metadata = relation_metadata(con, "recs.latest_recommendations")
    _prune(folder.parent, keep=VERSIONS_KEPT)
    yield versioned_output(plan.version, {
        **metadata,
        "outcome": "made",
        "models": MetadataValue.md(pd.DataFrame([(m, v, ndcg) for m, (v, ndcg) in plan.models.items()],
                                                columns=["model", "model_version", "valid_ndcg_at_10"]).to_markdown(index=False)),
        "parts": len(parts),
        "parts kept from an earlier attempt": sum(not p.scored for p in parts),
        "part files": MetadataValue.path(str(folder)),
    })


def _prune(root: Path, keep: int) -> None:
    """Keep the part folders of the newest `keep` versions (the table keeps as many)."""
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)


@graph_asset(
    key="recommendations",
    group_name="recommendations",
    ins={name: AssetIn(key=name, dagster_type=Nothing) for name in MODELS},
    kinds={"duckdb", "python", "parquet"},
    owners=["team:ml"],
    description="Top-K items per user for every model (seen items excluded), scored in parts (model × user bucket, "
    "run config `user_buckets`) that run side by side on the multiprocess or Celery executor → "
    "recs.recommendations; recs.latest_recommendations shows the newest run (every model served now; a skipped "
    "model is not in it).",
    code_version=CODE_VERSION,
)
def _recommendations(**models):
    plan, parts = plan_recommendations(models=list(models.values()))
    return write_recommendations(plan, parts.map(score_recommendation_part).collect())


# graph_asset takes no freshness_policy argument; the spec gets it here.
recommendations = _recommendations.map_asset_specs(lambda spec: apply_freshness_policy(spec, PUBLISHED_FRESHNESS))


def _version(registry: pd.DataFrame, k: int) -> str:
    """Recommendations are a function of the model versions and K (not of the executor or the buckets)."""
    return hashlib.sha256(f"{sorted(zip(registry['model'], registry['model_version']))}|{k}".encode()).hexdigest()[:16]
