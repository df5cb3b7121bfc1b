"""Full-ranking evaluation, written once for every model.

Protocol: per-user leave-one-out by time; each held-out item is ranked against the *whole* catalogue; items in the
user's conditioning history are masked; ties are broken by item index (a stable sort), the same rule `top_k` uses,
so the recommendation tables and the metrics always agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from lmrec_assets.models.base import Recommender, Split, SplitData

KS = (5, 10, 20)
PROTOCOL = "leave-one-out by time; full ranking over all items; seen items masked; ties by item index"


def mask_seen(scores: np.ndarray, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
    """Set every item in each user's history to -inf (in place) so it can never be recommended or counted."""
    rows = np.repeat(np.arange(len(users)), [len(histories[u]) for u in users])
    cols = np.concatenate([histories[u] for u in users]) if len(users) else np.array([], dtype=np.int64)
    scores[rows, cols] = -np.inf
    return scores


def masked_scores(model: Recommender, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
    scores = np.asarray(model.score(users, histories), dtype=np.float32)
    if not np.isfinite(scores).all():
        raise ValueError(f"{model.name} produced non-finite scores")
    return mask_seen(scores, users, histories)


def batches(users: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(users), batch_size):
        yield users[start : start + batch_size]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of each row's k best items, best first, ties by lower item index."""
    k = min(k, scores.shape[1])
    boundary = scores.shape[1] - k
    kth = np.partition(scores, boundary, axis=1)[:, boundary : boundary + 1]  # each row's k-th largest score
    above = scores > kth
    ties = scores == kth
    needed = k - above.sum(axis=1, keepdims=True)
    chosen = above | ties
    # Only rows with more items tied at the k-th score than slots left need the (full-width) running count.
    crowded = np.flatnonzero(ties.sum(axis=1) > needed[:, 0])
    if len(crowded):
        chosen[crowded] = above[crowded] | (ties[crowded] & (np.cumsum(ties[crowded], axis=1) <= needed[crowded]))
    columns = np.nonzero(chosen)[1].reshape(len(scores), k)  # ascending item index within each row
    values = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(values, order, axis=1)


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target item under the same ordering as `top_k`."""
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    lower_index = np.arange(scores.shape[1])[None, :] < targets[:, None]
    return 1 + (scores > target_scores).sum(axis=1) + ((scores == target_scores) & lower_index).sum(axis=1)


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = KS) -> pd.DataFrame:
    """HR, NDCG, MRR, Recall, Precision at each K for one held-out item per user (so Recall = HR)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    rows = []
    for k in ks:
        hit = ranks <= k
        rows.append({
            "k": k,
            "hr": hit.mean(),
            "ndcg": np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean(),
            "mrr": np.where(hit, 1.0 / ranks, 0.0).mean(),
            "recall": hit.mean(),
            "precision": hit.mean() / k,
        })
    return pd.DataFrame(rows)


def evaluate(
    model: Recommender, data: SplitData, split: Split, ks: Sequence[int] = KS, batch_size: int = 1024,
    users: np.ndarray | None = None,
) -> pd.DataFrame:
    """Metrics of `model` on `split` (valid: conditioned on train; test: on train + valid), one row per K.

    `users` restricts the evaluation to a subset of the split's users (e.g. those whose target is a cold item).
    """
    users = data.evaluation_users(split) if users is None else users
    histories = data.histories(data.conditioning(split))
    targets = data.targets(split)
    ranks, recommended = [], {k: np.zeros(data.n_items, dtype=bool) for k in ks}
    for chunk in batches(users, batch_size):
        scores = masked_scores(model, chunk, histories)
        ranks.append(target_ranks(scores, targets[chunk]))
        best, _ = top_k(scores, max(ks))
        for k in ks:
            recommended[k][best[:, :k].ravel()] = True
    metrics = metrics_from_ranks(np.concatenate(ranks) if ranks else np.array([]), ks)
    metrics["coverage"] = [recommended[k].mean() for k in ks]
    metrics["n_users"] = len(users)
    return metrics


def cold_target_users(data: SplitData, split: Split) -> np.ndarray:
    """Evaluation users whose held-out item has no train interactions at all (a cold item)."""
    train_counts = np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items)
    users = data.evaluation_users(split)
    return users[train_counts[data.targets(split)[users]] == 0]


def evaluate_segments(model: Recommender, data: SplitData, split: Split, ks: Sequence[int] = KS) -> pd.DataFrame:
    """Metrics for all evaluation users and for the cold-item segment, with a `segment` column."""
    frames = [evaluate(model, data, split, ks).assign(segment="all")]
    cold = cold_target_users(data, split)
    if len(cold):
        frames.append(evaluate(model, data, split, ks, users=cold).assign(segment="cold_items"))
    return pd.concat(frames, ignore_index=True)
