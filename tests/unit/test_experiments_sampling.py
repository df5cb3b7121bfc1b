"""The experiments' user samplers: training fractions keep valid/test users and their histories fixed, are seeded
and nested; the evaluation sample hides held-out items of other users only. Plus the bucket helpers."""

from __future__ import annotations

import numpy as np
import pytest

from lmrec_assets.experiments.runs import history_length_bucket, marginals, popularity_bucket
from lmrec_assets.experiments.sampling import TrainingSubset, evaluation_sample, fraction_split, training_users
from lmrec_assets.models.base import SplitData


def make_split(n_users: int = 200, n_items: int = 50, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    sequences = [rng.choice(n_items, size=rng.integers(1, 30), replace=False).astype(np.int64) for _ in range(n_users)]
    sequences[3] = np.array([], dtype=np.int64)  # a user with no train items is never a "training user"
    valid = rng.integers(0, n_items, n_users)
    test = rng.integers(0, n_items, n_users)
    valid[:10], test[:10] = -1, -1  # users with < 3 events: train only
    return SplitData(
        user_ids=np.array([f"u{u}" for u in range(n_users)]), item_ids=np.array([f"i{i}" for i in range(n_items)]),
        item_text=[f"text {i}" for i in range(n_items)], item_titles=[f"title {i}" for i in range(n_items)],
        train_sequences=sequences, valid_items=valid, test_items=test, fingerprint="base",
    )


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.25, 0.5])
def test_fraction_keeps_valid_and_test_users_and_their_histories(fraction: float) -> None:
    data = make_split()
    subset = fraction_split(data, fraction, seed=7)
    assert isinstance(subset, TrainingSubset)
    for split in ("valid", "test"):
        assert np.array_equal(subset.evaluation_users(split), data.evaluation_users(split))
        assert np.array_equal(subset.targets(split), data.targets(split))
    for upto in ("train", "valid", "test"):  # what scoring conditions on is the full history
        assert all(np.array_equal(a, b) for a, b in zip(subset.histories(upto), data.histories(upto)))
    trained = [u for u, seq in enumerate(subset.train_sequences) if len(seq)]
    assert trained == training_users(data, fraction, seed=7).tolist()
    assert len(trained) == max(1, round(fraction * 199))  # user 3 has no train items
    assert all(np.array_equal(subset.train_sequences[u], data.train_sequences[u]) for u in trained)
    assert subset.fingerprint != data.fingerprint


def test_fraction_sampler_is_deterministic_nested_and_seeded() -> None:
    data = make_split()
    assert np.array_equal(training_users(data, 0.25, seed=7), training_users(make_split(), 0.25, seed=7))
    small, large = set(training_users(data, 0.05, 7)), set(training_users(data, 0.25, 7))
    assert small < large
    assert set(training_users(data, 0.25, 8)) != large
    assert fraction_split(data, 1.0, 7) is data
    with pytest.raises(ValueError):
        training_users(data, 0.0, 7)


def test_evaluation_sample_then_fraction() -> None:
    data = make_split()
    sampled = evaluation_sample(data, 50, seed=0)
    users = sampled.evaluation_users("test")
    assert len(users) == 50 and np.array_equal(users, sampled.evaluation_users("valid"))
    assert set(users) <= set(data.evaluation_users("test"))
    assert np.array_equal(sampled.test_items[users], data.test_items[users])
    assert all(np.array_equal(a, b) for a, b in zip(sampled.train_sequences, data.train_sequences))
    subset = fraction_split(sampled, 0.1, seed=7)
    assert np.array_equal(subset.evaluation_users("test"), users)
    assert all(np.array_equal(subset.histories("valid")[u], data.histories("valid")[u]) for u in users)
    assert evaluation_sample(data, 0, seed=0) is data


def test_buckets() -> None:
    assert history_length_bucket(np.array([1, 5, 6, 20, 21, 50, 51])).tolist() == [
        "<=5", "<=5", "6-20", "6-20", "21-50", "21-50", ">50"]
    data = make_split()
    buckets = popularity_bucket(data)
    counts = np.bincount(np.concatenate(data.train_sequences), minlength=data.n_items)
    head, tail = counts[buckets == "head"], counts[buckets == "tail"]
    assert head.min() >= tail.max() and set(buckets) == {"head", "torso", "tail"}


def test_marginals_weight_cells_by_users() -> None:
    import pandas as pd

    cells = pd.DataFrame([
        {"history_length": "<=5", "target_popularity": "head", "n_users": 1, "ndcg@10": 1.0, "hr@10": 1.0},
        {"history_length": ">50", "target_popularity": "head", "n_users": 3, "ndcg@10": 0.0, "hr@10": 0.0},
    ])
    rows = marginals(cells).set_index(["dimension", "bucket"])
    assert rows.loc[("all", "all"), "ndcg@10"] == 0.25 and rows.loc[("all", "all"), "n_users"] == 4
    assert rows.loc[("target_popularity", "head"), "ndcg@10"] == 0.25
    assert rows.loc[("history_length", "<=5"), "ndcg@10"] == 1.0
