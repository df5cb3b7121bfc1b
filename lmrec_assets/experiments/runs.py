"""Train one model of the registry on a (sub)split and measure it with the one evaluator (`models.ranking`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec_assets.models.ranking import evaluate
from lmrec_assets.experiments.profiles import ModelSetup
from lmrec_assets.memory import peak_rss_mib
from lmrec_assets.models.base import FitReport, Recommender, SplitData

METRIC = "ndcg@10"


def model_class(setup: ModelSetup) -> type[Recommender]:
    from lmrec_assets.models.assets import MODELS  # the registry module imports every model; keep it lazy

    return MODELS[setup.registry][0]


def build(setup: ModelSetup, seed: int, cls: type[Recommender] | None = None) -> Recommender:
    cls = cls or model_class(setup)
    return cls(cls.Params(**setup.params | {"seed": seed}))


@dataclass
class Fitted:
    model: Recommender
    report: FitReport
    fit_seconds: float


def fit(setup: ModelSetup, data: SplitData, seed: int, cls: type[Recommender] | None = None,
        fitted: dict[str, Recommender] | None = None) -> Fitted:
    """Fit on `data.train_sequences` (selection on valid only, inside the model's own fit). `fitted`: models already
    trained on the same data, by registry name; a model that reads models (lm_rerank) gets those it names as
    retrievers, so a two-stage model at 5% of the users reranks candidates of retrievers trained on those 5%."""
    model = build(setup, seed, cls)
    if hasattr(model, "attach_retrievers"):
        model.attach_retrievers({n: m for n, m in (fitted or {}).items() if n in type(model).upstream})
    started = time.perf_counter()
    report = model.fit(data)
    return Fitted(model, report, time.perf_counter() - started)


def held_out_metrics(model: Recommender, data: SplitData, users: np.ndarray | None = None) -> dict:
    """NDCG@10 and HR@10 on the test split (full ranking, seen items masked), scoring time, users scored."""
    started = time.perf_counter()
    metrics = evaluate(model, data, "test", ks=(10,), users=users).iloc[0]
    return {"ndcg@10": float(metrics["ndcg"]), "hr@10": float(metrics["hr"]), "n_users": int(metrics["n_users"]),
            "scoring_seconds": time.perf_counter() - started}


def fit_and_measure(setup: ModelSetup, data: SplitData, seed: int) -> dict:
    """One finetune-vs-prompt run: fit, score every test user, report cost. Peak RSS is this process's own, which is
    why `isolated` runs it in a fresh process."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    fitted = fit(setup, data, seed)
    test = held_out_metrics(fitted.model, data)
    return {
        "ndcg@10": test["ndcg@10"], "hr@10": test["hr@10"], "n_users": test["n_users"],
        "trainable_parameters": fitted.report.trainable_parameters, "fit_seconds": fitted.fit_seconds,
        "inference_seconds": test["scoring_seconds"], "valid_ndcg@10": fitted.report.valid_ndcg_at_10,
        "peak_rss_mib": peak_rss_mib(),
        "best_epoch": fitted.report.params.get("best_epoch"), "steps": fitted.report.params.get("steps"),
    }


def isolated(setup: ModelSetup, data: SplitData, seed: int) -> dict:
    """`fit_and_measure` in a fresh spawned process, so peak RSS and wall time are this model's alone."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fit_and_measure, setup, data, seed).result()


def save(model: Recommender, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def history_length_bucket(lengths: np.ndarray) -> np.ndarray:
    """User buckets by train interactions: ≤5, 6–20, 21–50, >50."""
    return np.select([lengths <= 5, lengths <= 20, lengths <= 50], ["<=5", "6-20", "21-50"], ">50")


def popularity_bucket(data: SplitData) -> np.ndarray:
    """Item buckets by train count: head = the most popular items that make up 50% of train interactions, torso =
    the next 30%, tail = the last 20% (items never seen in train included)."""
    counts = np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items)
    order = np.argsort(-counts, kind="stable")
    share = np.cumsum(counts[order]) / max(counts.sum(), 1)
    before = share - counts[order] / max(counts.sum(), 1)  # share of interactions before this item
    buckets = np.empty(data.n_items, dtype=object)
    buckets[order] = np.select([before < 0.5, before < 0.8], ["head", "torso"], "tail")
    return buckets


def bucket_metrics(model: Recommender, data: SplitData) -> pd.DataFrame:
    """Test NDCG@10 / HR@10 per (history-length bucket × target-popularity bucket) cell, one evaluation per cell, so
    every user is scored once; the marginals are user-weighted means of the cells."""
    users = data.evaluation_users("test")
    lengths = history_length_bucket(np.array([len(data.train_sequences[u]) for u in users]))
    popularity = popularity_bucket(data)[data.test_items[users]]
    cells = []
    for length in np.unique(lengths):
        for pop in np.unique(popularity):
            chosen = users[(lengths == length) & (popularity == pop)]
            if len(chosen):
                metrics = held_out_metrics(model, data, chosen)
                cells.append({"history_length": length, "target_popularity": pop, **metrics})
    return pd.DataFrame(cells)


def marginals(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows (dimension, bucket, ndcg@10, hr@10, n_users) for each bucket of each dimension and for all users."""
    rows = []
    for dimension in ("history_length", "target_popularity", None):
        groups = cells.groupby(dimension) if dimension else [("all", cells)]
        for bucket, group in groups:
            weights = group["n_users"] / group["n_users"].sum()
            rows.append({"dimension": dimension or "all", "bucket": bucket, "n_users": int(group["n_users"].sum()),
                         "ndcg@10": float((group["ndcg@10"] * weights).sum()),
                         "hr@10": float((group["hr@10"] * weights).sum())})
    return pd.DataFrame(rows)
